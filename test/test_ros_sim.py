"""End to end: `hybrid-vla bringup sim` starts the simulated robot and the three nodes as
separate processes; episodes run through the topics, driven as a user would."""

import contextlib
import os
import signal

import numpy as np
import pytest

from conftest import REPO
from ros_support import HYBRID_VLA, IMAGE_SIZE, NodeProcess, tiny_checkpoint

pytestmark = pytest.mark.ros

DEFAULT_MODEL = os.path.join(REPO, 'models', 'default')


def _bringup(tmp_path, checkpoint, *extra, params=None):
    args = [HYBRID_VLA, 'bringup', 'sim', '--checkpoint', str(checkpoint),
            '--log-dir', str(tmp_path / 'logs'), *extra]
    if params:
        args += ['--params-file', str(params)]
    return NodeProcess(args, tmp_path / 'bringup.log')


class _Alive:
    """What `wait_ready` polls: here the bringup process stands for its nodes."""

    def __init__(self, bringup):
        self.bringup = bringup

    def poll(self):
        alive = self.bringup.alive()
        return {} if alive else {'bringup': self.bringup.proc.returncode}


@contextlib.contextmanager
def _running(tmp_path, checkpoint, *extra, timeout=90):
    """Bringup + a driver, ready; bringup is always stopped (by its pid) on the way out."""
    from hybrid_vla_ros.ros.tools.demo import wait_ready
    from hybrid_vla_ros.ros.tools.driver import GraphDriver
    bringup = _bringup(tmp_path, checkpoint, *extra)
    driver = None
    try:
        driver = GraphDriver()
        wait_ready(driver, _Alive(bringup), timeout=timeout)
        yield driver, bringup
    finally:
        if driver is not None:
            driver.close()
        bringup.stop(signal.SIGINT, timeout=30)


def _stop_cleanly(bringup, tmp_path):
    code = bringup.stop(signal.SIGINT, timeout=30)
    out = bringup.output()
    assert code == 0 and 'every node stopped cleanly' in out, out[-3000:]
    for log in (tmp_path / 'logs').glob('*.log'):
        text = log.read_text(errors='replace')
        assert 'Traceback' not in text, (log.name, text[-3000:])


def _export_default() -> None:
    """Export the shipped policy for onnxruntime unless it already is."""
    import subprocess
    if not os.path.isfile(os.path.join(DEFAULT_MODEL, 'onnx', 'manifest.json')):
        r = subprocess.run([HYBRID_VLA, 'export', '--checkpoint', DEFAULT_MODEL],
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr


def _episode(driver, task, seed, text, max_steps):
    from hybrid_vla_ros.ros.tools.demo import run_episode
    return run_episode(driver, task, seed, text, max_steps)


def test_lockstep_episode_through_the_topics_then_clean_stop(tmp_path_factory, tmp_path):
    """With the (untrained) tiny checkpoint: every simulator step is answered by a command
    stamped with that step's observation, the episode runs to its end and reports its
    result, and Ctrl-C stops every process cleanly."""
    checkpoint = tiny_checkpoint(tmp_path_factory)
    with _running(tmp_path, checkpoint, '--task', 'button-press-topdown',
                  '--set', f'sim_robot.image_size={IMAGE_SIZE}',
                  '--set', 'sim_robot.start_paused=true',
                  '--set', 'sim_robot.diagnostics_period=0.25',
                  '--set', 'policy.diagnostics_period=0.25') as (driver, bringup):
        driver.clear_measurements()
        row = _episode(driver, 'button-press-topdown', 7, 'press the button', 150)
        assert row['success'] is not None, bringup.output()[-3000:]
        assert 1 <= row['steps'] <= 150
        driver.spin_for(0.5)
        latencies = driver.latencies()
        # Commands carry their observation's stamp (this busy observer may miss a few).
        assert len(latencies) >= 0.8 * row['steps']
        assert float(np.median(latencies)) < 0.5
        policy = driver.values('/policy')
        assert int(policy['commands']) >= row['steps'] - 1 and policy['fault'] == ''
        assert driver.wait_status('/sim_robot', lambda s: {kv.key: kv.value for kv in s.values}
                                  .get('episodes') == '1', 5.0)
        assert driver.values('/sim_robot')['task'] == 'button-press-topdown'
    _stop_cleanly(bringup, tmp_path)


def test_trained_default_succeeds_at_an_easy_task(tmp_path):
    """The shipped policy, exported for onnxruntime, solves an easy task lock-step through
    the topics (drawer-close; at least one of three seeds)."""

    from hybrid_vla_ros.sim.tasks import get_task
    _export_default()
    task = get_task('metaworld', 'drawer-close')
    with _running(tmp_path, DEFAULT_MODEL, '--set', 'sim_robot.start_paused=true',
                  timeout=120) as (driver, bringup):
        rows = []
        for seed in (1000, 1001, 1002):
            rows.append(_episode(driver, task.name, seed, task.instructions[0],
                                 task.max_steps))
            if rows[-1]['success']:
                break
        assert any(r['success'] for r in rows), rows
    _stop_cleanly(bringup, tmp_path)


@pytest.mark.slow
def test_realtime_mode_keeps_the_rate_with_async_inference(tmp_path_factory, tmp_path):
    """Real-time simulator at 20 Hz, asynchronous chunk inference: commands answer the
    frames within one period and few ticks are missed."""
    checkpoint = tiny_checkpoint(tmp_path_factory)
    with _running(tmp_path, checkpoint, '--sim-mode', 'realtime',
                  '--set', f'sim_robot.image_size={IMAGE_SIZE}',
                  '--set', 'sim_robot.auto_reset=true',
                  '--set', 'policy.async_inference=true') as (driver, bringup):
        assert driver.say('open the drawer', ack_timeout=10.0)
        driver.spin_for(2.0)
        driver.clear_measurements()
        driver.spin_for(10.0)
        missed, total = driver.missed(deadline=0.05)
        assert total >= 150
        assert missed / total < 0.05, (missed, total)
        assert float(np.percentile(driver.latencies(), 50)) < 0.05
        assert driver.values('/policy')['async_inference'] == 'true'
    _stop_cleanly(bringup, tmp_path)


@pytest.mark.slow
def test_joint_space_arm_through_joint_trajectories(tmp_path_factory, tmp_path):
    """The arm suite with config/ros/sim_arm.yaml: joint_trajectory commands with the
    arm's joint names step the simulator (the tiny checkpoint has the arm's shapes too)."""
    checkpoint = tiny_checkpoint(tmp_path_factory)
    with _running(tmp_path, checkpoint,
                  '--params-file', os.path.join(REPO, 'config', 'ros', 'sim_arm.yaml'),
                  '--set', f'sim_robot.image_size={IMAGE_SIZE}',
                  '--set', 'sim_robot.start_paused=true') as (driver, bringup):
        driver.keep_commands = True
        row = _episode(driver, 'reach-red', 3, 'reach the red ball', 80)
        assert row['success'] is not None and row['steps'] >= 1
        trajectories = [m for m in driver.command_msgs if hasattr(m, 'joint_names')]
        assert trajectories and list(trajectories[-1].joint_names) == [
            'shoulder_pan', 'shoulder_lift', 'elbow', 'wrist']
        point = trajectories[-1].points[0]
        assert abs(point.time_from_start.nanosec * 1e-9 - 0.05) < 1e-6
    _stop_cleanly(bringup, tmp_path)


def _send_goal(driver, instruction, timeout=0.0):
    """Send a RunInstruction goal; (goal handle future, feedback list)."""
    from rclpy.action import ActionClient

    from hybrid_vla_interfaces.action import RunInstruction
    if not hasattr(driver, '_task_client'):
        driver._task_client = ActionClient(driver.node, RunInstruction,
                                           'policy/run_instruction')
    client = driver._task_client
    assert driver.spin_until(client.server_is_ready, 20)
    feedback = []
    sent = client.send_goal_async(RunInstruction.Goal(instruction=instruction,
                                                      timeout=timeout),
                                  feedback_callback=lambda f: feedback.append(f.feedback))
    assert driver.spin_until(sent.done, 10)
    return sent.result(), feedback


def _result_of(driver, handle, timeout):
    future = handle.get_result_async()
    assert driver.spin_until(future.done, timeout)
    return future.result().result


def test_run_instruction_action_succeeds_with_feedback_and_cancel_holds(tmp_path):
    """The task interface on the shipped policy in the simulator: a goal runs to the
    simulator's task_done with feedback; an empty instruction is rejected; a second goal
    preempts the first; a cancelled goal leaves the robot holding."""

    from hybrid_vla_ros.sim.tasks import get_task
    _export_default()
    task = get_task('metaworld', 'drawer-close')
    with _running(tmp_path, DEFAULT_MODEL, '--set', 'sim_robot.start_paused=true',
                  timeout=120) as (driver, bringup):
        driver.keep_commands = True
        rejected, _ = _send_goal(driver, '   ')
        assert not rejected.accepted
        outcomes = []
        for seed in (1000, 1001, 1002):
            assert all(r.successful for r in driver.set_params(
                'sim_robot', {'task': task.name, 'seed': seed}))
            driver.trigger('policy/reset')
            handle, feedback = _send_goal(driver, task.instructions[0], timeout=60.0)
            assert handle.accepted
            assert driver.trigger('sim_robot/reset').success
            result = _result_of(driver, handle, 90)
            outcomes.append(result.outcome)
            if result.outcome == 'succeeded':
                assert result.ticks > 0 and result.message == 'the task reported done'
                assert feedback and feedback[-1].ticks > 0
                assert {f.state for f in feedback} & {'acting', 'holding', 'waiting'}
                break
        assert 'succeeded' in outcomes, outcomes
        # Preemption and cancel, in a fresh drawer-close episode; both goals ask to OPEN
        # the drawer, so the simulator's task (closing) never reports done.
        assert all(r.successful for r in driver.set_params('sim_robot', {'seed': 1010}))
        first, _ = _send_goal(driver, 'open the drawer')
        assert driver.trigger('sim_robot/reset').success
        driver.spin_for(0.5)
        second, _ = _send_goal(driver, 'pull the drawer open')
        assert _result_of(driver, first, 20).outcome == 'preempted'
        driver.spin_for(1.0)
        cancel = second.cancel_goal_async()
        assert driver.spin_until(cancel.done, 10)
        result = _result_of(driver, second, 20)
        assert result.outcome == 'cancelled'
        driver.spin_for(0.5)
        driver.command_msgs.clear()
        driver.spin_for(1.0)
        moving = [m for m in driver.command_msgs
                  if abs(m.twist.linear.x) + abs(m.twist.linear.y) + abs(m.twist.linear.z) > 0]
        assert not moving
    _stop_cleanly(bringup, tmp_path)
