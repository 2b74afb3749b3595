"""The dataset layer: rosbag2 episodes -> synchronized training samples.

Reads rosbag2 directories (MCAP or sqlite3, compressed or not) with `rosbags`, never
rclpy, and imports no torch (only `torch_data` does). Which topic and field means what is
the topic map (``config/data/*.yaml``); docs/data.md explains how to write one.

- `load_topic_map` / `parse_topic_map` -> `TopicMap`
- `load_episode(bag_dir, topic_map)` -> `Episode` (numpy arrays per control step)
- `EpisodeDataset(sources, topic_map, ...)`: samples, split by episode, statistics
- `torch_data.collate`: a batch of samples -> torch tensors for the trainer
"""

import importlib

# Names served on first use, so that a robot importing `data.images` (the compressed-image
# decoder the perception node shares with training) does not load rosbags.
_EXPORTS = {
    'EpisodeDataset': 'dataset', 'EpisodeSubset': 'dataset', 'LoadSummary': 'dataset',
    'load_episodes': 'dataset', 'find_bags': 'discovery', 'Episode': 'episode',
    'load_episode': 'episode', 'BagContentError': 'errors', 'DataWarning': 'errors',
    'normalization_stats': 'split', 'split_episodes': 'split',
    'InstructionSpec': 'topic_map', 'SourceSpec': 'topic_map', 'TopicMap': 'topic_map',
    'load_topic_map': 'topic_map', 'parse_topic_map': 'topic_map',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'.{_EXPORTS[name]}', __name__), name)
