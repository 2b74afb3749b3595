"""`EpisodeDataset`: many rosbag2 episodes -> training samples, split by episode.

Loading decodes every bag once (or reads it from the on-disk cache) into compact in-memory
episodes; samples are then cut from memory. A bag that cannot be read is skipped with a
`DataWarning` and counted in the `LoadSummary`; a topic map that does not fit a bag stops
loading with a `ConfigError` naming what the bag has.

A sample (``dataset[i]``, numpy; see `EpisodeDataset.sample`):

- ``images`` (N, H, W, 3) uint8 RGB, ``proprio`` (P,) float32, ``actions`` (K, A) float32
  and ``action_valid`` (K,) bool, all in message units (the model normalizes);
- ``waypoint`` (P,) float32: the proprioception at the next keyframe (grasp, release or
  episode end; `keyframes`), the target of the waypoint objective;
- ``instruction`` str, ``instruction_group`` int (index of the text in
  ``dataset.instructions``), ``episode`` int, ``step`` int, ``task`` str.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

from ..schema import ConfigError
from .cache import cache_path, load_cached, save_episode
from .discovery import find_bags
from .episode import Episode, load_episode
from .errors import DataWarning
from .keyframes import next_keyframe
from .split import normalization_stats, split_episodes
from .topic_map import TopicMap, load_topic_map

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


@dataclasses.dataclass
class LoadSummary:
    """What loading found: counts, skipped bags with reasons, dropped steps, resizing."""

    found: int = 0
    loaded: int = 0
    from_cache: int = 0
    steps: int = 0
    dropped_steps: int = 0
    skipped: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
    resized: Dict[str, List[int]] = dataclasses.field(default_factory=dict)
    nbytes: int = 0
    mapped_bytes: int = 0
    failed: List[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        mapped = (f', {self.mapped_bytes / 2**20:.1f} MiB of images mapped from the cache'
                  if self.mapped_bytes else '')
        lines = [f'{self.loaded} episodes loaded ({self.from_cache} from cache) of '
                 f'{self.found} bags found; {self.steps} control steps, {self.dropped_steps} '
                 f'dropped before every input existed; {self.nbytes / 2**20:.1f} MiB in '
                 f'memory{mapped}']
        for camera, size in sorted(self.resized.items()):
            lines.append(f'camera {camera!r}: recorded at {size[0]}x{size[1]}, resized')
        if self.failed:
            lines.append(f'{len(self.failed)} failed demonstrations left out (drop_failed): '
                         + ', '.join(os.path.basename(p) for p in self.failed))
        if self.skipped:
            lines.append(f'{len(self.skipped)} bags skipped:')
            lines.extend(f'  {path}: {reason}' for path, reason in self.skipped)
        return '\n'.join(lines)


def load_episodes(bags: Sequence[PathLike], topic_map: TopicMap, *,
                  cache_dir: Optional[PathLike] = None,
                  progress: bool = False) -> Tuple[List[Episode], LoadSummary]:
    """Load bag directories into episodes, skipping (with a warning) the unreadable ones.

    With `cache_dir`, decoded episodes are read from / written to ``.npz`` files there.
    Returns the episodes in the order of `bags` and a `LoadSummary`; raises `ConfigError`
    as soon as the topic map does not fit a bag.
    """
    summary = LoadSummary(found=len(bags))
    episodes: List[Episode] = []
    warned: Set[str] = set()
    iterator = bags
    if progress:
        from tqdm import tqdm
        iterator = tqdm(bags, desc='decoding episodes', unit='bag')
    for bag in iterator:
        cached = cache_path(cache_dir, bag, topic_map) if cache_dir is not None else None
        episode = load_cached(cached) if cached is not None else None
        if episode is not None:
            summary.from_cache += 1
        else:
            try:
                episode = load_episode(bag, topic_map, warned=warned)
            except (ConfigError, MemoryError):
                raise
            except Exception as exc:  # a damaged bag must not end a 200-bag run
                skip(summary, bag, str(exc) if str(exc).startswith('bag ')
                     else f'{type(exc).__name__}: {exc}')
                continue
            if cached is not None:
                try:
                    save_episode(cached, episode)
                except OSError as exc:  # a full or read-only cache disk only costs speed
                    warnings.warn(f'could not write the episode cache {cached}: {exc}',
                                  DataWarning, stacklevel=2)
                else:
                    # Hold the written copy's memory map, not the decoded frames.
                    episode = load_cached(cached) or episode
        episodes.append(episode)
    return episodes, summary


def skip(summary: LoadSummary, bag: PathLike, reason: str) -> None:
    """Record a skipped bag in `summary` and say so with a `DataWarning`."""
    prefix = f'bag {bag}: '
    reason = reason[len(prefix):] if reason.startswith(prefix) else reason
    summary.skipped.append((str(bag), reason))
    warnings.warn(f'skipping bag {bag}: {reason}', DataWarning, stacklevel=3)


class EpisodeDataset:
    """Training samples from rosbag2 episodes, one per control step, split by episode.

    `sources`: bag directories and/or directories searched recursively for them.
    `topic_map`: a `TopicMap` or the path of its YAML file. `val_fraction` of the episodes
    (at least one when there are two or more, unless 0) form the validation split, chosen
    deterministically from `seed`. `cache_dir` enables the on-disk episode cache. `std_floor`
    is the smallest std reported by `normalization` (message units). `drop_failed` leaves
    out the episodes whose bag says the demonstration failed (``hybrid_vla.success`` false:
    a scripted expert that never solved its task), listed in the summary; policy-driven
    (DAgger) episodes are kept whatever their outcome, because their recorded commands are
    the expert's at every state the policy reached, and a failure is what they are for.

    ``len(dataset)`` is the number of control steps of all episodes; ``dataset[i]`` a sample
    (module docstring). ``dataset.train`` and ``dataset.validation`` are views over the
    split's episodes with the same interface.
    """

    def __init__(self, sources: Union[PathLike, Sequence[PathLike]],
                 topic_map: Union[TopicMap, PathLike], *, val_fraction: float = 0.1,
                 seed: int = 0, cache_dir: Optional[PathLike] = None, std_floor: float = 1e-3,
                 progress: bool = False, drop_failed: bool = False):
        if not isinstance(topic_map, TopicMap):
            topic_map = load_topic_map(topic_map)
        if isinstance(sources, (str, os.PathLike)):
            sources = [sources]
        self.topic_map = topic_map
        self.std_floor = std_floor
        bags, unfinished = find_bags(sources)
        episodes, summary = load_episodes(bags, topic_map, cache_dir=cache_dir,
                                          progress=progress)
        summary.found += len(unfinished)
        for path in unfinished:
            skip(summary, path, 'storage files but no metadata.yaml (the recording did not '
                                'finish); `ros2 bag reindex` can repair it')
        if drop_failed:
            failed = [e.success is False and not e.policy_driven for e in episodes]
            summary.failed = [str(e.path) for e, f in zip(episodes, failed, strict=True) if f]
            episodes = [e for e, f in zip(episodes, failed, strict=True) if not f]
        self.episodes = _consistent(episodes, summary)
        if not self.episodes:
            raise ConfigError(f'no usable episodes in {", ".join(map(str, sources))}: '
                              f'{summary}')
        self.summary = summary
        key = topic_map.keyframe_action
        names = self.episodes[0].action_names
        if key is not None and key >= len(names):
            raise ConfigError(f'topic_map.keyframe_action: {key} is past the end of the '
                              f'{len(names)} action entries {names}; give the index of the '
                              f'gripper command, or null')
        self._finish_summary()
        self._all = EpisodeSubset(self, range(len(self.episodes)))
        self.instructions = sorted({t for e in self.episodes for t in e.instructions})
        group = {text: i for i, text in enumerate(self.instructions)}
        self._groups = [np.array([group[t] for t in e.instructions], np.int64)
                        for e in self.episodes]
        self._next_keyframe = [next_keyframe(e.actions, topic_map.keyframe_action,
                                             topic_map.keyframe_threshold)
                               for e in self.episodes]
        names = _split_names([e.path for e in self.episodes])
        self.train_episodes, self.validation_episodes = split_episodes(names, val_fraction, seed)
        self.train = EpisodeSubset(self, self.train_episodes)
        self.validation = EpisodeSubset(self, self.validation_episodes)

    def _finish_summary(self) -> None:
        s = self.summary
        s.loaded = len(self.episodes)
        s.steps = sum(len(e) for e in self.episodes)
        s.dropped_steps = sum(e.dropped_steps for e in self.episodes)
        s.nbytes = sum(e.nbytes for e in self.episodes)
        s.mapped_bytes = sum(e.mapped_bytes for e in self.episodes)
        target = list(self.topic_map.image_size)
        for e in self.episodes:
            for camera, size in e.source_sizes.items():
                if size and list(size) != target:
                    s.resized.setdefault(camera, list(size))
        (logger.warning if s.skipped else logger.info)('dataset: %s', s)

    # ------------------------------------------------------------------ samples
    def __len__(self) -> int:
        return len(self._all)

    def __getitem__(self, index: int) -> Dict:
        return self._all[index]

    def sample(self, episode: int, step: int) -> Dict:
        """The sample of control step `step` of episode `episode` (numpy arrays)."""
        ep = self.episodes[episode]
        actions, valid = ep.action_chunk(step, self.topic_map.chunk)
        local = int(ep.instruction_index[step])
        return {
            'images': ep.images_at(step),
            'proprio': ep.proprio[step],
            'waypoint': ep.proprio[self._next_keyframe[episode][step]],
            'actions': actions,
            'action_valid': valid,
            'instruction': ep.instructions[local],
            'instruction_group': int(self._groups[episode][local]),
            'episode': episode,
            'step': step,
            'task': ep.task,
        }

    # ------------------------------------------------------------------ statistics
    def normalization(self) -> Dict[str, Dict[str, List[float]]]:
        """Statistics of the training split, as the model's ``normalization`` section:
        ``{'action': {'mean': [A], 'std': [A]}, 'proprio': {'mean': [P], 'std': [P]}}``
        (each part fits ``hybrid_vla_ros.model.config.Stats``)."""
        train = [self.episodes[i] for i in self.train_episodes]
        return {
            'action': normalization_stats([e.actions for e in train], self.std_floor),
            'proprio': normalization_stats([e.proprio for e in train], self.std_floor),
        }

    # ------------------------------------------------------------------ shapes
    @property
    def cameras(self) -> List[str]:
        """Model camera names, in image stacking order (N)."""
        return self.topic_map.camera_names

    @property
    def proprio_names(self) -> List[str]:
        """Names of the P proprioception entries (``ee_pose.position.x``, ...)."""
        return self.episodes[0].proprio_names

    @property
    def action_names(self) -> List[str]:
        """Names of the A action entries (``ee_command.linear.x``, ...)."""
        return self.episodes[0].action_names

    @property
    def chunk(self) -> int:
        """Action chunk length K."""
        return self.topic_map.chunk

    @property
    def nbytes(self) -> int:
        """Memory held by all decoded episodes, bytes."""
        return sum(e.nbytes for e in self.episodes)


class EpisodeSubset:
    """The samples of some episodes of an `EpisodeDataset` (a split); indexes like it.

    ``episode`` in a sample stays the dataset-wide episode index.
    """

    def __init__(self, dataset: EpisodeDataset, episodes: Sequence[int]):
        self.dataset = dataset
        self.episodes = list(episodes)
        self._offsets = np.cumsum([0] + [len(dataset.episodes[e]) for e in self.episodes])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, index: int) -> Dict:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f'sample {index} out of range for {n} samples')
        k = int(np.searchsorted(self._offsets, index, side='right') - 1)
        return self.dataset.sample(self.episodes[k], int(index - self._offsets[k]))


def _consistent(episodes: List[Episode], summary: LoadSummary) -> List[Episode]:
    """Keep episodes whose proprio/action layout matches the first; skip the rest (a
    Float64MultiArray of another length, say)."""
    if not episodes:
        return []
    first = episodes[0]
    kept = [first]
    for e in episodes[1:]:
        if e.proprio_names != first.proprio_names or e.action_names != first.action_names:
            skip(summary, e.path, f'its proprio/action entries {e.proprio_names} / '
                                  f'{e.action_names} differ from the first episode\'s '
                                  f'{first.proprio_names} / {first.action_names}')
            continue
        kept.append(e)
    return kept


def _split_names(paths: List[str]) -> List[str]:
    """Episode names for the split hash: each bag directory's own name. An episode keeps
    its side however the data is given: moved, passed as one parent or as its subfolders,
    or joined by another directory (`--data data/mt50 data/mt50_extra` leaves every episode
    of data/mt50 where `--data data/mt50` put it). Bags of the same name in different
    folders hash alike and go to the same side."""
    return [Path(p).name for p in paths]
