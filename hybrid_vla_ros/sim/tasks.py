"""The built-in task suites: names, scenes, instructions and episode limits (data only).

Three suites:

- ``metaworld``: end-effector control of Meta-World's Sawyer (action ``[vx, vy, vz, grip]``).
  Tasks that share a ``scene`` start from the same randomized layout *and* state for a seed,
  so only the instruction tells them apart (drawer open/close, window open/close, faucet
  on/off, door lock/unlock, and pick-and-place of one of three same-shaped coloured blocks).
- ``arm``: joint-position control of a 4-joint MuJoCo arm that reaches a coloured target.
- ``mt50``: all 50 Meta-World v3 tasks under the published MT50 protocol (Meta-World's own
  layouts and start states drawn from the episode seed, 500 steps, the corner camera); the
  tasks are grouped in the four difficulty tiers of the published tables (`MT50_TIERS`).

This module imports nothing heavy, so task names and instructions can be listed without
MuJoCo; the simulators live in `metaworld_suite` and `arm_suite`.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional, Tuple

from ..schema import ConfigError
from . import instructions as _text
from .mt50_instructions import MT50 as _MT50_TEXT

DEFAULT_SUITE = 'metaworld'
COLOURS: Tuple[str, ...] = ('red', 'green', 'blue')
# Largest hand start offset of the metaworld suite per axis, metres (``start_jitter``): the
# hand stays above the table and inside the mocap's workspace.
MAX_START_JITTER = 0.1


# The ROS 2 parameter file of each suite's simulated robot and policy (config/ros/): the
# bring-up of the simulated graph reads it, and closed-loop evaluation applies its policy
# safety limits, so both run the policy as the robot would.
SIM_PARAMS: Dict[str, str] = {'metaworld': 'sim_demo.yaml', 'mt50': 'sim_mt50.yaml',
                              'arm': 'sim_arm.yaml'}


class TaskError(ConfigError):
    """An unknown suite, task or camera name, or a bad phrasing index; lists the valid ones."""


def check_start_jitter(suite: str, jitter: float) -> None:
    """Raise `TaskError` unless `jitter` (metres per axis) is a valid hand start offset
    for `suite`: 0 to `MAX_START_JITTER` on metaworld, 0 elsewhere."""
    if not 0.0 <= jitter <= MAX_START_JITTER:
        raise TaskError(f'start_jitter must be between 0 and {MAX_START_JITTER} m (hand start '
                        f'offset per axis), got {jitter}')
    if jitter and suite != 'metaworld':
        raise TaskError(f'start_jitter is a hand offset of the metaworld suite; the {suite} '
                        f'suite always starts from its home pose (use 0)')


DEFAULT_EXPERT = 'protocol'
EXPERT_CHOICES = (DEFAULT_EXPERT, 'revised')


def check_expert_choice(suite: str, expert: str) -> None:
    """Raise `TaskError` unless `expert` names a scripted expert of `suite`: ``protocol``
    everywhere, ``revised`` (training labels, `mt50_experts`) on mt50 only."""
    if expert not in EXPERT_CHOICES:
        raise TaskError(f'unknown expert {expert!r}; choose from {", ".join(EXPERT_CHOICES)}')
    if expert != DEFAULT_EXPERT and suite != 'mt50':
        raise TaskError(f'the {expert} expert exists for the mt50 suite only; the {suite} '
                        f'suite has its protocol expert (use protocol)')


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One language-conditioned task.

    Attributes:
        name: task name, unique within its suite (``drawer-open``, ``reach-red``).
        suite: ``metaworld`` or ``arm``.
        scene: tasks with the same scene share layout and start state for a seed.
        instructions: training phrasings (>= 5); episodes record one of them.
        held_out: phrasings never recorded (>= 3), for evaluating language generalization.
        max_steps: control steps before an episode is cut off.
        params: suite-specific settings (Meta-World env name, target colour).

    """

    name: str
    suite: str
    scene: str
    instructions: Tuple[str, ...]
    held_out: Tuple[str, ...]
    max_steps: int
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def instruction(self, index: Optional[int] = None, held_out: bool = False) -> str:
        """Phrasing number `index` (default 0) of the training or the held-out list."""
        phrasings = self.held_out if held_out else self.instructions
        index = 0 if index is None else index
        if not 0 <= index < len(phrasings):
            kind = 'held-out' if held_out else 'training'
            raise TaskError(f'task {self.name!r} has {len(phrasings)} {kind} phrasings '
                            f'(index 0..{len(phrasings) - 1}), not index {index}')
        return phrasings[index]


def _metaworld_tasks() -> List[TaskSpec]:
    # (task, Meta-World env, scene, max steps): the caps leave the experts ample time
    # (docs/sim.md lists the steps they take).
    fixed = [
        ('drawer-open', 'drawer-open-v3', 'drawer', 150),
        ('drawer-close', 'drawer-close-v3', 'drawer', 150),
        ('window-open', 'window-open-v3', 'window', 150),
        ('window-close', 'window-close-v3', 'window', 150),
        ('faucet-open', 'faucet-open-v3', 'faucet', 150),
        ('faucet-close', 'faucet-close-v3', 'faucet', 150),
        ('door-lock', 'door-lock-v3', 'door-lock', 150),
        ('door-unlock', 'door-unlock-v3', 'door-lock', 150),
        ('button-press-topdown', 'button-press-topdown-v3', 'button', 150),
    ]
    tasks = [TaskSpec(name, 'metaworld', scene, *_text.FIXED[name], max_steps,
                      {'env': env})
             for name, env, scene, max_steps in fixed]
    tasks += [TaskSpec(f'pick-place-{c}', 'metaworld', 'blocks',
                       *_text.colour_phrasings(_text.PICK_PLACE, c), 200,
                       {'env': 'pick-place-v3', 'colour': c})
              for c in COLOURS]
    return tasks


# The difficulty tiers of the published MT50 tables (Seo et al. grouping, as used by the
# SmolVLA and Evo-1 papers); papers report the mean of the four tier means.
MT50_TIERS: Dict[str, Tuple[str, ...]] = {
    'easy': (
        'button-press', 'button-press-topdown', 'button-press-topdown-wall',
        'button-press-wall', 'coffee-button', 'dial-turn', 'door-close', 'door-lock',
        'door-open', 'door-unlock', 'drawer-close', 'drawer-open', 'faucet-close',
        'faucet-open', 'handle-press', 'handle-press-side', 'handle-pull', 'handle-pull-side',
        'lever-pull', 'plate-slide', 'plate-slide-back', 'plate-slide-back-side',
        'plate-slide-side', 'reach', 'reach-wall', 'window-close', 'window-open',
        'peg-unplug-side'),
    'medium': (
        'basketball', 'bin-picking', 'box-close', 'coffee-pull', 'coffee-push', 'hammer',
        'peg-insert-side', 'push-wall', 'soccer', 'sweep', 'sweep-into'),
    'hard': ('assembly', 'hand-insert', 'pick-out-of-hole', 'pick-place', 'push', 'push-back'),
    'very-hard': ('shelf-place', 'disassemble', 'stick-pull', 'stick-push', 'pick-place-wall'),
}
# Meta-World's episode length (max_path_length): success counts at any step before it.
MT50_MAX_STEPS = 500
# Tasks whose Meta-World environments load the same model file (their scene); the rest
# have a scene of their own. Meta-World starts them in different states (a drawer open
# or shut), so unlike the metaworld suite's pairs the first picture may differ.
_MT50_SHARED = {
    'assembly-peg': ('assembly', 'disassemble'),
    'coffee': ('coffee-button', 'coffee-pull', 'coffee-push'),
    'door': ('door-open', 'door-close'),
    'door-lock': ('door-lock', 'door-unlock'),
    'drawer': ('drawer-open', 'drawer-close'),
    'faucet': ('faucet-open', 'faucet-close'),
    'handle': ('handle-press', 'handle-pull'),
    'handle-side': ('handle-press-side', 'handle-pull-side'),
    'plate-slide': ('plate-slide', 'plate-slide-back'),
    'plate-slide-side': ('plate-slide-side', 'plate-slide-back-side'),
    'stick': ('stick-push', 'stick-pull'),
    'table-with-hole': ('hand-insert', 'sweep-into'),
    'window': ('window-open', 'window-close'),
}
MT50_SCENES: Dict[str, str] = {task: scene for scene, tasks in _MT50_SHARED.items()
                               for task in tasks}


def mt50_tier(task: str) -> str:
    """The difficulty tier (`MT50_TIERS` key) of an mt50 task name."""
    for tier, names in MT50_TIERS.items():
        if task in names:
            return tier
    raise TaskError(f'unknown mt50 task {task!r}; choose from {", ".join(_MT50_TEXT)}')


def _mt50_tasks() -> List[TaskSpec]:
    # Tier order, then the published order inside a tier.
    names = [name for tier in MT50_TIERS.values() for name in tier]
    return [TaskSpec(name, 'mt50', MT50_SCENES.get(name, name), *_MT50_TEXT[name],
                     MT50_MAX_STEPS, {'env': f'{name}-v3'})
            for name in names]


def _arm_tasks() -> List[TaskSpec]:
    return [TaskSpec(f'reach-{c}', 'arm', 'targets', *_text.colour_phrasings(_text.REACH, c),
                     80, {'colour': c})
            for c in COLOURS]


SUITES: Dict[str, Dict[str, TaskSpec]] = {
    'metaworld': {t.name: t for t in _metaworld_tasks()},
    'arm': {t.name: t for t in _arm_tasks()},
    'mt50': {t.name: t for t in _mt50_tasks()},
}


def suite_names() -> List[str]:
    """The names of the built-in suites."""
    return list(SUITES)


def task_names(suite: str = DEFAULT_SUITE) -> List[str]:
    """The task names of `suite`, in definition order."""
    return list(_suite(suite))


def select_tasks(suite: str, names) -> List[str]:
    """Task names of `suite` from a list of task names and, on mt50, tier names (``easy``,
    ``medium``, ``hard``, ``very-hard``) that stand for their tasks; None or empty = all.
    Unknown names raise `TaskError` listing the valid ones (and the tiers)."""
    tasks = _suite(suite)
    if not names:
        return list(tasks)
    tiers = MT50_TIERS if suite == 'mt50' else {}
    selected: List[str] = []
    for name in names:
        if name in tiers:
            selected += [t for t in tiers[name] if t not in selected]
        elif name in tasks:
            if name not in selected:
                selected.append(name)
        else:
            also = f'; or a tier: {", ".join(tiers)}' if tiers else ''
            raise TaskError(f'unknown {suite} task {name!r}; choose from '
                            f'{", ".join(tasks)}{also}')
    return selected


def get_task(suite: str, name: str) -> TaskSpec:
    """The task `name` of `suite`; an unknown name raises `TaskError` listing the valid ones."""
    tasks = _suite(suite)
    if name not in tasks:
        raise TaskError(f'unknown {suite} task {name!r}; choose from {", ".join(tasks)}')
    return tasks[name]


def _suite(suite: str) -> Dict[str, TaskSpec]:
    if suite not in SUITES:
        raise TaskError(f'unknown suite {suite!r}; choose from {", ".join(SUITES)}')
    return SUITES[suite]
