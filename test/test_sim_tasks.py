"""The task suites as data: names, scenes, phrasings, error messages (no simulator)."""

import collections

import pytest

from hybrid_vla_ros.schema import ConfigError
from hybrid_vla_ros.sim import SUITES, TaskError, get_task, suite_names, task_names


def test_suites_and_task_counts():
    assert suite_names() == ['metaworld', 'arm']
    assert len(task_names('metaworld')) >= 10
    assert len(task_names('arm')) >= 3


@pytest.mark.parametrize('suite', ['metaworld', 'arm'])
def test_every_task_has_training_and_held_out_phrasings_that_never_mix(suite):
    seen = {}
    for task in SUITES[suite].values():
        assert len(task.instructions) >= 5, task.name
        assert len(task.held_out) >= 3, task.name
        assert len(set(task.instructions)) == len(task.instructions)
        assert not set(task.instructions) & set(task.held_out), task.name
        for text in task.instructions + task.held_out:
            assert text not in seen, f'{text!r} used by {seen.get(text)} and {task.name}'
            seen[text] = task.name


def test_shared_scenes_pair_opposite_instructions():
    scenes = collections.defaultdict(list)
    for task in SUITES['metaworld'].values():
        scenes[task.scene].append(task.name)
    assert scenes['drawer'] == ['drawer-open', 'drawer-close']
    assert scenes['window'] == ['window-open', 'window-close']
    assert scenes['faucet'] == ['faucet-open', 'faucet-close']
    assert scenes['door-lock'] == ['door-lock', 'door-unlock']
    assert scenes['blocks'] == ['pick-place-red', 'pick-place-green', 'pick-place-blue']
    for name in scenes['blocks']:
        colour = name.rsplit('-', 1)[1]
        task = get_task('metaworld', name)
        assert all(colour in text for text in task.instructions + task.held_out)


def test_instruction_indexing_and_errors():
    task = get_task('metaworld', 'drawer-open')
    assert task.instruction() == 'open the drawer'
    assert task.instruction(1, held_out=True) == task.held_out[1]
    with pytest.raises(TaskError, match=r'3 held-out phrasings \(index 0..2\)'):
        task.instruction(3, held_out=True)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match='choose from drawer-open, drawer-close'):
        get_task('metaworld', 'drawer-opn')
    with pytest.raises(ConfigError, match='choose from metaworld, arm'):
        task_names('libero')
