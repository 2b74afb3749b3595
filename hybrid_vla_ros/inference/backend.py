"""The `Backend` interface shared by the torch, onnxruntime and tensorrt backends.

A backend runs the three deployed parts on numpy arrays (docs/architecture.md):

- ``vision``:      images (B, N, H, W, 3) uint8                      -> (B, T, Dv) float32
- ``language``:    token_ids (B, L) int64, token_mask (B, L) int64     -> (B, L, Dl) float32
- ``policy_core``: visual_tokens, language_tokens, token_mask, proprio (B, P) float32
                   -> action_chunk (B, K, A) float32, robot units

Every input is checked against the part's declared shapes and dtypes before it reaches the
runtime, so a wrong input fails with the expected and the received shape, not deep inside.
"""

from __future__ import annotations

import abc
import importlib
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from ..schema import ConfigError
from .spec import PolicySpec, read_spec

PART_NAMES = ('vision', 'language', 'policy_core')
BACKENDS = {
    'torch': ('.torch_backend', 'TorchBackend'),
    'onnxruntime': ('.onnx_backend', 'OnnxRuntimeBackend'),
    'tensorrt': ('.tensorrt_backend', 'TensorRTBackend'),
}


class BackendUnavailable(ConfigError):
    """The selected backend or execution provider is not installed here."""


class InputError(ValueError):
    """An input array has the wrong shape or dtype for a part."""


def _shape_text(shape: Sequence) -> str:
    return '(' + ', '.join('B' if d is None or isinstance(d, str) else str(d)
                           for d in shape) + ')'


def check_inputs(part: str, io: dict, feeds: Dict[str, np.ndarray]) -> None:
    """Validate `feeds` against ``io['inputs']`` ([{name, shape, dtype}], batch axis 0 is
    symbolic); raise InputError naming the part, the input, expected and received."""
    batch = None
    for spec in io['inputs']:
        name = spec['name']
        if name not in feeds:
            raise InputError(f'{part}: input {name!r} is missing')
        arr = feeds[name]
        want = spec['shape']
        ok = (isinstance(arr, np.ndarray) and arr.dtype == np.dtype(spec['dtype'])
              and arr.ndim == len(want)
              and all(isinstance(w, str) or w is None or a == w
                      for a, w in zip(arr.shape, want, strict=True)))
        if not ok:
            got = (f'{tuple(arr.shape)} {arr.dtype}' if isinstance(arr, np.ndarray)
                   else type(arr).__name__)
            raise InputError(f'{part} input {name!r}: expected shape {_shape_text(want)} '
                             f'{spec["dtype"]}, received {got}')
        if batch is None:
            batch = arr.shape[0]
        elif arr.shape[0] != batch:
            raise InputError(f'{part} input {name!r}: batch {arr.shape[0]} differs from '
                             f'the batch {batch} of the other inputs')


class Backend(abc.ABC):
    """Runs a checkpoint's deployed parts. Subclasses implement `_run`."""

    name = 'abstract'

    def __init__(self, checkpoint_dir, spec: PolicySpec, io: Dict[str, dict]):
        self.checkpoint_dir = Path(checkpoint_dir)
        self.spec = spec
        self.io = io
        self._tokenizer = None

    @abc.abstractmethod
    def _run(self, part: str, feeds: Dict[str, np.ndarray]) -> np.ndarray:
        """Run `part` on validated feeds; return its single output."""

    def run(self, part: str, feeds: Dict[str, np.ndarray]) -> np.ndarray:
        """Validate `feeds` for `part` and run it."""
        if part not in self.io:
            raise ConfigError(f'part {part!r} is not loaded in this {self.name} backend '
                              f'(loaded: {", ".join(self.io)})')
        check_inputs(part, self.io[part], feeds)
        return self._run(part, feeds)

    def encode_vision(self, images: np.ndarray) -> np.ndarray:
        """(B, N, H, W, 3) uint8 -> visual tokens (B, T, Dv) float32."""
        return self.run('vision', {'images': images})

    def encode_language(self, token_ids: np.ndarray, token_mask: np.ndarray) -> np.ndarray:
        """(B, L) int64 ids and mask -> language tokens (B, L, Dl) float32."""
        return self.run('language', {'token_ids': token_ids, 'token_mask': token_mask})

    def core(self, visual_tokens: np.ndarray, language_tokens: np.ndarray,
             token_mask: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        """Tokens and proprioception (B, P) float32 -> action chunk (B, K, A) float32."""
        return self.run('policy_core', {'visual_tokens': visual_tokens,
                                        'language_tokens': language_tokens,
                                        'token_mask': token_mask, 'proprio': proprio})

    @property
    def tokenizer(self):
        """The checkpoint's `InstructionTokenizer` (from the exported tokenizer.json)."""
        if self._tokenizer is None:
            from ..tokenizer import InstructionTokenizer
            self._tokenizer = InstructionTokenizer(self.tokenizer_path(),
                                                   self.spec.max_tokens)
        return self._tokenizer

    def tokenizer_path(self) -> Path:
        """Path of the tokenizer.json this backend tokenizes with."""
        from .manifest import ONNX_DIR, export_hint
        path = self.checkpoint_dir / ONNX_DIR / 'tokenizer.json'
        if not path.is_file():
            raise ConfigError(f'{path} is missing; run `{export_hint(self.checkpoint_dir)}`')
        return path

    def encode_instruction(self, text: str) -> Tuple[np.ndarray, np.ndarray]:
        """One instruction -> (language tokens (1, L, Dl) float32, mask (1, L) int64)."""
        ids, mask = self.tokenizer([text])
        return self.encode_language(ids, mask), mask

    def describe(self) -> str:
        """A one-line description for logs and diagnostics."""
        return self.name


def available_backends() -> List[str]:
    """Names accepted by `load_backend`."""
    return list(BACKENDS)


def load_backend(checkpoint_dir, backend: str = 'onnxruntime',
                 parts: Iterable[str] = PART_NAMES, threads: int = 1,
                 providers: Sequence[str] = ('cpu',), fp16: bool = False) -> Backend:
    """Open `checkpoint_dir` with the named backend, loading only `parts`.

    `threads` is the intra-op thread count; `providers` (onnxruntime only) lists execution
    providers in preference order: ``cpu``, ``cuda``, ``tensorrt``. `fp16` selects the
    half-precision graphs / engines where the backend has them. Raises BackendUnavailable
    when the backend or a provider is not installed, ConfigError / ManifestError when the
    checkpoint or its exported graphs are missing or do not match.
    """
    if backend not in BACKENDS:
        raise ConfigError(f'backend {backend!r} is unknown; choose one of '
                          f'{", ".join(BACKENDS)}')
    parts = tuple(parts)
    bad = [p for p in parts if p not in PART_NAMES]
    if bad:
        raise ConfigError(f'part {bad[0]!r} is unknown; parts are {", ".join(PART_NAMES)}')
    if threads < 1:
        raise ConfigError(f'threads must be >= 1, got {threads}')
    spec = read_spec(checkpoint_dir)
    module, cls_name = BACKENDS[backend]
    cls = getattr(importlib.import_module(module, __package__), cls_name)
    return cls(checkpoint_dir, spec, parts=parts, threads=threads, providers=providers,
               fp16=fp16)
