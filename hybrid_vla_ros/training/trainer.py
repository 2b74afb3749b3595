"""The training loop: stages, AdamW with warm-up + cosine, clipping, checkpoints, resume,
NaN guard, metrics, and DDP when launched under ``torchrun``.

Output directory layout::

    OUT/last/        checkpoint after the latest finished epoch, or the latest
                     ``optim.checkpoint_every`` save inside one (+ training_state.pt)
    OUT/best/        checkpoint with the lowest validation L_e2e so far
    OUT/metrics.jsonl one JSON record per logged step, per validation and per stage end
    OUT/train_config.yaml the resolved training configuration

``last`` and ``best`` are ordinary checkpoints (config.yaml + model.safetensors) that
``hybrid-vla export`` and every backend accept.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import yaml
from torch import nn

from ..data.dataset import EpisodeDataset
from ..data.torch_data import collate, make_loader
from ..model import build_policy, load_checkpoint, parse_model_config, save_checkpoint
from ..model.checkpoint import stored_state
from ..model.config import HASH_EXCLUDED, Stats
from ..model.losses import hybrid_objective
from ..schema import ConfigError, mapping_differences
from .config import PARTS, StageConfig, TrainConfig
from .distributed import Distributed
from .episode_weights import WeightedEpochSampler, describe, episode_weights, sample_weights
from .paraphrases import Paraphrases
from .weight_average import WeightAverage

STATE_FILE = 'training_state.pt'


class TrainingError(RuntimeError):
    """Training stopped (e.g. a non-finite loss); the message says where and why."""


class Objective(nn.Module):
    """The whole objective as one module, so DDP sees every parameter used in forward."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, batch: Dict[str, torch.Tensor], lambda_e2e: float,
                lambda_modular: float) -> Dict[str, torch.Tensor]:
        """Loss terms of `hybrid_objective` on a prepared batch; 'loss' is the total."""
        return hybrid_objective(self.policy, batch, lambda_e2e, lambda_modular)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_trainable(policy, parts: Sequence[str]) -> List[nn.Parameter]:
    """Make exactly `parts` trainable (config-frozen pretrained encoders stay frozen);
    return the trainable parameters."""
    params = []
    for part in PARTS:
        module = getattr(policy, part)
        frozen = tuple(getattr(module, 'frozen_prefixes', list)())
        for name, p in module.named_parameters():
            frozen_by_config = bool(frozen) and name.startswith(frozen)
            p.requires_grad_(part in parts and not frozen_by_config)
            if p.requires_grad:
                params.append(p)
    return params


def lr_factor(step: int, total: int, warmup: int, schedule: str, floor: float) -> float:
    """Learning-rate multiplier at `step` of a stage of `total` steps."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == 'constant' or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def shift_augment(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Random shift of every image by up to `pad` pixels (edge-replicated), (B, N, H, W, 3)
    uint8 -> same shape. The same shift is applied to all cameras of one sample."""
    if pad <= 0:
        return images
    b, n, h, w, c = images.shape
    x = images.permute(0, 1, 4, 2, 3).reshape(b, n * c, h, w).float()
    x = nn.functional.pad(x, (pad, pad, pad, pad), mode='replicate')
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    out = torch.stack([x[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    return out.reshape(b, n, c, h, w).permute(0, 1, 3, 4, 2).to(torch.uint8).contiguous()


class LanguageCache:
    """Language tokens of a frozen language encoder, computed once per distinct instruction
    (the encoder is the most expensive part per sample and its output never changes)."""

    def __init__(self, policy):
        self.policy = policy
        self.cache: Dict[str, torch.Tensor] = {}

    @staticmethod
    def applies(policy) -> bool:
        """True when the language encoder has no trainable parameter."""
        return not any(p.requires_grad for p in policy.language.parameters())

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """(B,) instructions -> (B, L, Dl) float32 tokens."""
        missing = sorted({t for t in texts if t not in self.cache})
        if missing:
            ids, mask = self.policy.tokenize(missing)
            with torch.no_grad():
                out = self.policy.encode_language(ids, mask)
            for t, tokens in zip(missing, out, strict=True):
                self.cache[t] = tokens
        return torch.stack([self.cache[t] for t in texts])


def build_from_data(cfg: TrainConfig, dataset: EpisodeDataset):
    """The policy for `cfg.model`, with observation/action spec and normalization
    statistics taken from the dataset (a mismatch with an explicit spec is an error)."""
    model = dict(cfg.model)
    obs = dict(model.get('observation') or {})
    act = dict(model.get('action') or {})
    size = list(dataset.topic_map.image_size)
    obs['cameras'] = [{'name': name, 'height': size[0], 'width': size[1]}
                      for name in dataset.cameras]
    obs['proprio_dim'] = len(dataset.proprio_names)
    obs['proprio_names'] = list(dataset.proprio_names)
    act['dim'] = len(dataset.action_names)
    act['names'] = list(dataset.action_names)
    if act.get('chunk', dataset.chunk) != dataset.chunk:
        raise ConfigError(f'model.action.chunk is {act["chunk"]} but the topic map\'s chunk is '
                          f'{dataset.chunk}; make them equal')
    act['chunk'] = dataset.chunk
    model['observation'], model['action'] = obs, act
    norm = dataset.normalization()
    model['normalization'] = norm
    policy = build_policy(parse_model_config(model))
    policy.set_normalization(Stats(**norm['action']), Stats(**norm['proprio']))
    return policy


# Model keys a warm start may never change: they fix what the network reads and writes.
SPEC_KEYS = ('observation', 'action', 'instruction_max_tokens')


def init_from_checkpoint(policy, directory) -> List[str]:
    """Start `policy` (built for this run's data) from the weights and normalization
    statistics of the checkpoint in `directory` (fine-tuning).

    The checkpoint's observation/action spec must equal the policy's, and its stored
    weights must fit the policy's one for one (same names, same shapes). Model settings
    that change no weight (``language.pool``, dropout, ...) may differ: that is how a
    variant is warm-started from trained weights instead of from scratch; they are returned
    (``'model.language.pool: mean -> none'``) for the log. Training-only loss settings may
    differ too. Keeping the checkpoint's normalization keeps its action scale, so the
    network starts where it was. Raises `ConfigError` naming the first differing key when
    the weights do not fit.
    """
    source = load_checkpoint(directory)
    policy.set_normalization(source.cfg.normalization.action, source.cfg.normalization.proprio)
    ours, theirs = ({k: v for k, v in c.to_mapping().items() if k not in HASH_EXCLUDED}
                    for c in (policy.cfg, source.cfg))

    def refuse(key: str) -> ConfigError:
        return ConfigError(f'optim.init_from: checkpoint {directory} does not match this run '
                           f'at {key}; fine-tune with the checkpoint\'s model section and '
                           'data with the same cameras, image size, proprio and action fields')

    spec_difference = _first_difference({k: ours.get(k) for k in SPEC_KEYS},
                                        {k: theirs.get(k) for k in SPEC_KEYS}, 'model')
    if spec_difference:
        raise refuse(spec_difference)
    # Heads of the training-only objectives (`modular.*`) come and go with the loss
    # settings; every other weight must be there on both sides with the same shape.
    stored, wanted = stored_state(source), stored_state(policy)
    checkpoint_shapes, policy_shapes = (
        {k: tuple(v.shape) for k, v in d.items() if not k.startswith('modular.')}
        for d in (stored, wanted))
    common = set(stored) & set(wanted)
    if (checkpoint_shapes != policy_shapes
            or any(stored[k].shape != wanted[k].shape for k in common)):
        raise refuse(_first_difference(ours, theirs, 'model')
                     or 'its weights (the same settings, other parameters)')
    policy.load_state_dict({k: stored[k] for k in common}, strict=False)
    return [f'{path}: {old!r} -> {new!r}'
            for path, new, old in mapping_differences(ours, theirs, 'model')]


def _first_difference(ours, theirs, path: str) -> str:
    """The dotted path of the first value that differs between two mappings, with both
    values ('' if none)."""
    for where, here, there in mapping_differences(ours, theirs, path):
        return f'{where} ({here!r} here, {there!r} in the checkpoint)'
    return ''


def proprio_noise(proprio: torch.Tensor, std: torch.Tensor, scale: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """`proprio` (B, P) robot units plus Gaussian noise of `scale` x `std` per field; `std`
    and `scale` are (P,), `scale` 0 where a field stays clean.

    Why: a cloned policy whose hand starts at the same place every episode can read where
    the expert was heading off its own hand position (the copycat shortcut) and then follows
    its own first guess; blurring the position makes the camera the better cue.
    """
    noise = torch.randn(proprio.shape, generator=generator, dtype=proprio.dtype)
    return proprio + noise * (std * scale).to(proprio.dtype)


def proprio_noise_scale(data_cfg, names: Sequence[str]) -> Optional[torch.Tensor]:
    """The noise scale per proprioception field, (P,) float32 in standard deviations
    (`data.augment_proprio_noise` on the fields of `data.augment_proprio_fields`, all
    when empty), or None when the noise is off. Unknown names raise `ConfigError` listing
    the dataset's fields."""
    scale, fields = data_cfg.augment_proprio_noise, data_cfg.augment_proprio_fields
    if scale <= 0:
        return None
    unknown = [f for f in fields if f not in names]
    if unknown:
        raise ConfigError(f'data.augment_proprio_fields: {unknown[0]!r} is not a '
                          f'proprioception field of this data; its fields are '
                          f'{", ".join(names)}')
    return torch.tensor([scale if not fields or n in fields else 0.0 for n in names],
                        dtype=torch.float32)


def prepare_batch(batch: Dict, policy, language_cache: Optional[LanguageCache],
                  augment: int, generator: torch.Generator, training: bool,
                  proprio_scale: Optional[torch.Tensor] = None,
                  paraphrases: Optional[Paraphrases] = None,
                  paraphrase_probability: float = 0.0) -> Dict:
    """A collated batch plus what the objective needs: token ids and mask, cached language
    tokens when `language_cache` is given, and in training the random image shift of up
    to `augment` pixels, the proprioception noise of `proprio_scale` (see
    `proprio_noise`) and instructions replaced by paraphrases (`Paraphrases.sample`, the
    ``instruction`` list of the result holds the words the network read); validation
    batches (`training` False) stay unaugmented."""
    out = dict(batch)
    if training:
        out['images'] = shift_augment(batch['images'], augment, generator)
        if proprio_scale is not None:
            out['proprio_input'] = proprio_noise(batch['proprio'], policy.proprio_std,
                                                 proprio_scale, generator)
        if paraphrases is not None and paraphrase_probability > 0:
            out['instruction'] = paraphrases.sample(batch['instruction'],
                                                    paraphrase_probability, generator)
    ids, mask = policy.tokenize(out['instruction'])
    out['token_ids'], out['mask'] = ids, mask
    if language_cache is not None:
        out['language_tokens'] = language_cache(out['instruction'])
    return out


def make_optimizer(params: List[nn.Parameter], optim_cfg, lr: float,
                   fused: Optional[bool] = None) -> torch.optim.AdamW:
    """AdamW over `params` with the config's weight decay and betas at learning rate `lr`.

    `fused` None: the fused kernel wherever it exists (CPU and CUDA tensors); it halves the
    optimizer's share of a CPU step of the default model (`hybrid-vla bench-train`).
    """
    if fused is None:
        fused = all(p.device.type in ('cpu', 'cuda') for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=optim_cfg.weight_decay,
                             betas=tuple(optim_cfg.betas), fused=fused)


def training_step(objective: nn.Module, optimizer, params: List[nn.Parameter], batch: Dict,
                  stage: StageConfig, grad_clip: float,
                  on_non_finite=None) -> Dict[str, torch.Tensor]:
    """One optimisation step on a prepared batch (`prepare_batch`): forward through
    `objective`, backward, clip the gradient norm of `params` to `grad_clip` (0: off),
    step. Returns the loss terms. A non-finite loss calls `on_non_finite(terms)` before
    anything is updated (the trainer raises there)."""
    terms = objective(batch, stage.lambda_e2e, stage.lambda_modular)
    loss = terms['loss']
    if on_non_finite is not None and not torch.isfinite(loss):
        on_non_finite(terms)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return terms


class Trainer:
    """Runs a `TrainConfig` over datasets into an output directory (see module docstring).

    `log` receives human-readable lines; `progress` enables tqdm bars (rank 0 only).
    """

    def __init__(self, cfg: TrainConfig, data: Sequence[str], out, resume: bool = False,
                 progress: bool = True, log=print):
        self.cfg, self.out = cfg, Path(out)
        self.dist = Distributed.from_environment()
        self.log = log if self.dist.is_main else (lambda *_: None)
        self.progress = progress and self.dist.is_main
        o = cfg.optim
        if o.threads:
            torch.set_num_threads(o.threads)
        seed_everything(o.seed + self.dist.rank)
        self.dataset = EpisodeDataset(data, cfg.data.topic_map, val_fraction=cfg.data.val_fraction,
                                      seed=o.seed, cache_dir=cfg.data.cache_dir,
                                      progress=self.progress,
                                      drop_failed=cfg.data.drop_failed)
        if len(self.dataset.train) == 0:
            raise ConfigError('the training split is empty: give more episodes or lower '
                              'data.val_fraction')
        self.log(f'data: {self.dataset.summary}')
        # Per-sample weights of the training split (None: every sample once an epoch).
        self.sample_weights = None
        if cfg.data.episode_weights:
            train = [self.dataset.episodes[i] for i in self.dataset.train_episodes]
            weights = episode_weights(cfg.data.episode_weights, train)
            lengths = [len(e) for e in train]
            self.sample_weights = sample_weights(weights, lengths)
            self.log(describe(cfg.data.episode_weights, weights, lengths))
        self.paraphrases = None
        if cfg.data.paraphrases is not None:
            self.paraphrases = Paraphrases.load(cfg.data.paraphrases)
            train_texts = {t for i in self.dataset.train_episodes
                           for t in self.dataset.episodes[i].instructions}
            self.log(self.paraphrases.require_coverage(sorted(train_texts)))
        self.stages = cfg.stages()
        self.state = {'stage': 0, 'stage_step': 0, 'global_step': 0, 'epoch_in_stage': 0,
                      'best_val': float('inf')}
        if resume:
            self.policy = self._resume()
        else:
            if (self.out / 'last').exists():
                raise ConfigError(f'{self.out} already holds a training run; pass --resume '
                                  'to continue it or choose another --out')
            self.policy = build_from_data(cfg, self.dataset)
            if o.init_from:
                changed = init_from_checkpoint(self.policy, o.init_from)
                self.log(f'weights and normalization from {o.init_from}')
                if changed:
                    self.log('model settings changed from the checkpoint (its weights fit): '
                             + '; '.join(changed))
        self.policy.train()
        self.proprio_scale = proprio_noise_scale(cfg.data, self.dataset.proprio_names)
        self.generator = torch.Generator().manual_seed(o.seed + 1000 * self.dist.rank)
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / 'train_config.yaml').write_text(
                yaml.safe_dump(cfg.to_mapping(), sort_keys=False), encoding='utf-8')
        self.metrics_path = self.out / 'metrics.jsonl'
        self.ema: Optional[WeightAverage] = None

    # ------------------------------------------------------------------ resume
    def _resume(self):
        last = self.out / 'last'
        state_file = last / STATE_FILE
        if not state_file.is_file():
            raise ConfigError(f'--resume: {state_file} not found; nothing to resume in '
                              f'{self.out}')
        saved_cfg = yaml.safe_load((self.out / 'train_config.yaml').read_text())
        wanted = self.cfg.to_mapping()
        for key in ('model', 'data', 'optim'):
            if not _same_section(saved_cfg.get(key), wanted[key], key):
                raise ConfigError(
                    f'--resume: the training config\'s "{key}" section differs from the one '
                    f'{self.out} was started with ({self.out / "train_config.yaml"}); resume '
                    'with the same config or start a new --out')
        policy = load_checkpoint(last)
        self._resume_state = torch.load(state_file, map_location='cpu', weights_only=False)
        self.state.update(self._resume_state['progress'])
        self.log(f'resuming from {last}: stage {self.state["stage"] + 1}, step '
                 f'{self.state["global_step"]}')
        return policy

    # ------------------------------------------------------------------ main loop
    def run(self) -> Path:
        """Train every remaining stage; return the output directory."""
        for index in range(self.state['stage'], len(self.stages)):
            self.state['stage'] = index
            self._run_stage(self.stages[index])
            self.state.update(stage=index + 1, stage_step=0, epoch_in_stage=0)
        if self.dist.world_size > 1:
            checksums = self.dist.all_gather_object(weights_checksum(self.policy))
            self._record({'event': 'ddp_weights_checksum', 'per_rank': checksums})
            if len(set(checksums)) != 1:
                raise TrainingError(f'DDP ranks diverged: weight checksums {checksums}')
        self.dist.barrier()
        self.dist.shutdown()
        return self.out

    def _run_stage(self, stage: StageConfig) -> None:
        o, data_cfg = self.cfg.optim, self.cfg.data
        params = set_trainable(self.policy, stage.train)
        if not params:
            raise ConfigError(f'stage {stage.name!r}: no trainable parameter in parts '
                              f'{stage.train}')
        cache = LanguageCache(self.policy) if LanguageCache.applies(self.policy) else None
        objective = self.dist.wrap(Objective(self.policy))
        optimizer = make_optimizer(params, o, o.lr * stage.lr_scale)
        self.ema = WeightAverage(params, o.ema_decay) if o.ema_decay > 0 else None
        if self.sample_weights is not None:
            sampler = WeightedEpochSampler(self.sample_weights, seed=o.seed,
                                           rank=self.dist.rank,
                                           world_size=self.dist.world_size)
        else:
            sampler = self.dist.sampler(self.dataset.train, seed=o.seed)
        steps_per_epoch = len(self._loader(sampler, 0))
        if steps_per_epoch == 0:
            raise ConfigError(f'the training split has {len(self.dataset.train)} samples, '
                              f'fewer than one batch of {o.batch_size}; lower '
                              'optim.batch_size')
        total = max(1, int(round(stage.epochs * steps_per_epoch)))
        # The schedule spans `total`; a run cut short on purpose stops at `end`.
        end = total
        if o.stop_after_epochs is not None and len(self.stages) == 1:
            end = min(total, max(1, int(round(o.stop_after_epochs * steps_per_epoch))))
        if self.state['stage_step'] >= end:
            # A resumed run that had already finished this stage (make train-default run
            # again): nothing to train, and no second stage_end record to skew throughput.
            self.log(f'stage {self.state["stage"] + 1}/{len(self.stages)} {stage.name}: '
                     f'already complete ({end} steps)')
            return
        if self.state['stage_step'] and getattr(self, '_resume_state', None):
            optimizer.load_state_dict(self._resume_state['optimizer'])
            if self.ema is not None and self._resume_state.get('ema') is not None:
                self.ema.load_state_dict(self._resume_state['ema'])
            torch.set_rng_state(self._resume_state['torch_rng'])
            self._resume_state = None
        self.log(f'stage {self.state["stage"] + 1}/{len(self.stages)} {stage.name}: '
                 f'{total} steps ({stage.epochs:g} epochs x {steps_per_epoch})'
                 + (f', stopping after {end} (optim.stop_after_epochs)' if end < total else '')
                 + ', training '
                 f'{", ".join(stage.train)}; λ_e2e={stage.lambda_e2e:g} '
                 f'λ_modular={stage.lambda_modular:g}')
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=end, initial=self.state['stage_step'], desc=stage.name,
                       dynamic_ncols=True)
        t_start, samples = time.monotonic(), 0
        epoch = self.state['epoch_in_stage']
        while self.state['stage_step'] < end:
            loader = self._loader(sampler, epoch)
            skip = self.state['stage_step'] - epoch * steps_per_epoch
            for i, batch in enumerate(loader):
                if i < skip:
                    continue
                if self.state['stage_step'] >= end:
                    break
                factor = lr_factor(self.state['stage_step'], total, o.warmup_steps,
                                   o.schedule, o.min_lr_ratio)
                for group in optimizer.param_groups:
                    group['lr'] = o.lr * stage.lr_scale * factor
                b = prepare_batch(batch, self.policy, cache, data_cfg.augment_shift,
                                  self.generator, training=True,
                                  proprio_scale=self.proprio_scale,
                                  paraphrases=self.paraphrases,
                                  paraphrase_probability=data_cfg.paraphrase_probability)
                terms = training_step(objective, optimizer, params, b, stage, o.grad_clip,
                                      on_non_finite=partial(self._non_finite, batch=batch))
                if self.ema is not None:
                    self.ema.update()
                self.state['stage_step'] += 1
                self.state['global_step'] += 1
                samples += len(batch['instruction']) * self.dist.world_size
                values = {k: float(v.detach()) for k, v in terms.items()}
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f'{v:.3f}' for k, v in values.items()})
                if self.state['global_step'] % o.log_every == 0:
                    rate = samples / max(1e-9, time.monotonic() - t_start)
                    self._record({'event': 'train', 'stage': stage.name,
                                  'step': self.state['global_step'],
                                  'lr': optimizer.param_groups[0]['lr'],
                                  'samples_per_s': rate, **values})
                if (o.checkpoint_every and self.dist.is_main
                        and self.state['stage_step'] % o.checkpoint_every == 0
                        and self.state['stage_step'] < end):
                    self._save('last', optimizer)
            epoch += 1
            self.state['epoch_in_stage'] = epoch
            self._end_of_epoch(stage, optimizer, cache)
        if bar is not None:
            bar.close()
        elapsed = time.monotonic() - t_start
        self._record({'event': 'stage_end', 'stage': stage.name,
                      'step': self.state['global_step'], 'seconds': elapsed,
                      'samples_per_s': samples / max(1e-9, elapsed)})

    def _loader(self, sampler, epoch: int):
        """The training loader of one epoch; its order depends only on (seed, stage, epoch),
        so a resumed run sees the same order."""
        o = self.cfg.optim
        if sampler is None:
            seed = o.seed + 1000 * self.state['stage'] + epoch
            return make_loader(self.dataset.train, o.batch_size, shuffle=True, seed=seed,
                               num_workers=self.cfg.data.num_workers, drop_last=True)
        sampler.set_epoch(1000 * self.state['stage'] + epoch)
        return torch.utils.data.DataLoader(
            self.dataset.train, batch_size=o.batch_size, sampler=sampler, collate_fn=collate,
            num_workers=self.cfg.data.num_workers, drop_last=True)

    # ------------------------------------------------------------------ epoch end
    def _end_of_epoch(self, stage: StageConfig, optimizer, cache) -> None:
        # With a weight average, the averaged weights are the ones judged and kept as best.
        averaged = self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext()
        with averaged:
            self._judge_epoch(stage, optimizer, cache)
        if self.dist.is_main:
            self._save('last', optimizer)
        self.dist.barrier()

    def _judge_epoch(self, stage: StageConfig, optimizer, cache) -> None:
        val = self.validate(stage, cache)
        record = {'event': 'validation', 'stage': stage.name,
                  'step': self.state['global_step'], **{f'val_{k}': v for k, v in val.items()}}
        self._record(record)
        if self.dist.is_main:
            msg = ', '.join(f'{k} {v:.4f}' for k, v in val.items())
            self.log(f'{stage.name} epoch {self.state["epoch_in_stage"]}: validation {msg}')
            # Only stages that train the action path compete for "best".
            metric = val.get('e2e', float('inf'))
            if stage.lambda_e2e > 0 and metric < self.state['best_val']:
                self.state['best_val'] = metric
                self._save('best', optimizer)

    @torch.no_grad()
    def validate(self, stage: StageConfig, cache) -> Dict[str, float]:
        """Mean loss terms over the validation split (or the training split when there is
        no validation episode), with the model in eval mode."""
        split = self.dataset.validation if len(self.dataset.validation) else self.dataset.train
        loader = make_loader(split, self.cfg.optim.batch_size, shuffle=False)
        self.policy.eval()
        sums: Dict[str, float] = {}
        count = 0
        for batch in loader:
            b = prepare_batch(batch, self.policy, cache, 0, self.generator, training=False)
            terms = hybrid_objective(self.policy, b, 1.0, stage.lambda_modular)
            n = len(batch['instruction'])
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            count += n
        self.policy.train()
        return {k: v / max(1, count) for k, v in sums.items()}

    def _save(self, name: str, optimizer) -> None:
        target = self.out / name
        tmp = self.out / f'{name}.tmp'
        shutil.rmtree(tmp, ignore_errors=True)
        save_checkpoint(self.policy, tmp, extra={
            'training': {'strategy': self.cfg.optim.strategy,
                         'stage': self.stages[min(self.state['stage'], len(self.stages) - 1)].name,
                         'global_step': self.state['global_step'],
                         'config': self.cfg.source,
                         # the checkpoint a fine-tuning run started from (None: scratch)
                         'init_from': self.cfg.optim.init_from,
                         # embedded so that eval-bag reads new bags the way training did
                         'topic_map': self.dataset.topic_map.to_mapping(),
                         'episodes': {'train': len(self.dataset.train_episodes),
                                      'validation': len(self.dataset.validation_episodes)}}})
        torch.save({'progress': dict(self.state), 'optimizer': optimizer.state_dict(),
                    'torch_rng': torch.get_rng_state(),
                    'ema': self.ema.state_dict() if self.ema is not None else None},
                   tmp / STATE_FILE)
        shutil.rmtree(target, ignore_errors=True)
        tmp.replace(target)

    def _non_finite(self, terms: Dict[str, torch.Tensor], batch: Dict) -> None:
        bad = [k for k, v in terms.items() if not torch.isfinite(v)]
        episodes = sorted({int(e) for e in batch['episode']})
        paths = [self.dataset.episodes[e].path for e in episodes][:5]
        raise TrainingError(
            f'non-finite loss ({", ".join(bad)}) at global step {self.state["global_step"] + 1} '
            f'(stage {self.stages[self.state["stage"]].name}); the batch came from episodes '
            f'{paths}; the last good checkpoint is {self.out / "last"} (if an epoch finished)')

    def _record(self, record: dict) -> None:
        if not self.dist.is_main:
            return
        record = {'time': time.time(), **record}
        with open(self.metrics_path, 'a', encoding='utf-8') as f:
            f.write(json.dumps(record) + '\n')


def _without_runtime(section, key):
    """A config section minus keys that may change between a run and its resume."""
    if not isinstance(section, dict):
        return section
    drop = {'data': ('num_workers', 'cache_dir'),
            # stop_after_epochs may change: a run cut short can be resumed further.
            'optim': ('threads', 'log_every', 'checkpoint_every',
                      'stop_after_epochs')}.get(key, ())
    return {k: v for k, v in section.items() if k not in drop}


def _same_section(saved, wanted, key) -> bool:
    """Whether a config section equals the one a run was started with, ignoring the keys
    that may change between a run and its resume, and keys added to the package since
    that hold their default (a run started before `data.drop_failed` existed resumes)."""
    saved, wanted = _without_runtime(saved, key), _without_runtime(wanted, key)
    if isinstance(saved, dict) and isinstance(wanted, dict):
        from ..schema import to_mapping
        from .config import DataConfig, OptimConfig
        defaults = {'data': DataConfig, 'optim': OptimConfig}.get(key)
        if defaults is not None:
            default = to_mapping(defaults())
            wanted = {k: v for k, v in wanted.items()
                      if k in saved or k not in default or v != default[k]}
    return saved == wanted


def weights_checksum(policy) -> str:
    """SHA-256 (16 hex chars) of every parameter's bytes, in state-dict order."""
    import hashlib
    h = hashlib.sha256()
    for name, p in policy.state_dict().items():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def train(config_path, data: Sequence[str], out, resume: bool = False, log=print,
          init_from: Optional[str] = None) -> Trainer:
    """Load a training YAML and run it (the ``hybrid-vla train`` entry); returns the
    finished `Trainer` (its ``out``, ``state`` and ``dist``). `init_from`, when given,
    replaces the YAML's ``optim.init_from`` (a checkpoint directory to fine-tune)."""
    from .config import load_train_config
    cfg = load_train_config(config_path)
    if init_from is not None:
        cfg.optim.init_from = init_from
    # Checked before the bags are decoded (minutes), whichever way it was given.
    if cfg.optim.init_from and not os.path.isdir(cfg.optim.init_from):
        origin = '--init-from' if init_from is not None else 'optim.init_from'
        raise ConfigError(f'{origin} {cfg.optim.init_from}: no such checkpoint directory; '
                          'name a directory holding config.yaml and model.safetensors '
                          '(e.g. models/default or RUN/best)')
    if not data:
        raise ConfigError('no --data given: name one or more bag directories or folders '
                          'holding them')
    for d in data:
        if not os.path.exists(d):
            raise ConfigError(f'--data {d}: no such file or directory')
    trainer = Trainer(cfg, data, out, resume=resume, log=log)
    trainer.run()
    return trainer
