"""The shipped topic maps read what `hybrid-vla collect` records (the simulator's real bags)."""

import warnings

import numpy as np
import pytest

from hybrid_vla_ros.data import EpisodeDataset, load_topic_map, parse_topic_map

from conftest import REPO

collect = pytest.importorskip('hybrid_vla_ros.sim.collect', reason='simulator not available')


@pytest.mark.parametrize('suite, task, topic_map', [
    ('metaworld', 'drawer-open', 'metaworld.yaml'),
    ('arm', 'reach-red', 'arm.yaml'),
])
def test_shipped_map_reads_collected_episodes(tmp_path, suite, task, topic_map):
    summary = collect.collect(tmp_path, suite=suite, tasks=[task], episodes=1, seed=0,
                              image_size=64, progress=False)
    mapping = load_topic_map(f'{REPO}/config/data/{topic_map}').to_mapping()
    mapping['image_size'] = [64, 64]
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no resize notice, no skipped bag
        ds = EpisodeDataset(tmp_path, parse_topic_map(mapping))
    (result,) = summary.recorded
    (episode,) = ds.episodes
    assert len(ds) == len(episode) == result.steps and episode.dropped_steps == 0
    assert episode.task == task and episode.seed == 0 and episode.success == result.success
    assert episode.instruction_at(0) == result.instruction
    assert ds.proprio_names and len(ds.action_names) == 4
    k = ds.chunk
    last = ds[len(ds) - 1]
    assert last['action_valid'].tolist() == [True] + [False] * (k - 1)
    np.testing.assert_array_equal(ds[0]['actions'][1], ds[1]['actions'][0])
