"""The perception node with a two-camera checkpoint, as a real process over real DDS: both
cameras' frames are encoded together (the tokens equal the vision graph run on the two
images stacked in the checkpoint's camera order), stamped with the older frame, and a
second camera out of sync holds the features back with a diagnostic."""

import time

import numpy as np
import pytest

from ros_support import NodeProcess, write_params

pytestmark = pytest.mark.ros

SIZE = 32


@pytest.fixture(scope='module')
def two_camera_checkpoint(tmp_path_factory):
    import torch

    from hybrid_vla_ros.export.onnx_export import export_checkpoint
    from hybrid_vla_ros.model import build_policy, parse_model_config, save_checkpoint
    from hybrid_vla_ros.model.config import Stats
    from model_configs import tiny_mapping
    mapping = tiny_mapping(language='learned', cameras=2, proprio=4, action=4, chunk=8)
    mapping['observation']['cameras'] = [{'name': 'wrist', 'height': SIZE, 'width': SIZE},
                                         {'name': 'front', 'height': SIZE, 'width': SIZE}]
    torch.manual_seed(0)
    policy = build_policy(parse_model_config(mapping))
    policy.set_normalization(Stats(mean=[0.0] * 4, std=[0.2] * 4),
                             Stats(mean=[0.0] * 4, std=[0.1] * 4))
    path = tmp_path_factory.mktemp('two_cameras') / 'ckpt'
    save_checkpoint(policy, path)
    export_checkpoint(path, log=lambda *a: None)
    return path


class Cameras:
    """The test process as a two-camera robot plus a listener for vision_features."""

    def __init__(self):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        from hybrid_vla_ros.ros.tensor_codec import MESSAGE as Features

        from hybrid_vla_ros.ros import qos
        self.rclpy, self.Image = rclpy, Image
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('two_camera_robot', context=self.context)
        self.pubs = {name: self.node.create_publisher(Image, f'{name}/image_raw', qos.SENSOR)
                     for name in ('wrist', 'front')}
        self.features, self.diagnostics = [], {}
        self.node.create_subscription(Features, 'vision_features', self.features.append,
                                      qos.FEATURES)
        self.node.create_subscription(
            DiagnosticArray, '/diagnostics',
            lambda m: self.diagnostics.update({s.name: s for s in m.status}), 10)
        from rclpy.executors import SingleThreadedExecutor
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def send(self, name, rgb, stamp_ns):
        msg = self.Image(height=SIZE, width=SIZE, encoding='rgb8', step=SIZE * 3,
                         data=rgb.tobytes())
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        self.pubs[name].publish(msg)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def test_two_cameras_are_encoded_together_in_checkpoint_order(two_camera_checkpoint,
                                                              tmp_path):
    from hybrid_vla_ros.inference.backend import load_backend
    from hybrid_vla_ros.ros import tensor_codec
    params = write_params(tmp_path / 'params.yaml', {'perception': {
        'checkpoint': str(two_camera_checkpoint), 'diagnostics_period': 0.25,
        'sync_tolerance': 0.02,
        # Not a staleness test: a loaded machine must not turn the sync WARN into a
        # camera-stale ERROR before the last diagnostics arrive.
        'camera_timeout': 30.0}})
    rng = np.random.default_rng(1)
    wrist = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    front = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    cams = Cameras()
    node = NodeProcess.node('perception_node', tmp_path / 'perception.log', params)
    try:
        deadline = time.monotonic() + 60
        while not all(p.get_subscription_count() for p in cams.pubs.values()):
            assert time.monotonic() < deadline, node.output()[-3000:]
            cams.spin(0.1)
        cams.spin(0.5)
        # In sync (front 5 ms older): the wrist frame is the first camera's, it triggers.
        t = time.time_ns()
        for _ in range(20):
            cams.send('front', front, t - 5_000_000)
            cams.spin(0.02)
            cams.send('wrist', wrist, t)
            cams.spin(0.1)
            if cams.features:
                break
        assert cams.features, node.output()[-3000:]
        got = tensor_codec.decode(cams.features[-1])
        expected = load_backend(two_camera_checkpoint, 'onnxruntime').encode_vision(
            np.stack([wrist, front])[None])
        np.testing.assert_allclose(got.tensors['tokens'], expected, atol=1e-5)
        stamp = cams.features[-1].header.stamp
        assert stamp.sec * 10**9 + stamp.nanosec == t - 5_000_000  # the older frame's

        # Swapped images give other tokens: the order is the checkpoint's, not arrival's.
        swapped = load_backend(two_camera_checkpoint, 'onnxruntime').encode_vision(
            np.stack([front, wrist])[None])
        assert np.abs(swapped - expected).max() > 1e-3

        # Out of sync (front 0.5 s old): no features, and the node says which camera.
        cams.features.clear()
        t = time.time_ns()
        cams.send('front', front, t - 500_000_000)
        cams.spin(0.05)
        for _ in range(10):
            cams.send('wrist', wrist, t)
            cams.spin(0.1)
        cams.spin(0.5)
        assert cams.features == []
        status = cams.diagnostics.get('/perception')
        assert status is not None and 'camera front' in status.message
        assert 'sync_tolerance' in status.message
    finally:
        node.stop()
        cams.close()
