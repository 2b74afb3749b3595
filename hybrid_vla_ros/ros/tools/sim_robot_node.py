"""sim_robot_node: a built-in simulated task (`hybrid_vla_ros.sim`) as a ROS 2 robot.

Publishes what the collector records (docs/data-format.md), stamped with the node clock at
capture (wall time, like a real camera driver): ``joint_states`` (with Meta-World's
``gripper`` entry), ``ee_pose`` and ``<camera>/image_raw`` (rgb8) — in that order, so the
proprioception of a step is out before its image. It executes ``ee_command``
(TwistStamped, m/s) + ``gripper_command`` (Float64), or ``joint_command``
(JointTrajectory) / ``forward_command`` (Float64MultiArray), reports each finished episode
on ``episode_result`` (diagnostic_msgs/DiagnosticStatus: level OK = success, values task,
suite, seed, success, steps, instruction) and resets on ``~/reset`` (std_srvs/Trigger) with
the current ``task`` and ``seed`` parameters (both may be set at run time).

Modes:

- ``lockstep``: after publishing an observation the simulator waits for the command that
  answers it (header stamp equal to the observation's, or zero for unstamped commands), then
  steps once — reproducible evaluation, whatever the compute speed. The step runs after the
  current batch of callbacks, so the gripper command published just before the twist is in.
  With no answer within ``lockstep_timeout`` the observation is published again, freshly
  stamped (a lost best-effort image or a restarted node does not stall the episode).
- ``realtime``: a timer at ``rate`` Hz applies the newest command (zero velocity / the
  current joint positions once it is older than ``command_timeout``), advances the physics by
  one tick of wall time and publishes the observation; a tick whose previous observation got
  no answer in time counts as missed.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from ...sim import get_task, make_env
from ...sim.env import EndEffectorCommand, JointCommand
from .. import qos
from ..base import NodeSetup
from ..diagnostics import OK, WARN, LatencyWindow, RateMeter
from ..image_conversion import rgb8_message_fields
from ..runtime import now_seconds, run_node
from ..tensor_codec import stamp_seconds
from .sim_parameters import SIM_ROBOT_PARAMS

PARAMS = SIM_ROBOT_PARAMS


class SimRobotNode(Node):
    """A simulated task as a robot (see the module docstring).

    Args:
        **kwargs: passed to `rclpy.node.Node` (``context``, ``parameter_overrides``).

    """

    def __init__(self, **kwargs):
        super().__init__('sim_robot', **kwargs)
        setup = NodeSetup(self, SIM_ROBOT_PARAMS, self._report)
        self.params, self.diag = setup.params, setup.diag
        p = self.params
        self.task, self.seed = p['task'], p['seed']
        self.env = None
        self.env_key = None
        self.obs = None
        self.obs_stamp = None         # builtin_interfaces/Time of the last observation
        self.waiting = False          # lockstep: an observation awaits its command
        self.paused = True
        self.last_publish = 0.0
        self.pending = None           # lockstep: the command to apply after this batch
        self.gripper = 0.0
        self.latest = None            # realtime: (command, receive monotonic, stamp)
        self.answered = True          # realtime: the last observation got its command
        self._last_tick = 0.0         # realtime: monotonic time of the last tick
        self.instruction = ''
        self.episodes = self.successes = self.missed = self.republished = 0
        self.rate = RateMeter()
        self.command_latency = LatencyWindow()
        self.step_time = LatencyWindow()
        self.error: Optional[str] = None
        cams = list(p['cameras'])
        self.image_pubs = {c: self.create_publisher(Image, f'{c}/image_raw', qos.SENSOR)
                           for c in cams}
        self.joint_pub = self.create_publisher(JointState, 'joint_states', qos.SENSOR)
        self.pose_pub = self.create_publisher(PoseStamped, 'ee_pose', qos.SENSOR)
        self.result_pub = self.create_publisher(DiagnosticStatus, 'episode_result',
                                                qos.EVENTS)
        # The task monitor of a RunInstruction goal: true when the episode succeeds.
        self.done_pub = self.create_publisher(Bool, 'task_done', qos.EVENTS)
        self.instruction_pub = (self.create_publisher(String, 'instruction', qos.LATCHED)
                                if p['announce_instruction'] else None)
        # Gripper before twist: when both are ready in one wait, the gripper is taken
        # first (rclpy runs subscriptions in creation order).
        self.create_subscription(Float64, 'gripper_command', self._on_gripper, qos.COMMAND)
        self.create_subscription(TwistStamped, 'ee_command', self._on_twist, qos.COMMAND)
        self.create_subscription(JointTrajectory, 'joint_command', self._on_trajectory,
                                 qos.COMMAND)
        self.create_subscription(Float64MultiArray, 'forward_command', self._on_forward,
                                 qos.COMMAND)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.step_guard = self.create_guard_condition(self._step_pending)
        if p['mode'] == 'realtime':
            self.create_timer(1.0 / p['rate'], self._realtime_tick)
        else:
            self.create_timer(min(0.1, p['lockstep_timeout'] / 2), self._lockstep_watchdog)
        self._start_timer = None
        if not p['start_paused']:
            # Give subscribers a moment to match before the first observation.
            self._start_timer = self.create_timer(0.5, self._first_episode)

    # ------------------------------------------------------------- episodes
    def _first_episode(self) -> None:
        self.destroy_timer(self._start_timer)
        self._start_timer = None
        try:
            self.reset_episode()
        except Exception as exc:
            self._fail(f'cannot start the episode: {exc}')

    def _fail(self, message: str) -> None:
        self.error = message
        self.get_logger().error(message)
        self.diag.update(2, message)

    def reset_episode(self) -> str:
        """Start an episode of the current task and seed; returns a summary line."""
        p = self.params
        key = (p['suite'], self.task)
        if self.env is None or self.env_key != key:
            if self.env is not None:
                self.env.close()
                self.env = None
            size = p['image_size']
            self.env = make_env(p['suite'], self.task, seed=self.seed,
                                image_size=size, cameras=list(p['cameras']),
                                start_jitter=p['start_jitter'])
            self.env_key = key
        self.obs = self.env.reset(self.seed)
        self.instruction = self.env.instruction(held_out=p['held_out'])
        self.error = None
        self.paused = False
        self.pending = self.latest = None
        self.answered = True
        if self.instruction_pub is not None:
            self.instruction_pub.publish(String(data=self.instruction))
        self._publish_observation()
        summary = (f'task={self.task} seed={self.seed} max_steps={self.env.task.max_steps}'
                   f' instruction={self.instruction!r}')
        self.get_logger().info(f'episode start: {summary}')
        return summary

    def _finish_episode(self) -> None:
        success = bool(self.env.succeeded)
        self.episodes += 1
        self.successes += int(success)
        status = DiagnosticStatus(
            level=bytes([OK if success else WARN]), name=f'{self.get_name()}: episode',
            hardware_id=self.task,
            message=f'{self.task} seed {self.seed}: '
                    f'{"success" if success else "failure"} after {self.env.steps} steps')
        values = {'task': self.task, 'suite': self.params['suite'], 'seed': self.seed,
                  'success': 'true' if success else 'false', 'steps': self.env.steps,
                  'instruction': self.instruction}
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        self.result_pub.publish(status)
        if success:
            self.done_pub.publish(Bool(data=True))
        self.get_logger().info(status.message)
        self.waiting = False
        self.paused = True
        if self.params['auto_reset']:
            self.seed += 1
            self.reset_episode()

    # ------------------------------------------------------------- sensing
    def _publish_observation(self) -> None:
        obs = self.obs
        stamp = self.get_clock().now().to_msg()
        joints = JointState(name=list(obs.joint_names),
                            position=[float(v) for v in obs.joint_positions])
        joints.header.stamp = stamp
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self.params['frame_id']
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (
            float(v) for v in obs.ee_position)
        q = pose.pose.orientation
        q.x, q.y, q.z, q.w = (float(v) for v in obs.ee_orientation)
        self.joint_pub.publish(joints)
        self.pose_pub.publish(pose)
        for cam, pub in self.image_pubs.items():
            msg = Image(**rgb8_message_fields(obs.images[cam]))
            msg.header.stamp, msg.header.frame_id = stamp, f'{cam}_optical_frame'
            pub.publish(msg)
        self.obs_stamp = stamp
        self.waiting = True
        self.last_publish = time.monotonic()
        self.rate.tick()

    # ------------------------------------------------------------- commands
    def _matches(self, stamp) -> bool:
        """Does a command stamped `stamp` answer the current observation?"""
        if self.obs_stamp is None:
            return False
        if stamp.sec == 0 and stamp.nanosec == 0:
            return True
        return (stamp.sec, stamp.nanosec) == (self.obs_stamp.sec, self.obs_stamp.nanosec)

    def _on_gripper(self, msg) -> None:
        self.gripper = float(msg.data)

    def _receive(self, command, stamp) -> None:
        now = time.monotonic()
        if self.obs_stamp is not None and self._matches(stamp):
            self.command_latency.add(now_seconds(self) - stamp_seconds(self.obs_stamp))
        if self.params['mode'] == 'realtime':
            if self._matches(stamp):
                self.answered = True
            self.latest = (command, now, stamp)
            return
        if self.waiting and not self.paused and self._matches(stamp):
            self.pending = command
            self.step_guard.trigger()

    def _on_twist(self, msg) -> None:
        v = msg.twist.linear
        self._receive(('twist', np.array([v.x, v.y, v.z], dtype=np.float64)),
                      msg.header.stamp)

    def _on_trajectory(self, msg) -> None:
        if not msg.points:
            self.get_logger().error('joint_command without points ignored',
                                    throttle_duration_sec=5.0)
            return
        point = msg.points[0]
        tfs = point.time_from_start.sec + point.time_from_start.nanosec * 1e-9
        self._receive(('joints', tuple(msg.joint_names),
                       np.asarray(point.positions, dtype=np.float64), tfs),
                      msg.header.stamp)

    def _on_forward(self, msg) -> None:
        from builtin_interfaces.msg import Time
        names = tuple(self.obs.joint_names[:len(msg.data)]) if self.obs else ()
        self._receive(('joints', names, np.asarray(msg.data, dtype=np.float64), 0.0),
                      Time())

    def _to_action(self, command) -> Optional[np.ndarray]:
        try:
            if command[0] == 'twist':
                if self.env.command_kind != 'end_effector':
                    raise ValueError('this task takes joint commands, not ee_command')
                return self.env.command_to_action(EndEffectorCommand(command[1],
                                                                     self.gripper))
            if self.env.command_kind != 'joint':
                raise ValueError('this task takes ee_command, not joint commands')
            _, names, positions, tfs = command
            return self.env.command_to_action(JointCommand(names, positions, tfs))
        except ValueError as exc:
            self.get_logger().error(f'command ignored: {exc}', throttle_duration_sec=5.0)
            return None

    def _hold_action(self) -> np.ndarray:
        if self.env.command_kind == 'end_effector':
            return self.env.command_to_action(EndEffectorCommand(np.zeros(3), self.gripper))
        names, positions = self.env.joint_state()
        return self.env.command_to_action(JointCommand(names, positions,
                                                       self.env.control_period))

    def _advance(self, action: np.ndarray, steps: int) -> None:
        t0 = time.perf_counter()
        done = False
        for _ in range(steps):
            self.obs, _, done = self.env.step(action)
            if done:
                break
        self.step_time.add(time.perf_counter() - t0)
        if done:
            self._finish_episode()
        else:
            self._publish_observation()

    def _step_pending(self) -> None:
        command, self.pending = self.pending, None
        if command is None or not self.waiting or self.paused:
            return
        action = self._to_action(command)
        if action is None:
            return  # lockstep: keep waiting for a usable command
        self.waiting = False
        self._advance(action, 1)

    def _lockstep_watchdog(self) -> None:
        if (self.waiting and not self.paused and self.obs is not None
                and time.monotonic() - self.last_publish > self.params['lockstep_timeout']):
            self.republished += 1
            self.obs = self.env.observe()
            self._publish_observation()

    def _realtime_tick(self) -> None:
        if self.paused or self.env is None:
            return
        now = time.monotonic()
        period = 1.0 / self.params['rate']
        if now - self._last_tick < 0.5 * period:
            return  # a timer catching up after an overrun: keep the cadence, no burst
        self._last_tick = now
        if not self.answered:
            self.missed += 1
        self.answered = False
        action = None
        if self.latest is not None:
            command, received, _ = self.latest
            if time.monotonic() - received <= self.params['command_timeout']:
                action = self._to_action(command)
        if action is None:
            action = self._hold_action()
        steps = max(1, int(round(1.0 / (self.params['rate'] * self.env.control_period))))
        self._advance(action, steps)

    # ------------------------------------------------------------- services, params
    def _on_reset(self, request, response):
        try:
            response.message = self.reset_episode()
            response.success = True
        except Exception as exc:  # TaskError, simulator errors: answer, do not crash
            response.success, response.message = False, str(exc)
            self._fail(f'reset failed: {exc}')
        return response

    def _on_set_parameters(self, params):
        for param in params:
            if param.name == 'task':
                try:
                    get_task(self.params['suite'], str(param.value))
                except Exception as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
                self.task = str(param.value)
            elif param.name == 'seed':
                self.seed = int(param.value)
        return SetParametersResult(successful=True)

    def _report(self) -> None:
        values = {'suite': self.params['suite'], 'task': self.task, 'seed': self.seed,
                  'mode': self.params['mode'], 'instruction': self.instruction,
                  'step': self.env.steps if self.env is not None else 0,
                  'episodes': self.episodes, 'successes': self.successes,
                  'observation_rate_hz': self.rate.rate(), 'missed_ticks': self.missed,
                  'republished': self.republished, 'fault': self.error or ''}
        for k, v in self.command_latency.percentiles_ms().items():
            values[f'command_latency_{k}_ms'] = v
        for k, v in self.step_time.percentiles_ms((50, 99)).items():
            values[f'step_{k}_ms'] = v
        if self.error:
            self.diag.update(2, self.error, **values)
        elif self.paused:
            self.diag.update(OK, 'paused: call ~/reset to start an episode', **values)
        else:
            self.diag.update(OK, f'{self.params["mode"]} episode running', **values)
        self.diag.hardware_id = f'{self.params["suite"]}/{self.task}'

    def shutdown(self) -> None:
        """Release the renderer."""
        if self.env is not None:
            self.env.close()



def main(args=None) -> int:
    """Console script ``sim_robot_node``."""
    return run_node(SimRobotNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
