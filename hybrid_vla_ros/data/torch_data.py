"""The torch side of the dataset: batching numpy samples into tensors.

The only module of ``hybrid_vla_ros.data`` that imports torch. A batch holds what
``hybrid_vla_ros.model.losses.hybrid_objective`` reads (``images``, ``proprio``,
``actions``, ``action_valid``, ``instruction_group``) plus the raw ``instruction`` strings;
the trainer adds ``token_ids`` / ``mask`` with ``policy.tokenize``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader


def collate(samples: Sequence[Dict]) -> Dict:
    """Stack B samples (dicts from `EpisodeDataset`) into a batch.

    Returns ``images`` (B, N, H, W, 3) uint8, ``proprio`` and ``waypoint`` (B, P) float32,
    ``actions`` (B, K, A) float32, ``action_valid`` (B, K) bool, ``instruction_group``,
    ``episode``, ``step`` (B,) int64 tensors, and ``instruction`` / ``task`` lists of B
    strings.
    """
    def stack(key, dtype):
        return torch.from_numpy(np.stack([s[key] for s in samples]).astype(dtype, copy=False))

    def ints(key):
        return torch.tensor([int(s[key]) for s in samples], dtype=torch.int64)

    return {
        'images': stack('images', np.uint8),
        'proprio': stack('proprio', np.float32),
        'waypoint': stack('waypoint', np.float32),
        'actions': stack('actions', np.float32),
        'action_valid': stack('action_valid', np.bool_),
        'instruction_group': ints('instruction_group'),
        'episode': ints('episode'),
        'step': ints('step'),
        'instruction': [s['instruction'] for s in samples],
        'task': [s['task'] for s in samples],
    }


def make_loader(samples, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                num_workers: int = 0, drop_last: bool = False,
                generator: Optional[torch.Generator] = None) -> DataLoader:
    """A `DataLoader` over an `EpisodeDataset` or one of its splits with `collate`.

    Shuffling is seeded (`seed`, or an explicit `generator`) so runs repeat. Workers share
    the decoded episodes copy-on-write after fork, so they cost little memory.
    """
    if generator is None and shuffle:
        generator = torch.Generator().manual_seed(seed)
    return DataLoader(samples, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      num_workers=num_workers, drop_last=drop_last, generator=generator,
                      persistent_workers=num_workers > 0)


__all__: List[str] = ['collate', 'make_loader']
