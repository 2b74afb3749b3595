"""The QoS profiles of every topic, in one place (docs/ros.md, "Topics").

- sensors (images, joint states, end-effector pose): best effort, keep last 1, volatile —
  always the newest sample, never a queue of old ones; a best-effort subscription also
  matches reliable publishers.
- commands: reliable, keep last 10, volatile.
- features (`vision_features`): reliable, keep last 1.
- latched (`instruction`, `language_features`): reliable, transient local, keep last 1 — a
  node that starts late still gets the current value.
- events (e-stop, episode results): reliable, keep last 10, volatile — matches both volatile
  and transient-local publishers (`ros2 topic pub` defaults to volatile).
"""

from __future__ import annotations

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)


def _profile(depth: int, reliable: bool = True, latched: bool = False) -> QoSProfile:
    """A keep-last profile of `depth`, reliable or best effort, transient-local or volatile."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=(ReliabilityPolicy.RELIABLE if reliable
                                   else ReliabilityPolicy.BEST_EFFORT),
                      durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                                  else DurabilityPolicy.VOLATILE))


SENSOR = _profile(1, reliable=False)
COMMAND = _profile(10)
FEATURES = _profile(1)
LATCHED = _profile(1, latched=True)
EVENTS = _profile(10)
# A volatile twin of LATCHED, so a volatile publisher (`ros2 topic pub` without
# --qos-durability) is still heard: a transient-local subscription cannot match it.
LATCHED_COMPAT = _profile(1)
DIAGNOSTICS = _profile(10)
