"""Opening a checkpoint in a node without ever crashing the node.

`open_model` returns either a backend or one clear error line (a missing checkpoint, ONNX
files exported from another configuration or other weights, a backend that is not
installed); the node logs it, reports ERROR on /diagnostics and holds.

The *fingerprint* ``<config hash>:<weights sha256[:16]>`` identifies the exact weights; the
perception and instruction nodes stamp it on their features and the policy refuses features
from another checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Sequence


@dataclasses.dataclass
class LoadedModel:
    """The outcome of `open_model`.

    Attributes:
        backend: the `Backend`, or None when loading failed.
        error: why loading failed (one line), else None.
        fingerprint: ``config_hash:weights_sha256[:16]`` ('' when unknown).
        model_id: the spec's model id (``<directory>@<config hash>``), or the path.
        description: backend description for diagnostics (``onnxruntime[cpu] threads=1``).

    """

    backend: object
    error: Optional[str]
    fingerprint: str
    model_id: str
    description: str


def open_model(checkpoint: str, backend: str = 'onnxruntime',
               parts: Sequence[str] = ('vision', 'language', 'policy_core'), threads: int = 1,
               providers: Sequence[str] = ('cpu',), fp16: bool = False) -> LoadedModel:
    """Load `parts` of `checkpoint` with `backend`; never raises (see `LoadedModel.error`)."""
    if not checkpoint:
        return LoadedModel(None, 'parameter "checkpoint" is empty: set it to a checkpoint '
                                 'directory (with onnx/ from `hybrid-vla export`)', '', '', '')
    path = Path(checkpoint).expanduser()
    if not path.exists():
        return LoadedModel(None, f'checkpoint {path} does not exist', '', str(path), '')
    try:
        from ..inference import load_backend
        be = load_backend(path, backend, parts=parts, threads=threads,
                          providers=providers or ('cpu',), fp16=fp16)
    except Exception as exc:  # ConfigError, ManifestError, BackendUnavailable, ORT errors
        return LoadedModel(None, f'cannot load checkpoint {path} with {backend}: {exc}', '',
                           str(path), '')
    from ..inference.manifest import model_fingerprint
    return LoadedModel(be, None, model_fingerprint(path, be), be.spec.model_id,
                       be.describe())
