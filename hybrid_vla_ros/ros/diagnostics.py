"""Diagnostics every node publishes on ``/diagnostics`` (diagnostic_msgs/DiagnosticArray).

Each node owns one `DiagnosticsReporter`: it publishes one DiagnosticStatus named after the
node (``/policy``) with hardware_id = the model id, a level (OK / WARN / ERROR / STALE), a
one-line message, and key/value pairs (rates in Hz, latencies and ages in ms, backend, model
id). It publishes every `period` seconds and immediately whenever the level or message
changes, so a fault shows up within one control tick rather than one period.

`RateMeter` and `LatencyWindow` (`inference.monitoring`, no rclpy) are the small statistics
the nodes feed.
"""

from __future__ import annotations

from typing import Dict

from ..inference.monitoring import (ERROR, LEVEL_NAMES, OK, STALE, WARN,  # noqa: F401
                                   LatencyWindow, RateMeter)


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
