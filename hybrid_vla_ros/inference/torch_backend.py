"""The eager PyTorch backend: runs the checkpoint directly (training machines, parity)."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from .backend import Backend, BackendUnavailable
from .spec import PolicySpec


class TorchBackend(Backend):
    """Runs the three parts of a loaded `HybridPolicy` in eager mode on the CPU (or
    ``cuda`` when `providers` names it and CUDA is available)."""

    name = 'torch'

    def __init__(self, checkpoint_dir, spec: PolicySpec, parts, threads: int = 1,
                 providers: Sequence[str] = ('cpu',), fp16: bool = False):
        try:
            import torch
        except ImportError:
            raise BackendUnavailable('the torch backend needs PyTorch; use --backend '
                                     'onnxruntime on machines without it') from None
        from .io_spec import part_io
        from ..model import load_checkpoint
        device = 'cuda' if 'cuda' in providers else 'cpu'
        if device == 'cuda' and not torch.cuda.is_available():
            raise BackendUnavailable('torch backend: CUDA was asked for but '
                                     'torch.cuda.is_available() is false here')
        torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device(device)
        self.policy = load_checkpoint(checkpoint_dir).to(self.device).eval()
        self.dtype = torch.float16 if fp16 else torch.float32
        if fp16:
            self.policy.half()
        io = part_io(self.policy)
        super().__init__(checkpoint_dir, spec, {p: io[p] for p in parts})
        self.threads = threads

    def tokenizer_path(self):
        """The tokenizer.json of the model's language encoder (no export needed)."""
        return self.policy.tokenizer.path

    def _run(self, part: str, feeds: Dict[str, np.ndarray]) -> np.ndarray:
        t = self.torch
        f = {k: t.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in feeds.items()}
        for k in ('visual_tokens', 'language_tokens', 'proprio'):
            if k in f:
                f[k] = f[k].to(self.dtype)
        with t.inference_mode():
            if part == 'vision':
                out = self.policy.encode_vision(f['images'])
            elif part == 'language':
                out = self.policy.encode_language(f['token_ids'], f['token_mask'])
            else:
                out = self.policy.core(f['visual_tokens'], f['language_tokens'],
                                       f['token_mask'], f['proprio'])
        return out.float().cpu().numpy()

    def describe(self) -> str:
        """Backend, device and threads."""
        return f'torch[{self.device.type}] threads={self.threads}'
