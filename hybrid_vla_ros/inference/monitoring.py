"""Diagnostic levels and the small statistics every control path keeps (no rclpy): events
per second and latency percentiles. The ROS nodes publish them on ``/diagnostics``; the
offline control path (eval-sim, the collector's policy driver) reports the same numbers."""

from __future__ import annotations

import collections
import time
from typing import Deque, Dict, Iterable, Optional

import numpy as np

# The levels of diagnostic_msgs/DiagnosticStatus.
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: 'OK', WARN: 'WARN', ERROR: 'ERROR', STALE: 'STALE'}


class RateMeter:
    """Events per second over the last `window` seconds (monotonic clock)."""

    def __init__(self, window: float = 2.0):
        self.window = window
        self._times: Deque[float] = collections.deque()
        self.count = 0

    def tick(self, now: Optional[float] = None) -> None:
        """Record one event."""
        now = time.monotonic() if now is None else now
        self._times.append(now)
        self.count += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()

    def rate(self, now: Optional[float] = None) -> float:
        """Events per second in the window (0 with fewer than two events)."""
        now = time.monotonic() if now is None else now
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0


class LatencyWindow:
    """The last `size` latency samples (seconds) and their percentiles (milliseconds)."""

    def __init__(self, size: int = 500):
        self._samples: Deque[float] = collections.deque(maxlen=size)

    def add(self, seconds: float) -> None:
        """Record one latency in seconds."""
        self._samples.append(float(seconds))

    def __len__(self) -> int:
        return len(self._samples)

    def percentiles_ms(self, qs: Iterable[float] = (50, 90, 99)) -> Dict[str, float]:
        """{'p50': ms, ...}; empty when no samples."""
        if not self._samples:
            return {}
        arr = np.asarray(self._samples) * 1e3
        return {f'p{q:g}': float(np.percentile(arr, q)) for q in qs}


