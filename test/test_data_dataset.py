"""EpisodeDataset over real bags: samples, split by episode, statistics, bad input, cache."""

import copy
import warnings

import numpy as np
import pytest

from hybrid_vla_ros.data import DataWarning, EpisodeDataset, parse_topic_map, split_episodes
from hybrid_vla_ros.data.cache import load_cached
from hybrid_vla_ros.schema import ConfigError

from test_data_bags import METAWORLD_MAP, action_value, frame_value, write_episode

STEPS = [5, 7, 6, 4, 8, 5]  # control steps per episode
TEXTS = ['open the drawer', 'close the drawer', 'open the window']


@pytest.fixture(scope='module')
def bag_root(tmp_path_factory):
    """Six episodes in two task folders, mixed storages, plus a mid-episode change."""
    root = tmp_path_factory.mktemp('bags')
    for i, steps in enumerate(STEPS):
        instructions = {0: TEXTS[i % 3]}
        if i == 4:
            instructions[3] = TEXTS[0]
        write_episode(root / f'task{i % 2}' / f'ep_{i:03d}', steps=steps,
                      storage='sqlite3' if i == 2 else 'mcap', instructions=instructions,
                      custom={'hybrid_vla.task': f'task{i % 3}', 'hybrid_vla.seed': str(i)})
    return root


@pytest.fixture(scope='module')
def tmap():
    return parse_topic_map(METAWORLD_MAP)


@pytest.fixture(scope='module')
def dataset(bag_root, tmap):
    return EpisodeDataset(bag_root, tmap, val_fraction=0.34, seed=3)


def test_len_is_total_control_steps_and_samples_are_aligned(dataset):
    assert len(dataset) == sum(STEPS) and dataset.summary.loaded == 6
    k = dataset.chunk
    for i in range(len(dataset)):
        s = dataset[i]
        ep = dataset.episodes[s['episode']]
        steps, t = len(ep), s['step']
        assert s['images'].shape == (1, 16, 16, 3) and s['images'].dtype == np.uint8
        assert int(s['images'][0, 0, 0, 0]) == frame_value(t)
        assert s['proprio'].shape == (4,) and s['proprio'].dtype == np.float32
        assert s['actions'].shape == (k, 4) and s['actions'].dtype == np.float32
        want = np.stack([action_value(min(t + j, steps - 1)) for j in range(k)])
        np.testing.assert_array_equal(s['actions'], want)
        assert s['action_valid'].tolist() == [t + j < steps for j in range(k)]
        assert dataset.instructions[s['instruction_group']] == s['instruction']
        assert s['task'] == ep.task
    assert dataset[-1]['step'] == len(dataset.episodes[-1]) - 1
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_instruction_groups_are_dataset_wide(dataset):
    groups = {}
    for i in range(len(dataset)):
        s = dataset[i]
        groups.setdefault(s['instruction'], set()).add(s['instruction_group'])
    assert set(groups) == set(TEXTS) and all(len(g) == 1 for g in groups.values())
    four = next(i for i, e in enumerate(dataset.episodes) if e.path.endswith('ep_004'))
    changed = [dataset[i]['instruction'] for i in range(len(dataset))
               if dataset[i]['episode'] == four]
    assert changed == [TEXTS[1]] * 3 + [TEXTS[0]] * (STEPS[4] - 3)


def test_split_is_by_episode_deterministic_and_disjoint(dataset, bag_root, tmap):
    train, val = dataset.train_episodes, dataset.validation_episodes
    assert not set(train) & set(val) and sorted(train + val) == list(range(6))
    assert len(val) == 2
    assert len(dataset.train) + len(dataset.validation) == len(dataset)
    assert {dataset.train[i]['episode'] for i in range(len(dataset.train))} == set(train)
    assert {dataset.validation[i]['episode']
            for i in range(len(dataset.validation))} == set(val)
    again = EpisodeDataset([bag_root / 'task1', bag_root / 'task0'], tmap, val_fraction=0.34,
                           seed=3)
    assert again.validation_episodes == val
    other = [EpisodeDataset(bag_root, tmap, val_fraction=0.34, seed=s).validation_episodes
             for s in range(4)]
    assert len({tuple(v) for v in other}) > 1


def test_adding_a_data_directory_keeps_every_episode_on_its_side(bag_root, tmp_path, tmap):
    """`--data old new`: the episodes of `old` stay where `--data old` put them (the split
    hashes each bag's own name, not its path under a common parent that a new directory
    moves)."""
    import shutil
    more = tmp_path / 'more'
    for i in range(6, 30):
        write_episode(more / f'ep_{i:03d}', steps=6, instructions={0: TEXTS[i % 3]})
    for old in (bag_root / 'task0', bag_root):
        alone = EpisodeDataset(old, tmap, val_fraction=0.34, seed=3)
        joined = EpisodeDataset([old, more], tmap, val_fraction=0.34, seed=3)
        side = {e.path: i in alone.validation_episodes for i, e in enumerate(alone.episodes)}
        after = {e.path: i in joined.validation_episodes
                 for i, e in enumerate(joined.episodes) if e.path in side}
        moved = [p for p in side if side[p] and not after[p]]
        assert after.keys() == side.keys() and not moved, moved
    shutil.rmtree(more)


def test_split_rules():
    names = [f'ep{i}' for i in range(10)]
    assert split_episodes(names, 0.1, 0) == split_episodes(list(names), 0.1, 0)
    assert len(split_episodes(names, 0.2, 0)[1]) == 2
    assert len(split_episodes(names[:2], 0.01, 0)[1]) == 1   # at least one with >= 2
    assert len(split_episodes(names[:2], 0.9, 0)[0]) == 1    # at least one to train on
    assert split_episodes(names[:1], 0.5, 0) == ([0], [])
    assert split_episodes(names, 0.0, 0) == (list(range(10)), [])


def test_statistics_come_from_the_training_split_only(dataset):
    stats = dataset.normalization()
    train = np.concatenate([dataset.episodes[i].actions for i in dataset.train_episodes])
    every = np.concatenate([e.actions for e in dataset.episodes])
    np.testing.assert_allclose(stats['action']['mean'], train.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats['action']['std'], train.std(0), rtol=1e-6)
    assert not np.allclose(stats['action']['mean'], every.mean(0))
    proprio = np.concatenate([dataset.episodes[i].proprio for i in dataset.train_episodes])
    np.testing.assert_allclose(stats['proprio']['mean'], proprio.mean(0), rtol=1e-6)
    assert all(isinstance(v, float) for v in stats['action']['mean'] + stats['proprio']['std'])
    assert len(stats['action']['mean']) == 4 and len(stats['proprio']['std']) == 4


def test_statistics_fit_the_model_config(dataset):
    from hybrid_vla_ros.model.config import NormalizationSpec
    from hybrid_vla_ros.schema import from_mapping
    spec = from_mapping(NormalizationSpec, dataset.normalization(), 'model.normalization')
    assert len(spec.action.std) == 4


def test_constant_dimension_std_is_floored(tmp_path, tmap):
    write_episode(tmp_path / 'a', steps=4)
    ds = EpisodeDataset(tmp_path, tmap, std_floor=0.01)
    # ee_pose position and everything else vary; a constant column needs the floor:
    ds.episodes[0].proprio[:, 3] = 1.0
    assert ds.normalization()['proprio']['std'][3] == 0.01


def test_truncated_and_garbage_bags_are_skipped_and_counted(tmp_path, tmap):
    for i in range(3):
        write_episode(tmp_path / f'ep{i}', steps=4)
    cut = next((tmp_path / 'ep1').glob('*.mcap'))
    cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
    junk = next((tmp_path / 'ep2').glob('*.mcap'))
    junk.write_bytes(b'\x89MCAP0\r\n' + bytes(1000))
    unfinished = tmp_path / 'crashed'
    unfinished.mkdir()
    (unfinished / 'crashed_0.mcap').write_bytes(b'\x89MCAP0\r\n')
    # The collector's in-progress area is hidden and not searched.
    (tmp_path / '.partial' / 'ep9').mkdir(parents=True)
    (tmp_path / '.partial' / 'ep9' / 'ep9_0.mcap').write_bytes(b'\x89MCAP0\r\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ds = EpisodeDataset(tmp_path, tmap)
    said = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(said) == 3
    assert all(m.startswith('skipping bag') for m in said)
    assert ds.summary.found == 4 and ds.summary.loaded == 1 and len(ds) == 4
    skipped = dict(ds.summary.skipped)
    assert set(skipped) == {str(tmp_path / 'ep1'), str(tmp_path / 'ep2'), str(unfinished)}
    assert 'cannot open the bag' in skipped[str(tmp_path / 'ep1')]
    assert 'metadata.yaml' in skipped[str(unfinished)]
    text = str(ds.summary)
    assert '3 bags skipped' in text and str(tmp_path / 'ep1') in text


def test_nothing_readable_is_an_error_with_the_summary(tmp_path, tmap):
    write_episode(tmp_path / 'ep0', steps=3)
    (next((tmp_path / 'ep0').glob('*.mcap'))).write_bytes(b'junk')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(ConfigError, match='no usable episodes') as info:
            EpisodeDataset(tmp_path, tmap)
    assert 'ep0' in str(info.value)


def test_missing_topic_stops_loading(tmp_path, tmap):
    write_episode(tmp_path / 'ep0', steps=3)
    write_episode(tmp_path / 'ep1', steps=3, skip_topics=('ee_pose',))
    with pytest.raises(ConfigError) as info:
        EpisodeDataset(tmp_path, tmap)
    msg = str(info.value)
    assert "'ee_pose' is not in this bag" in msg and 'ep1' in msg and 'joint_states' in msg


def test_missing_path_is_an_error(tmp_path, tmap):
    with pytest.raises(ConfigError, match='does not exist'):
        EpisodeDataset(tmp_path / 'nope', tmap)


def test_resize_is_said_once_for_the_whole_dataset(tmp_path, tmap):
    for i in range(3):
        write_episode(tmp_path / f'ep{i}', steps=3, image_size=(24, 24))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ds = EpisodeDataset(tmp_path, tmap)
    assert len([w for w in caught if issubclass(w.category, DataWarning)]) == 1
    assert ds.summary.resized == {'front': [24, 24]}


def test_disk_cache_serves_the_second_load(tmp_path, tmap):
    bags, cache = tmp_path / 'bags', tmp_path / 'cache'
    for i in range(2):
        write_episode(bags / f'ep{i}', steps=5, instructions={0: 'a', 2: 'b'})
    first = EpisodeDataset(bags, tmap, cache_dir=cache)
    assert first.summary.from_cache == 0 and len(list(cache.glob('*.npz'))) == 2
    second = EpisodeDataset(bags, tmap, cache_dir=cache)
    assert second.summary.from_cache == 2 and len(second) == len(first)
    for i in range(len(first)):
        a, b = first[i], second[i]
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert second.episodes[0].metadata == first.episodes[0].metadata
    # Cached frames are memory maps of the cache file (a dataset larger than memory
    # trains), on the first load too; only the small arrays count as memory.
    for ds in (first, second):
        assert all(isinstance(f, np.memmap) for e in ds.episodes for f in e.frames)
        assert ds.summary.mapped_bytes == 10 * 16 * 16 * 3
        assert ds.summary.nbytes < ds.summary.mapped_bytes
        assert 'MiB of images mapped from the cache' in str(ds.summary)
    with pytest.raises(ValueError, match='read-only'):
        second.episodes[0].frames[0][0, 0, 0] = 1
    entry = next(cache.glob('*.npz'))
    read = load_cached(entry, map_frames=False)
    assert not isinstance(read.frames[0], np.memmap)
    np.testing.assert_array_equal(read.frames[0], load_cached(entry).frames[0])
    # Another topic map (image size) misses the cache; so does a re-recorded bag.
    other = copy.deepcopy(METAWORLD_MAP)
    other['image_size'] = [8, 8]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DataWarning)  # the resize notice
        third = EpisodeDataset(bags, parse_topic_map(other), cache_dir=cache)
    assert third.summary.from_cache == 0 and third[0]['images'].shape == (1, 8, 8, 3)
    storage = next((bags / 'ep0').glob('*.mcap'))
    storage.touch()
    fourth = EpisodeDataset(bags, tmap, cache_dir=cache)
    assert fourth.summary.from_cache == 1
    # A damaged cache entry is only a miss.
    for entry in cache.glob('*.npz'):
        entry.write_bytes(b'not an npz')
    assert EpisodeDataset(bags, tmap, cache_dir=cache).summary.from_cache == 0


def test_memory_is_compact(dataset):
    frames = sum(f.nbytes for e in dataset.episodes for f in e.frames)
    assert frames == sum(STEPS) * 16 * 16 * 3
    assert dataset.nbytes < frames * 1.2
