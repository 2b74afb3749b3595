"""How often training reads each episode: `data.episode_weights` rules and the sampler.

A rule names episodes by the path of their bag (a glob) and/or their task, and gives them
a weight: each of their samples is read ``weight`` times an epoch on average (0 leaves
them out of training, 3 reads them three times as often as an unweighted episode). An
episode matched by several rules takes the product of their weights; one matched by none
keeps 1. With any rule an epoch is ``sum(weight x samples)`` samples drawn at random with
replacement, so a small set (relabelled episodes of one task, say) can be read often while
the whole mix keeps every other task in place. Validation is never weighted.
"""

from __future__ import annotations

from typing import Iterator, List, Sequence

import numpy as np
import torch

from ..schema import ConfigError
from .config import EpisodeWeight


def episode_weights(rules: Sequence[EpisodeWeight], episodes, *,
                    key: str = 'data.episode_weights') -> np.ndarray:
    """Weight of each episode (E,) float64: the product of the rules that match it, 1 where
    none does. `episodes` (at least one) need ``path`` and ``task``. Raises `ConfigError`
    naming a rule that matches no episode (a mistyped glob or task would otherwise pass
    unnoticed)."""
    weights = np.ones(len(episodes), np.float64)
    for i, rule in enumerate(rules):
        hit = np.array([rule.matches(e.path, e.task) for e in episodes], bool)
        if not hit.any():
            tasks = sorted({e.task for e in episodes})
            more = ' ...' if len(tasks) > 12 else ''
            raise ConfigError(
                f'{key}[{i}] (path {rule.path!r}, task {rule.task!r}) matches no training '
                f'episode; bag paths look like {episodes[0].path!r} and the tasks are '
                f'{", ".join(tasks[:12])}{more}')
        weights[hit] *= rule.weight
    return weights


def sample_weights(episode_weight: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """Per-sample weights (sum(lengths),) float64 from per-episode weights (E,) and the
    episodes' lengths in control steps (E,)."""
    return np.repeat(np.asarray(episode_weight, np.float64), np.asarray(lengths, np.int64))


def describe(rules: Sequence[EpisodeWeight], episode_weight: np.ndarray,
             lengths: Sequence[int]) -> str:
    """One line for the training log: the rules' effect on episodes and the epoch size."""
    lengths = np.asarray(lengths, np.int64)
    out = int((episode_weight == 0).sum())
    changed = int(((episode_weight != 1) & (episode_weight != 0)).sum())
    epoch = float((episode_weight * lengths).sum())
    return (f'episode weights ({len(rules)} rules): {out} episodes left out, {changed} '
            f'reweighted; an epoch is {epoch:.0f} samples drawn with replacement '
            f'(unweighted: {int(lengths.sum())})')


class WeightedEpochSampler(torch.utils.data.Sampler):
    """Indices of one epoch drawn with replacement in proportion to `weights` (S,) float.

    An epoch is ``round(sum(weights))`` draws, split between `world_size` ranks (this one
    `rank`); the draw depends only on (`seed`, the epoch set by `set_epoch`), so a resumed
    run sees the same order.
    """

    def __init__(self, weights: np.ndarray, seed: int, rank: int = 0, world_size: int = 1):
        weights = np.asarray(weights, np.float64)
        total = float(weights.sum())
        if total <= 0:
            raise ConfigError('data.episode_weights leave no training sample with a weight '
                              'above 0')
        self.p = weights / total
        self.draws = max(1, int(round(total)))
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose draw `__iter__` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.draws // self.world_size

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        drawn = rng.choice(len(self.p), size=self.draws, replace=True, p=self.p)
        mine: List[int] = drawn[self.rank::self.world_size][:len(self)].tolist()
        return iter(mine)


__all__ = ['WeightedEpochSampler', 'describe', 'episode_weights',
           'sample_weights']
