"""The QoS profiles of every topic, in one place (DESIGN.md "Topics").

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

SENSOR = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                    reliability=ReliabilityPolicy.BEST_EFFORT,
                    durability=DurabilityPolicy.VOLATILE)
COMMAND = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
FEATURES = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
EVENTS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                    reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
# A volatile twin of LATCHED, so a volatile publisher (`ros2 topic pub` without
# --qos-durability) is still heard: a transient-local subscription cannot match it.
LATCHED_COMPAT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                            reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.VOLATILE)
DIAGNOSTICS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
