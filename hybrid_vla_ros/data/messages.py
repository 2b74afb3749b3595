"""Field extractors: a deserialized ROS message -> a float vector, an instruction or a stamp.

Which message types and fields are supported is one table per kind below; adding a type is
one entry. Extractors are built per source once the topic's message type is known from the
bag, so a field the type lacks is reported before any message is read.

Units are those of the message (m, rad, m/s, ...); nothing is converted.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..schema import ConfigError
from .errors import BagContentError
from .topic_map import SourceSpec

# type -> field -> (getter of the sub-message, its component names). The first field
# listed is not a default: these types need an explicit `field`.
_XYZ = ('x', 'y', 'z')
_XYZW = ('x', 'y', 'z', 'w')
_COMPOUND: Dict[str, Dict[str, Tuple[Callable, Sequence[str]]]] = {
    'geometry_msgs/msg/PoseStamped': {
        'position': (lambda m: m.pose.position, _XYZ),
        'orientation': (lambda m: m.pose.orientation, _XYZW)},
    'geometry_msgs/msg/Pose': {
        'position': (lambda m: m.position, _XYZ),
        'orientation': (lambda m: m.orientation, _XYZW)},
    'geometry_msgs/msg/TwistStamped': {
        'linear': (lambda m: m.twist.linear, _XYZ),
        'angular': (lambda m: m.twist.angular, _XYZ)},
    'geometry_msgs/msg/Twist': {
        'linear': (lambda m: m.linear, _XYZ),
        'angular': (lambda m: m.angular, _XYZ)},
}
# Types with one numeric field `data`: a scalar or an array.
_SCALAR_TYPES = ('std_msgs/msg/Float64', 'std_msgs/msg/Float32')
_ARRAY_TYPES = ('std_msgs/msg/Float64MultiArray', 'std_msgs/msg/Float32MultiArray')
_JOINT_STATE = 'sensor_msgs/msg/JointState'
_JOINT_TRAJECTORY = 'trajectory_msgs/msg/JointTrajectory'
STRING_TYPE = 'std_msgs/msg/String'

VECTOR_TYPES = (*_COMPOUND, *_SCALAR_TYPES, *_ARRAY_TYPES, _JOINT_STATE, _JOINT_TRAJECTORY)


def _fields_of(msgtype: str) -> List[str]:
    if msgtype in _COMPOUND:
        return list(_COMPOUND[msgtype])
    if msgtype in _SCALAR_TYPES or msgtype in _ARRAY_TYPES:
        return ['data']
    if msgtype == _JOINT_STATE:
        return ['position', 'velocity', 'effort']
    if msgtype == _JOINT_TRAJECTORY:
        return ['positions']
    return []


class VectorExtractor:
    """Turns each message of one source into a float64 vector (D,), in message units.

    `key_path` (``topic_map.proprio[1]``) and `topic` name the source in errors. Built by
    `make_extractor`, which has already checked that the type has the requested field.
    """

    def __init__(self, source: SourceSpec, msgtype: str, topic: str, key_path: str):
        self.source = source
        self.msgtype = msgtype
        self.topic = topic
        self.key_path = key_path
        self.field = source.field or _default_field(msgtype, key_path, topic)
        self._joint_index: Dict[Tuple[str, ...], np.ndarray] = {}
        self._dim: Optional[int] = None
        self._raw_dim = 0

    def __call__(self, msg) -> np.ndarray:
        """Extract the vector (D,) float64 from one message."""
        if self.msgtype in _COMPOUND:
            getter, axes = _COMPOUND[self.msgtype][self.field]
            sub = getter(msg)
            values = np.array([getattr(sub, a) for a in axes], dtype=np.float64)
        elif self.msgtype in _SCALAR_TYPES:
            values = np.array([msg.data], dtype=np.float64)
        elif self.msgtype in _ARRAY_TYPES:
            values = np.asarray(msg.data, dtype=np.float64).reshape(-1)
        elif self.msgtype == _JOINT_STATE:
            values = self._joint_values(list(msg.name), getattr(msg, self.field), 'JointState')
        else:  # JointTrajectory: the first point is this step's command.
            if not len(msg.points):
                raise BagContentError(f'{self.key_path}: a JointTrajectory on topic '
                                      f'{self.topic!r} has no points')
            values = self._joint_values(list(msg.joint_names), msg.points[0].positions,
                                        'JointTrajectory')
        self._raw_dim = len(values)
        values = self._select(values)
        if self._dim is None:
            self._dim = len(values)
        elif len(values) != self._dim:
            raise BagContentError(f'{self.key_path}: topic {self.topic!r} gave {len(values)} '
                                  f'values after {self._dim} in earlier messages')
        return values

    def _joint_values(self, names: List[str], values, kind: str) -> np.ndarray:
        joints = self.source.joints
        if joints is None:
            raise ConfigError(
                f'{self.key_path}.joints: required for {kind} topic {self.topic!r}; list the '
                f'joints wanted, in order. The messages have: {", ".join(names)}')
        key = tuple(names)
        index = self._joint_index.get(key)
        if index is None:
            missing = [j for j in joints if j not in names]
            if missing:
                raise ConfigError(
                    f'{self.key_path}.joints: {kind} on topic {self.topic!r} has no joint '
                    f'named {", ".join(repr(j) for j in missing)}; it has: '
                    f'{", ".join(names) or "(no names)"}')
            index = np.array([names.index(j) for j in joints], dtype=np.int64)
            self._joint_index[key] = index
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(values) != len(names):
            field = self.field if kind == 'JointState' else 'positions'
            raise BagContentError(
                f'{self.key_path}: a {kind} on topic {self.topic!r} has {len(names)} names but '
                f'{len(values)} {field} values')
        return values[index]

    def _select(self, values: np.ndarray) -> np.ndarray:
        indices = self.source.indices
        if indices is None:
            return values
        if max(indices) >= len(values):
            raise ConfigError(f'{self.key_path}.indices: {indices} reaches past the '
                              f'{len(values)} values of {self.field!r} on topic {self.topic!r}')
        return values[indices]

    def names(self) -> List[str]:
        """Names of the D extracted entries, e.g. ``ee_pose.position.x``, ``joint_states.j0``
        (call after at least one message was extracted)."""
        base = self.topic.lstrip('/')
        if self.msgtype in _COMPOUND:
            full = [f'{base}.{self.field}.{a}' for a in _COMPOUND[self.msgtype][self.field][1]]
        elif self.msgtype in (_JOINT_STATE, _JOINT_TRAJECTORY):
            suffix = '' if self.field in ('position', 'positions') else f'.{self.field}'
            return [f'{base}.{j}{suffix}' for j in self.source.joints or []]
        elif self.msgtype in _SCALAR_TYPES:
            full = [f'{base}.data']
        else:
            full = [f'{base}.data[{i}]' for i in range(self._raw_dim)]
        if self.source.indices is not None:
            return [full[i] for i in self.source.indices]
        return full


def _default_field(msgtype: str, key_path: str, topic: str) -> str:
    if msgtype in _COMPOUND:
        choices = ', '.join(repr(f) for f in _COMPOUND[msgtype])
        raise ConfigError(f'{key_path}.field: required for {msgtype} topic {topic!r}; '
                          f'choose one of {choices}')
    return _fields_of(msgtype)[0]


def make_extractor(source: SourceSpec, msgtype: str, topic: str,
                   key_path: str) -> VectorExtractor:
    """Build the extractor of `source` for a topic of type `msgtype` (``pkg/msg/Name``).

    Raises `ConfigError` naming `key_path` when the type is not supported or lacks the
    requested field.
    """
    if msgtype not in VECTOR_TYPES:
        raise ConfigError(
            f'{key_path}.topic: {topic!r} is a {msgtype}, which is not a supported source '
            f'type; supported: {", ".join(VECTOR_TYPES)}')
    fields = _fields_of(msgtype)
    if source.field is not None and source.field not in fields:
        raise ConfigError(f'{key_path}.field: {source.field!r} is not a field of {msgtype} '
                          f'(topic {topic!r}); choose one of '
                          f'{", ".join(repr(f) for f in fields)}')
    if source.joints is not None and msgtype not in (_JOINT_STATE, _JOINT_TRAJECTORY):
        raise ConfigError(f'{key_path}.joints: only JointState and JointTrajectory topics '
                          f'have joints; {topic!r} is a {msgtype}')
    return VectorExtractor(source, msgtype, topic, key_path)


def stamp_ns(msg, receive_ns: int, use_header: bool) -> int:
    """The time of a message in integer nanoseconds: its header stamp when `use_header` and
    the message has a non-zero one (zero means "not set"), else the bag's receive time."""
    if use_header:
        header = getattr(msg, 'header', None)
        if header is not None:
            stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
            if stamp:
                return int(stamp)
    return int(receive_ns)
