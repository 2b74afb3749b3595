"""``hybrid-vla data-info``: what a set of bags holds and what the dataset makes of it.

Two uses: ``--list-topics BAG`` prints a bag's topics, types, message counts and joint names
(what you need to write a topic map); with ``--topic-map`` it loads the bags as the trainer
would and prints the summary, the sample layout, the split and the statistics.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import List

from ..command_registry import command


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument('paths', nargs='+', help='rosbag2 directories or directories of them')
    p.add_argument('--topic-map', help='topic map YAML (config/data/*.yaml)')
    p.add_argument('--list-topics', action='store_true',
                   help="print each bag's topics, types, counts and joint names, and stop")
    p.add_argument('--val-fraction', type=float, default=0.1,
                   help='validation fraction of the episodes (default 0.1)')
    p.add_argument('--seed', type=int, default=0, help='split seed (default 0)')
    p.add_argument('--cache-dir', help='on-disk episode cache directory')


@command('data-info', 'list the topics of rosbag2 episodes, or load them with a topic map '
         'and print samples, split and statistics', _args)
def data_info(args) -> int:
    """Run the sub-command; returns the exit code."""
    from ..schema import ConfigError
    if args.list_topics:
        from .discovery import find_bags
        bags, unfinished = find_bags(args.paths)
        for bag in bags:
            print('\n'.join(describe_bag(bag)))
        for path in unfinished:
            print(f'{path}: storage files but no metadata.yaml (unfinished recording)')
        return 0
    if not args.topic_map:
        raise ConfigError('data-info: give --topic-map (to load the data) or --list-topics')
    from .dataset import EpisodeDataset
    ds = EpisodeDataset(args.paths, args.topic_map, val_fraction=args.val_fraction,
                        seed=args.seed, cache_dir=args.cache_dir, progress=True)
    print('\n'.join(describe_dataset(ds)))
    return 0


def describe_bag(bag: Path) -> List[str]:
    """Lines describing one bag: metadata, then ``topic  type  count`` and joint names."""
    from .bag import bag_topics, open_bag, read_custom_data
    from .errors import BagContentError
    lines = [str(bag)]
    for key, value in sorted(read_custom_data(bag).items()):
        lines.append(f'  {key}: {value}')
    try:
        with open_bag(bag) as reader:
            topics = reader.topics
            for name, msgtype in sorted(bag_topics(reader).items()):
                lines.append(f'  {name:<40} {msgtype:<36} {topics[name].msgcount:>6}')
                if msgtype in ('sensor_msgs/msg/JointState',
                               'trajectory_msgs/msg/JointTrajectory'):
                    for conn, _, raw in reader.messages(connections=topics[name].connections):
                        msg = reader.deserialize(raw, conn.msgtype)
                        names = getattr(msg, 'name', None) or getattr(msg, 'joint_names', [])
                        lines.append(f'    joints: {", ".join(names)}')
                        break
    except BagContentError as exc:
        lines.append(f'  unreadable: {exc}')
    return lines


def describe_dataset(ds) -> List[str]:
    """Lines describing a loaded `EpisodeDataset`."""
    tm = ds.topic_map
    tasks = Counter(e.task or '(no task)' for e in ds.episodes)
    success = [e.success for e in ds.episodes if e.success is not None]
    lines = [str(ds.summary), '',
             f'samples        {len(ds)} (train {len(ds.train)}, validation '
             f'{len(ds.validation)}; episodes {len(ds.train_episodes)} / '
             f'{len(ds.validation_episodes)})',
             f'images         {len(ds.cameras)} x {tm.height}x{tm.width}x3 uint8 '
             f'({", ".join(ds.cameras)})',
             f'proprio        P={len(ds.proprio_names)}: {", ".join(ds.proprio_names)}',
             f'actions        K={ds.chunk} x A={len(ds.action_names)}: '
             f'{", ".join(ds.action_names)}',
             f'instructions   {len(ds.instructions)} distinct',
             'tasks          ' + ', '.join(f'{t} ({n})' for t, n in sorted(tasks.items()))]
    if success:
        lines.append(f'success        {sum(success)}/{len(success)} episodes')
    norm = ds.normalization()
    for part in ('action', 'proprio'):
        mean = ', '.join(f'{v:.4g}' for v in norm[part]['mean'])
        std = ', '.join(f'{v:.4g}' for v in norm[part]['std'])
        lines.append(f'{part + " mean":<15}{mean}')
        lines.append(f'{part + " std":<15}{std}')
    return lines
