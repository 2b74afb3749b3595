"""The fault matrix: inputs and requests the runtime must not trust, over real DDS between
real processes (perception, instruction, policy; the test process is the robot, the user
and the attacker). Each case asserts: the node is alive, no non-zero command comes from
the bad input, the reason is named on /diagnostics, and commanding resumes when good
input returns (where it should)."""

import os
import re
import signal
import time

import numpy as np
import pytest

from ros_support import HYBRID_VLA, FakeRobot, NodeProcess, tiny_checkpoint, write_params

pytestmark = pytest.mark.ros

MAX_AGE = 0.5
SKEW_TOLERANCE = 0.05
ESTOP_TIMEOUT = 0.5


class Graph:
    """The three nodes as processes, the fake robot, the user-side driver."""

    def __init__(self, tmp_path, checkpoint, policy=None, robot=True):
        from hybrid_vla_ros.ros.tools.driver import GraphDriver
        common = {'checkpoint': str(checkpoint), 'diagnostics_period': 0.2,
                  'clock_skew_tolerance': SKEW_TOLERANCE}
        params = write_params(tmp_path / 'params.yaml', {
            'perception': {**common, 'camera_timeout': 0.5},
            'instruction': common,
            'policy': {**common, 'autostart': True, 'max_age': MAX_AGE, 'replan_every': 4,
                       'safety': {'action_min': [-10.0] * 4, 'action_max': [10.0] * 4},
                       **(policy or {})}})
        self.procs = {}
        self.robot = FakeRobot(rate=20.0) if robot else None
        self.driver = GraphDriver(name='safety_test_user')
        self.driver.keep_commands = True
        for name in ('perception', 'instruction', 'policy'):
            self.procs[name] = NodeProcess.node(f'{name}_node', tmp_path / f'{name}.log',
                                                params)

    def wait(self, node, text, level=None, timeout=20.0):
        ok = self.driver.wait_status(node, lambda s: text in s.message and (
            level is None or s.level[0] == level), timeout)
        status = self.driver.status(node)
        proc = self.procs.get(node.strip('/'))
        assert ok, (f'{node}: wanted {text!r}, last {status.message if status else None!r}\n'
                    + (proc.output()[-2000:] if proc else ''))
        return status

    def moving(self, seconds):
        """Non-zero twists received in the next `seconds`."""
        self.driver.command_msgs.clear()
        self.driver.spin_for(seconds)
        return [m for m in self.driver.command_msgs
                if abs(m.twist.linear.x) + abs(m.twist.linear.y) + abs(m.twist.linear.z) > 0]

    def acting(self):
        self.wait('/policy', 'acting', level=0)

    def alive(self):
        return all(p.alive() for p in self.procs.values())

    def close(self):
        for proc in self.procs.values():
            proc.stop()
        self.driver.close()
        if self.robot is not None:
            self.robot.close()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope='class')
def graph(tmp_path_factory, checkpoint):
    g = Graph(tmp_path_factory.mktemp('safety'), checkpoint)
    try:
        g.wait('/policy', 'no instruction', timeout=60)
        g.wait('/perception', 'encoding', timeout=60)
        assert g.driver.say('open the drawer')
        g.acting()
        yield g
    finally:
        g.close()


class TestOneRunningGraph:
    """Cases on one running graph (torn down before the tests that start their own nodes
    under the same names)."""

    @pytest.mark.parametrize('topic', ['joint_states', 'ee_pose'])
    def test_a_stamp_from_the_future_is_clock_skew_and_holds(self, graph, topic):
        graph.robot.skew[topic] = 10.0
        try:
            status = graph.wait('/policy', f'clock skew: {topic} is stamped', level=2)
            assert 'ahead of this node' in status.message
            graph.driver.spin_for(0.3)
            assert not graph.moving(1.0)
            # The driver dies: nothing to be fresh with, still holding.
            graph.robot.paused = True
            assert not graph.moving(1.0)
        finally:
            graph.robot.skew[topic] = 0.0
            graph.robot.paused = False
        graph.acting()
        assert graph.moving(1.0) and graph.alive()


    def test_camera_frames_from_the_future_are_dropped_by_perception(self, graph):
        graph.robot.skew['image'] = 10.0
        try:
            graph.wait('/perception', 'clock skew: camera front', level=2)
            graph.wait('/policy', 'vision_features stale', level=2)
            graph.driver.spin_for(0.3)
            assert not graph.moving(1.0)
            values = graph.driver.values('/perception')
            assert all(float(v) >= 0 for k, v in values.items() if k.startswith('image_age'))
        finally:
            graph.robot.skew['image'] = 0.0
        graph.acting()
        assert graph.moving(1.0) and graph.alive()


    def test_a_stopped_camera_is_reported_by_perception_itself(self, graph):
        graph.robot.paused = True
        try:
            graph.wait('/perception', 'camera stale: no usable frame', level=2)
            graph.wait('/policy', 'holding', level=2)
            assert not graph.moving(1.0)
        finally:
            graph.robot.paused = False
        graph.acting()


    def test_rogue_features_publisher_moves_nothing(self, graph):
        """Well-formed features with the right fingerprint, from a node that is not
        perception, while the real camera is stopped."""
        from hybrid_vla_ros.ros import qos, tensor_codec
        fingerprint = graph.driver.values('/perception')['fingerprint']
        rogue = graph.driver.node.create_publisher(tensor_codec.MESSAGE, 'vision_features',
                                                       qos.FEATURES)
        graph.robot.paused = True
        try:
            graph.wait('/policy', 'holding', level=2)
            tokens = np.random.default_rng(0).standard_normal((1, 16, 32)).astype(np.float32)
            moved = []
            for _ in range(30):
                stamp = graph.driver.node.get_clock().now().to_msg()
                rogue.publish(tensor_codec.encode({'tokens': tokens}, stamp, fingerprint))
                moved += graph.moving(0.05)
            assert not moved
            assert int(graph.driver.values('/policy')['untrusted_messages']) >= 20
            log = graph.procs['policy'].output()
            assert re.search(r'from node /safety_test_user\w*, which is not an allowed '
                             r'publisher \(perception in /\); refused', log)
        finally:
            graph.driver.node.destroy_publisher(rogue)
            graph.robot.paused = False
        graph.acting()
        assert graph.alive()


    def test_runtime_changes_only_tighten(self, graph):
        set_params = graph.driver.set_params
        (r,) = set_params('policy', {'dry_run': True})
        assert r.successful
        (r,) = set_params('policy', {'dry_run': False})
        assert not r.successful and 'refused at run time' in r.reason
        (r,) = set_params('policy', {'safety.max_speed': -1.0})
        assert not r.successful and 'safety.max_speed' in r.reason and 'range' in r.reason
        (r,) = set_params('policy', {'safety.max_speed': 0.05})
        assert r.successful                       # tighter: in force at once
        (r,) = set_params('policy', {'safety.max_speed': 0.5})
        assert not r.successful and 'looser' in r.reason
        from rcl_interfaces.srv import GetParameters
        got = graph.driver.call(GetParameters, 'policy/get_parameters',
                                GetParameters.Request(names=['dry_run', 'safety.max_speed']))
        assert got.values[0].bool_value is True and got.values[1].double_value == 0.05
        assert graph.alive()


def test_invalid_start_up_parameters_fail_closed(tmp_path, checkpoint):
    """A bad safety limit, a bad choice, a bad age: the node stays unconfigured, names the
    parameter, refuses to enable, and reports the value it actually holds."""
    from rcl_interfaces.srv import GetParameters

    from hybrid_vla_ros.ros.tools.driver import GraphDriver
    driver = GraphDriver(name='bad_params_user')
    proc = NodeProcess.node('policy_node', tmp_path / 'policy.log', checkpoint=str(checkpoint),
                            autostart=True, diagnostics_period=0.2, command_mode='banana',
                            max_age=-2.0, **{'safety.max_speed': -1.0})
    try:
        ok = driver.wait_status('/policy', lambda s: 'unconfigured' in s.message, 30)
        status = driver.status('/policy')
        assert ok and status.level[0] == 2, status.message if status else None
        for expected in ('safety.max_speed: -1.0 is outside [0.0, 1000.0]',
                         "command_mode: 'banana' is not allowed",
                         'max_age: -2.0 is outside'):
            assert expected in status.message, status.message
        response = driver.enable(True)
        assert not response.success and 'unconfigured' in response.message
        got = driver.call(GetParameters, 'policy/get_parameters', GetParameters.Request(
            names=['safety.max_speed', 'command_mode', 'max_age']))
        assert [v.double_value for v in (got.values[0], got.values[2])] == [0.0, 0.25]
        assert got.values[1].string_value == 'twist'
        assert not [m for m in driver.command_msgs]
        assert proc.alive()
    finally:
        proc.stop()
        driver.close()


def test_estop_heartbeat_loss_stops_and_needs_heartbeat_and_enable(tmp_path, checkpoint):
    g = Graph(tmp_path, checkpoint, policy={'estop_mode': 'heartbeat',
                                            'estop_timeout': ESTOP_TIMEOUT})
    try:
        g.wait('/policy', 'no instruction', timeout=60)
        g.wait('/perception', 'encoding', timeout=60)
        assert g.driver.say('open the drawer')
        # No heartbeat yet: autostart could not activate.
        g.wait('/policy', 'disabled', timeout=20)
        assert not g.moving(0.5)
        response = g.driver.enable(True)
        assert not response.success and 'no e-stop heartbeat yet' in response.message

        def beat(seconds):
            """Publish the heartbeat for `seconds`; the non-zero twists meanwhile."""
            g.driver.command_msgs.clear()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                g.driver.estop(False)
                g.driver.spin_for(0.1)
            return [m for m in g.driver.command_msgs if abs(m.twist.linear.x) +
                    abs(m.twist.linear.y) + abs(m.twist.linear.z) > 0]

        # The robot's inputs have reached the policy (discovery can lag on a busy machine);
        # then a fresh heartbeat, and enable within its timeout.
        assert g.driver.wait_status('/policy', lambda s: {'joint_states_age_ms',
                                    'ee_pose_age_ms'} <= {v.key for v in s.values}, 20)
        beat(0.5)
        assert g.driver.enable(True).success
        assert beat(1.5)
        # The heartbeat stops: the policy stops within the timeout and says why.
        g.wait('/policy', 'e-stop heartbeat lost', timeout=5)
        g.driver.spin_for(0.3)
        assert not g.moving(1.0)
        assert not beat(1.0)                        # back, but not re-enabled
        assert g.driver.enable(True).success
        assert beat(1.5) and g.alive()
    finally:
        g.close()


def test_bringup_restarts_a_killed_node_and_says_so(tmp_path, checkpoint):
    """SIGKILL the perception node under `hybrid-vla bringup`: /bringup reports the death,
    the node is started again (once), the policy resumes; killed again, it stays dead."""
    from hybrid_vla_ros.ros.tools.driver import GraphDriver
    robot = FakeRobot(rate=20.0)
    driver = GraphDriver(name='bringup_test_user')
    driver.keep_commands = True
    proc = NodeProcess([HYBRID_VLA, 'bringup', 'robot', '--checkpoint', str(checkpoint),
                        '--autostart', 'true', '--dry-run', 'false', '--max-restarts', '1',
                        '--respawn-delay', '0.5', '--set', 'policy.estop_mode=latch',
                        '--set', 'policy.safety.action_min=[-10.0,-10.0,-10.0,-10.0]',
                        '--set', 'policy.safety.action_max=[10.0,10.0,10.0,10.0]',
                        '--log-dir', str(tmp_path / 'logs')], tmp_path / 'bringup.log')
    try:
        assert driver.wait_status('/bringup: perception',
                                  lambda s: s.message == 'running', 60), proc.output()
        assert driver.wait_status('/perception', lambda s: 'encoding' in s.message or
                                  'waiting for images' in s.message, 60)
        assert driver.say('open the drawer')
        assert driver.wait_status('/policy', lambda s: 'acting' in s.message, 60), \
            proc.output()[-3000:]
        pids = re.findall(r'started perception \(pid (\d+)\)', proc.output())
        os.kill(int(pids[-1]), signal.SIGKILL)
        # Said at once on /diagnostics (the restart may follow before this test reads it)
        # and in the supervisor's output.
        assert driver.wait_status('/bringup: perception', lambda s: (
            'died (killed by SIGKILL' in s.message
            or s.message.startswith('running (restarted 1')), 20)
        assert driver.wait_status('/bringup: perception',
                                  lambda s: s.message.startswith('running (restarted 1'), 30)
        assert 'perception died (killed by SIGKILL' in proc.output()
        assert int(driver.values('/bringup: perception')['deaths']) == 1
        assert driver.wait_status('/policy', lambda s: 'acting' in s.message, 60)
        pids = re.findall(r'started perception \(pid (\d+)\)', proc.output())
        os.kill(int(pids[-1]), signal.SIGKILL)
        assert driver.wait_status('/bringup: perception',
                                  lambda s: 'no restarts left' in s.message, 20)
        assert proc.alive()
    finally:
        proc.stop()
        driver.close()
        robot.close()


def _rss_mb(pid: int) -> float:
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_soak_the_graph_keeps_acting_without_growing(tmp_path, checkpoint):
    """HYBRID_VLA_SOAK_SECONDS (default 600) of acting at 20 Hz: every node alive, the
    policy acting at the end, no node's memory grown by more than 50 MB."""
    seconds = float(os.environ.get('HYBRID_VLA_SOAK_SECONDS', '600'))
    g = Graph(tmp_path, checkpoint)
    try:
        g.wait('/policy', 'no instruction', timeout=60)
        g.wait('/perception', 'encoding', timeout=60)
        assert g.driver.say('open the drawer')
        g.acting()
        g.driver.spin_for(5.0)
        start = {n: _rss_mb(p.pid) for n, p in g.procs.items()}
        end_time = time.monotonic() + seconds
        while time.monotonic() < end_time:
            g.driver.command_msgs.clear()   # keep the driver's own memory flat
            g.driver.spin_for(5.0)
            assert g.alive()
        g.acting()
        assert len(g.moving(2.0)) >= 20
        grown = {n: _rss_mb(p.pid) - start[n] for n, p in g.procs.items()}
        assert all(v < 50 for v in grown.values()), grown
    finally:
        g.close()
