"""Managed (lifecycle) nodes: transitions through the lifecycle services over real DDS
between real processes, a failed configure, and the nodes built in-process with an
executor and driven callback by callback."""

import time

import numpy as np
import pytest

from ros_support import FakeRobot, NodeProcess, tiny_checkpoint, write_params

pytestmark = pytest.mark.ros


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture()
def driver():
    from hybrid_vla_ros.ros.tools.driver import GraphDriver
    d = GraphDriver(name='lifecycle_test_user')
    d.keep_commands = True
    yield d
    d.close()


def _wait_message(driver, node, text, timeout=20.0, level=None):
    ok = driver.wait_status(node, lambda s: text in s.message and (
        level is None or s.level[0] == level), timeout)
    status = driver.status(node)
    assert ok, f'{node}: wanted {text!r}, last {status.message if status else None!r}'
    return status


def _nonzero_twists(driver, seconds):
    driver.command_msgs.clear()
    driver.spin_for(seconds)
    return [m for m in driver.command_msgs
            if abs(m.twist.linear.x) + abs(m.twist.linear.y) + abs(m.twist.linear.z) > 0]


def test_policy_transitions_through_the_lifecycle_services(checkpoint, tmp_path, driver):
    """Unconfigured -> (activate refused) -> configure -> activate -> deactivate ->
    cleanup -> configure, driven from another process as a lifecycle manager would."""
    params = write_params(tmp_path / 'params.yaml', {
        n: {'checkpoint': str(checkpoint), 'diagnostics_period': 0.25,
            'autoconfigure': n != 'policy'}
        for n in ('perception', 'instruction', 'policy')})
    robot = FakeRobot(rate=20.0)
    procs = [NodeProcess.node(f'{n}_node', tmp_path / f'{n}.log', params)
             for n in ('perception', 'instruction', 'policy')]
    try:
        assert driver.spin_until(lambda: driver.lifecycle_state('policy') is not None, 30)
        assert driver.lifecycle_state('policy') == 'unconfigured'
        _wait_message(driver, '/policy', 'waiting for configure')
        # Wrong state: refused with the reason, the node stays where it is.
        assert driver.lifecycle('policy', 'activate') is False
        assert driver.lifecycle_state('policy') == 'unconfigured'
        _wait_message(driver, '/policy', "transition 'activate' refused in state unconfigured")
        assert 'refused in state unconfigured; allowed: configure, shutdown' in \
            procs[2].output()
        assert driver.lifecycle('policy', 'configure') is True
        assert driver.lifecycle_state('policy') == 'inactive'
        status = _wait_message(driver, '/policy', 'disabled (inactive)')
        # Inputs are watched while inactive.
        _wait_message(driver, '/policy', 'disabled')
        # A status snapshot taken while configuring can land after the first inactive one;
        # an inactive status must carry the input ages.
        assert driver.wait_status(
            '/policy', lambda st: {kv.key: kv.value for kv in st.values}.get('lifecycle')
            == 'inactive', 10.0)
        assert 'joint_states_age_ms' in driver.values('/policy')
        assert not _nonzero_twists(driver, 1.0)
        assert driver.say('open the drawer')
        assert driver.lifecycle('policy', 'activate') is True
        _wait_message(driver, '/policy', 'acting', level=0)
        assert _nonzero_twists(driver, 1.0)
        assert driver.lifecycle('policy', 'deactivate') is True
        status = _wait_message(driver, '/policy', 'disabled (inactive)')
        assert status.level[0] in (0, 1)
        driver.spin_for(0.3)   # the one hold command in flight
        assert not _nonzero_twists(driver, 1.0)
        assert driver.lifecycle('policy', 'cleanup') is True
        assert driver.lifecycle_state('policy') == 'unconfigured'
        assert driver.lifecycle('policy', 'configure') is True
        assert driver.lifecycle_state('policy') == 'inactive'
        # ~/enable is the activate transition under another name.
        assert driver.enable(True).success
        assert driver.lifecycle_state('policy') == 'active'
        assert driver.enable(False).success
        assert driver.lifecycle_state('policy') == 'inactive'
        # Perception and instruction brought themselves up (autoconfigure + autostart).
        assert driver.lifecycle_state('perception') == 'active'
        assert driver.lifecycle_state('instruction') == 'active'
        assert all(p.alive() for p in procs)
    finally:
        for p in procs:
            p.stop()
        robot.close()


def test_a_bad_checkpoint_fails_configure_and_leaves_the_node_unconfigured(tmp_path, driver):
    bad = tmp_path / 'no_such_checkpoint'
    policy = NodeProcess.node('policy_node', tmp_path / 'policy.log', checkpoint=str(bad),
                              diagnostics_period=0.25, autostart=True)
    perception = NodeProcess.node('perception_node', tmp_path / 'perception.log',
                                  checkpoint=str(bad), diagnostics_period=0.25,
                                  autoconfigure=False)
    try:
        # autoconfigure (the default) tried and failed: unconfigured, ERROR with the reason.
        status = _wait_message(driver, '/policy', 'unconfigured', level=2)
        assert f'checkpoint {bad} does not exist' in status.message
        assert driver.lifecycle_state('policy') == 'unconfigured'
        assert 'configure failed, the node stays unconfigured' in policy.output()
        # Requested through the service: the same, and the process keeps running.
        assert driver.lifecycle('perception', 'configure') is False
        assert driver.lifecycle_state('perception') == 'unconfigured'
        status = _wait_message(driver, '/perception', 'does not exist', level=2)
        response = driver.enable(True)
        assert not response.success and 'does not exist' in response.message
        assert policy.alive() and perception.alive()
    finally:
        policy.stop()
        perception.stop()


# ----------------------------------------------------------------------- in-process
@pytest.fixture()
def context():
    import rclpy
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _overrides(**values):
    from rclpy.parameter import Parameter
    return [Parameter(k, value=v) for k, v in values.items()]


def test_policy_node_in_process_acts_holds_and_obeys_the_estop(checkpoint, context):
    """The node class constructed in this process: its callbacks fed directly."""
    from geometry_msgs.msg import PoseStamped
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool
    from std_srvs.srv import SetBool

    from hybrid_vla_ros.ros import tensor_codec
    from hybrid_vla_ros.ros.model_ref import open_model
    from hybrid_vla_ros.ros.policy_node import PolicyNode
    node = PolicyNode(context=context, parameter_overrides=_overrides(
        checkpoint=str(checkpoint), autostart=True, diagnostics_period=0.2,
        **{'safety.action_min': [-10.0] * 4, 'safety.action_max': [10.0] * 4}))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        node.start()
        assert node.lifecycle_state == 'active'
        model = open_model(str(checkpoint), 'onnxruntime')
        be = model.backend
        now = node.get_clock().now().to_msg()
        tokens, mask = be.encode_instruction('open the drawer')
        node._on_language(tensor_codec.encode({'tokens': tokens, 'mask': mask}, now,
                                              model.fingerprint))
        assert node.language_state == 'ok'

        def feed():
            stamp = node.get_clock().now().to_msg()
            js = JointState(name=['right_j0', 'gripper'], position=[0.1, 0.7])
            js.header.stamp = stamp
            pose = PoseStamped()
            pose.header.stamp = stamp
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = 0.0, 0.6, 0.2
            node._on_joint_state(js)
            node._on_ee_pose(pose)
            size = be.spec.cameras[0]['height']
            image = np.zeros((1, 1, size, size, 3), np.uint8)
            node._on_vision(tensor_codec.encode({'tokens': be.encode_vision(image)}, stamp,
                                                model.fingerprint))

        feed()
        assert node.acting and node.rate.count == 1 and node.loop.inferences == 1
        feed()
        assert node.rate.count == 2 and node.loop.inferences == 1   # from the queued chunk
        # Features from another model are refused and named.
        node._on_vision(tensor_codec.encode({'tokens': np.zeros((1, 2, 2), np.float32)},
                                            now, 'other:model'))
        assert "come from model 'other:model'" in node.vision_error
        # The task action takes a goal now, not an empty one.
        from rclpy.action import GoalResponse

        from hybrid_vla_interfaces.action import RunInstruction
        goal = RunInstruction.Goal
        assert node.tasks._on_goal(goal(instruction='open the drawer')) == GoalResponse.ACCEPT
        assert node.tasks._on_goal(goal(instruction=' \t')) == GoalResponse.REJECT
        assert node.tasks._on_goal(goal(instruction='open it', timeout=-1.0)) == \
            GoalResponse.REJECT
        # E-stop: deactivates; enabling is refused until it is cleared.
        node._on_estop(Bool(data=True))
        assert node.tasks._on_goal(goal(instruction='open the drawer')) == GoalResponse.REJECT
        assert 'goal rejected: the e-stop is active' in node.diag.message
        assert node.lifecycle_state == 'inactive' and not node.acting
        response = node._on_enable(SetBool.Request(data=True), SetBool.Response())
        assert not response.success and 'e-stop is active' in response.message
        node._on_estop(Bool(data=False))
        assert node.lifecycle_state == 'inactive'
        response = node._on_enable(SetBool.Request(data=True), SetBool.Response())
        assert response.success and node.lifecycle_state == 'active'
        executor.spin_once(timeout_sec=0.3)
        level, message, values = node.report()
        assert values['enabled'] is True and values['commands'] == 2
    finally:
        node.shutdown()
        assert node.lifecycle_state == 'finalized'
        executor.remove_node(node)
        node.destroy_node()


def test_policy_node_judges_an_instruction_again_once_discovery_names_its_sender(
        checkpoint, context, monkeypatch):
    """An instruction's features are sent once; when they arrive before the ROS graph names
    their publisher (discovery lags on a loaded machine), the policy node keeps them and
    judges them again on its timer instead of losing the instruction. A sender the graph
    names as another node is refused at once; one it never names, after the grace period.
    The lag is simulated by withholding the graph lookup; publishers, GIDs and the graph
    are real."""
    import rclpy.node

    from hybrid_vla_ros.ros import policy_node as policy_module
    from hybrid_vla_ros.ros import qos, tensor_codec
    from hybrid_vla_ros.ros.model_ref import open_model
    from hybrid_vla_ros.ros.policy_node import PolicyNode
    node = PolicyNode(context=context, parameter_overrides=_overrides(
        checkpoint=str(checkpoint), autostart=True))
    senders = {name: rclpy.node.Node(name, context=context)
               for name in ('instruction', 'impostor')}
    for sender in senders.values():
        sender.create_publisher(tensor_codec.MESSAGE, 'language_features', qos.LATCHED)
    try:
        node.start()
        model = open_model(str(checkpoint), 'onnxruntime')
        tokens, mask = model.backend.encode_instruction('open the drawer')
        msg = tensor_codec.encode({'tokens': tokens, 'mask': mask},
                                  node.get_clock().now().to_msg(), model.fingerprint)
        gids = {}
        deadline = time.monotonic() + 10.0
        while len(gids) < 2 and time.monotonic() < deadline:
            gids = {i.node_name: bytes(i.endpoint_gid)
                    for i in node.get_publishers_info_by_topic('/language_features')}
            time.sleep(0.05)
        assert set(gids) == {'instruction', 'impostor'}, gids

        def info(name):
            return {'publisher_gid': {'data': gids.get(name, bytes(range(16)))}}

        # From the instruction node, before discovery names it: kept, not refused.
        lookup = node.language_source._refresh
        node.language_source._refresh = lambda: None
        node._on_language(msg, info('instruction'))
        assert node.language_state == 'none' and node.untrusted == 0
        assert any('does not name yet: waiting for discovery' in text
                   for _, _, text in node._problems(0.0))
        node._on_timer()                                   # still unknown: still waiting
        assert node.language_state == 'none' and node.untrusted == 0
        node.language_source._refresh = lookup             # discovery catches up
        node._on_timer()
        assert node.language_state == 'ok' and node.untrusted == 0
        # A sender the graph names as another node: refused at once.
        node._on_language(msg, info('impostor'))
        assert node.untrusted == 1 and node._language_waiting is None
        # A sender the graph never names: refused when the grace period ends.
        monkeypatch.setattr(policy_module, 'DISCOVERY_GRACE', 0.0)
        node._on_language(msg, info('nobody'))
        assert node._language_waiting is not None and node.untrusted == 1
        time.sleep(0.01)
        node._on_timer()
        assert node._language_waiting is None and node.untrusted == 2
    finally:
        for sender in senders.values():
            sender.destroy_node()
        node.shutdown()
        node.destroy_node()


def test_policy_node_in_process_refuses_an_invalid_replan_interval(checkpoint, context):
    from hybrid_vla_ros.ros.policy_node import PolicyNode
    node = PolicyNode(context=context, parameter_overrides=_overrides(
        checkpoint=str(checkpoint), replan_every=99))
    try:
        node.start()
        assert node.lifecycle_state == 'unconfigured'
        assert 'replan_every 99 is not allowed: it must be between 1 and' in node.fault
        assert node.diag.level == 2 and 'unconfigured' in node.diag.message
    finally:
        node.destroy_node()


def _inactive(node_class, checkpoint, context):
    """A node of `node_class` built in this process, configured and inactive."""
    node = node_class(context=context, parameter_overrides=_overrides(
        checkpoint=str(checkpoint), autostart=False))
    node.start()
    assert node.lifecycle_state == 'inactive'
    return node


def test_perception_node_in_process_encodes_only_when_active(checkpoint, context):
    from sensor_msgs.msg import Image

    from hybrid_vla_ros.ros.perception_node import PerceptionNode
    node = _inactive(PerceptionNode, checkpoint, context)
    try:
        cam = node.cameras[0]
        h, w = cam['height'], cam['width']
        image = Image(height=h, width=w, encoding='rgb8', step=w * 3,
                      data=np.zeros((h, w, 3), np.uint8).tobytes())
        image.header.stamp = node.get_clock().now().to_msg()
        node._on_image(image, cam, node.topics[0])
        assert node.received.count == 1 and node.rate.count == 0   # watched, not encoded
        assert 'inactive' in node.report()[1]
        node.trigger_activate()
        node._on_image(image, cam, node.topics[0])
        assert node.rate.count == 1
        node.trigger_deactivate()
        node.trigger_cleanup()
        assert node.lifecycle_state == 'unconfigured' and node.model is None
        assert node.cameras == []
    finally:
        node.destroy_node()


def test_instruction_node_in_process_keeps_an_instruction_until_active(checkpoint, context):
    from std_msgs.msg import String

    from hybrid_vla_ros.ros.instruction_node import InstructionNode
    node = _inactive(InstructionNode, checkpoint, context)
    try:
        node._on_instruction(String(data='open the drawer'))
        assert node.waiting == 'open the drawer' and node.rate.count == 0
        time.sleep(0.01)
        node.trigger_activate()
        assert node.waiting is None and node.rate.count == 1
        assert node.current == 'open the drawer'
    finally:
        node.destroy_node()


def test_clock_skew_is_judged_on_sim_time_too(checkpoint, context):
    """use_sim_time: the node's clock is /clock; stamps are judged against it."""
    from builtin_interfaces.msg import Time
    from rclpy.executors import SingleThreadedExecutor
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState

    import rclpy
    from hybrid_vla_ros.ros.policy_node import PolicyNode
    node = PolicyNode(context=context, parameter_overrides=_overrides(
        checkpoint=str(checkpoint), use_sim_time=True))
    clock_node = rclpy.create_node('sim_clock', context=context)
    pub = clock_node.create_publisher(Clock, '/clock', 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(clock_node)
    try:
        node.start()
        deadline = time.monotonic() + 10
        while node.get_clock().now().nanoseconds < 1000 * 10**9:
            assert time.monotonic() < deadline, 'the node never took /clock'
            pub.publish(Clock(clock=Time(sec=1000)))
            executor.spin_once(timeout_sec=0.05)

        def joint_state(sec):
            msg = JointState(name=['right_j0', 'gripper'], position=[0.1, 0.7])
            msg.header.stamp = Time(sec=sec)
            return msg

        node.required = ('joint_states',)
        node._on_joint_state(joint_state(1010))        # 10 s ahead of sim time
        problems = [p[2] for p in node._problems(1000.0)]
        assert any('clock skew: joint_states is stamped 10.000 s ahead' in p
                   for p in problems), problems
        node._on_joint_state(joint_state(1000))        # on time
        problems = [p[2] for p in node._problems(1000.0)]
        assert not any('joint_states' in p for p in problems), problems
    finally:
        executor.remove_node(clock_node)
        clock_node.destroy_node()
        node.destroy_node()


def test_perception_takes_compressed_frames_and_gets_the_same_features(checkpoint, context):
    """The same frame raw and as a PNG CompressedImage gives the same vision_features; a
    corrupt compressed frame is dropped with the reason."""
    import cv2
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import CompressedImage, Image

    from hybrid_vla_ros.ros import qos, tensor_codec
    from hybrid_vla_ros.ros.perception_node import PerceptionNode
    raw_node = PerceptionNode(context=context, parameter_overrides=_overrides(
        checkpoint=str(checkpoint)))
    listener = rclpy.create_node('features_listener', context=context)
    got = []
    listener.create_subscription(tensor_codec.MESSAGE, 'vision_features', got.append,
                                 qos.FEATURES)
    executor = SingleThreadedExecutor(context=context)
    for n in (raw_node, listener):
        executor.add_node(n)
    try:
        raw_node.start()
        cam = raw_node.cameras[0]
        h, w = cam['height'], cam['width']
        rgb = np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)
        stamp = raw_node.get_clock().now().to_msg()
        raw = Image(height=h, width=w, encoding='rgb8', step=w * 3, data=rgb.tobytes())
        raw.header.stamp = stamp
        ok, png = cv2.imencode('.png', rgb[..., ::-1])
        assert ok
        compressed = CompressedImage(format='png', data=png.tobytes())
        compressed.header.stamp = stamp

        def features_of(node, msg, topic):
            before = len(got)
            node._on_image(msg, node.cameras[0], topic)
            deadline = time.monotonic() + 5
            while len(got) == before and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
            return tensor_codec.decode(got[-1]).tensors['tokens']

        from_raw = features_of(raw_node, raw, raw_node.topics[0])
        raw_node.trigger_deactivate()
        executor.remove_node(raw_node)
        raw_node.destroy_node()
        node = PerceptionNode(context=context, parameter_overrides=_overrides(
            checkpoint=str(checkpoint), image_transports=['compressed']))
        executor.add_node(node)
        node.start()
        assert node.topics == ['front/image_raw/compressed']
        from_png = features_of(node, compressed, node.topics[0])
        assert np.array_equal(from_raw, from_png)
        node._on_image(CompressedImage(format='jpeg', data=b'not a jpeg'), node.cameras[0],
                       node.topics[0])
        assert node.bad_frames == 1 and 'could not be decoded as jpeg or png' in \
            node.last_error
        executor.remove_node(node)
        node.destroy_node()
    finally:
        listener.destroy_node()
