"""perception_node: camera images -> ``vision_features`` (the checkpoint's ``vision`` part).

Subscribes one sensor_msgs/Image topic per checkpoint camera (default
``<camera>/image_raw``, sensor-data QoS), converts rgb8 / bgr8 / rgba8 / bgra8 / mono8 to
RGB, resizes to the checkpoint's size (saying so once per camera and size), encodes the
newest frame of every camera in one batch and publishes the tokens with the oldest source
image stamp (`tensor_codec`). With several cameras, a frame of the first camera triggers an
encoding; the other cameras' newest frames must be within ``sync_tolerance`` of it.

A bad image (unsupported encoding, too few bytes) is dropped with a throttled log line and
an ERROR diagnostic: no features are published for it, so the policy holds once its
``max_age`` passes. A missing or mismatched checkpoint is reported the same way; the node
keeps running.
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from .diagnostics import ERROR, OK, WARN, LatencyWindow, RateMeter
from .params import ParamSpec

COMMON_PARAMS = (
    ParamSpec('checkpoint', '', 'checkpoint directory (exported: contains onnx/ from '
                                '`hybrid-vla export`)'),
    ParamSpec('backend', 'onnxruntime', 'inference backend',
              choices=('onnxruntime', 'torch', 'tensorrt')),
    ParamSpec('threads', 1, 'intra-op threads of the backend', range=(1, 64)),
    ParamSpec('providers', ['cpu'], 'onnxruntime execution providers in preference order '
                                    '(cpu, cuda, tensorrt)'),
    ParamSpec('fp16', False, 'use the half-precision graphs / engines where exported'),
    ParamSpec('diagnostics_period', 1.0, 'seconds between periodic /diagnostics messages',
              range=(0.05, 60.0)),
)

PARAMS = COMMON_PARAMS + (
    ParamSpec('image_topics', None, 'image topic per checkpoint camera, in the checkpoint\'s '
                                    'camera order (default: <camera>/image_raw)',
              kind='string_array'),
    ParamSpec('sync_tolerance', 0.05, 'several cameras: largest stamp difference (s) between '
                                      'the first camera\'s frame and the others\'',
              range=(0.0, 10.0)),
)


def make_node():
    """Build the perception node (imports rclpy)."""
    from rclpy.node import Node
    from sensor_msgs.msg import Image, PointCloud2

    from . import image_conversion as imgconv
    from . import qos, tensor_codec
    from .diagnostics import DiagnosticsReporter
    from .model_ref import open_model
    from .params import declare
    from .runtime import now_seconds

    class _PerceptionNode(Node):
        """Camera images -> vision_features (see the module docstring)."""

        def __init__(self):
            super().__init__('perception')
            self.params, problems = declare(self, PARAMS)
            p = self.params
            self.diag = DiagnosticsReporter(self, period=p['diagnostics_period'],
                                            refresh=self._report)
            self.model = open_model(p['checkpoint'], p['backend'], parts=('vision',),
                                    threads=p['threads'], providers=p['providers'],
                                    fp16=p['fp16'])
            self.rate = RateMeter()
            self.latency = LatencyWindow()
            self.encode_time = LatencyWindow()
            self.frames: Dict[str, Tuple[np.ndarray, float, object]] = {}
            self.bad_frames = 0
            self.fault: Optional[str] = None
            self.last_error: Optional[str] = None
            self.last_error_time = 0.0
            self.sync_problem: Optional[str] = None   # cameras out of sync_tolerance
            self._resized: set = set()
            self.cameras: List[dict] = []
            self.topics: List[str] = []
            for problem in problems:
                self.get_logger().error(problem)
            if self.model.error:
                self._set_fault(self.model.error)
            else:
                self.diag.hardware_id = self.model.model_id
                self.cameras = list(self.model.backend.spec.cameras)
                self._subscribe(p['image_topics'] or [f'{c["name"]}/image_raw'
                                                      for c in self.cameras])
            self.pub = self.create_publisher(PointCloud2, 'vision_features', qos.FEATURES)
            self._report()

        def _set_fault(self, message: str) -> None:
            self.fault = message
            self.get_logger().error(message)
            self.diag.update(ERROR, message)

        def _subscribe(self, topics: List[str]) -> None:
            if len(topics) != len(self.cameras):
                names = [c['name'] for c in self.cameras]
                self._set_fault(f'image_topics lists {len(topics)} topics; the checkpoint has '
                                f'{len(names)} camera(s) {names}')
                return
            self.topics = topics
            for cam, topic in zip(self.cameras, topics, strict=True):
                self.create_subscription(Image, topic,
                                         lambda msg, c=cam, t=topic: self._on_image(msg, c, t),
                                         qos.SENSOR)
            self.get_logger().info(
                'encoding ' + ', '.join(f'{c["name"]} <- {self.resolve_topic_name(t)}'
                                        for c, t in zip(self.cameras, topics, strict=True))
                + f' with {self.model.description} ({self.model.model_id})')

        def _bad_image(self, topic: str, reason: str) -> None:
            self.bad_frames += 1
            self.last_error = f'{self.resolve_topic_name(topic)}: {reason}; frame dropped'
            self.last_error_time = time.monotonic()
            self.get_logger().error(self.last_error, throttle_duration_sec=5.0)
            self.diag.update(ERROR, self.last_error, bad_frames=self.bad_frames)

        def _on_image(self, msg, cam: dict, topic: str) -> None:
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
            self.frames[cam['name']] = (rgb, stamp.sec + stamp.nanosec * 1e-9, stamp)
            if cam is self.cameras[0]:
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

        def _report(self) -> None:
            values = {'rate_hz': self.rate.rate(), 'frames': self.rate.count,
                      'bad_frames': self.bad_frames, 'backend': self.model.description,
                      'fault': self.fault or '',
                      'model_id': self.model.model_id, 'fingerprint': self.model.fingerprint}
            for k, v in self.latency.percentiles_ms().items():
                values[f'latency_{k}_ms'] = v
            for k, v in self.encode_time.percentiles_ms((50, 99)).items():
                values[f'encode_{k}_ms'] = v
            now = now_seconds(self)
            for name, frame in self.frames.items():
                values[f'image_age_{name}_ms'] = (now - frame[1]) * 1e3
            if self.fault:
                self.diag.update(ERROR, self.fault, **values)
            elif self.last_error and time.monotonic() - self.last_error_time < 2.0:
                self.diag.update(ERROR, self.last_error, **values)
            elif self.sync_problem:
                self.diag.update(WARN, self.sync_problem, **values)
            elif self.rate.count == 0:
                self.diag.update(WARN, 'waiting for images on ' + ', '.join(
                    self.resolve_topic_name(t) for t in self.topics), **values)
            else:
                self.diag.update(OK, f'encoding at {values["rate_hz"]:.1f} Hz', **values)

    return _PerceptionNode()


def main(args=None) -> int:
    """Console script ``perception_node``."""
    from .runtime import run_node
    return run_node(make_node, args)


if __name__ == '__main__':
    raise SystemExit(main())
