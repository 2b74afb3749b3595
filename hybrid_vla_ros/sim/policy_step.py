"""One control tick of a policy driving a simulated task: observation -> `PolicyController`
(the one control path, `inference.control`) -> env action, holding as the robot would.

Closed-loop evaluation (``eval-sim``) and the collector's policy driver (``collect
--policy``) both step the simulator through `policy_env_action`, so both see the safety
filter and the hold behaviour of the policy node.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..inference.control import (ControlSettings, PolicyController, TickResult,
                                 read_policy_parameters)
from .env import Command, EndEffectorCommand, JointCommand, Observation, SimEnv


def vector_to_command(env: SimEnv, vector: np.ndarray) -> Command:
    """A policy's (A,) action vector in ROS units -> the env's command object (m/s and a
    gripper command for end-effector suites, joint targets in rad for joint suites)."""
    if env.command_kind == 'end_effector':
        return EndEffectorCommand(linear_velocity=np.asarray(vector[:3], np.float64),
                                  gripper=float(vector[3]))
    names = env.joint_state()[0][:len(vector)]
    return JointCommand(names=tuple(names), positions=np.asarray(vector, np.float64),
                        time_from_start=env.control_period)


def measured_state(env: SimEnv, obs: Observation, action_dim: int) -> np.ndarray:
    """What the safety filter measures: the end-effector position (3,) in m for
    end-effector suites, the first `action_dim` joint positions in rad for joint suites."""
    if env.command_kind == 'end_effector':
        return np.asarray(obs.ee_position, dtype=np.float64)
    return np.asarray(obs.joint_positions[:action_dim], dtype=np.float64)


def policy_env_action(env: SimEnv, controller: PolicyController,
                      obs: Observation) -> Tuple[np.ndarray, TickResult]:
    """(env action, the controller's decision) for one tick. On a hold the env gets the
    hold command (zero velocity, or the last / measured target), as the robot would."""
    measured = measured_state(env, obs, controller.spec.action_dim)
    result = controller.act(obs.images, obs.proprio, measured)
    vector: Optional[np.ndarray] = result.action
    if vector is None:
        vector = controller.hold_action(measured)
        if vector is None:  # nothing to hold at yet: stay where the joints are
            vector = measured
    return env.command_to_action(vector_to_command(env, vector)), result


def sim_parameter_file(suite: str):
    """config/ros/<file> of `suite`'s simulated robot and policy (`tasks.SIM_PARAMS`)."""
    from ..paths import data_root
    from .tasks import SIM_PARAMS
    return data_root() / 'config' / 'ros' / SIM_PARAMS[suite]


def sim_control_settings(params_file, scheduler: Optional[str] = None,
                         replan_every: Optional[int] = None) -> ControlSettings:
    """The chunk scheduling of the policy node in `params_file` (its ``scheduler``,
    ``replan_every`` and ``ensemble_decay``; `ControlSettings` defaults for those it does not
    set), so the simulator schedules chunks as the robot does. `scheduler` / `replan_every`
    (not None) override the file. Synchronous: the simulator waits for each chunk. Values
    of the wrong type raise `ConfigError` naming the file and the parameter."""
    from ..schema import ConfigError
    values = read_policy_parameters(params_file)
    default = ControlSettings()
    try:
        return ControlSettings(
            str(scheduler if scheduler is not None
                else values.get('scheduler', default.scheduler)),
            int(replan_every if replan_every is not None
                else values.get('replan_every', default.replan_every)),
            float(values.get('ensemble_decay', default.ensemble_decay)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'{params_file}: policy scheduling parameters (scheduler, '
                          f'replan_every, ensemble_decay): {exc}') from None


def sim_controller(backend, suite: str, settings=None, params_file=None) -> PolicyController:
    """A `PolicyController` for `backend` on `suite` with the safety limits of the policy
    node in `params_file` (default: the suite's `sim_parameter_file`): its ``safety.*``,
    ``gripper_index`` and ``control_rate``; `settings` (default: that node's scheduling,
    `sim_control_settings`) schedules the chunks. Invalid settings raise `ConfigError`."""
    from ..inference.control import safety_kind, safety_limits
    from ..inference.safety import SafetyConfigError
    from ..schema import ConfigError
    path = params_file or sim_parameter_file(suite)
    values = read_policy_parameters(path)
    command_kind = 'joint' if suite == 'arm' else 'end_effector'
    spec = backend.spec
    gripper = int(values.get('gripper_index', 3 if command_kind == 'end_effector' else -1))
    period = 1.0 / float(values.get('control_rate', 20.0))
    limits = safety_limits(values, safety_kind(command_kind), spec.action_dim,
                           gripper if 0 <= gripper < spec.action_dim else None, period)
    try:
        limits.validate()
    except SafetyConfigError as exc:
        raise ConfigError(f'{path}: policy safety limits: {exc}') from None
    return PolicyController(backend, settings or sim_control_settings(path), limits)
