"""The dataset layer: rosbag2 episodes -> synchronized training samples.

Reads rosbag2 directories (MCAP or sqlite3, compressed or not) with `rosbags`, never
rclpy, and imports no torch (only `torch_data` does). Which topic and field means what is
the topic map (``config/data/*.yaml``); docs/data.md explains how to write one.

- `load_topic_map` / `parse_topic_map` -> `TopicMap`
- `load_episode(bag_dir, topic_map)` -> `Episode` (numpy arrays per control step)
- `EpisodeDataset(sources, topic_map, ...)`: samples, split by episode, statistics
- `torch_data.collate`: a batch of samples -> torch tensors for the trainer
"""

from .dataset import EpisodeDataset, EpisodeSubset, LoadSummary, load_episodes
from .discovery import find_bags
from .episode import Episode, load_episode
from .errors import BagContentError, DataWarning
from .split import normalization_stats, split_episodes
from .topic_map import InstructionSpec, SourceSpec, TopicMap, load_topic_map, parse_topic_map

__all__ = [
    'BagContentError', 'DataWarning', 'Episode', 'EpisodeDataset', 'EpisodeSubset',
    'InstructionSpec', 'LoadSummary', 'SourceSpec', 'TopicMap', 'find_bags', 'load_episode',
    'load_episodes', 'load_topic_map', 'normalization_stats', 'parse_topic_map',
    'split_episodes',
]
