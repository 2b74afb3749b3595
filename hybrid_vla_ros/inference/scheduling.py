"""Action-chunk scheduling: turning (K, A) chunks predicted now and then into one action per
control tick.

Two modes (LeRobot / ACT conventions):

- ``replan``: execute-then-replan. A chunk predicted at tick t supplies ticks t .. t+K-1;
  a new chunk is wanted after `replan_every` ticks (k <= K). Between chunks the queue is
  simply consumed; if no new chunk has arrived when the queue runs dry, there is no action
  (the caller holds).
- ``ensemble``: temporal ensembling. A chunk is wanted every tick; the action for tick t is
  the weighted mean of every stored prediction for t, weights ``exp(-decay * i)`` with
  i = 0 the oldest prediction (ACT), so old plans dominate and actions are smooth.

Ticks are integers counted by the caller (the control loop), so the scheduler works the
same in a lock-step simulator and at a fixed real-time rate, and a chunk computed
asynchronously is placed at the tick it was predicted for.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict, List, Optional, Tuple

import numpy as np

MODES = ('replan', 'ensemble')


class ChunkScheduler:
    """Schedules (K, A) float chunks into per-tick (A,) actions (see module docstring)."""

    def __init__(self, mode: str = 'replan', chunk: int = 8, replan_every: int = 4,
                 ensemble_decay: float = 0.1):
        if mode not in MODES:
            raise ValueError(f'scheduler mode {mode!r} is unknown; choose one of '
                             f'{", ".join(MODES)}')
        if mode == 'replan' and not 1 <= replan_every <= chunk:
            raise ValueError(f'replan_every must be in [1, chunk={chunk}], got {replan_every}')
        self.mode, self.chunk = mode, chunk
        self.replan_every = replan_every
        self.decay = ensemble_decay
        self.reset()

    def reset(self) -> None:
        """Forget every stored prediction (a new instruction, an e-stop, a reset)."""
        self._queue: Deque[Tuple[int, np.ndarray]] = deque()
        self._predictions: Dict[int, List[np.ndarray]] = {}
        self._last_chunk_tick: Optional[int] = None

    def wants_chunk(self, tick: int) -> bool:
        """True when a new chunk should be computed for `tick`."""
        if self._last_chunk_tick is None:
            return True
        if self.mode == 'ensemble':
            return tick > self._last_chunk_tick
        return tick - self._last_chunk_tick >= self.replan_every

    def add_chunk(self, chunk: np.ndarray, tick: int) -> None:
        """Store a (K, A) chunk whose first action is meant for `tick`."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[0] != self.chunk:
            raise ValueError(f'expected a ({self.chunk}, A) chunk, got {chunk.shape}')
        self._last_chunk_tick = tick
        if self.mode == 'replan':
            self._queue = deque((tick + i, a) for i, a in enumerate(chunk))
        else:
            for i, a in enumerate(chunk):
                self._predictions.setdefault(tick + i, []).append(a)

    def action(self, tick: int) -> Optional[np.ndarray]:
        """The (A,) action for `tick`, or None when nothing covers it (hold)."""
        if self.mode == 'replan':
            while self._queue and self._queue[0][0] < tick:
                self._queue.popleft()
            if self._queue and self._queue[0][0] == tick:
                return self._queue.popleft()[1]
            return None
        for old in [t for t in self._predictions if t < tick]:
            del self._predictions[old]
        preds = self._predictions.get(tick)
        if not preds:
            return None
        weights = np.exp(-self.decay * np.arange(len(preds)))
        return (np.stack(preds) * weights[:, None]).sum(0) / weights.sum()

    def planned(self, tick: int, n: int) -> List[np.ndarray]:
        """The (A,) actions scheduled for ticks tick+1 .. tick+n, as far as the stored
        predictions cover them without a gap (not consumed: `action` still returns them on
        their own ticks)."""
        out: List[np.ndarray] = []
        if self.mode == 'replan':
            expected = tick + 1
            for t, a in self._queue:
                if t < expected:
                    continue
                if t != expected or len(out) == n:
                    break
                out.append(np.asarray(a, dtype=np.float64))
                expected += 1
            return out
        for t in range(tick + 1, tick + 1 + n):
            preds = self._predictions.get(t)
            if not preds:
                break
            weights = np.exp(-self.decay * np.arange(len(preds)))
            out.append((np.stack(preds) * weights[:, None]).sum(0) / weights.sum())
        return out

    @property
    def queued(self) -> int:
        """Ticks still covered by stored predictions (replan) / future ticks (ensemble)."""
        if self.mode == 'replan':
            return len(self._queue)
        return len(self._predictions)
