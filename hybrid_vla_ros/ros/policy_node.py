"""policy_node: features + joint states -> safe joint or end-effector commands.

Per control tick the node fuses the newest ``vision_features`` and ``language_features``
with proprioception from ``joint_states`` / ``ee_pose`` through the checkpoint's
``policy_core`` and the one control path of the package (`inference.control.ControlLoop`:
chunk scheduling — replan or ensemble, synchronous or asynchronous — the safety filter
`inference.safety` and the hold decisions), and publishes the result (`CommandOutput`),
stamped with the source image stamp.

Ticks: ``tick_source: features`` (default) runs one tick per new vision features message
(once the proprioception of the same or a newer stamp is in, waiting at most
``proprio_wait``), so each camera frame is answered as soon as it is encoded and a lock-step
simulator is reproducible; a watchdog at ``control_rate`` holds when features stop coming.
``tick_source: timer`` ticks at a fixed ``control_rate`` on the newest features.

A managed node (`base.ManagedNode`):

- **configure** opens the ``policy_core`` and checks the command mode, proprioception
  sources, scheduling and safety limits against it; any mismatch fails configure with the
  reason (the node stays unconfigured and holds nothing, having never commanded);
- **active** = enabled: the node commands the robot. It starts inactive unless
  ``autostart``; ``~/enable`` (std_srvs/SetBool) is a thin alias of the activate /
  deactivate transitions, kept because it is what operators and the docs of every
  community VLA bridge call (docs/ros.md);
- **deactivate** (or ``~/enable`` false) holds: one hold command (a velocity robot gets
  zero), then nothing, with "inactive" on ``/diagnostics``;
- ``~/reset`` (std_srvs/Trigger) flushes the queue and forgets the last targets;
- ``~/run_instruction`` (hybrid_vla_interfaces/action/RunInstruction): an instruction as a
  task with feedback, cancel and a result (`task_action`);
- ``estop`` (std_msgs/Bool) true: hold and deactivate; activation is refused until estop
  false, and then still needs ``~/enable`` (or activate);
- ``dry_run``: commands go to ``~/debug/<topic>`` only (may be changed at run time);
- hold (zero twist / last target) when an input is missing or older than ``max_age``
  (naming which: vision_features, joint_states, ee_pose), when there is no usable
  instruction, when the action has NaN / Inf (ERROR) — and a new instruction flushes the
  queued chunk.
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger

from ..inference.control import ControlLoop, ControlSettings, TickInput, safety_limits
from ..inference.safety import SafetyConfigError, SafetyFilter
from ..schema import ConfigError
from . import qos, tensor_codec
from .base import SUCCESS, ManagedNode
from .command_output import SAFETY_KIND, CommandOutput, is_end_effector
from .diagnostics import ERROR, OK, WARN, LatencyWindow, RateMeter
from .proprio import ProprioAssembler, ProprioError, joint_positions, pose_values
from .runtime import now_seconds, run_node, seconds_to_stamp
from .task_action import TaskServer
from .trust import (DISCOVERY_GRACE, PublisherCheck, judge_input, stamp_to_seconds,
                    with_message_info)


# `_untrusted` reason when rclpy passed no MessageInfo (Humble): warn once, accept.
_NO_MESSAGE_INFO = 'no message info'


class PolicyNode(ManagedNode):
    """Features + proprioception -> commands (see the module docstring).

    Keyword arguments (``context``, ``parameter_overrides``) go to `ManagedNode`.
    """

    NAME = 'policy'

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        p = self.params
        self.period = 1.0 / p['control_rate']
        self.estop = False
        self.estop_reason = ''
        self.dry_run = bool(p['dry_run'])
        self.vision = None            # (Features, receive time s)
        self.vision_error: Optional[str] = None
        self.language = None          # the latest language Features (kept while unconfigured)
        self.language_state = 'none'  # none | ok | refused
        self.language_time: Optional[float] = None
        self.language_error: Optional[str] = None
        self.joint_state = None       # (msg, receive time s)
        self.ee_pose = None
        self.pending = None           # features waiting for their proprioception
        self.pending_since = 0.0
        self._wait_timer = None
        self.tick = 0
        self.acting, self.hold_reason, self.level = False, '', OK
        self.rate = RateMeter()
        self.latency = LatencyWindow()
        self.holds = self.missed_ticks = self.late_ticks = self.clamps = 0
        self.last_clamped: List[str] = []
        self._last_timer = None
        self._last_tick = time.monotonic()
        self.loop: Optional[ControlLoop] = None
        self.output: Optional[CommandOutput] = None
        self.proprio: Optional[ProprioAssembler] = None
        self.required: Tuple[str, ...] = ()
        self.joints: List[str] = []
        self.vision_source = PublisherCheck(self, 'vision_features',
                                            p['trusted_vision_publishers'])
        self.language_source = PublisherCheck(self, 'language_features',
                                              p['trusted_language_publishers'])
        self.untrusted = 0            # feature messages refused for their publisher
        # language_features from a publisher not yet discovered: (msg, info, monotonic s),
        # judged again every timer tick for DISCOVERY_GRACE seconds (an instruction's
        # features are sent once; a stream's next message would do instead).
        self._language_waiting = None
        self._warned_no_info = False
        self.estop_heartbeat: Optional[float] = None   # node clock s of the last estop false
        self.create_subscription(tensor_codec.MESSAGE, 'vision_features',
                                 with_message_info(self._on_vision), qos.FEATURES)
        self.create_subscription(tensor_codec.MESSAGE, 'language_features',
                                 with_message_info(self._on_language), qos.LATCHED)
        self.create_subscription(JointState, 'joint_states', self._on_joint_state,
                                 qos.SENSOR)
        self.create_subscription(PoseStamped, 'ee_pose', self._on_ee_pose, qos.SENSOR)
        self.create_subscription(Bool, 'estop', self._on_estop, qos.EVENTS)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.tasks = TaskServer(self)   # ~/run_instruction (task_action.py)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(self.period, self._on_timer)

    # ------------------------------------------------------------- lifecycle hooks
    def configure_model(self) -> None:
        """Check the command, proprioception, scheduling and safety settings against the
        checkpoint and build the control path; `ConfigError` names what does not fit."""
        p, spec = self.params, self.model.backend.spec
        mode = p['command_mode']
        gripper = p['gripper_index'] if p['gripper_index'] >= 0 else None
        if gripper is not None and gripper >= spec.action_dim:
            raise ConfigError(f'gripper_index {gripper} is outside the action '
                              f'(A = {spec.action_dim})')
        arm_dim = spec.action_dim - (gripper is not None)
        joints: List[str] = []
        if is_end_effector(mode):
            if arm_dim != 3:
                raise ConfigError(f'command_mode {mode} needs x, y, z (+ gripper); the '
                                  f'checkpoint\'s action has {spec.action_dim} entries '
                                  f'(gripper_index {p["gripper_index"]})')
        else:
            joints = list(p['joint_names'])
            if not joints:
                names = [n for i, n in enumerate(spec.action_names) if i != gripper]
                joints = names if len(names) == arm_dim else []
            if len(joints) != arm_dim:
                raise ConfigError(f'command_mode {mode} needs joint_names for the '
                                  f'{arm_dim} joint entries of the action; got {joints}')
        proprio = ProprioAssembler(p['proprio_sources'])
        if proprio.size != spec.proprio_dim:
            raise ConfigError(f'proprio_sources {p["proprio_sources"]} give '
                              f'{proprio.size} values; the checkpoint takes '
                              f'{spec.proprio_dim}')
        limits = safety_limits(p.as_dict(), SAFETY_KIND[mode], spec.action_dim, gripper,
                               self.period)
        try:
            safety = SafetyFilter(limits)
        except SafetyConfigError as exc:
            raise ConfigError(f'safety limits: {exc}') from None
        settings = ControlSettings(p['scheduler'], p['replan_every'], p['ensemble_decay'],
                                   p['async_inference'])
        loop = ControlLoop(self.model.backend.core, spec.chunk, settings, safety)
        if mode == 'joint_trajectory':
            loop.plan_ahead = spec.chunk - 1   # the chunk's rest rides in the trajectory
        needs = set(proprio.topics)
        if is_end_effector(mode) and (limits.workspace_min or mode == 'pose'):
            needs.add('ee_pose')       # the box needs the measured position
        if joints:
            needs.add('joint_states')  # holds and rate limits start from measurements
        # Last, together: a failed configure leaves none of them.
        self.joints, self.proprio, self.loop = joints, proprio, loop
        self.required = tuple(sorted(needs))
        self.output = CommandOutput(self, mode, p['frame_id'], joints, gripper, self.period)
        if self.language is not None:
            self._use_language(self.language)
        asynchronous = ' (async)' if p['async_inference'] else ''
        self.get_logger().info(
            f'{p["command_mode"]} commands on {", ".join(self.output.topics)}, '
            f'{p["scheduler"]} scheduling{asynchronous}, ticks on {p["tick_source"]}; '
            + ('activate or call ' + self.resolve_service_name('~/enable') + ' to command'
               if not p['autostart'] else 'activating')
            + (' [DRY RUN]' if self.dry_run else ''))

    def activated(self) -> Optional[str]:
        """Refuse while the e-stop is latched; else start from a flushed plan."""
        if self.estop:
            return 'e-stop is active: publish false on estop first'
        heartbeat = self._heartbeat_problem(now_seconds(self))
        if heartbeat:
            return heartbeat
        self.loop.flush()
        self.acting, self.hold_reason = False, ''
        self.get_logger().info('enabled: commanding the robot'
                               + (' [DRY RUN]' if self.dry_run else ''))
        return None

    def deactivated(self) -> None:
        """Hold: drop the plan and send one hold command (zero twist / last target)."""
        if self.loop is not None:
            self.loop.interrupt()
        self._stop_command()
        self.acting = False

    def released(self) -> None:
        """Stop the worker thread and remove the command publishers."""
        if self.loop is not None:
            self.loop.close()
        if self.output is not None:
            self.output.close(self)
        self.loop = self.output = self.proprio = None
        self.required, self.joints, self.pending = (), [], None

    # ------------------------------------------------------------- parameters
    def _on_set_parameters(self, params):
        """Runtime changes: only ``dry_run`` and ``safety.*`` are dynamic. Loosening (dry_run
        false, a wider limit) is refused unless ``allow_runtime_loosening`` was set at
        start-up; an invalid value is refused; an accepted change is in force at once (the
        values ``get_parameters`` reports are always the ones in force)."""
        p = self.params
        changes = {param.name: param.value for param in params}
        loosen_ok = p['allow_runtime_loosening']
        if 'dry_run' in changes:
            value = changes['dry_run']
            if not isinstance(value, bool):
                return SetParametersResult(successful=False, reason='dry_run is a bool')
            if self.dry_run and not value and not loosen_ok:
                return self._refuse('dry_run false would let the policy command the robot; '
                                    'refused at run time (set it at start-up, or start with '
                                    'allow_runtime_loosening true)')
        safety = {k: v for k, v in changes.items() if k.startswith('safety.')}
        new_limits = None
        if safety:
            from ..inference.safety import loosening
            values = dict(p.as_dict(), **{k: list(v) if isinstance(v, (list, tuple)) or
                                          hasattr(v, 'tolist') else v
                                          for k, v in safety.items()})
            for name, value in safety.items():
                spec = p.specs[name]
                reason = spec.check(value)
                if reason:
                    return self._refuse(reason)
                why = loosening(name[len('safety.'):], p[name], values[name])
                if why and not loosen_ok:
                    return self._refuse(f'parameter {name}: {why}: loosening a safety limit at '
                                        'run time is refused (start with '
                                        'allow_runtime_loosening true to allow it)')
            if self.loop is not None:
                mode, spec = p['command_mode'], self.model.backend.spec
                gripper = p['gripper_index'] if p['gripper_index'] >= 0 else None
                new_limits = safety_limits(values, SAFETY_KIND[mode], spec.action_dim,
                                           gripper, self.period)
                try:
                    new_limits.validate()
                except SafetyConfigError as exc:
                    return self._refuse(f'safety limits: {exc}')
        # Accepted: put everything in force.
        for name, value in changes.items():
            if name == 'dry_run' or name in safety:
                p.set(name, list(value) if hasattr(value, 'tolist') or
                      isinstance(value, tuple) else value)
        if 'dry_run' in changes:
            self.dry_run = changes['dry_run']
            where = '~/debug/* only' if self.dry_run else 'the robot'
            self.get_logger().warning(f'dry_run is now {self.dry_run}: commands go to {where}')
        if new_limits is not None:
            self.loop.safety = SafetyFilter(new_limits)
            self.get_logger().warning('safety limits changed: ' + ', '.join(
                f'{k}={v}' for k, v in safety.items()))
        return SetParametersResult(successful=True)

    def _refuse(self, reason: str):
        self.get_logger().error(f'parameter change refused: {reason}')
        return SetParametersResult(successful=False, reason=reason)

    # ------------------------------------------------------------- inputs
    def _untrusted(self, reason: Optional[str]) -> bool:
        if reason is None:
            return False
        if reason == _NO_MESSAGE_INFO:
            if not self._warned_no_info:
                self._warned_no_info = True
                self.get_logger().warning('this rclpy gives no publisher identity '
                                          '(MessageInfo): feature publishers are not checked; '
                                          'use SROS2 (docs/ros.md, "Safety")')
            return False
        self.untrusted += 1
        self.get_logger().error(reason, throttle_duration_sec=5.0)
        return True

    def _on_vision(self, msg, info=None) -> None:
        now = now_seconds(self)
        if self._untrusted(self.vision_source.check(info) if info is not None
                           else _NO_MESSAGE_INFO):
            return
        try:
            features = tensor_codec.decode(msg)
        except tensor_codec.CodecError as exc:
            self.vision_error = f'malformed vision_features: {exc}'
            self.get_logger().error(self.vision_error, throttle_duration_sec=5.0)
            return
        fingerprint = self.model.fingerprint if self.model is not None else ''
        if fingerprint and features.producer != fingerprint:
            self.vision_error = (f'vision_features come from model {features.producer!r} '
                                 f'but this policy runs {fingerprint!r}: start the '
                                 f'perception node with the same checkpoint')
            self.get_logger().error(self.vision_error, throttle_duration_sec=5.0)
            return
        self.vision_error = None
        self.vision = (features, now)
        if self.params['tick_source'] == 'features' and self.loop is not None:
            self.pending, self.pending_since = features, time.monotonic()
            self._try_pending()

    def _on_language(self, msg, info=None) -> None:
        self._language_waiting = None     # a newer instruction replaces a waiting one
        reason = self.language_source.check(info) if info is not None else _NO_MESSAGE_INFO
        # `undiscovered` describes the last check; without MessageInfo none was made now.
        if info is not None and reason is not None and self.language_source.undiscovered:
            self._language_waiting = (msg, info, time.monotonic())
            self.get_logger().info(f'{reason}: judged again while discovery catches up '
                                   f'(up to {DISCOVERY_GRACE:g} s)')
            return
        if self._untrusted(reason):
            return
        self._accept_language(msg)

    def _recheck_waiting_language(self) -> None:
        """Judge again the language_features that waited for their publisher's discovery:
        accept them once the graph names an allowed node, refuse them when it names
        another or after DISCOVERY_GRACE seconds."""
        msg, info, since = self._language_waiting
        reason = self.language_source.check(info)
        if reason is None:
            self._language_waiting = None
            self._accept_language(msg)
        elif not self.language_source.undiscovered or \
                time.monotonic() - since > DISCOVERY_GRACE:
            self._language_waiting = None
            self._untrusted(reason)

    def _accept_language(self, msg) -> None:
        self.language_time = now_seconds(self)
        try:
            features = tensor_codec.decode(msg)
        except tensor_codec.CodecError as exc:
            self.language_error = f'malformed language_features: {exc}'
            self.get_logger().error(self.language_error)
            return
        self.language = features
        if self.loop is not None:
            self._use_language(features)

    def _use_language(self, features) -> None:
        fingerprint = self.model.fingerprint
        if fingerprint and features.producer != fingerprint:
            self.language_error = (f'language_features come from model '
                                   f'{features.producer!r} but this policy runs '
                                   f'{fingerprint!r}')
            self.get_logger().error(self.language_error)
            self.loop.clear_language()
            return
        self.language_error = None
        if features.tokens == 0:
            self.language_state = 'refused'
            self.loop.clear_language()
            self.get_logger().warning('no usable instruction (empty or refused by the '
                                      'instruction node): holding')
            return
        mask = features.tensors['mask'][..., 0].astype(np.int64)
        self.loop.set_language(features.tensors['tokens'], mask)
        self.language_state = 'ok'
        self.get_logger().info('new instruction: action queue flushed')

    def _warn_skew(self, topic: str, msg, now: float) -> None:
        verdict = judge_input(topic, stamp_to_seconds(msg.header.stamp), now, now,
                              float('inf'), self.params['clock_skew_tolerance'])
        if verdict.skewed:
            self.get_logger().error(verdict.reason, throttle_duration_sec=2.0)

    def _on_joint_state(self, msg) -> None:
        now = now_seconds(self)
        self._warn_skew('joint_states', msg, now)
        self.joint_state = (msg, now)
        self._try_pending()

    def _on_ee_pose(self, msg) -> None:
        now = now_seconds(self)
        self._warn_skew('ee_pose', msg, now)
        self.ee_pose = (msg, now)
        if self.output is not None and self.params['command_mode'] == 'pose':
            q = msg.pose.orientation
            self.output.orientation = (q.x, q.y, q.z, q.w)
        self._try_pending()

    def _on_estop(self, msg) -> None:
        if not msg.data:
            self.estop_heartbeat = now_seconds(self)
        if msg.data and not self.estop:
            self._latch_estop('E-STOP: holding; clear it (estop false) and call '
                              f'{self.resolve_service_name("~/enable")} to resume')
        elif not msg.data and self.estop:
            self.estop = False
            self.get_logger().warning('e-stop cleared; the policy stays inactive until '
                                      f'{self.resolve_service_name("~/enable")} is called')
            self.diag.update(OK, 'disabled (e-stop cleared)')

    def _latch_estop(self, reason: str) -> None:
        """Stop as the e-stop does: latch, deactivate (one hold), say why."""
        self.estop = True
        self.estop_reason = reason
        self.get_logger().error(reason)
        if self.active:
            self.trigger_deactivate()
        self.diag.update(WARN if reason.startswith('E-STOP') else ERROR, reason)

    def _heartbeat_problem(self, now: float) -> Optional[str]:
        """heartbeat mode: why the e-stop heartbeat does not allow commanding now."""
        if self.params['estop_mode'] != 'heartbeat':
            return None
        timeout = self.params['estop_timeout']
        if self.estop_heartbeat is None:
            return ('no e-stop heartbeat yet (estop_mode heartbeat: publish estop false at '
                    f'least every {timeout:g} s, e.g. hybrid-vla estop-heartbeat)')
        age = now - self.estop_heartbeat
        if age > timeout:
            return (f'e-stop heartbeat lost: last estop false {age:.2f} s ago '
                    f'(estop_timeout {timeout:g} s)')
        return None

    # ------------------------------------------------------------- services
    def _on_enable(self, request, response):
        state = self.lifecycle_state
        if request.data:
            if state == 'active':
                response.success, response.message = True, 'enabled (already active)'
            elif state != 'inactive':
                why = self.fault or 'configure it first (lifecycle configure)'
                response.success, response.message = False, f'cannot enable ({state}): {why}'
            elif self.trigger_activate() == SUCCESS:
                response.success, response.message = True, 'enabled'
            else:
                response.success = False
                response.message = ('e-stop is active: publish false on estop first'
                                    if self.estop else self._heartbeat_problem(
                                        now_seconds(self)) or 'activation failed (see the log)')
        else:
            if state == 'active':
                self.trigger_deactivate()
                self.get_logger().info('disabled')
            response.success, response.message = True, 'disabled'
        self._refresh()
        return response

    def _on_reset(self, request, response):
        if self.loop is None:
            response.success = False
            response.message = f'cannot reset ({self.lifecycle_state}): {self.fault or "no model"}'
            return response
        self.loop.flush()
        self.output.forget()
        self.pending = None
        response.success, response.message = True, 'action queue flushed'
        self.get_logger().info('reset: action queue flushed')
        return response

    # ------------------------------------------------------------- ticks
    def _proprio_current(self, stamp: float) -> bool:
        for topic in self.proprio.topics:
            latest = self.joint_state if topic == 'joint_states' else self.ee_pose
            if latest is None:
                return False
            s = latest[0].header.stamp
            if s.sec + s.nanosec * 1e-9 < stamp - 1e-6:
                return False
        return True

    def _try_pending(self) -> None:
        if self.pending is None or self.loop is None:
            return
        waited = time.monotonic() - self.pending_since
        if not self._proprio_current(self.pending.stamp):
            remaining = self.params['proprio_wait'] - waited
            if remaining > 0:
                if self._wait_timer is None:
                    self._wait_timer = self.create_timer(remaining, self._wait_expired)
                return
        features, self.pending = self.pending, None
        self._cancel_wait()
        self._tick(features.stamp_msg)

    def _wait_expired(self) -> None:
        self._cancel_wait()
        if self.pending is not None:
            self.pending_since = -1e9   # waited long enough: tick with what there is
            self._try_pending()

    def _cancel_wait(self) -> None:
        if self._wait_timer is not None:
            self.destroy_timer(self._wait_timer)
            self._wait_timer = None

    def _on_timer(self) -> None:
        if self._language_waiting is not None:
            self._recheck_waiting_language()
        if self.active and not self.estop:
            lost = self._heartbeat_problem(now_seconds(self))
            if lost:
                self._latch_estop(f'{lost}: holding like an e-stop; restore the heartbeat and '
                                  f'call {self.resolve_service_name("~/enable")}')
        now = time.monotonic()
        if self._last_timer is not None:
            gap = now - self._last_timer
            if gap > 1.5 * self.period:
                self.missed_ticks += int(round(gap / self.period)) - 1
        self._last_timer = now
        if self.params['tick_source'] == 'timer':
            stamp = self.vision[0].stamp_msg if self.vision else None
            self._tick(stamp)
        elif now - self._last_tick > 1.5 * self.period:
            self._tick(None, watchdog=True)

    def _problems(self, now: float) -> List[Tuple[int, str, str]]:
        """(level, input, text) for every input that stops motion now."""
        out = []
        if self.language_error:
            out.append((ERROR, 'language_features', self.language_error))
        elif self.language_state == 'none' and self._language_waiting is not None:
            out.append((WARN, 'instruction', 'language_features came from a publisher the '
                                             'ROS graph does not name yet: waiting for '
                                             'discovery to judge them'))
        elif self.language_state == 'none':
            out.append((WARN, 'instruction', 'no instruction yet: publish one on '
                                             'instruction'))
        elif self.language_state == 'refused':
            out.append((WARN, 'instruction', 'the last instruction was empty or refused '
                                             '(see the instruction node)'))
        max_age, skew = self.params['max_age'], self.params['clock_skew_tolerance']
        if self.vision_error:
            out.append((ERROR, 'vision_features', self.vision_error))
        elif self.vision is None:
            out.append((ERROR, 'vision_features', 'no vision_features received (is the '
                                                  'perception node running?)'))
        else:
            features, received = self.vision
            verdict = judge_input('the image behind vision_features', features.stamp,
                                  received, now, max_age, skew)
            if not verdict.ok:
                out.append((ERROR, 'vision_features',
                            verdict.reason + ('' if verdict.skewed else
                                              ' (is the camera / perception node running?)')))
        for topic in self.required:
            latest = self.joint_state if topic == 'joint_states' else self.ee_pose
            if latest is None:
                out.append((ERROR, topic, f'no {topic} received'))
                continue
            msg, received = latest
            verdict = judge_input(topic, stamp_to_seconds(msg.header.stamp), received, now,
                                  max_age, skew)
            if not verdict.ok:
                out.append((ERROR, topic, verdict.reason))
        heartbeat = self._heartbeat_problem(now)
        if heartbeat:
            out.append((ERROR, 'estop', heartbeat))
        return out

    def _measured(self) -> Optional[np.ndarray]:
        try:
            if self.joints:
                return (joint_positions(self.joint_state[0], self.joints)
                        if self.joint_state else None)
            if self.ee_pose is not None:
                return pose_values(self.ee_pose[0], 'position')
        except ProprioError:
            return None
        return None

    def _tick(self, stamp_msg, watchdog: bool = False) -> None:
        if not watchdog:
            self._last_tick = time.monotonic()
        if self.loop is None or self.estop or not self.active:
            return
        now = now_seconds(self)
        problems = self._problems(now)
        stamp = stamp_msg if (stamp_msg is not None and not watchdog) else (
            seconds_to_stamp(now))
        if problems:
            level = max(p[0] for p in problems)
            self._hold(stamp, level, '; '.join(p[2] for p in problems))
            return
        if watchdog:
            return  # inputs are fresh: the next features message brings the next tick
        features = self.vision[0]
        try:
            proprio = self.proprio.assemble(
                self.joint_state[0] if self.joint_state else None,
                self.ee_pose[0] if self.ee_pose else None)
        except ProprioError as exc:
            self._hold(stamp, ERROR, str(exc))
            return
        result = self.loop.step(TickInput(self.tick, features.tensors['tokens'], proprio,
                                          self._measured()))
        self.tick += 1
        if result.action is None:
            self._hold(stamp, result.level, result.hold_reason, interrupt=False)
            return
        self.output.publish(result.action, stamp, self.dry_run, result.planned)
        latency = now_seconds(self) - features.stamp
        self.latency.add(latency)
        if latency > self.period:
            self.late_ticks += 1
        self.rate.tick()
        if result.clamped:
            self.clamps += 1
            self.last_clamped = result.clamped
        self.hold_reason = ''
        if not self.acting:
            self.acting = True
            self.level = OK
            self.diag.update(OK, 'acting' + (' [DRY RUN]' if self.dry_run else ''))

    def _hold(self, stamp, level: int, reason: str, interrupt: bool = True) -> None:
        if interrupt:
            self.loop.interrupt()
        self.output.hold(stamp, self.dry_run, self._measured())
        self.holds += 1
        if self.acting or self.hold_reason != reason:
            # rclpy ties one severity to one call site: two calls, not one variable.
            if level >= ERROR:
                self.get_logger().error(f'holding: {reason}', throttle_duration_sec=2.0)
            else:
                self.get_logger().warning(f'holding: {reason}', throttle_duration_sec=2.0)
        self.acting, self.hold_reason, self.level = False, reason, level
        self.diag.update(level, f'holding: {reason}')

    def _stop_command(self) -> None:
        """One hold command when actuation stops (a velocity robot gets zero)."""
        if self.output is not None:
            self.output.hold(seconds_to_stamp(now_seconds(self)), self.dry_run,
                             self._measured())

    # ------------------------------------------------------------- reporting
    def report(self):
        """Rates, holds, latencies, input ages and what the policy does now."""
        now = now_seconds(self)
        p = self.params
        values: Dict[str, object] = {
            'enabled': self.active, 'estop': self.estop, 'dry_run': self.dry_run,
            'command_mode': p['command_mode'], 'tick_source': p['tick_source'],
            'scheduler': p['scheduler'], 'async_inference': p['async_inference'],
            'rate_hz': self.rate.rate(), 'commands': self.rate.count, 'holds': self.holds,
            'missed_ticks': self.missed_ticks, 'late_ticks': self.late_ticks,
            'clamped_ticks': self.clamps, 'last_clamped': ','.join(self.last_clamped),
            'untrusted_messages': self.untrusted, 'estop_mode': p['estop_mode'],
            'instruction': self.language_state, 'hold_reason': self.hold_reason}
        if self.loop is not None:
            values['flushes'] = self.loop.flushes
            values['inferences'] = self.loop.inferences
            for k, v in self.loop.inference.percentiles_ms((50, 99)).items():
                values[f'inference_{k}_ms'] = v
        for k, v in self.latency.percentiles_ms().items():
            values[f'latency_{k}_ms'] = v
        if self.vision is not None:
            values['image_age_ms'] = (now - self.vision[0].stamp) * 1e3
            values['vision_features_age_ms'] = (now - self.vision[1]) * 1e3
        for name, latest in (('joint_states', self.joint_state), ('ee_pose', self.ee_pose)):
            if latest is not None:
                values[f'{name}_age_ms'] = (now - latest[1]) * 1e3
        if self.language_time is not None:
            values['language_features_age_s'] = now - self.language_time
        dry = ' [DRY RUN]' if self.dry_run else ''
        if self.estop:
            return WARN, 'e-stop active', values
        if not self.active:
            problems = self._problems(now) if self.loop is not None else []
            message = 'disabled (inactive): activate or call ~/enable to command'
            if problems:
                return WARN, message + ' (inputs: ' + '; '.join(q[2] for q in problems) + ')', \
                    values
            return OK, message, values
        if self.hold_reason:
            return self.level, f'holding: {self.hold_reason}', values
        if self.acting:
            return OK, 'acting' + dry, values
        return WARN, 'enabled, waiting for the first tick', values


def main(args=None) -> int:
    """Console script ``policy_node``."""
    return run_node(PolicyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
