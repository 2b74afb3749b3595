"""The onnxruntime backend: runs ``onnx/*.onnx`` with no torch or transformers installed."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from .backend import Backend, BackendUnavailable
from .manifest import ONNX_DIR, read_manifest, sha256_file
from .spec import PolicySpec

PROVIDERS = {
    'cpu': 'CPUExecutionProvider',
    'cuda': 'CUDAExecutionProvider',
    'tensorrt': 'TensorrtExecutionProvider',
}


def resolve_providers(names: Sequence[str]) -> list:
    """Map short provider names to onnxruntime's, refusing any not installed here."""
    import onnxruntime as ort
    installed = ort.get_available_providers()
    out = []
    for name in names:
        full = PROVIDERS.get(name, name)
        if full not in installed:
            raise BackendUnavailable(
                f'onnxruntime execution provider {name!r} ({full}) is not available here; '
                f'installed: {", ".join(installed)} (CUDA / TensorRT need the '
                'onnxruntime-gpu package and NVIDIA libraries)')
        out.append(full)
    return out


class OnnxRuntimeBackend(Backend):
    """Runs the exported graphs with onnxruntime (full graph optimization, `threads`
    intra-op threads, one inter-op thread)."""

    name = 'onnxruntime'

    def __init__(self, checkpoint_dir, spec: PolicySpec, parts, threads: int = 1,
                 providers: Sequence[str] = ('cpu',), fp16: bool = False):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable('onnxruntime is not installed (pip install '
                                     'onnxruntime)') from None
        weights = Path(checkpoint_dir) / 'model.safetensors'
        manifest = read_manifest(checkpoint_dir, spec.config_hash,
                                 sha256_file(weights) if weights.is_file() else None)
        if fp16 and not manifest['fp16']:
            raise BackendUnavailable('this checkpoint was exported without fp16 graphs; '
                                     f'run `hybrid-vla export --checkpoint {checkpoint_dir} '
                                     '--fp16`')
        # fp16 graphs where exported (vision, core); the language part stays float32.
        entries = {**manifest['parts'], **(manifest['fp16'] if fp16 else {})}
        super().__init__(checkpoint_dir, spec, {p: entries[p] for p in parts})
        self.providers = resolve_providers(providers)
        self.threads = threads
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        onnx_dir = Path(checkpoint_dir) / ONNX_DIR
        self.sessions = {p: ort.InferenceSession(str(onnx_dir / self.io[p]['file']), opts,
                                                 providers=self.providers)
                         for p in parts}
        self.manifest = manifest

    def _run(self, part: str, feeds: Dict[str, np.ndarray]) -> np.ndarray:
        return self.sessions[part].run(None, feeds)[0]

    def describe(self) -> str:
        """Backend, providers and threads."""
        return f'onnxruntime[{",".join(self.providers)}] threads={self.threads}'
