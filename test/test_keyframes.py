"""Keyframes and waypoint targets: from arrays, and from a real pick-and-place episode."""

import warnings

import numpy as np
import pytest

from hybrid_vla_ros.data import EpisodeDataset, load_topic_map, parse_topic_map
from hybrid_vla_ros.data.keyframes import keyframe_steps, next_keyframe
from hybrid_vla_ros.schema import ConfigError

from conftest import REPO


def gripper(values):
    actions = np.zeros((len(values), 2), np.float32)
    actions[:, 1] = values
    return actions


def test_grasp_and_release_are_keyframes():
    # open (0 or -1) -> closed (+1) at step 3, open again at step 6, episode ends at 8
    for open_value in (0.0, -1.0):
        a = gripper([open_value] * 3 + [1.0] * 3 + [open_value] * 3)
        assert keyframe_steps(a, 1).tolist() == [3, 6, 8]
        assert next_keyframe(a, 1).tolist() == [3, 3, 3, 6, 6, 6, 8, 8, 8]
    # a threshold for grippers commanded by opening width (m): below 0.04 is closing
    width = gripper([0.08, 0.08, 0.0, 0.0])
    assert keyframe_steps(-width, 1, threshold=-0.04).tolist() == [2, 3]


def test_without_a_gripper_the_episode_end_is_the_only_keyframe():
    a = gripper([1.0, -1.0, 1.0])
    assert keyframe_steps(a, None).tolist() == [2]
    assert next_keyframe(a, None).tolist() == [2, 2, 2]
    assert next_keyframe(gripper([-1.0] * 4), 1).tolist() == [3, 3, 3, 3]


def test_first_waypoint_of_pick_and_place_is_the_target_block(tmp_path):
    """The expert closes the hand over the target block, so the waypoint target of the first
    step (the hand at the first grasp) lies over the block the instruction names."""
    from hybrid_vla_ros.sim import make_env
    from hybrid_vla_ros.sim.collect import collect
    task, seed = 'pick-place-green', 3
    summary = collect(tmp_path, tasks=[task], episodes=1, seed=seed, image_size=64,
                      progress=False)
    assert summary.recorded[0].success
    env = make_env(task=task, seed=seed, image_size=64)
    block = env.reset(seed=seed).state[4:7]
    env.close()
    mapping = load_topic_map(f'{REPO}/config/data/metaworld.yaml').to_mapping()
    mapping['image_size'] = [64, 64]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ds = EpisodeDataset(tmp_path, parse_topic_map(mapping))
    first = ds[0]['waypoint']
    assert np.linalg.norm(first[:2] - block[:2]) < 0.02, (first, block)
    assert first[2] < 0.12       # the hand is down at the block, not at its start height
    last = ds[len(ds) - 1]
    np.testing.assert_array_equal(last['waypoint'], last['proprio'])


def test_keyframe_action_past_the_action_vector_is_named(tmp_path):
    from test_data_bags import METAWORLD_MAP, write_episode
    write_episode(tmp_path / 'ep', steps=3)
    mapping = dict(METAWORLD_MAP, keyframe_action=7)
    with pytest.raises(ConfigError, match='keyframe_action: 7 is past the end of the 4'):
        EpisodeDataset(tmp_path, parse_topic_map(mapping))
