"""The task suites as data: names, scenes, phrasings, error messages (no simulator)."""

import collections

import pytest

from hybrid_vla_ros.schema import ConfigError
from hybrid_vla_ros.sim import SUITES, TaskError, get_task, select_tasks, suite_names, task_names
from hybrid_vla_ros.sim.tasks import MT50_TIERS, mt50_tier


def test_suites_and_task_counts():
    assert suite_names() == ['metaworld', 'arm', 'mt50']
    assert len(task_names('metaworld')) >= 10
    assert len(task_names('arm')) >= 3
    assert len(task_names('mt50')) == 50


@pytest.mark.parametrize('suite', ['metaworld', 'arm', 'mt50'])
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
    with pytest.raises(ConfigError, match='choose from metaworld, arm, mt50'):
        task_names('libero')


def test_mt50_tiers_are_the_published_grouping():
    sizes = {tier: len(names) for tier, names in MT50_TIERS.items()}
    assert sizes == {'easy': 28, 'medium': 11, 'hard': 6, 'very-hard': 5}
    every = [name for names in MT50_TIERS.values() for name in names]
    assert sorted(every) == sorted(task_names('mt50'))
    assert mt50_tier('peg-insert-side') == 'medium'
    assert mt50_tier('pick-place-wall') == 'very-hard'
    for name in task_names('mt50'):
        task = get_task('mt50', name)
        assert task.params['env'] == f'{name}-v3'
        assert task.max_steps == 500


def test_mt50_tasks_selected_by_name_or_tier():
    assert select_tasks('mt50', ['hard']) == list(MT50_TIERS['hard'])
    assert select_tasks('mt50', ['reach', 'very-hard', 'reach']) == [
        'reach', *MT50_TIERS['very-hard']]
    assert select_tasks('mt50', None) == task_names('mt50')
    with pytest.raises(TaskError, match="unknown mt50 task 'no-such-task'; choose from "
                       r'button-press, .*; or a tier: easy, medium, hard, very-hard'):
        select_tasks('mt50', ['no-such-task'])
    # Tier names mean nothing in the other suites.
    with pytest.raises(TaskError, match="unknown metaworld task 'easy'"):
        select_tasks('metaworld', ['easy'])


def test_mt50_shared_scenes_differ_in_their_words():
    # Tasks loading one Meta-World model file must be told apart by the instruction: no
    # phrasing of one may be a phrasing of the other, and the verbs of each pair differ.
    scenes = collections.defaultdict(list)
    for task in SUITES['mt50'].values():
        scenes[task.scene].append(task)
    shared = {scene: tasks for scene, tasks in scenes.items() if len(tasks) > 1}
    assert {t.name for t in shared['drawer']} == {'drawer-open', 'drawer-close'}
    assert {t.name for t in shared['coffee']} == {'coffee-button', 'coffee-pull',
                                                  'coffee-push'}
    assert len(shared) == 13
    for closing in ('drawer-close', 'window-close', 'door-close', 'faucet-close'):
        task = get_task('mt50', closing)
        assert not any('open' in p for p in task.instructions + task.held_out), closing
    for side in ('handle-press-side', 'handle-pull-side', 'plate-slide-side'):
        task = get_task('mt50', side)
        assert all('side' in p for p in task.instructions + task.held_out), side
