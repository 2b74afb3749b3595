"""The perception, instruction and policy nodes as real processes over real DDS (loopback,
this run's private domain), with the test process as the robot and the user.

The tests share one running graph and run in file order; each leaves the policy acting on
"open the drawer" with good inputs.
"""

import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from ros_support import (HYBRID_VLA, IMAGE_SIZE, FakeRobot, NodeProcess, ros_env,
                              tiny_checkpoint, write_params)

pytestmark = pytest.mark.ros

MAX_AGE = 0.5
INSTRUCTION = 'open the drawer'


class Graph:
    """The running nodes, the fake robot and the user-side driver."""

    def __init__(self, checkpoint, logs, params):
        from hybrid_vla_ros.ros.tools.driver import GraphDriver
        self.checkpoint, self.logs, self.params = checkpoint, logs, params
        self.procs = {}
        self.robot = self.driver = None
        try:
            self.robot = FakeRobot(rate=20.0)
            self.driver = GraphDriver()
            self.driver.keep_commands = True
            for name in ('perception', 'instruction', 'policy'):
                self.start(name)
        except BaseException:
            self.close()
            raise

    def start(self, name):
        self.procs[name] = NodeProcess.node(f'{name}_node', self.logs / f'{name}.log',
                                            self.params)

    def status(self, node):
        return self.driver.status(f'/{node}')

    def wait(self, node, level=None, text=None, timeout=15.0):
        """Wait until /<node> reports `level` with `text` in its message."""
        def ok(s):
            return ((level is None or s.level[0] == level)
                    and (text is None or text in s.message))
        if not self.driver.wait_status(f'/{node}', ok, timeout):
            s = self.status(node)
            raise AssertionError(f'/{node} did not report level {level} {text!r} in '
                                 f'{timeout} s; last: {s.level[0] if s else None} '
                                 f'{s.message if s else None!r}\n' +
                                 self.procs.get(node, self.procs['policy']).output()[-3000:])

    def commands(self, seconds):
        """Twists (x, y, z) received during the next `seconds`."""
        self.driver.command_msgs.clear()
        self.driver.spin_for(seconds)
        return np.array([[m.twist.linear.x, m.twist.linear.y, m.twist.linear.z]
                         for m in self.driver.command_msgs]).reshape(-1, 3)

    def acting(self, timeout=15.0):
        self.wait('policy', 0, 'acting', timeout)

    def close(self):
        for proc in self.procs.values():
            proc.stop()
        if self.driver is not None:
            self.driver.close()
        if self.robot is not None:
            self.robot.close()


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    checkpoint = tiny_checkpoint(tmp_path_factory)
    logs = tmp_path_factory.mktemp('ros_nodes')
    common = {'checkpoint': str(checkpoint), 'diagnostics_period': 0.25}
    params = write_params(logs / 'params.yaml', {
        'perception': common,
        'instruction': {**common, 'max_chars': 200},
        # Loosening at run time allowed here so the tests can switch dry_run back off
        # (test_ros_safety.py checks it is refused by default).
        'policy': {**common, 'autostart': False, 'tick_source': 'features',
                   'allow_runtime_loosening': True,
                   'scheduler': 'replan', 'replan_every': 8, 'max_age': MAX_AGE,
                   'safety': {'action_min': [-10.0] * 4, 'action_max': [10.0] * 4}},
    })
    g = Graph(checkpoint, logs, params)   # stops what it started if it fails
    try:
        for node in ('perception', 'instruction', 'policy'):
            g.wait(node, timeout=60)
        yield g
    finally:
        g.close()


def test_policy_is_disabled_at_start_and_commands_nothing(graph):
    graph.wait('policy', text='disabled')
    assert graph.driver.values('/policy')['enabled'] == 'false'
    assert len(graph.commands(1.0)) == 0


def test_say_then_enable_answers_every_frame_with_its_stamp(graph):
    r = subprocess.run([HYBRID_VLA, 'say', INSTRUCTION], capture_output=True, text=True,
                       timeout=60, env=ros_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"delivered: '{INSTRUCTION}' on /instruction" in r.stdout
    graph.wait('instruction', 0, f"instruction '{INSTRUCTION}'")
    response = graph.driver.enable(True)
    assert response.success and response.message == 'enabled'
    graph.acting()
    graph.driver.clear_measurements()
    assert len(graph.commands(2.0)) >= 20
    latencies = graph.driver.latencies()
    assert len(latencies) >= 20, 'commands must carry the stamp of the frame they answer'
    assert float(np.median(latencies)) < 0.5
    graph.driver.spin_for(0.6)
    for node in ('perception', 'instruction', 'policy'):
        values = graph.driver.values(f'/{node}')
        assert values['model_id'].startswith('ros_tiny_checkpoint@'), values
        assert values['backend'].startswith('onnxruntime')
    perception = graph.driver.values('/perception')
    policy = graph.driver.values('/policy')
    assert float(perception['rate_hz']) > 10 and 'latency_p50_ms' in perception
    assert float(policy['rate_hz']) > 10 and float(policy['latency_p50_ms']) < 500
    for key in ('image_age_ms', 'vision_features_age_ms', 'joint_states_age_ms',
                'ee_pose_age_ms', 'inference_p50_ms'):
        assert key in policy, key


def test_new_instruction_flushes_the_queue_and_changes_the_action(graph):
    from hybrid_vla_ros.inference import load_backend
    be = load_backend(graph.checkpoint, 'onnxruntime')
    visual = be.encode_vision(graph.robot.rgb[None, None])
    proprio = np.array([[*graph.robot.ee_position, graph.robot.joint_positions[1]]],
                       np.float32)

    def chunk(text):
        lang, mask = be.encode_instruction(text)
        return be.core(visual, lang, mask, proprio)[0][:, :3]

    a, b = chunk(INSTRUCTION), chunk('close the window')
    assert np.abs(a - b).max() > 1e-3, 'the tiny model must depend on the instruction'

    def rows(cmds, plan):
        return [int(np.argmin(np.abs(plan - c).max(1))) if np.abs(plan - c).max(1).min()
                < 1e-5 else None for c in cmds]

    before = rows(graph.commands(1.0), a)
    assert before and None not in before, 'every command comes from the current chunk'
    flushes = int(graph.driver.values('/policy')['flushes'])
    graph.driver.command_msgs.clear()
    assert graph.driver.say('close the window', ack_timeout=10.0)
    cmds = graph.commands(1.5)
    in_a, in_b = rows(cmds, a), rows(cmds, b)
    first_b = next(i for i, r in enumerate(in_b) if r is not None)
    assert all(r is not None for r in in_a[:first_b]), 'before the switch: plan A only'
    # Flushed: the first action for the new instruction is the head of a fresh chunk, and
    # the plan runs on in order from there.
    assert in_b[first_b:first_b + 6] == [0, 1, 2, 3, 4, 5]
    assert first_b <= 3, 'the old chunk must not be played out (replan_every 8)'
    graph.driver.spin_for(0.5)
    assert int(graph.driver.values('/policy')['flushes']) > flushes
    assert graph.driver.say(INSTRUCTION, ack_timeout=10.0)
    graph.acting()


def test_dry_run_publishes_on_the_debug_topic_only(graph):
    from geometry_msgs.msg import TwistStamped

    from hybrid_vla_ros.ros import qos
    debug = []
    sub = graph.driver.node.create_subscription(TwistStamped, '/policy/debug/ee_command',
                                                debug.append, qos.COMMAND)
    try:
        assert all(r.successful for r in graph.driver.set_params('policy',
                                                                 {'dry_run': True}))
        graph.driver.spin_for(0.3)
        debug.clear()
        assert len(graph.commands(1.0)) == 0
        assert len(debug) >= 10
        graph.wait('policy', 0, 'acting [DRY RUN]')
        assert all(r.successful for r in graph.driver.set_params('policy',
                                                                 {'dry_run': False}))
        assert len(graph.commands(1.0)) >= 10
    finally:
        graph.driver.node.destroy_subscription(sub)


def test_estop_holds_until_cleared_and_enabled_again(graph):
    graph.driver.estop(True)
    graph.wait('policy', 1, 'e-stop active')
    graph.driver.spin_for(0.3)
    assert len(graph.commands(1.0)) == 0
    refused = graph.driver.enable(True)
    assert not refused.success and 'e-stop' in refused.message
    graph.driver.estop(False)
    graph.wait('policy', text='disabled')
    assert len(graph.commands(1.0)) == 0, 'clearing the e-stop alone does not resume'
    assert graph.driver.enable(True).success
    graph.acting()
    assert len(graph.commands(1.0)) >= 10


def test_enable_and_disable_service(graph):
    assert graph.driver.enable(False).success
    graph.wait('policy', 0, 'disabled')
    graph.driver.spin_for(0.3)
    assert len(graph.commands(1.0)) == 0
    assert graph.driver.enable(True).success
    graph.acting()


def _holds(graph, seconds=0.6):
    cmds = graph.commands(seconds)
    return len(cmds) > 0 and np.all(cmds == 0.0)


def test_image_encodings_sizes_and_bad_images(graph):
    from hybrid_vla_ros.ros.image_conversion import rgb8_message_fields
    for encoding in ('bgr8', 'rgba8', 'bgra8', 'mono8', 'rgb8'):
        graph.robot.encoding = encoding
        graph.driver.spin_for(0.4)
        graph.acting()
        assert graph.driver.values('/perception')['bad_frames'] == '0', encoding
    # An unsupported encoding: perception says which, the policy holds within max_age.
    graph.robot.image_fields = {'height': IMAGE_SIZE, 'width': IMAGE_SIZE,
                                'encoding': 'yuv422', 'step': IMAGE_SIZE * 2,
                                'data': bytes(IMAGE_SIZE * IMAGE_SIZE * 2)}
    graph.wait('perception', 2, "'yuv422' is not supported")
    graph.wait('policy', 2, 'vision_features stale', timeout=MAX_AGE + 3)
    assert _holds(graph)
    # Too few bytes for the declared size.
    fields = rgb8_message_fields(graph.robot.rgb)
    fields['data'] = fields['data'][:100]
    graph.robot.image_fields = fields
    graph.wait('perception', 2, 'carries 100')
    graph.robot.image_fields = None
    graph.acting()
    # Another size is resized to the checkpoint's, and the log says so once.
    rgb = graph.robot.rgb
    graph.robot.rgb = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    graph.driver.spin_for(1.0)
    graph.acting()
    log = graph.procs['perception'].output()
    assert log.count('64x48 images are resized to 32x32') == 1, log[-2000:]
    graph.robot.rgb = rgb
    graph.acting()


def test_joint_states_without_the_checkpoint_joints_hold(graph):
    graph.robot.joint_names = ['right_j0', 'finger']
    graph.wait('policy', 2, 'lacks joint(s) gripper')
    assert 'it has right_j0, finger' in graph.status('policy').message
    assert _holds(graph)
    graph.robot.joint_names = ['right_j0', 'gripper']
    graph.acting()


@pytest.mark.parametrize('text, level, says', [
    ('', 1, 'empty instruction'),
    ('open the drawer ' * 20, 2, 'max_chars 200'),
    ('🤖🤖🤖', 2, 'unknown to the checkpoint'),
])
def test_bad_instructions_hold_with_a_diagnostic(graph, text, level, says):
    assert graph.driver.say(text, ack_timeout=10.0)
    graph.wait('instruction', level, says)
    graph.wait('policy', 1, 'empty or refused')
    assert _holds(graph)
    assert graph.procs['instruction'].alive() and graph.procs['policy'].alive()
    assert graph.driver.say(INSTRUCTION, ack_timeout=10.0)
    graph.acting()


def test_non_ascii_instruction_is_used_with_a_warning(graph):
    assert graph.driver.say('öffne die Schublade', ack_timeout=10.0)
    graph.wait('instruction', 1, 'non-ASCII')
    graph.acting()
    assert graph.driver.say(INSTRUCTION, ack_timeout=10.0)
    graph.acting()


def test_killing_perception_holds_within_max_age_and_restart_resumes(graph):
    graph.acting()
    graph.procs['perception'].stop(signal.SIGKILL)
    t0 = time.monotonic()
    graph.wait('policy', 2, 'vision_features stale', timeout=MAX_AGE + 3)
    assert time.monotonic() - t0 < MAX_AGE + 1.5
    assert _holds(graph), 'the robot gets zero velocity while perception is down'
    graph.start('perception')
    graph.acting(timeout=60)
    assert not _holds(graph)


def test_missing_or_mismatched_checkpoint_is_reported_not_fatal(graph, tmp_path):
    from hybrid_vla_ros.ros.tools.driver import GraphDriver
    mismatched = tmp_path / 'mismatched'
    shutil.copytree(graph.checkpoint, mismatched)
    cfg = mismatched / 'config.yaml'
    cfg.write_text(cfg.read_text().replace('chunk: 8', 'chunk: 6'))
    missing = NodeProcess([*_node_cmd('policy_node', 'policy_missing'),
                           '-p', f'checkpoint:={tmp_path / "nope"}'], tmp_path / 'missing.log')
    bad = NodeProcess([*_node_cmd('perception_node', 'perception_bad'),
                       '-p', f'checkpoint:={mismatched}'], tmp_path / 'bad.log')
    driver = GraphDriver(name='checker')
    try:
        assert driver.wait_status('/policy_missing', lambda s: s.level[0] == 2, 60)
        assert 'does not exist' in driver.status('/policy_missing').message
        assert driver.wait_status('/perception_bad', lambda s: s.level[0] == 2, 60)
        message = driver.status('/perception_bad').message
        assert 'another configuration' in message and 'hybrid-vla export' in message
        refused = driver.enable(True, node='policy_missing')
        assert not refused.success and 'does not exist' in refused.message
        assert missing.alive() and bad.alive()
    finally:
        driver.close()
        codes = [missing.stop(signal.SIGTERM), bad.stop(signal.SIGTERM)]
    assert codes == [0, 0]
    for proc in (missing, bad):
        assert 'Traceback' not in proc.output()
        assert 'cannot load checkpoint' in proc.output() or 'does not exist' in proc.output()


def _node_cmd(executable, name):
    import os
    import sys
    return [os.path.join(os.path.dirname(sys.executable), executable), '--ros-args', '-r',
            f'__node:={name}']


def test_nodes_stop_cleanly_on_sigint(graph):
    for name, proc in graph.procs.items():
        assert proc.stop(signal.SIGINT) == 0, proc.output()[-2000:]
        assert 'Traceback' not in proc.output(), (name, proc.output()[-3000:])


def test_nodes_run_without_torch_or_transformers(tmp_path_factory):
    """The onnxruntime path of the three nodes imports neither torch nor transformers (a
    robot image does not need them)."""
    import sys
    checkpoint = tiny_checkpoint(tmp_path_factory)
    code = ('import sys\n'
            'from hybrid_vla_ros.ros import perception_node, instruction_node, policy_node\n'
            'from hybrid_vla_ros.ros.model_ref import open_model\n'
            f'm = open_model({str(checkpoint)!r})\n'
            'assert m.error is None, m.error\n'
            'print(sorted(k for k in ("torch", "transformers") if k in sys.modules))\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       timeout=120, env=ros_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '[]'
