"""One recorded episode as synchronized numpy arrays, and how a bag becomes one.

A control step is one message on the first action topic (the clock). For step t the episode
holds the latest image of every camera, the latest value of every proprioception and action
source and the latest instruction, each stamped at or before t (plus the topic map's
tolerance). Steps before any of them exists are dropped, counted in ``dropped_steps``,
never filled with invented values.

Images are kept compactly: each camera's distinct frames once (F, H, W, 3) uint8 plus a
per-step index, so a camera slower than the control rate costs only its own frames.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Set

import numpy as np

from ..schema import ConfigError
from .bag import (bag_topics, iter_messages, open_bag, parse_bool, parse_int, read_custom_data,
                  read_series, resolve_topic)
from .errors import BagContentError, DataWarning
from .images import IMAGE_TYPES, resize, to_rgb
from .messages import STRING_TYPE, make_extractor
from .sync import chunk_indices, latest_at_or_before
from .topic_map import TopicMap

_NS = 1_000_000_000


@dataclasses.dataclass
class Episode:
    """A synchronized episode of T control steps.

    - ``frames``: per camera (in ``cameras`` order) its distinct frames (F_c, H, W, 3) uint8 RGB
    - ``frame_index``: (T, N) int32, frame of camera n shown at step t
    - ``proprio``: (T, P) float32, message units; ``actions``: (T, A) float32, message units
    - ``instructions``: the distinct instruction texts; ``instruction_index``: (T,) int32
    - ``stamps``: (T,) float64 seconds of each control step
    - ``metadata``: the bag's custom_data (``hybrid_vla.task``, ``hybrid_vla.seed``, ...)
    - ``dropped_steps``: control steps before every input existed (not in T)
    - ``source_sizes``: camera -> [h, w] as recorded (differs from H, W when resized)
    """

    path: str
    cameras: List[str]
    frames: List[np.ndarray]
    frame_index: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    instructions: List[str]
    instruction_index: np.ndarray
    stamps: np.ndarray
    proprio_names: List[str]
    action_names: List[str]
    metadata: Dict[str, str] = dataclasses.field(default_factory=dict)
    dropped_steps: int = 0
    source_sizes: Dict[str, List[int]] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.stamps)

    @property
    def images(self) -> np.ndarray:
        """All steps' images (T, N, H, W, 3) uint8 (a new array; the episode stores frames
        once, use `images_at` per step to avoid the copy)."""
        return np.stack([f[self.frame_index[:, n]] for n, f in enumerate(self.frames)], axis=1)

    def images_at(self, step: int) -> np.ndarray:
        """The images of control step `step`: (N, H, W, 3) uint8 RGB."""
        return np.stack([f[self.frame_index[step, n]] for n, f in enumerate(self.frames)])

    def instruction_at(self, step: int) -> str:
        """The instruction active at control step `step`."""
        return self.instructions[int(self.instruction_index[step])]

    def action_chunk(self, step: int, chunk: int):
        """Actions of steps ``step .. step+chunk-1``: ((K, A) float32, (K,) bool valid).
        Past the episode's end the last action is repeated and marked invalid."""
        index, valid = chunk_indices(len(self), step, chunk)
        return self.actions[index], valid

    @property
    def task(self) -> str:
        """``hybrid_vla.task`` from the bag metadata ('' when absent)."""
        return self.metadata.get('hybrid_vla.task', '')

    @property
    def seed(self) -> Optional[int]:
        """``hybrid_vla.seed`` from the bag metadata (None when absent)."""
        return parse_int(self.metadata.get('hybrid_vla.seed'))

    @property
    def success(self) -> Optional[bool]:
        """``hybrid_vla.success`` from the bag metadata (None when absent)."""
        return parse_bool(self.metadata.get('hybrid_vla.success'))

    @property
    def policy_driven(self) -> bool:
        """True when a trained policy drove the robot while the expert labelled
        (``hybrid_vla.driver_policy`` in the bag metadata: a DAgger episode of
        ``collect --policy``)."""
        return bool(self.metadata.get('hybrid_vla.driver_policy'))

    @property
    def nbytes(self) -> int:
        """Memory held by the episode's arrays, bytes (frames memory-mapped from the episode
        cache do not count: see `mapped_bytes`)."""
        arrays = [*self.frames, self.frame_index, self.proprio, self.actions,
                  self.instruction_index, self.stamps]
        return int(sum(a.nbytes for a in arrays if not isinstance(a, np.memmap)))

    @property
    def mapped_bytes(self) -> int:
        """Bytes of frames memory-mapped from the episode cache (read on demand), bytes."""
        return int(sum(f.nbytes for f in self.frames if isinstance(f, np.memmap)))


def load_episode(bag_dir, topic_map: TopicMap, *,
                 warned: Optional[Set[str]] = None) -> Episode:
    """Read one rosbag2 directory (MCAP or sqlite3, compressed or not) into an `Episode`.

    `warned` holds the notices already given (image resizing); pass one set across calls
    to say each thing once. Raises `ConfigError` when the topic map does not fit the bag
    (the message lists what the bag has) and `BagContentError` when the bag is unreadable
    or yields no complete control step.
    """
    bag = Path(bag_dir)
    warned = set() if warned is None else warned
    roles = _roles(topic_map)
    try:
        with open_bag(bag) as reader:
            topics = bag_topics(reader)
            resolved = {key: resolve_topic(topic, topics, key) for key, topic in roles.items()}
            _check_types(topic_map, resolved, topics)
            images = {resolved[f'topic_map.cameras.{name}'] for name in topic_map.cameras}
            series = read_series(reader, set(resolved.values()), topic_map.stamps == 'header',
                                 stamps_only=images)
            return _synchronize(reader, bag, topic_map, resolved, series, warned)
    except ConfigError as exc:  # say which bag the topic map did not fit
        raise ConfigError(f'bag {bag}: {exc}') from None
    except BagContentError as exc:
        raise BagContentError(f'bag {bag}: {exc}') from exc.__cause__


def _roles(tm: TopicMap) -> Dict[str, str]:
    """Key path -> topic-map topic name, for every topic the map needs."""
    roles = {f'topic_map.cameras.{name}': topic for name, topic in tm.cameras.items()}
    roles.update({f'topic_map.proprio[{i}]': s.topic for i, s in enumerate(tm.proprio)})
    roles.update({f'topic_map.action[{i}]': s.topic for i, s in enumerate(tm.action)})
    if tm.instruction.topic is not None:
        roles['topic_map.instruction'] = tm.instruction.topic
    return roles


def _check_types(tm: TopicMap, resolved: Dict[str, str], topics: Dict[str, str]) -> None:
    for name in tm.cameras:
        key = f'topic_map.cameras.{name}'
        msgtype = topics[resolved[key]]
        if msgtype not in IMAGE_TYPES:
            raise ConfigError(f'{key}: topic {resolved[key]!r} is a {msgtype}; camera topics '
                              f'must be {" or ".join(IMAGE_TYPES)}')
    if tm.instruction.topic is not None:
        topic = resolved['topic_map.instruction']
        if topics[topic] != STRING_TYPE:
            raise ConfigError(f'topic_map.instruction.topic: {topic!r} is a {topics[topic]}; '
                              f'the instruction topic must be {STRING_TYPE}')


def _synchronize(reader, bag: Path, tm: TopicMap, resolved: Dict[str, str], series,
                 warned) -> Episode:
    tol = int(round(tm.tolerance * _NS))
    clock_topic = resolved['topic_map.action[0]']
    clock = series[clock_topic].stamps
    if not len(clock):
        raise BagContentError(f'no messages on the control clock topic {clock_topic!r} '
                              f'(topic_map.action[0]); the episode has no control steps')
    # Per input (key path): the index of its message shown at each step (-1 = none yet).
    index: Dict[str, np.ndarray] = {}
    for key, topic in resolved.items():
        if topic == clock_topic and key.startswith('topic_map.action'):
            index[key] = np.arange(len(clock), dtype=np.int64)  # the clock's own message
        else:
            index[key] = latest_at_or_before(series[topic].stamps, clock, tol)
    keep = np.ones(len(clock), dtype=bool)
    for idx in index.values():
        keep &= idx >= 0
    if not keep.any():
        raise BagContentError(_no_step_message(tm, resolved, series, index, clock))
    steps = np.flatnonzero(keep)

    proprio, proprio_names = _vectors(tm.proprio, 'proprio', resolved, series, index, steps)
    actions, action_names = _vectors(tm.action, 'action', resolved, series, index, steps)
    if tm.instruction.topic is not None:
        msgs = series[resolved['topic_map.instruction']].messages
        texts = [msgs[i].data for i in index['topic_map.instruction'][steps]]
    else:
        texts = [tm.instruction.text] * len(steps)
    instructions = list(dict.fromkeys(texts))  # distinct, in order of appearance
    lookup = {text: i for i, text in enumerate(instructions)}

    frames, frame_index, sizes = [], np.zeros((len(steps), len(tm.cameras)), np.int32), {}
    for n, name in enumerate(tm.cameras):
        key = f'topic_map.cameras.{name}'
        cam, sizes[name] = _decode_camera(reader, key, resolved[key], series[resolved[key]],
                                          index[key][steps], tm, warned)
        frames.append(cam[0])
        frame_index[:, n] = cam[1]
    return Episode(
        path=str(bag), cameras=list(tm.cameras), frames=frames, frame_index=frame_index,
        proprio=proprio, actions=actions, instructions=instructions,
        instruction_index=np.array([lookup[t] for t in texts], dtype=np.int32),
        stamps=clock[steps].astype(np.float64) / _NS,
        proprio_names=proprio_names, action_names=action_names,
        metadata=read_custom_data(bag), dropped_steps=int(len(clock) - len(steps)),
        source_sizes=sizes)


def _vectors(sources, role: str, resolved, series, index, steps):
    """Concatenate the sources of one role at the kept steps: ((T, D) float32, names)."""
    columns, names = [], []
    for i, source in enumerate(sources):
        key = f'topic_map.{role}[{i}]'
        topic = resolved[key]
        data = series[topic]
        extract = make_extractor(source, data.msgtype, topic, key)
        values = np.stack([extract(m) for m in data.messages])
        columns.append(values[index[key][steps]])
        names.extend(extract.names())
    if not columns:
        return np.zeros((len(steps), 0), np.float32), names
    return np.concatenate(columns, axis=1).astype(np.float32), names


def _decode_camera(reader, key, topic, data, per_step, tm: TopicMap, warned):
    """Decode only the frames some step shows, straight to the model's size:
    ((F, H, W, 3) uint8, (T,) int32 index into them) and the recorded [h, w]."""
    step_keys = [data.keys[m] for m in per_step]
    slot = {k: j for j, k in enumerate(dict.fromkeys(step_keys))}  # distinct frames, in order
    frame_index = np.array([slot[k] for k in step_keys], np.int32)
    out = np.empty((len(slot), tm.height, tm.width, 3), np.uint8)
    source_size = None
    for msg_key, msg in iter_messages(reader, topic, slot):
        rgb = to_rgb(msg, data.msgtype, key, topic)
        if source_size is None:
            source_size = [int(rgb.shape[0]), int(rgb.shape[1])]
        if rgb.shape[:2] != (tm.height, tm.width):
            notice = f'{topic}:{rgb.shape[0]}x{rgb.shape[1]}'
            if notice not in warned:
                warned.add(notice)
                warnings.warn(
                    f'{key}: images on {topic!r} are {rgb.shape[0]}x{rgb.shape[1]} (HxW); '
                    f'resizing to {tm.height}x{tm.width} (topic_map.image_size). Said once.',
                    DataWarning, stacklevel=2)
        out[slot.pop(msg_key)] = resize(rgb, (tm.height, tm.width))
    if slot:
        raise BagContentError(f'{key}: {len(slot)} frames of {topic!r} seen on the first '
                              f'read were not found on the second')
    return (out, frame_index), source_size


def _no_step_message(tm, resolved, series, index, clock) -> str:
    """Explain why no control step has every input: which inputs start too late."""
    late = []
    for key, idx in index.items():
        if (idx < 0).all():
            stamps = series[resolved[key]].stamps
            first = f'first at {stamps[0] / _NS:.3f} s' if len(stamps) else 'no messages'
            late.append(f'{key} ({resolved[key]!r}: {first})')
    hint = ''
    if tm.stamps == 'header':
        hint = (' If header stamps and bag receive times use different clocks (sim time vs '
                'wall time), set `stamps: receive` in the topic map.')
    return (f'no control step has every input at or before it; control steps span '
            f'{clock[0] / _NS:.3f}..{clock[-1] / _NS:.3f} s but nothing is at or before any '
            f'of them from: {"; ".join(late)}.{hint}')
