"""Helpers shared by the ROS runtime tests (no tests here).

- `tiny_checkpoint`: a small exported checkpoint with the built-in Meta-World shapes
  (camera ``front`` 32x32, proprio 4, action 4, chunk 8, learned language), made once per
  test session under pytest's base temp directory.
- `NodeProcess`: one node started with subprocess on this run's private ROS_DOMAIN_ID,
  output to a log file, always ended by its pid.
- `FakeRobot`: the test process as a robot: publishes images, joint states and the
  end-effector pose at a fixed rate from a thread, with settable content.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from model_configs import tiny_mapping

VENV_BIN = os.path.dirname(sys.executable)
HYBRID_VLA = os.path.join(VENV_BIN, 'hybrid-vla')
IMAGE_SIZE = 32


def tiny_checkpoint(tmp_path_factory) -> Path:
    """The session's tiny exported checkpoint (created on first use)."""
    path = tmp_path_factory.getbasetemp() / 'ros_tiny_checkpoint'
    if (path / 'onnx' / 'manifest.json').is_file():
        return path
    import torch

    from hybrid_vla_ros.export.onnx_export import export_checkpoint
    from hybrid_vla_ros.model import build_policy, parse_model_config, save_checkpoint
    from hybrid_vla_ros.model.config import Stats
    mapping = tiny_mapping(language='learned', proprio=4, action=4, chunk=8)
    mapping['observation']['cameras'] = [{'name': 'front', 'height': IMAGE_SIZE,
                                          'width': IMAGE_SIZE}]
    torch.manual_seed(0)
    policy = build_policy(parse_model_config(mapping))
    # Non-trivial statistics: actions of ~0.1 m/s with visible differences between inputs.
    policy.set_normalization(Stats(mean=[0.0, 0.0, 0.0, 0.0], std=[0.2, 0.2, 0.2, 1.0]),
                             Stats(mean=[0.0, 0.6, 0.2, 0.5], std=[0.1, 0.1, 0.1, 0.5]))
    save_checkpoint(policy, path)
    export_checkpoint(path, log=lambda *a: None)
    return path


def ros_env(**extra) -> dict:
    """This run's environment (loopback only, private domain from conftest) for children."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **extra)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    return env


def write_params(path: Path, sections: dict) -> Path:
    """A parameter file: {node: {param: value}} with ``/**/<node>`` keys."""
    import yaml
    doc = {f'/**/{node}': {'ros__parameters': params} for node, params in sections.items()}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding='utf-8')
    return path


class NodeProcess:
    """A child process (a node, bringup, a CLI command) with its output in `log`."""

    def __init__(self, args, log: Path, env=None):
        self.args = [str(a) for a in args]
        self.log = Path(log)
        self._file = open(self.log, 'w', encoding='utf-8')
        self.proc = subprocess.Popen(self.args, stdout=self._file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env or ros_env())

    @classmethod
    def node(cls, module: str, log: Path, params_file=None, **params):
        """``python -m hybrid_vla_ros.ros.<module> --ros-args ...``."""
        args = [sys.executable, '-m', f'hybrid_vla_ros.ros.{module}', '--ros-args']
        if params_file:
            args += ['--params-file', str(params_file)]
        for k, v in params.items():
            v = ('true' if v else 'false') if isinstance(v, bool) else v
            args += ['-p', f'{k}:={v}']
        return cls(args, log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        if not self._file.closed:
            self._file.flush()
        return self.log.read_text(encoding='utf-8', errors='replace')

    def stop(self, sig=signal.SIGINT, timeout: float = 15.0) -> int:
        """Send `sig` to this pid, wait; SIGKILL if it does not exit. Returns the code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._file.close()
        return self.proc.returncode


class FakeRobot:
    """Publishes ``front/image_raw``, ``joint_states`` and ``ee_pose`` at `rate` Hz, all
    stamped alike (wall time), proprioception first. Change what it sends with the
    attributes; `paused` stops it."""

    def __init__(self, rate: float = 20.0, seed: int = 0):
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import Image, JointState

        from hybrid_vla_ros.ros import qos
        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('fake_robot', context=self.context)
        self.image_pub = self.node.create_publisher(Image, 'front/image_raw', qos.SENSOR)
        self.joint_pub = self.node.create_publisher(JointState, 'joint_states', qos.SENSOR)
        self.pose_pub = self.node.create_publisher(PoseStamped, 'ee_pose', qos.SENSOR)
        self._types = (Image, JointState, PoseStamped)
        rng = np.random.default_rng(seed)
        self.rgb = rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        self.encoding = 'rgb8'
        self.image_fields = None          # explicit Image fields (bad-input tests)
        self.joint_names = ['right_j0', 'gripper']
        self.joint_positions = [0.1, 0.7]
        self.ee_position = (0.0, 0.6, 0.2)
        # Seconds added to each topic's header stamp (a sender whose clock runs ahead).
        self.skew = {'image': 0.0, 'joint_states': 0.0, 'ee_pose': 0.0}
        self.paused = False
        self.published = 0
        self.period = 1.0 / rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def image_message(self):
        """The Image the robot sends now (rgb8 of `rgb`, or the other encodings)."""
        Image = self._types[0]
        if self.image_fields is not None:
            return Image(**self.image_fields)
        rgb = self.rgb
        data = {'rgb8': rgb, 'bgr8': rgb[..., ::-1],
                'rgba8': np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)],
                                        -1),
                'bgra8': np.concatenate([rgb[..., ::-1],
                                         np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1),
                'mono8': rgb[..., :1]}[self.encoding]
        h, w, c = data.shape
        return Image(height=h, width=w, encoding=self.encoding, step=w * c,
                     data=np.ascontiguousarray(data).tobytes())

    def _run(self) -> None:
        _, JointState, PoseStamped = self._types
        while not self._stop.is_set():
            t0 = time.monotonic()
            if not self.paused:
                now = self.node.get_clock().now()
                joints = JointState(name=list(self.joint_names),
                                    position=[float(v) for v in self.joint_positions])
                joints.header.stamp = self._stamp(now, 'joint_states')
                pose = PoseStamped()
                pose.header.stamp, pose.header.frame_id = self._stamp(now, 'ee_pose'), 'world'
                p = pose.pose.position
                p.x, p.y, p.z = self.ee_position
                pose.pose.orientation.w = 1.0
                image = self.image_message()
                image.header.stamp = self._stamp(now, 'image')
                image.header.frame_id = 'front_optical_frame'
                try:
                    self.joint_pub.publish(joints)
                    self.pose_pub.publish(pose)
                    self.image_pub.publish(image)
                    self.published += 1
                except Exception:  # shutting down
                    return
            self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))

    def _stamp(self, now, topic: str):
        from rclpy.duration import Duration
        return (now + Duration(nanoseconds=int(self.skew[topic] * 1e9))).to_msg()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
