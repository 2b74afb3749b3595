"""What every node of the package shares: parameters, diagnostics, and — for the three
runtime nodes — the model and the lifecycle (managed-node) states.

`NodeSetup` declares a node's parameters from its `parameters` list, logs any refused value
and creates its `/diagnostics` reporter; the simulated robot uses it alone.

`ManagedNode` is the base of the perception, instruction and policy nodes: an
``rclpy.lifecycle`` node whose transitions mean

- **configure**: open the checkpoint's part(s) with the configured backend and check them
  against the node's settings (`configure_model`); a missing or mismatched checkpoint, or
  an invalid parameter, fails the transition: the node stays *unconfigured*, says why in
  the log and on ``/diagnostics`` (ERROR), and keeps running;
- **activate**: the node does its job (encodes features, commands the robot);
- **deactivate**: it stops doing it (the policy holds, and says so on ``/diagnostics``);
- **cleanup**: the model is released; **shutdown**: the node stops cleanly.

Inputs are subscribed when the node is created and stay watched in every state: the
diagnostics report their rates and ages whether the node is active or not. Without a
lifecycle manager a node brings itself up (`start`: configure when ``autoconfigure``,
then activate when ``autostart``), so ``hybrid-vla bringup``, ``make demo`` and the launch
files work without one. A transition requested in a state that does not allow it is
refused with the reason (log and ``/diagnostics``); the node stays where it is.
"""

from __future__ import annotations

import time
import traceback
from typing import Callable, Optional, Sequence, Tuple

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ..schema import ConfigError
from .diagnostics import ERROR, OK, WARN, DiagnosticsReporter
from .model_ref import LoadedModel, open_model
from .parameters import NODE_PARAMS, NODE_PARTS, ParamSpec, Params, declare

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE

# Seconds a refused transition request is repeated in the periodic diagnostics.
REFUSAL_SHOWN_S = 5.0
# lifecycle_msgs/Transition ids -> the label a user types (`ros2 lifecycle set NODE LABEL`).
TRANSITION_LABELS = {1: 'configure', 2: 'cleanup', 3: 'activate', 4: 'deactivate',
                     5: 'shutdown', 6: 'shutdown', 7: 'shutdown'}


class NodeSetup:
    """A node's declared parameters and diagnostics reporter (any rclpy node).

    Args:
        node: the node.
        specs: its parameters (`parameters.*_PARAMS`).
        refresh: called before every periodic diagnostics message.

    Attributes:
        params: the declared values (`Params`).
        problems: one line per refused parameter value (already logged as ERROR).
        diag: the `DiagnosticsReporter`.

    """

    def __init__(self, node, specs: Sequence[ParamSpec], refresh: Callable[[], None]):
        self.params, self.problems = declare(node, specs)
        for problem in self.problems:
            node.get_logger().error(problem)
        self.diag = DiagnosticsReporter(node, period=self.params['diagnostics_period'],
                                        refresh=refresh)


class ManagedNode(LifecycleNode):
    """Base of the perception, instruction and policy nodes (see the module docstring).

    Subclasses set `NAME` (the node name: its parameters and model part come from
    `parameters.NODE_PARAMS` / `NODE_PARTS`), create their subscriptions in `__init__` after
    calling this one, and override the hooks `configure_model` (check the opened
    model; raise `ConfigError` to fail), `activated`, `deactivated`, `released` and
    `report` (fill the periodic diagnostics).

    Args:
        **kwargs: passed to `rclpy.lifecycle.LifecycleNode` (``context``,
            ``parameter_overrides`` for in-process tests).

    """

    NAME = ''

    def __init__(self, **kwargs):
        super().__init__(self.NAME, **kwargs)
        self.PARAMS: Tuple[ParamSpec, ...] = NODE_PARAMS[self.NAME]
        self.MODEL_PARTS: Tuple[str, ...] = NODE_PARTS[self.NAME]
        setup = NodeSetup(self, self.PARAMS, self._refresh)
        self.params: Params = setup.params
        self.param_problems = setup.problems
        self.diag = setup.diag
        self.model: Optional[LoadedModel] = None
        self.fault: Optional[str] = None
        self._refused: Optional[str] = None
        self._refused_at = 0.0
        self._guard_change_state()

    # ----------------------------------------------------------------- state
    @property
    def lifecycle_state(self) -> str:
        """``unconfigured``, ``inactive``, ``active`` or ``finalized`` (or a transition)."""
        return self._state_machine.current_state[1]

    @property
    def active(self) -> bool:
        """Whether the node is in the active state."""
        return self.lifecycle_state == 'active'

    def start(self) -> None:
        """Bring the node up without a lifecycle manager: configure when
        ``autoconfigure``, then activate when ``autostart`` (see the module docstring)."""
        if self.params['autoconfigure']:
            if self.trigger_configure() == SUCCESS and self.params['autostart']:
                self.trigger_activate()
        self._refresh()

    def shutdown(self) -> None:
        """Ctrl-C / SIGTERM (`runtime.run_node`): the shutdown transition from any primary
        state, so an active policy sends its last hold while the context is still up."""
        if self.lifecycle_state in ('unconfigured', 'inactive', 'active'):
            self.trigger_shutdown()

    # ----------------------------------------------------------------- transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Open and check the model; FAILURE (stay unconfigured) with the reason."""
        self.fault = None
        if self.param_problems:
            return self._configure_failed('invalid parameter(s): '
                                          + '; '.join(self.param_problems))
        p = self.params
        self.model = open_model(p['checkpoint'], p['backend'], parts=self.MODEL_PARTS,
                                threads=p['threads'], providers=p['providers'],
                                fp16=p['fp16'])
        if self.model.error:
            return self._configure_failed(self.model.error)
        try:
            self.configure_model()
        except (ConfigError, ValueError) as exc:
            return self._configure_failed(str(exc))
        self.diag.hardware_id = self.model.model_id
        self.get_logger().info(f'configured: {self.model.model_id} on '
                               f'{self.model.description}')
        self._refresh()
        return SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self.fault = reason
        self.model = None
        self.released()
        self.get_logger().error(f'configure failed, the node stays unconfigured: {reason}')
        self.diag.update(ERROR, f'unconfigured: {reason}')
        return FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start doing the node's job (`activated` may refuse with a reason)."""
        reason = self.activated()
        if reason:
            self.get_logger().warning(f'activate refused: {reason}')
            self.diag.update(WARN, f'activate refused: {reason}')
            return FAILURE
        self.get_logger().info('activated')
        self._refresh()
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop doing the node's job; inputs stay watched."""
        self.deactivated()
        self.get_logger().info('deactivated')
        self._refresh()
        return SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model."""
        self.released()
        self.model = None
        self.get_logger().info('cleaned up: model released')
        self._refresh()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop cleanly from any state (a policy sends its last hold first)."""
        if state.label == 'active':
            self.deactivated()
        self.released()
        self.model = None
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition callback raised: log it and return to unconfigured."""
        self.get_logger().error(f'transition from {state.label} failed; back to '
                                'unconfigured')
        self.released()
        self.model = None
        return SUCCESS

    def _guard_change_state(self) -> None:
        """Refuse a ChangeState request that the current state does not allow with the
        reason (log, /diagnostics) instead of rclpy's bare failure."""
        service = getattr(self, '_service_change_state', None)
        if service is None:
            return
        inner = service.callback

        def guarded(request, response):
            allowed = {t[1]: t[0] for t in self._state_machine.available_transitions}
            label = request.transition.label or TRANSITION_LABELS.get(request.transition.id,
                                                                       '')
            requested_id = request.transition.id
            ok = (label in allowed) if request.transition.label else (
                requested_id in allowed.values())
            if not ok:
                state = self.lifecycle_state
                self._refused = (f'transition {label or requested_id!r} refused in state '
                                 f'{state}; allowed: {", ".join(sorted(allowed)) or "none"}')
                self._refused_at = time.monotonic()
                self.get_logger().warning(self._refused)
                self.diag.update(WARN, self._refused)
                response.success = False
                return response
            self._refused = None
            return inner(request, response)

        service.callback = guarded

    # ----------------------------------------------------------------- hooks
    def configure_model(self) -> None:
        """Check `self.model` against the node's settings; raise `ConfigError` to fail."""

    def activated(self) -> Optional[str]:
        """Entering active; return a reason to refuse activation, else None."""
        return None

    def deactivated(self) -> None:
        """Leaving active (deactivate, shutdown)."""

    def released(self) -> None:
        """The model is being released (cleanup, a failed configure, shutdown)."""

    def report(self) -> Tuple[int, str, dict]:
        """(level, message, values) of the periodic diagnostics while configured."""
        return OK, self.lifecycle_state, {}

    # ----------------------------------------------------------------- diagnostics
    def _refresh(self) -> None:
        values = {'lifecycle': self.lifecycle_state, 'fault': self.fault or ''}
        if self.model is not None:
            values.update(backend=self.model.description, model_id=self.model.model_id,
                          fingerprint=self.model.fingerprint)
        try:
            level, message, extra = self.report()
        except Exception:  # a bug in a report must not stop the diagnostics
            level, message, extra = ERROR, 'report failed', {}
            self.get_logger().error('diagnostics report failed:\n' + traceback.format_exc())
        values.update(extra)
        state = self.lifecycle_state
        if state == 'unconfigured':
            if self.fault:
                level, message = ERROR, f'unconfigured: {self.fault}'
            else:
                level, message = WARN, ('unconfigured: waiting for configure (autoconfigure '
                                        'is off)')
        if self._refused and time.monotonic() - self._refused_at < REFUSAL_SHOWN_S:
            # A refused request stays visible for a while, not only in one message.
            level, message = max(level, WARN), f'{message}; {self._refused}'
        self.diag.update(level, message, **values)
