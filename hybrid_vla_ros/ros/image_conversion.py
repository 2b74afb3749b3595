"""sensor_msgs/Image -> the (H, W, 3) uint8 RGB array a checkpoint's vision part takes.

Encodings ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` and ``mono8`` are converted here with numpy
(no cv_bridge; the row ``step`` may include padding). Other encodings go through cv_bridge
when it imports (a system ROS 2 install), else they are refused with an `ImageError` that
names the encoding and the supported ones. An image of another size is resized to the
checkpoint's (area interpolation when shrinking, so no aliasing; bilinear when enlarging).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np

# encoding -> (channels in the message, conversion of (H, W, channels) to RGB)
ENCODINGS: Dict[str, Tuple[int, Callable[[np.ndarray], np.ndarray]]] = {
    'rgb8': (3, lambda a: a),
    'bgr8': (3, lambda a: a[..., ::-1]),
    'rgba8': (4, lambda a: a[..., :3]),
    'bgra8': (4, lambda a: a[..., 2::-1]),
    'mono8': (1, lambda a: np.repeat(a, 3, axis=-1)),
}


class ImageError(ValueError):
    """An image that cannot be converted (encoding, size or byte count); says which."""


def _cv_bridge_rgb(msg) -> Optional[np.ndarray]:
    """Convert with cv_bridge where it imports and works; None where it does not."""
    try:
        from cv_bridge import CvBridge
    except Exception:  # absent, or the broken PyPI 1.13 (numpy 2): treat as absent
        return None
    try:
        return np.asarray(CvBridge().imgmsg_to_cv2(msg, desired_encoding='rgb8'))
    except Exception as exc:
        raise ImageError(f'cv_bridge cannot convert encoding {msg.encoding!r} to rgb8: '
                         f'{exc}') from None


def compressed_to_rgb(msg) -> np.ndarray:
    """A sensor_msgs/CompressedImage (jpeg or png) -> (height, width, 3) uint8 RGB, decoded
    exactly as training decodes compressed images from bags (`data.images`).

    Raises:
        ImageError: empty, or bytes the decoder cannot read (naming the format field).

    """
    from ..data.errors import BagContentError
    from ..data.images import compressed_to_rgb as decode
    if not len(msg.data):
        raise ImageError(f'empty CompressedImage (format {msg.format!r})')
    try:
        return decode(msg, 'live', 'camera')
    except BagContentError:
        raise ImageError(f'a CompressedImage (format {msg.format!r}, {len(msg.data)} bytes) '
                         'could not be decoded as jpeg or png') from None


def to_rgb(msg) -> np.ndarray:
    """A sensor_msgs/Image or CompressedImage -> (height, width, 3) uint8 RGB (a copy,
    C-contiguous).

    Raises:
        ImageError: unsupported encoding, zero size, fewer bytes than height x step, or a
            compressed frame that does not decode.

    """
    if not hasattr(msg, 'encoding'):   # sensor_msgs/CompressedImage
        return compressed_to_rgb(msg)
    encoding = msg.encoding.lower()
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise ImageError(f'image is {h}x{w} (empty)')
    if encoding not in ENCODINGS:
        rgb = _cv_bridge_rgb(msg)
        if rgb is None:
            raise ImageError(f'encoding {msg.encoding!r} is not supported; use one of '
                             f'{", ".join(ENCODINGS)} (other encodings need cv_bridge)')
        return np.ascontiguousarray(rgb, dtype=np.uint8)
    channels, convert = ENCODINGS[encoding]
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if step < w * channels or data.size < h * step:
        raise ImageError(f'{h}x{w} {msg.encoding} image with step {step} needs '
                         f'{h * max(step, w * channels)} bytes, carries {data.size}')
    rows = data[:h * step].reshape(h, step)[:, :w * channels]
    return np.ascontiguousarray(convert(rows.reshape(h, w, channels)))


def resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (height, width, 3): area interpolation when shrinking, bilinear
    when enlarging; returned unchanged when already that size."""
    if rgb.shape[:2] == (height, width):
        return rgb
    import cv2
    shrink = rgb.shape[0] * rgb.shape[1] > height * width
    return cv2.resize(rgb, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def rgb8_message_fields(rgb: np.ndarray) -> dict:
    """Field values of an rgb8 sensor_msgs/Image holding `rgb` (H, W, 3) uint8."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f'expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}')
    h, w, _ = rgb.shape
    return {'height': h, 'width': w, 'encoding': 'rgb8', 'is_bigendian': 0, 'step': w * 3,
            'data': np.ascontiguousarray(rgb).tobytes()}
