"""Keyframes of an episode and the waypoint target they give each step.

A keyframe is a step where something decisive happens: the gripper command crosses the
topic map's ``keyframe_threshold`` (the hand closes on an object, or lets it go), and the
episode's last step. The waypoint target of step ``t`` is the proprioception at the first
keyframe after ``t`` — where the hand will be when it next grasps or releases, or where
the episode ends. Predicting it from the fused observation teaches the network *where the
object is* directly, instead of only through the next K velocity commands (the waypoint
objective, ``loss.waypoint_weight``).

Computed from the recorded actions and proprioception alone, so it works on any robot's
bags without extra topics.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def keyframe_steps(actions: np.ndarray, gripper_index: Optional[int],
                   threshold: float = 0.0) -> np.ndarray:
    """Sorted keyframe step indices of one episode.

    `actions` (T, A) float32 message units; `gripper_index` the gripper command's entry in A,
    or None for the last step only. A keyframe is a step where the command crosses
    `threshold` (above it the gripper closes, at or below it opens), plus the last step.
    """
    last = max(len(actions) - 1, 0)
    if gripper_index is None or len(actions) == 0:
        return np.array([last], np.int64)
    closed = actions[:, gripper_index] > threshold
    changes = np.flatnonzero(closed[1:] != closed[:-1]) + 1
    return np.unique(np.append(changes, last)).astype(np.int64)


def next_keyframe(actions: np.ndarray, gripper_index: Optional[int],
                  threshold: float = 0.0) -> np.ndarray:
    """(T,) int64: for every step t, the first keyframe step strictly after t (the last
    step maps to itself). Arguments as `keyframe_steps`."""
    keys = keyframe_steps(actions, gripper_index, threshold)
    steps = np.arange(len(actions))
    index = np.searchsorted(keys, steps, side='right')
    return keys[np.minimum(index, len(keys) - 1)]
