"""Built-in simulated robot: language-conditioned tasks, scripted experts, rosbag2 demos.

Suites (``tasks.SUITES``):

- ``metaworld`` (default): Meta-World 3 Sawyer, end-effector velocity + gripper commands;
  drawer, window, faucet and door-lock scenes shared by opposite instructions, and a
  three-block pick-and-place scene where the instruction names the colour.
- ``arm``: a 4-joint MuJoCo arm, joint position commands, reach the named coloured target.
- ``mt50``: all 50 Meta-World v3 tasks under the published MT50 protocol (Meta-World's
  randomized layouts, 500 steps, the ``corner2`` camera), grouped in difficulty tiers.

Python API (what the collector, closed-loop evaluation and the simulated robot node use)::

    from hybrid_vla_ros.sim import make_env
    env = make_env('metaworld', 'drawer-open', seed=0, image_size=128, cameras=['front'])
    obs = env.reset()                      # Observation: images, proprio, joints, ee pose
    env.instruction()                      # this seed's training phrasing
    env.instruction(held_out=True)         # a phrasing never recorded
    obs, success, done = env.step(env.expert_action(obs))
    env.action_to_command(action)          # -> EndEffectorCommand (m/s) / JointCommand (rad)
    env.command_to_action(command)         # and back

Recording: `recorder.EpisodeWriter` writes one rosbag2 (MCAP) per episode following
docs/data-format.md; `collect.collect` runs experts over tasks and seeds (the
``hybrid-vla collect`` command). Nothing here imports rclpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

from .tasks import (
    DEFAULT_EXPERT,
    DEFAULT_SUITE,
    SUITES,
    TaskError,
    TaskSpec,
    check_expert_choice,
    check_start_jitter,
    get_task,
    select_tasks,
    suite_names,
    task_names,
)

if TYPE_CHECKING:
    from .env import SimEnv

# Names served from `env` on first use, so that listing tasks (the CLI) loads no MuJoCo.
_FROM_ENV = ('LINGER_STEPS', 'Command', 'EndEffectorCommand', 'JointCommand', 'Observation',
             'SimEnv')

__all__ = [
    'DEFAULT_SUITE', 'LINGER_STEPS', 'SUITES', 'Command', 'EndEffectorCommand', 'JointCommand',
    'Observation', 'SimEnv', 'TaskError', 'TaskSpec', 'camera_names', 'get_task', 'make_env',
    'select_tasks', 'suite_names', 'task_names',
]


def __getattr__(name: str):
    if name in _FROM_ENV:
        from . import env
        return getattr(env, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def camera_names(suite: str = DEFAULT_SUITE) -> Sequence[str]:
    """The cameras a suite can render (the first is the default)."""
    suite_names_ = suite_names()
    if suite not in suite_names_:
        raise TaskError(f'unknown suite {suite!r}; choose from {", ".join(suite_names_)}')
    if suite == 'metaworld':
        from .metaworld_suite import CAMERAS
    elif suite == 'mt50':
        from .mt50_suite import CAMERAS
    else:
        from .arm_suite import CAMERAS
    return CAMERAS


def make_env(suite: str = DEFAULT_SUITE, task: str = 'drawer-open', seed: int = 0,
             image_size=128, cameras: Optional[Sequence[str]] = None,
             start_jitter: float = 0.0, expert: str = DEFAULT_EXPERT) -> SimEnv:
    """Build the environment of one task.

    Args:
        suite: ``metaworld``, ``mt50`` or ``arm``.
        task: a task name of the suite (`task_names(suite)`); unknown names raise
            `TaskError` listing the valid ones.
        seed: seed of the first episode; `SimEnv.reset` takes another.
        image_size: int (square), (height, width) or ``'HxW'``; default 128x128.
        cameras: camera names to render; default ``['front']`` (mt50: ``['corner2']``);
            ``[]`` renders nothing.
        start_jitter: metaworld only: the hand starts up to this many metres (uniform, per
            axis) away from its home pose, drawn from the episode's seed; 0 = always home.
        expert: the scripted expert behind ``expert_action``: ``protocol`` (every suite's
            own) or, mt50 only, ``revised`` (training labels; `mt50_experts`).

    Returns:
        A `SimEnv` (call `reset` before `step`; `close` frees the OpenGL context).

    """
    spec = get_task(suite, task)
    check_start_jitter(spec.suite, start_jitter)
    check_expert_choice(spec.suite, expert)
    if spec.suite == 'metaworld':
        from .metaworld_suite import MetaWorldEnv
        return MetaWorldEnv(spec, seed, image_size, cameras, start_jitter=start_jitter)
    if spec.suite == 'mt50':
        from .mt50_suite import MT50Env
        return MT50Env(spec, seed, image_size, cameras, expert=expert)
    from .arm_suite import ArmEnv
    return ArmEnv(spec, seed, image_size, cameras)
