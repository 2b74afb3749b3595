"""perception_node: camera images -> ``vision_features`` (the checkpoint's ``vision`` part).

Subscribes one topic per checkpoint camera (sensor-data QoS): sensor_msgs/Image (default
``<camera>/image_raw``; rgb8 / bgr8 / rgba8 / bgra8 / mono8) or, with ``image_transports``
``compressed``, sensor_msgs/CompressedImage (``<camera>/image_raw/compressed``; jpeg or
png, decoded as training decodes bags); converts to RGB, resizes to the checkpoint's size
(saying so once per camera and size), encodes the newest frame of every camera in one batch
and publishes the tokens with the oldest source image stamp (`tensor_codec`). With several
cameras, a frame of the first camera triggers an encoding; the other cameras' newest frames
must be within ``sync_tolerance`` of it.

A managed node (`base.ManagedNode`): configure opens the ``vision`` part, activate starts
encoding; inactive, it keeps receiving frames and reporting their rate and age, but
publishes nothing. A bad image (unsupported encoding, too few bytes) is dropped with a
throttled log line and an ERROR diagnostic: no features are published for it, so the
policy holds once its ``max_age`` passes. A missing or mismatched checkpoint fails
configure: the node stays unconfigured and says why; it keeps running.
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from . import image_conversion as imgconv
from . import qos, tensor_codec
from .base import ManagedNode
from .diagnostics import ERROR, OK, WARN, LatencyWindow, RateMeter
from .runtime import now_seconds, run_node
from .trust import judge_input, stamp_to_seconds


class PerceptionNode(ManagedNode):
    """Camera images -> vision_features (see the module docstring); keyword arguments go to
    `ManagedNode` (``context``, ``parameter_overrides``)."""

    NAME = 'perception'

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rate = RateMeter()           # features published
        self.received = RateMeter()       # frames received (every state)
        self.latency = LatencyWindow()
        self.encode_time = LatencyWindow()
        self.frames: Dict[str, Tuple[np.ndarray, float, object]] = {}
        self.bad_frames = 0
        self.last_frame: Optional[float] = None   # node clock s of the last usable frame
        self.last_error: Optional[str] = None
        self.last_error_time = 0.0
        self.sync_problem: Optional[str] = None   # cameras out of sync_tolerance
        self._resized: set = set()
        self.cameras: List[dict] = []
        self.topics: List[str] = []
        self._camera_subscriptions = []
        self.pub = self.create_publisher(tensor_codec.MESSAGE, 'vision_features', qos.FEATURES)

    # ----------------------------------------------------------------- lifecycle hooks
    def configure_model(self) -> None:
        """Subscribe the checkpoint's cameras (topics from ``image_topics``)."""
        from ..schema import ConfigError
        cameras = list(self.model.backend.spec.cameras)
        names = [c['name'] for c in cameras]
        transports = list(self.params['image_transports']) or ['raw'] * len(cameras)
        if len(transports) != len(cameras) or not set(transports) <= {'raw', 'compressed'}:
            raise ConfigError(f'image_transports {transports}: give raw or compressed for each '
                              f'of the checkpoint\'s {len(names)} camera(s) {names}')
        topics = self.params['image_topics'] or [
            f'{c["name"]}/image_raw' + ('/compressed' if t == 'compressed' else '')
            for c, t in zip(cameras, transports, strict=True)]
        if len(topics) != len(cameras):
            raise ConfigError(f'image_topics lists {len(topics)} topics; the checkpoint has '
                              f'{len(names)} camera(s) {names}')
        self.cameras, self.topics = cameras, topics
        for cam, topic, transport in zip(cameras, topics, transports, strict=True):
            msg_type = CompressedImage if transport == 'compressed' else Image
            self._camera_subscriptions.append(self.create_subscription(
                msg_type, topic, lambda msg, c=cam, t=topic: self._on_image(msg, c, t),
                qos.SENSOR))
        self.get_logger().info(
            'encoding ' + ', '.join(f'{c["name"]} <- {self.resolve_topic_name(t)}'
                                    for c, t in zip(cameras, topics, strict=True))
            + f' with {self.model.description} ({self.model.model_id})')

    def released(self) -> None:
        """Unsubscribe the cameras and forget their frames."""
        for sub in self._camera_subscriptions:
            self.destroy_subscription(sub)
        self._camera_subscriptions = []
        self.cameras, self.topics, self.frames = [], [], {}

    # ----------------------------------------------------------------- frames
    def _bad_image(self, topic: str, reason: str) -> None:
        self.bad_frames += 1
        self.last_error = f'{self.resolve_topic_name(topic)}: {reason}; frame dropped'
        self.last_error_time = time.monotonic()
        self.get_logger().error(self.last_error, throttle_duration_sec=5.0)
        self.diag.update(ERROR, self.last_error, bad_frames=self.bad_frames)

    def _on_image(self, msg, cam: dict, topic: str) -> None:
        self.received.tick()
        try:
            rgb = imgconv.to_rgb(msg)
        except imgconv.ImageError as exc:
            self._bad_image(topic, str(exc))
            return
        h, w = cam['height'], cam['width']
        if rgb.shape[:2] != (h, w):
            key = (cam['name'], rgb.shape[:2])
            if key not in self._resized:
                self._resized.add(key)
                self.get_logger().warning(
                    f'{self.resolve_topic_name(topic)}: {rgb.shape[1]}x{rgb.shape[0]} '
                    f'images are resized to {w}x{h}, the size checkpoint camera '
                    f'{cam["name"]!r} takes (said once)')
            rgb = imgconv.resize(rgb, h, w)
        stamp = msg.header.stamp
        now = now_seconds(self)
        verdict = judge_input(f'camera {cam["name"]}', stamp_to_seconds(stamp), now, now,
                              float('inf'), self.params['clock_skew_tolerance'])
        if verdict.skewed:   # refused: never encoded, so the policy sees it as stale
            self._bad_image(topic, verdict.reason)
            return
        self.last_frame = now
        self.frames[cam['name']] = (rgb, stamp.sec + stamp.nanosec * 1e-9, stamp)
        if cam is self.cameras[0] and self.active:
            self._encode()

    def _encode(self) -> None:
        first = self.cameras[0]['name']
        _, t_first, _ = self.frames[first]
        images, stamps = [], []
        for cam in self.cameras:
            frame = self.frames.get(cam['name'])
            if frame is None or abs(frame[1] - t_first) > self.params['sync_tolerance']:
                self.sync_problem = (f'camera {cam["name"]} has no frame within '
                                     f'sync_tolerance of camera {first}; waiting')
                self.diag.update(WARN, self.sync_problem)
                return
            images.append(frame[0])
            stamps.append(frame)
        self.sync_problem = None
        oldest = min(stamps, key=lambda f: f[1])
        t0 = time.perf_counter()
        try:
            tokens = self.model.backend.encode_vision(np.stack(images)[None])
        except Exception as exc:  # InputError: shapes; runtime errors
            self._bad_image(self.topics[0], f'vision part failed: {exc}')
            return
        self.encode_time.add(time.perf_counter() - t0)
        self.pub.publish(tensor_codec.encode({'tokens': tokens}, oldest[2],
                                             self.model.fingerprint))
        self.rate.tick()
        self.latency.add(now_seconds(self) - oldest[1])

    # ----------------------------------------------------------------- diagnostics
    def report(self):
        """Rates, latencies and image ages; the state of the encoding."""
        values = {'rate_hz': self.rate.rate(), 'frames': self.rate.count,
                  'received_hz': self.received.rate(), 'bad_frames': self.bad_frames}
        for k, v in self.latency.percentiles_ms().items():
            values[f'latency_{k}_ms'] = v
        for k, v in self.encode_time.percentiles_ms((50, 99)).items():
            values[f'encode_{k}_ms'] = v
        now = now_seconds(self)
        for name, frame in self.frames.items():
            values[f'image_age_{name}_ms'] = (now - frame[1]) * 1e3
        waiting = ', '.join(self.resolve_topic_name(t) for t in self.topics)
        if self.last_error and time.monotonic() - self.last_error_time < 2.0:
            return ERROR, self.last_error, values
        if self.lifecycle_state == 'inactive':
            return OK, 'inactive: not encoding (activate to publish features)', values
        timeout = self.params['camera_timeout']
        if self.last_frame is not None and now - self.last_frame > timeout:
            # The last sync problem usually says which camera stopped first.
            why = f'; before that: {self.sync_problem}' if self.sync_problem else ''
            return (ERROR, f'camera stale: no usable frame on {waiting} for '
                           f'{now - self.last_frame:.1f} s (camera_timeout {timeout:g} s)'
                           f'{why}', values)
        if self.sync_problem:
            return WARN, self.sync_problem, values
        if self.rate.count == 0:
            return WARN, f'waiting for images on {waiting}', values
        return OK, f'encoding at {values["rate_hz"]:.1f} Hz', values


def main(args=None) -> int:
    """Console script ``perception_node``."""
    return run_node(PerceptionNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
