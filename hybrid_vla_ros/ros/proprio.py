"""Proprioception from ROS messages: which topic fields make the policy's (P,) vector.

The policy node's ``proprio_sources`` parameter lists, in order, what is concatenated (the
same order the dataset's topic map used in training, docs/data-format.md):

- ``ee_pose.position`` — x, y, z (m) of the geometry_msgs/PoseStamped on ``ee_pose``
- ``ee_pose.orientation`` — x, y, z, w of that pose
- ``joint_states.<joint>`` — the position of the named joint in sensor_msgs/JointState
  on ``joint_states`` (rad, or the gripper opening for Meta-World's ``gripper`` entry)

The Meta-World default is ``[ee_pose.position, joint_states.gripper]`` (P = 4); a joint-space
arm lists its joints. No rclpy import: messages are read by attribute.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..schema import ConfigError

POSE_FIELDS = {'position': ('x', 'y', 'z'), 'orientation': ('x', 'y', 'z', 'w')}
TOPICS = ('ee_pose', 'joint_states')


class ProprioError(ValueError):
    """A message lacks what a source needs (e.g. a joint name); says what it has instead."""


@dataclasses.dataclass(frozen=True)
class Source:
    """One entry of ``proprio_sources``: `topic` and `key` (pose field or joint name)."""

    topic: str
    key: str

    @property
    def size(self) -> int:
        """How many values it contributes."""
        return len(POSE_FIELDS[self.key]) if self.topic == 'ee_pose' else 1


def parse_sources(entries: Sequence[str]) -> List[Source]:
    """Parse ``proprio_sources`` entries; ConfigError names the bad entry and the forms."""
    sources = []
    for entry in entries:
        topic, _, key = str(entry).partition('.')
        ok = (topic == 'ee_pose' and key in POSE_FIELDS) or (topic == 'joint_states' and key)
        if not ok:
            raise ConfigError(
                f'proprio_sources entry {entry!r} is not one of ee_pose.position, '
                f'ee_pose.orientation or joint_states.<joint name>')
        sources.append(Source(topic, key))
    if not sources:
        raise ConfigError('proprio_sources is empty: list what makes the proprioception vector')
    return sources


def joint_positions(msg, names: Sequence[str]) -> np.ndarray:
    """Positions (float64) of `names` in a sensor_msgs/JointState, in that order.

    Raises:
        ProprioError: a name is missing, or the message has fewer positions than names.

    """
    have = list(msg.name)
    missing = [n for n in names if n not in have]
    if missing:
        raise ProprioError(f'joint_states lacks joint(s) {", ".join(missing)}; it has '
                           f'{", ".join(have) if have else "no names"}')
    if len(msg.position) < len(have):
        raise ProprioError(f'joint_states lists {len(have)} names but {len(msg.position)} '
                           'positions')
    index = {n: i for i, n in enumerate(have)}
    return np.array([msg.position[index[n]] for n in names], dtype=np.float64)


def pose_values(msg, key: str) -> np.ndarray:
    """position (3,) or orientation (4,) of a geometry_msgs/PoseStamped, float64."""
    part = getattr(msg.pose, key)
    return np.array([getattr(part, a) for a in POSE_FIELDS[key]], dtype=np.float64)


class ProprioAssembler:
    """Builds the (P,) float32 proprioception vector from the latest messages."""

    def __init__(self, entries: Sequence[str]):
        self.sources = parse_sources(entries)
        self.size = sum(s.size for s in self.sources)
        self.topics: Tuple[str, ...] = tuple(t for t in TOPICS
                                             if any(s.topic == t for s in self.sources))
        self.joints = [s.key for s in self.sources if s.topic == 'joint_states']

    def assemble(self, joint_state=None, pose=None) -> np.ndarray:
        """(P,) float32 from a JointState and a PoseStamped (either may be None when unused).

        Raises:
            ProprioError: a needed message is None, or lacks a named joint.

        """
        values: List[np.ndarray] = []
        joints: Optional[np.ndarray] = None
        if self.joints:
            if joint_state is None:
                raise ProprioError('no joint_states received yet')
            joints = joint_positions(joint_state, self.joints)
        j = 0
        for s in self.sources:
            if s.topic == 'ee_pose':
                if pose is None:
                    raise ProprioError('no ee_pose received yet')
                values.append(pose_values(pose, s.key))
            else:
                values.append(joints[j:j + 1])
                j += 1
        out = np.concatenate(values).astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise ProprioError(f'proprioception has NaN or Inf: {out.tolist()}')
        return out
