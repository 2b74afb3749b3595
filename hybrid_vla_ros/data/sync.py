"""Time alignment: which message is "the latest at or before" each control step, and which
future steps form an action chunk. Pure numpy on integer nanoseconds (float seconds would
make equal stamps compare unequal)."""

from __future__ import annotations

from typing import Tuple

import numpy as np


def latest_at_or_before(stamps_ns: np.ndarray, query_ns: np.ndarray,
                        tolerance_ns: int = 0) -> np.ndarray:
    """For each query time, the index of the last message stamped <= query + tolerance.

    `stamps_ns` (M,) int64 must be sorted ascending; `query_ns` (T,) int64. Returns (T,)
    int64 with -1 where no message is that early. Among equal stamps the last one (the
    later received, after a stable sort) wins.
    """
    return np.searchsorted(stamps_ns, query_ns + tolerance_ns, side='right').astype(np.int64) - 1


def chunk_indices(length: int, step: int, chunk: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices of steps ``step .. step+chunk-1`` clipped to the episode and their validity.

    Returns (K,) int64 indices (past the end: the last step, so padding repeats the last
    command) and (K,) bool, false past the episode's end.
    """
    wanted = step + np.arange(chunk, dtype=np.int64)
    valid = wanted < length
    return np.minimum(wanted, length - 1), valid
