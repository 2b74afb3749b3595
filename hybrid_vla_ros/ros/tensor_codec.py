"""Feature tensors on the wire: the only module that knows the message format.

`vision_features` and `language_features` carry float32 token tensors between processes
as **hybrid_vla_interfaces/msg/Features** (the package's interfaces package,
``interfaces/hybrid_vla_interfaces``):

==================  ==========================================================================
field               meaning
==================  ==========================================================================
``header.stamp``    the **source stamp**: the camera image's stamp (vision) or the time the
                    instruction arrived (language); the policy measures staleness and
                    camera-to-command latency from it
``fingerprint``     the producer's model fingerprint (``<config hash>:<weights sha256[:16]>``),
                    so the policy refuses features from another checkpoint
``names``           the tensors, in order: vision ``tokens``; language ``tokens``, ``mask``
``batch``           B (1 on the robot)
``tokens``          T (0 = an empty tensor: no usable instruction)
``channels``        C of each tensor (``mask``: 1, 1.0 = real token)
``data``            the tensors one after the other, each (B, T, C) row-major float32
==================  ==========================================================================

Earlier releases carried the tensors in sensor_msgs/PointCloud2 with the fingerprint in
``header.frame_id``, which RViz, Foxglove and tf tools read as a frame; the dedicated
message says what it is (``ros2 interface show hybrid_vla_interfaces/msg/Features``).
Nothing else in the package builds or parses these messages (`MESSAGE` is the type the
nodes subscribe and publish).
"""

from __future__ import annotations

import array
import dataclasses
from typing import Dict, Mapping

import numpy as np
from builtin_interfaces.msg import Time
from hybrid_vla_interfaces.msg import Features as FeaturesMsg

# The ROS message type of vision_features and language_features.
MESSAGE = FeaturesMsg


class CodecError(ValueError):
    """A feature message that does not follow the layout above (says what is wrong)."""


@dataclasses.dataclass
class Features:
    """A decoded feature message.

    Attributes:
        tensors: name -> (B, T, C) float32 array, in field order.
        stamp: source stamp in seconds (float).
        stamp_msg: the same stamp as builtin_interfaces/Time (for re-stamping commands).
        producer: the producer's model fingerprint.

    """

    tensors: Dict[str, np.ndarray]
    stamp: float
    stamp_msg: Time
    producer: str

    @property
    def tokens(self) -> int:
        """T, the number of tokens (0 for an empty tensor)."""
        first = next(iter(self.tensors.values()))
        return int(first.shape[1])


def stamp_seconds(stamp: Time) -> float:
    """builtin_interfaces/Time -> seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def encode(tensors: Mapping[str, np.ndarray], stamp: Time, producer: str) -> FeaturesMsg:
    """Pack named (B, T, C) tensors (same B and T; 2-D (B, T) means C = 1) into one message.

    Args:
        tensors: name -> array, converted to float32; order is kept.
        stamp: the source stamp (builtin_interfaces/Time).
        producer: the model fingerprint of the producer.

    Raises:
        CodecError: no tensors, or tensors whose B or T differ.

    """
    if not tensors:
        raise CodecError('encode needs at least one tensor')
    arrays = []
    for name, value in tensors.items():
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3:
            raise CodecError(f'tensor {name!r} must be (B, T, C) or (B, T), got {arr.shape}')
        arrays.append((name, arr))
    batch, tokens = arrays[0][1].shape[:2]
    for name, arr in arrays:
        if arr.shape[:2] != (batch, tokens):
            raise CodecError(f'tensor {name!r} is {arr.shape}; every tensor of one message '
                             f'shares (B, T) = {(batch, tokens)}')
    msg = FeaturesMsg()
    msg.header.stamp = stamp
    msg.fingerprint = producer
    msg.names = [name for name, _ in arrays]
    msg.batch, msg.tokens = int(batch), int(tokens)
    msg.channels = [int(arr.shape[2]) for _, arr in arrays]
    flat = np.concatenate([arr.reshape(-1) for _, arr in arrays]).astype(np.float32)
    # An array.array skips rclpy's per-element range check of a float32[] field (0.5 ms
    # for 16 x 192 values, measured; this way 0.01 ms).
    msg.data = array.array('f', flat.tobytes())
    return msg


def decode(msg: FeaturesMsg) -> Features:
    """Unpack a message written by `encode`; raise CodecError naming what does not fit."""
    names, channels = list(msg.names), [int(c) for c in msg.channels]
    if not names:
        raise CodecError('feature message has no tensors (names is empty)')
    if len(channels) != len(names):
        raise CodecError(f'feature message names {len(names)} tensors but gives '
                         f'{len(channels)} channel counts')
    if len(set(names)) != len(names):
        raise CodecError(f'feature message repeats a tensor name: {names}')
    batch, tokens = int(msg.batch), int(msg.tokens)
    data = np.asarray(msg.data, dtype=np.float32)
    expected = batch * tokens * sum(channels)
    if data.size != expected:
        raise CodecError(f'feature message carries {data.size} values; tensors {names} of '
                         f'(B={batch}, T={tokens}, C={channels}) need {expected}')
    tensors = {}
    start = 0
    for name, c in zip(names, channels, strict=True):
        size = batch * tokens * c
        tensors[name] = data[start:start + size].reshape(batch, tokens, c)
        start += size
    stamp = msg.header.stamp
    return Features(tensors=tensors, stamp=stamp_seconds(stamp), stamp_msg=stamp,
                    producer=msg.fingerprint)
