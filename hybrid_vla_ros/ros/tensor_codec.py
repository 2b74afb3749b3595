"""Feature tensors as a standard ROS message: the only module that knows the wire format.

`vision_features` and `language_features` carry float32 token tensors between processes.
ROS 2 has no standard tensor message, so they travel as **sensor_msgs/PointCloud2**, the
standard message for a stamped, self-describing array of typed records:

==================  ==========================================================================
field               meaning
==================  ==========================================================================
``header.stamp``    the **source stamp**: the camera image's stamp (vision) or the time the
                    instruction arrived (language); the policy measures staleness and
                    camera-to-command latency from it
``header.frame_id`` the producer's model fingerprint (``<config hash>:<weights sha256[:16]>``),
                    so the policy refuses features from another checkpoint
``height``          batch B (1 on the robot)
``width``           tokens T (0 = an empty tensor: no usable instruction)
``fields``          one PointField per named tensor, FLOAT32, ``count`` = its feature size C,
                    packed in order: vision ``tokens`` (C = Dv); language ``tokens`` (C = Dl)
                    then ``mask`` (C = 1, 1.0 = real token)
``point_step``      4 * (sum of counts): one token's record
``data``            B x T records, row-major, float32 in the byte order ``is_bigendian`` says
==================  ==========================================================================

So a tensor (B, T, C) is exactly ``height`` x ``width`` x ``count``, ``ros2 topic echo`` shows
the stamp and shape, and message_filters / ``ros2 topic delay`` work on the header. Nothing
else in the package builds or parses these messages: moving to a dedicated tensor message
later means changing `encode` and `decode` only.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Dict, Mapping

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import PointCloud2, PointField

_FLOAT32 = PointField.FLOAT32


class CodecError(ValueError):
    """A feature message that does not follow the layout above (says what is wrong)."""


@dataclasses.dataclass
class Features:
    """A decoded feature message.

    Attributes:
        tensors: name -> (B, T, C) float32 array, in field order.
        stamp: source stamp in seconds (float).
        stamp_msg: the same stamp as builtin_interfaces/Time (for re-stamping commands).
        producer: the producer's model fingerprint (``header.frame_id``).

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


def encode(tensors: Mapping[str, np.ndarray], stamp: Time, producer: str) -> PointCloud2:
    """Pack named (B, T, C) tensors (same B and T; 2-D (B, T) means C = 1) into one message.

    Args:
        tensors: name -> array, converted to float32; order is kept.
        stamp: the source stamp (builtin_interfaces/Time).
        producer: the model fingerprint of the producer (``header.frame_id``).

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
    msg = PointCloud2()
    msg.header.stamp = stamp
    msg.header.frame_id = producer
    msg.height, msg.width = int(batch), int(tokens)
    offset = 0
    fields = []
    for name, arr in arrays:
        fields.append(PointField(name=name, offset=offset, datatype=_FLOAT32,
                                 count=int(arr.shape[2])))
        offset += 4 * int(arr.shape[2])
    msg.fields = fields
    msg.is_bigendian = sys.byteorder == 'big'
    msg.point_step = offset
    msg.row_step = offset * int(tokens)
    msg.is_dense = True
    records = np.concatenate([arr for _, arr in arrays], axis=-1)
    msg.data = np.ascontiguousarray(records).tobytes()
    return msg


def decode(msg: PointCloud2) -> Features:
    """Unpack a message written by `encode`; raise CodecError naming what does not fit."""
    if not msg.fields:
        raise CodecError('feature message has no fields')
    tensors = {}
    offset = 0
    total = 0
    for field in msg.fields:
        if field.datatype != _FLOAT32:
            raise CodecError(f'feature field {field.name!r} has datatype {field.datatype}; '
                             f'expected FLOAT32 ({_FLOAT32})')
        if field.offset != offset:
            raise CodecError(f'feature field {field.name!r} starts at byte {field.offset}; '
                             f'expected {offset} (fields are packed in order)')
        offset += 4 * field.count
        total += field.count
    if msg.point_step != offset:
        raise CodecError(f'point_step is {msg.point_step}; the fields take {offset} bytes')
    batch, tokens = int(msg.height), int(msg.width)
    expected = batch * tokens * offset
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != expected:
        raise CodecError(f'feature message carries {data.size} bytes; {batch} x {tokens} '
                         f'records of {offset} bytes need {expected}')
    dtype = np.dtype('>f4' if msg.is_bigendian else '<f4')
    records = data.view(dtype).astype(np.float32).reshape(batch, tokens, total)
    start = 0
    for field in msg.fields:
        tensors[field.name] = records[..., start:start + field.count]
        start += field.count
    stamp = msg.header.stamp
    return Features(tensors=tensors, stamp=stamp_seconds(stamp), stamp_msg=stamp,
                    producer=msg.header.frame_id)
