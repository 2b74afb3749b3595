"""The policy node's task interface: ``~/run_instruction``
(hybrid_vla_interfaces/action/RunInstruction), the way robot software runs long jobs.

A goal is an instruction (and an optional timeout in seconds). Accepting it publishes the
instruction on ``instruction`` — the instruction node encodes it and the policy starts on
it, exactly as for a message on the topic, which keeps working beside the action. While it
runs, feedback says the state (``acting`` / ``holding`` / ``waiting``), the control ticks
and holds since the goal started and the hold reason, five times a second. It ends with
one outcome:

- ``succeeded``: a ``task_done`` (std_msgs/Bool true) arrived — the simulated robot sends
  it when its task succeeds; a robot's own task monitor may;
- ``cancelled``: the caller cancelled it;
- ``preempted``: a newer goal took over;
- ``estop``: the e-stop stopped the policy (or its heartbeat was lost);
- ``timeout``: ``timeout`` seconds passed;
- ``refused``: the instruction node refused the instruction (empty, too long, not
  understood), or the policy was deactivated;

Every outcome but ``preempted`` leaves the robot holding (the instruction is cleared, so
the policy holds until the next one). A goal is **rejected** (with the reason in the log
and on ``/diagnostics``) when its instruction is empty, its timeout negative, the e-stop
is active, or the policy is not active.
"""

from __future__ import annotations

import time
from typing import Optional

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.task import Future
from std_msgs.msg import Bool, String

from . import qos
from .diagnostics import WARN
from .instruction_check import clean, preview

# Seconds between feedback messages (and outcome checks).
FEEDBACK_PERIOD = 0.2


class TaskServer:
    """``~/run_instruction`` on `node` (a `PolicyNode`); see the module docstring."""

    def __init__(self, node):
        from hybrid_vla_interfaces.action import RunInstruction
        self.node = node
        self.action = RunInstruction
        self.current = None             # the goal handle that owns the robot now
        self.done_at: Optional[float] = None   # monotonic time of the last task_done
        self.instruction_pub = node.create_publisher(String, 'instruction', qos.LATCHED)
        node.create_subscription(Bool, 'task_done', self._on_task_done, qos.EVENTS)
        self.server = ActionServer(node, RunInstruction, '~/run_instruction',
                                   execute_callback=self._execute,
                                   goal_callback=self._on_goal,
                                   handle_accepted_callback=self._on_accepted,
                                   cancel_callback=lambda request: CancelResponse.ACCEPT)

    def _on_task_done(self, msg) -> None:
        if msg.data:
            self.done_at = time.monotonic()

    def _reject(self, reason: str):
        self.node.get_logger().warning(f'run_instruction goal rejected: {reason}')
        self.node.diag.update(WARN, f'run_instruction goal rejected: {reason}')
        return GoalResponse.REJECT

    def _on_goal(self, goal):
        text = clean(goal.instruction)
        if not text:
            return self._reject('the instruction is empty')
        if goal.timeout < 0:
            return self._reject(f'timeout {goal.timeout} is negative (0 = no limit)')
        if self.node.estop:
            return self._reject('the e-stop is active')
        if not self.node.active:
            return self._reject(f'the policy is {self.node.lifecycle_state}, not active '
                                '(enable it first)')
        return GoalResponse.ACCEPT

    def _on_accepted(self, handle) -> None:
        self.current = handle          # an older goal sees it is no longer current
        handle.execute()

    def _sleep(self, seconds: float) -> Future:
        future = Future()

        def fire():
            self.node.destroy_timer(timer)
            future.set_result(True)

        timer = self.node.create_timer(seconds, fire)
        return future

    def _result(self, handle, outcome: str, message: str, start_ticks: int,
                start_holds: int):
        result = self.action.Result(outcome=outcome, message=message,
                                    ticks=self.node.tick - start_ticks,
                                    holds=self.node.holds - start_holds)
        if outcome == 'succeeded':
            handle.succeed()
        elif outcome == 'cancelled':
            handle.canceled()
        else:
            handle.abort()
        if outcome != 'preempted' and self.current is handle:
            self._hold_robot()
            self.current = None
        self.node.get_logger().info(f'run_instruction {preview(handle.request.instruction)}: '
                                    f'{outcome} ({message})')
        return result

    def _hold_robot(self) -> None:
        """Clear the instruction: the policy holds until the next one."""
        self.instruction_pub.publish(String(data=''))

    async def _execute(self, handle):
        goal = handle.request
        node = self.node
        start = time.monotonic()
        start_ticks, start_holds = node.tick, node.holds
        language_before = node.language_time
        self.done_at = None
        self.instruction_pub.publish(String(data=goal.instruction))
        while True:
            await self._sleep(FEEDBACK_PERIOD)
            if self.current is not handle:
                return self._result(handle, 'preempted', 'a newer goal took over',
                                    start_ticks, start_holds)
            if handle.is_cancel_requested:
                return self._result(handle, 'cancelled', 'cancelled by the caller; holding',
                                    start_ticks, start_holds)
            if node.estop:
                return self._result(handle, 'estop', node.estop_reason or 'e-stop',
                                    start_ticks, start_holds)
            if not node.active:
                return self._result(handle, 'refused', f'the policy was deactivated '
                                    f'({node.lifecycle_state})', start_ticks, start_holds)
            answered = node.language_time is not None and node.language_time != language_before
            if answered and node.language_state == 'refused':
                return self._result(handle, 'refused', 'the instruction node refused the '
                                    'instruction (see its diagnostics)', start_ticks,
                                    start_holds)
            if self.done_at is not None and self.done_at >= start:
                return self._result(handle, 'succeeded', 'the task reported done',
                                    start_ticks, start_holds)
            if goal.timeout > 0 and time.monotonic() - start > goal.timeout:
                return self._result(handle, 'timeout', f'not done after {goal.timeout:g} s; '
                                    'holding', start_ticks, start_holds)
            state = ('acting' if node.acting else 'holding' if node.hold_reason
                     else 'waiting')
            handle.publish_feedback(self.action.Feedback(
                state=state, ticks=node.tick - start_ticks, holds=node.holds - start_holds,
                hold_reason=node.hold_reason))
