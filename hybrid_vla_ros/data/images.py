"""Image messages -> RGB uint8 arrays (H, W, 3) of the size the model takes.

sensor_msgs/Image with encodings rgb8, bgr8, rgba8, bgra8 and mono8 are converted without
cv_bridge (which does not install from PyPI); sensor_msgs/CompressedImage (jpeg, png) is
decoded with OpenCV. Images of another size are resized with area interpolation when
shrinking (no aliasing) and bilinear when enlarging.
"""

from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from ..schema import ConfigError
from .errors import BagContentError

RAW_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES = (RAW_TYPE, COMPRESSED_TYPE)
# encoding -> (channels in the message, how to get RGB from them)
ENCODINGS = {
    'rgb8': (3, lambda a: a),
    'bgr8': (3, lambda a: a[..., ::-1]),
    'rgba8': (4, lambda a: a[..., :3]),
    'bgra8': (4, lambda a: a[..., 2::-1]),
    'mono8': (1, lambda a: np.repeat(a, 3, axis=-1)),
}


def raw_to_rgb(msg, key_path: str, topic: str) -> np.ndarray:
    """A sensor_msgs/Image -> (height, width, 3) uint8 RGB, honouring the row ``step``
    (rows may be padded). Raises `ConfigError` for an encoding that is not supported."""
    encoding = msg.encoding.lower()
    if encoding not in ENCODINGS:
        raise ConfigError(
            f'{key_path}: image topic {topic!r} has encoding {msg.encoding!r}; supported: '
            f'{", ".join(ENCODINGS)} (convert the bag or record another image topic)')
    channels, to_rgb = ENCODINGS[encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    if step < w * channels or data.size < h * step:
        raise BagContentError(
            f'{key_path}: an image on {topic!r} is {h}x{w} {msg.encoding} with step {step} '
            f'but carries {data.size} bytes')
    rows = data[:h * step].reshape(h, step)[:, :w * channels]
    return np.ascontiguousarray(to_rgb(rows.reshape(h, w, channels)))


def compressed_to_rgb(msg, key_path: str, topic: str) -> np.ndarray:
    """A sensor_msgs/CompressedImage (jpeg or png) -> (height, width, 3) uint8 RGB."""
    buf = np.asarray(msg.data, dtype=np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise BagContentError(f'{key_path}: a CompressedImage on {topic!r} (format '
                              f'{msg.format!r}) could not be decoded')
    return np.ascontiguousarray(bgr[..., ::-1])


def to_rgb(msg, msgtype: str, key_path: str, topic: str) -> np.ndarray:
    """Any supported image message -> (height, width, 3) uint8 RGB at its recorded size."""
    if msgtype == COMPRESSED_TYPE:
        return compressed_to_rgb(msg, key_path, topic)
    return raw_to_rgb(msg, key_path, topic)


def resize(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize (h, w, 3) uint8 to `size` = (H, W); returned unchanged when already that size."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)
