"""The topic map: which recorded topic and field means what to the policy.

A topic map is the dataset's configuration (``config/data/*.yaml``, see docs/data.md and
docs/data-format.md). It names the image topic of every model camera, the proprioception
and action sources (concatenated in order), where the instruction comes from, the image size
the model takes and the action chunk length K. Bags from another robot need only another
topic map, never code.

Everything that can be checked without a bag is checked here, with `ConfigError` naming the
key path. What depends on the bag (does the topic exist, does the message type have this
field, does the JointState have this joint) is checked when a bag is read, naming the same
key paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Dict, List, Optional

from ..schema import ConfigError, from_mapping, load_section, spec, to_mapping

# Every field name any supported message type offers; which apply to which type is checked
# against the bag (see messages.py), since the type is only known there.
FIELDS = ('position', 'orientation', 'linear', 'angular', 'data', 'velocity', 'effort',
          'positions')


@dataclasses.dataclass
class SourceSpec:
    """One proprioception or action source: a topic and which of its values to take.

    ``field`` selects a part of the message (PoseStamped: position | orientation;
    TwistStamped: linear | angular; Float64 / Float64MultiArray: data; JointState:
    position | velocity | effort of the named ``joints``; JointTrajectory: positions of the
    first point for the named ``joints``). ``indices`` optionally keeps only some entries
    of the extracted vector (0-based, in the given order).
    """

    topic: str = spec(doc='topic name, relative (``ee_pose``) or absolute (``/robot/ee_pose``)')
    field: Optional[str] = spec(None, choices=FIELDS,
                                doc='part of the message; default depends on the type')
    joints: Optional[List[str]] = spec(
        None, doc='JointState / JointTrajectory joint names, in the order wanted')
    indices: Optional[List[int]] = spec(
        None, doc='keep only these entries of the extracted vector (0-based)')

    def validate(self, path: str) -> None:
        """Check the parts that do not depend on the bag."""
        if not self.topic:
            raise ConfigError(f'{path}.topic: must not be empty')
        if self.joints is not None:
            if not self.joints:
                raise ConfigError(f'{path}.joints: list at least one joint name')
            if len(set(self.joints)) != len(self.joints):
                raise ConfigError(f'{path}.joints: names must be unique, got {self.joints}')
        if self.indices is not None:
            if not self.indices:
                raise ConfigError(f'{path}.indices: list at least one index or leave it out')
            if any(i < 0 for i in self.indices):
                raise ConfigError(f'{path}.indices: indices are 0-based and >= 0, '
                                  f'got {self.indices}')


@dataclasses.dataclass
class InstructionSpec:
    """Where the instruction comes from: a std_msgs/String ``topic`` (the latest message at
    or before each step is active) or one fixed ``text`` for bags that have none."""

    topic: Optional[str] = spec(None, doc='std_msgs/String topic carrying the instruction')
    text: Optional[str] = spec(None, doc='fixed instruction for every step of every bag')

    def validate(self, path: str) -> None:
        """Exactly one of topic and text."""
        if (self.topic is None) == (self.text is None):
            raise ConfigError(f'{path}: give exactly one of "topic" (a std_msgs/String topic) '
                              f'or "text" (a fixed instruction)')
        if self.text is not None and not self.text.strip():
            raise ConfigError(f'{path}.text: must not be empty')
        if self.topic is not None and not self.topic:
            raise ConfigError(f'{path}.topic: must not be empty')


@dataclasses.dataclass
class TopicMap:
    """The dataset configuration: topics -> images (H, W, 3), proprio (P,), actions (A,).

    The first ``action`` source is the control clock: one message on it is one control step.
    """

    cameras: Dict[str, str] = spec(doc='model camera name -> sensor_msgs/Image topic')
    action: List[SourceSpec] = spec(doc='action sources, concatenated; the first is the clock')
    instruction: InstructionSpec = spec(doc='instruction topic or fixed text')
    proprio: List[SourceSpec] = spec(default_factory=list,
                                     doc='proprioception sources, concatenated in order')
    image_size: List[int] = spec(default_factory=lambda: [128, 128],
                                 doc='[height, width] in pixels every image is resized to')
    chunk: int = spec(8, minimum=1, doc='action chunk length K (control steps)')
    stamps: str = spec('header', choices=('header', 'receive'),
                       doc='time base: header stamps (receive time for messages without a '
                           'header or with a zero stamp), or the bag receive time for all')
    tolerance: float = spec(0.0, minimum=0.0,
                            doc='seconds a message may be stamped after a control step and '
                                'still count as at-or-before it (clock jitter)')
    keyframe_action: Optional[int] = spec(
        None, minimum=0,
        doc='index in the action vector of the gripper command; the steps where it crosses '
            'keyframe_threshold (grasp, release) are keyframes for the waypoint objective. '
            'null: the episode end is the only keyframe')
    keyframe_threshold: float = spec(
        0.0, doc='gripper command above this closes the gripper, at or below opens')

    def validate(self, path: str) -> None:
        """Check cross-field rules that do not depend on a bag."""
        prefix = f'{path}.' if path else ''
        if not self.cameras:
            raise ConfigError(f'{prefix}cameras: name at least one camera, e.g. '
                              f'{{front: front/image_raw}}')
        for name, topic in self.cameras.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f'{prefix}cameras: camera names must be non-empty strings, '
                                  f'got {name!r}')
            if not isinstance(topic, str) or not topic:
                raise ConfigError(f'{prefix}cameras.{name}: expected an image topic name, '
                                  f'got {topic!r}')
        if not self.action:
            raise ConfigError(f'{prefix}action: list at least one action source; the first '
                              f'one is the control clock')
        if len(self.image_size) != 2 or any(v < 8 for v in self.image_size):
            raise ConfigError(f'{prefix}image_size: expected [height, width], each >= 8 '
                              f'pixels, got {self.image_size}')

    @property
    def camera_names(self) -> List[str]:
        """Model camera names, in the order images are stacked (N)."""
        return list(self.cameras)

    @property
    def height(self) -> int:
        """Image height the model takes, pixels."""
        return self.image_size[0]

    @property
    def width(self) -> int:
        """Image width the model takes, pixels."""
        return self.image_size[1]

    def to_mapping(self) -> dict:
        """The YAML form of this topic map."""
        return to_mapping(self)

    def digest(self) -> str:
        """SHA-256 (hex, 16 chars) of the canonical form; keys the on-disk episode cache."""
        # keyframe_action only changes training targets computed from decoded episodes,
        # not the episodes themselves, so it does not invalidate cached ones.
        mapping = self.to_mapping()
        mapping.pop('keyframe_action', None)
        mapping.pop('keyframe_threshold', None)
        blob = json.dumps(mapping, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def parse_topic_map(data, path: str = 'topic_map') -> TopicMap:
    """Validate a mapping (as read from YAML) into a `TopicMap`; `ConfigError` names the key
    path of the first problem."""
    return from_mapping(TopicMap, data, path)


def load_topic_map(path) -> TopicMap:
    """Read and validate a topic-map YAML file (the map at the top level or under a
    ``topic_map:`` key, as a training config may hold it)."""
    return load_section(path, 'topic_map', parse_topic_map)
