"""Training-step throughput of a training config, per implementation choice of the loop.

Every variant starts from the same weights and sees the same batches; the variants take
turns in rounds (each round times `steps` steps of every variant) so that a machine whose
speed drifts during the run slows all of them alike, and the ratios are measured in one
run. A step is what ``hybrid-vla train`` does per batch: augment and prepare the batch,
forward, backward, clip, AdamW step (`training_step`).

Variants (``VARIANTS``):

- ``torch_dropout+foreach_adamw``: `nn.Dropout` (PyTorch's Bernoulli sampling) and the
  multi-tensor AdamW, the training loop before stop 17;
- ``dropout+foreach_adamw``: the package's `Dropout` (mask from int64 random words);
- ``dropout+fused_adamw``: plus the fused AdamW kernel: what ``hybrid-vla train`` runs.
"""

from __future__ import annotations

import copy
import time
from typing import Dict, List, Sequence

import numpy as np
import torch
from torch import nn

from ..data.dataset import EpisodeDataset
from ..data.torch_data import make_loader
from .results import machine_description
from ..model.layers import Dropout
from ..schema import ConfigError
from ..training.config import PARTS, StageConfig, load_train_config
from ..training.trainer import (LanguageCache, Objective, build_from_data, make_optimizer,
                      prepare_batch, proprio_noise_scale, set_trainable, training_step)

# name -> (the package's Dropout, fused AdamW)
VARIANTS: Dict[str, tuple] = {
    'torch_dropout+foreach_adamw': (False, False),
    'dropout+foreach_adamw': (True, False),
    'dropout+fused_adamw': (True, True),
}
BASELINE = 'torch_dropout+foreach_adamw'


def use_torch_dropout(module: nn.Module) -> int:
    """Replace every package `Dropout` inside `module` by `nn.Dropout` of the same rate, in
    place; return how many were replaced."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Dropout):
                setattr(parent, name, nn.Dropout(child.p))
                replaced += 1
    return replaced


class _Variant:
    """One variant's own copy of the policy, optimizer and augmentation generator."""

    def __init__(self, name: str, policy, cfg, seed: int, proprio_scale):
        ours, fused = VARIANTS[name]
        self.name = name
        self.policy = copy.deepcopy(policy).train()
        self.dropouts_replaced = 0 if ours else use_torch_dropout(self.policy)
        self.params = set_trainable(self.policy, PARTS)
        self.cache = LanguageCache(self.policy) if LanguageCache.applies(self.policy) else None
        self.objective = Objective(self.policy)
        self.optimizer = make_optimizer(self.params, cfg.optim, cfg.optim.lr, fused=fused)
        self.generator = torch.Generator().manual_seed(seed)
        self.proprio_scale = proprio_scale
        self.round_seconds: List[List[float]] = []   # per round, per timed step
        self.losses: List[float] = []

    def step(self, batch: Dict, cfg, stage: StageConfig) -> float:
        """One timed training step; returns its wall-clock seconds."""
        t0 = time.perf_counter()
        b = prepare_batch(batch, self.policy, self.cache, cfg.data.augment_shift,
                          self.generator, training=True, proprio_scale=self.proprio_scale)
        terms = training_step(self.objective, self.optimizer, self.params, b, stage,
                              cfg.optim.grad_clip)
        seconds = time.perf_counter() - t0
        self.losses.append(float(terms['loss'].detach()))
        return seconds


def bench_training_step(config, data: Sequence[str], steps: int = 20, rounds: int = 3,
                        warmup: int = 3, threads: int = 2, progress: bool = True) -> Dict:
    """Time `rounds` x `steps` training steps of each variant on batches of `data` with the
    model, batch size and augmentation of the training YAML `config`.

    Returns a JSON-ready mapping: machine, settings and per variant the median step time
    (ms), samples/s from it, the per-round samples/s and the speed-up over ``BASELINE``.
    """
    if steps < 1 or rounds < 1 or warmup < 0:
        raise ConfigError(f'bench-train: --steps ({steps}) and --rounds ({rounds}) must be '
                          f'at least 1 and --warmup ({warmup}) at least 0')
    cfg = load_train_config(config)
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.optim.seed)
    dataset = EpisodeDataset(data, cfg.data.topic_map, val_fraction=0.0, seed=cfg.optim.seed,
                             progress=progress)
    batch_size = cfg.optim.batch_size
    if len(dataset.train) < batch_size:
        raise ConfigError(f'bench-train: the data hold {len(dataset.train)} control steps, '
                          f'fewer than one batch of {batch_size}; give more episodes')
    policy = build_from_data(cfg, dataset)
    loader = make_loader(dataset.train, batch_size, shuffle=True, seed=cfg.optim.seed,
                         drop_last=True)
    batches: List[Dict] = []
    while len(batches) < warmup + steps:
        for batch in loader:
            batches.append(batch)
            if len(batches) == warmup + steps:
                break
    # The loop's strategy does not change a step's cost; time the hybrid loss (both terms).
    stage = StageConfig(name='bench', lambda_e2e=cfg.optim.lambda_e2e,
                        lambda_modular=cfg.optim.lambda_modular)
    proprio_scale = proprio_noise_scale(cfg.data, dataset.proprio_names)
    variants = [_Variant(name, policy, cfg, cfg.optim.seed, proprio_scale)
                for name in VARIANTS]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(variants) * (warmup + rounds * steps), desc='bench-train',
                   unit='step', dynamic_ncols=True)
    for v in variants:
        for batch in batches[:warmup]:
            v.step(batch, cfg, stage)
            if bar is not None:
                bar.update(1)
    for _ in range(rounds):
        for v in variants:
            times = []
            for batch in batches[warmup:]:
                times.append(v.step(batch, cfg, stage))
                if bar is not None:
                    bar.update(1)
            v.round_seconds.append(times)
    if bar is not None:
        bar.close()
    results = {}
    for v in variants:
        seconds = [s for times in v.round_seconds for s in times]
        median = float(np.median(seconds))
        results[v.name] = {
            'step_ms_p50': median * 1e3,
            'step_ms_p90': float(np.percentile(seconds, 90)) * 1e3,
            'samples_per_s': batch_size / median,
            'samples_per_s_per_round': [batch_size / float(np.median(times))
                                        for times in v.round_seconds],
            'dropout_modules_replaced_by_nn_dropout': v.dropouts_replaced,
            'first_loss': v.losses[0], 'last_loss': v.losses[-1],
        }
    base = results[BASELINE]['step_ms_p50']
    for r in results.values():
        r['speedup_over_baseline'] = base / r['step_ms_p50']
    return {
        'config': str(config), 'data': [str(d) for d in data],
        'control_steps': len(dataset.train), 'batch_size': batch_size, 'threads': threads,
        'steps_per_round': steps, 'rounds': rounds, 'warmup_steps': warmup,
        'baseline': BASELINE, 'variants': results,
        'machine': machine_description(), 'torch': torch.__version__,
        'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
    }


def format_table(result: Dict) -> str:
    """The result as a Markdown table, one row per variant."""
    lines = ['| variant | step p50 | samples/s | per round | speed-up |', '|---|---|---|---|---|']
    for name, r in result['variants'].items():
        rounds = ' / '.join(f'{x:.0f}' for x in r['samples_per_s_per_round'])
        lines.append(f'| {name} | {r["step_ms_p50"]:.1f} ms | {r["samples_per_s"]:.0f} | '
                     f'{rounds} | {r["speedup_over_baseline"]:.2f}x |')
    return '\n'.join(lines)

