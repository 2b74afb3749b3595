"""Train/validation split by episode and normalization statistics.

Splitting by episode (never by step) keeps near-duplicate neighbouring frames of one
episode out of both sides. Statistics come from the training split only, so validation
measures generalization without peeking.
"""

from __future__ import annotations

import hashlib
from typing import Dict, List, Sequence, Tuple

import numpy as np


def split_episodes(names: Sequence[str], val_fraction: float,
                   seed: int) -> Tuple[List[int], List[int]]:
    """Indices (train, validation) of episodes named `names` (e.g. bag directory names).

    Episodes are ranked by a hash of (seed, name) and the first ``round(val_fraction * n)``
    go to validation: deterministic for a seed, independent of the order given, and an
    episode keeps its side when other episodes are added or removed (mostly). With two or
    more episodes and ``val_fraction > 0`` there is at least one validation episode and at
    least one training episode; ``val_fraction == 0`` means no validation.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
    n = len(names)
    n_val = 0
    if val_fraction > 0 and n >= 2:
        n_val = min(max(int(round(val_fraction * n)), 1), n - 1)

    def rank(i: int):
        digest = hashlib.sha256(f'{seed}:{names[i]}'.encode()).hexdigest()
        return digest, i

    order = sorted(range(n), key=rank)
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return train, val


def normalization_stats(arrays: Sequence[np.ndarray], std_floor: float) -> Dict[str, List[float]]:
    """Per-dimension mean and std over the rows of (T_i, D) arrays, in the form
    ``hybrid_vla_ros.model.config.Stats`` takes: ``{'mean': [D floats], 'std': [D floats]}``.

    The std is floored at `std_floor` (same units as the data) so constant dimensions (an
    unused gripper, a zero angular command) normalize to 0 instead of dividing by zero.
    """
    rows = np.concatenate([np.asarray(a, np.float64) for a in arrays], axis=0)
    if rows.shape[0] == 0:
        dim = rows.shape[1]
        return {'mean': [0.0] * dim, 'std': [1.0] * dim}
    mean = rows.mean(axis=0)
    std = np.maximum(rows.std(axis=0), std_floor)
    return {'mean': [float(v) for v in mean], 'std': [float(v) for v in std]}
