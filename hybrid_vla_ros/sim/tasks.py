"""The built-in task suites: names, scenes, instructions and episode limits (data only).

Two suites:

- ``metaworld``: end-effector control of Meta-World's Sawyer (action ``[vx, vy, vz, grip]``).
  Tasks that share a ``scene`` start from the same randomized layout *and* state for a seed,
  so only the instruction tells them apart (drawer open/close, window open/close, faucet
  on/off, door lock/unlock, and pick-and-place of one of three same-shaped coloured blocks).
- ``arm``: joint-position control of a 4-joint MuJoCo arm that reaches a coloured target.

This module imports nothing heavy, so task names and instructions can be listed without
MuJoCo; the simulators live in `metaworld_suite` and `arm_suite`.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional, Tuple

from ..schema import ConfigError
from . import instructions as _text

DEFAULT_SUITE = 'metaworld'
COLOURS: Tuple[str, ...] = ('red', 'green', 'blue')
# Largest hand start offset of the metaworld suite per axis, metres (``start_jitter``): the
# hand stays above the table and inside the mocap's workspace.
MAX_START_JITTER = 0.1


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


def _arm_tasks() -> List[TaskSpec]:
    return [TaskSpec(f'reach-{c}', 'arm', 'targets', *_text.colour_phrasings(_text.REACH, c),
                     80, {'colour': c})
            for c in COLOURS]


SUITES: Dict[str, Dict[str, TaskSpec]] = {
    'metaworld': {t.name: t for t in _metaworld_tasks()},
    'arm': {t.name: t for t in _arm_tasks()},
}


def suite_names() -> List[str]:
    """The names of the built-in suites."""
    return list(SUITES)


def task_names(suite: str = DEFAULT_SUITE) -> List[str]:
    """The task names of `suite`, in definition order."""
    return list(_suite(suite))


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
