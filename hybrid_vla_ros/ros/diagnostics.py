"""Diagnostics every node publishes on ``/diagnostics`` (diagnostic_msgs/DiagnosticArray).

Each node owns one `DiagnosticsReporter`: it publishes one DiagnosticStatus named after the
node (``/policy``) with hardware_id = the model id, a level (OK / WARN / ERROR / STALE), a
one-line message, and key/value pairs (rates in Hz, latencies and ages in ms, backend, model
id). It publishes every `period` seconds and immediately whenever the level or message
changes, so a fault shows up within one control tick rather than one period.

`RateMeter` and `LatencyWindow` are the small statistics the nodes feed (no rclpy).
"""

from __future__ import annotations

import collections
import time
from typing import Deque, Dict, Iterable, Optional

import numpy as np

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


def format_value(value) -> str:
    """Diagnostic values are strings: floats with 3 decimals, the rest as str."""
    if isinstance(value, float):
        return f'{value:.3f}'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


class DiagnosticsReporter:
    """Publishes a node's DiagnosticStatus (see the module docstring).

    Args:
        node: the rclpy node.
        hardware_id: what the status is about (the model id, or the simulated task).
        period: seconds between periodic publications.
        refresh: called before each periodic publication to update level and values.

    """

    def __init__(self, node, hardware_id: str = '', period: float = 1.0, refresh=None):
        from diagnostic_msgs.msg import DiagnosticArray

        from .qos import DIAGNOSTICS
        self._node = node
        self.name = node.get_fully_qualified_name()
        self.hardware_id = hardware_id
        self.level, self.message = OK, 'starting'
        self.values: Dict[str, object] = {}
        self._refresh = refresh
        self._refreshing = False
        self._pub = node.create_publisher(DiagnosticArray, '/diagnostics', DIAGNOSTICS)
        self._timer = node.create_timer(period, self._periodic)

    def _periodic(self) -> None:
        if self._refresh is not None:
            self._refreshing = True
            try:
                self._refresh()
            finally:
                self._refreshing = False
        self.publish()

    def update(self, level: int, message: str, **values) -> None:
        """Set the level, message and any values; publish now if level or message changed."""
        changed = (level, message) != (self.level, self.message)
        self.level, self.message = level, message
        self.values.update(values)
        if changed and not self._refreshing:
            self.publish()

    def set_values(self, **values) -> None:
        """Update values only (published with the next periodic status)."""
        self.values.update(values)

    def publish(self) -> None:
        """Publish the current status now."""
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
        status = DiagnosticStatus(level=bytes([self.level]), name=self.name,
                                  message=self.message, hardware_id=self.hardware_id)
        status.values = [KeyValue(key=k, value=format_value(v)) for k, v in self.values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        try:
            self._pub.publish(array)
        except Exception:  # the context is shutting down: nothing to report to
            pass
