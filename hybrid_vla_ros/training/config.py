"""The training configuration (``config/train/*.yaml``), validated at load time.

A training YAML names the model (a model YAML path or an inline mapping), the dataset's
topic map, and the optimisation: strategy, stages, λ's, freezing, schedule, AdamW, gradient
clipping, seeding. The strategies are presets of stages:

- ``e2e``: one stage, ``L_e2e`` only, everything trainable.
- ``hybrid``: one stage, ``λ1·L_e2e + λ2·L_modular`` throughout, everything trainable.
- ``staged``: stage 1 trains the modular components (vision, language, modular heads) on
  ``L_modular`` only; stage 2 trains fusion and decoder on ``L_e2e`` with the encoders
  frozen; an optional stage 3 fine-tunes everything at a lower learning rate.

``stages`` may be written out to change any of this.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from pathlib import Path
from typing import Any, List, Optional

from ..paths import find_file
from ..schema import ConfigError, from_mapping, load_yaml, spec, to_mapping

PARTS = ('vision', 'language', 'fusion', 'decoder', 'modular')
STRATEGIES = ('e2e', 'staged', 'hybrid')
# `data:` keys that name files: resolved against the YAML that names them (`find_file`),
# both in a config and in the base configs it extends.
DATA_FILE_KEYS = ('topic_map', 'paraphrases')


@dataclasses.dataclass
class StageConfig:
    """One training stage: which parts learn, with which loss weights, for how long."""

    name: str = spec(doc='stage name, shown in logs and metrics')
    epochs: float = spec(1.0, minimum=0.0, doc='passes over the training split (fractions ok)')
    lambda_e2e: float = spec(1.0, minimum=0.0, doc='weight of L_e2e in this stage')
    lambda_modular: float = spec(0.0, minimum=0.0, doc='weight of L_modular in this stage')
    train: List[str] = spec(default_factory=lambda: list(PARTS),
                            doc=f'parts that learn; the rest are frozen ({", ".join(PARTS)})')
    lr_scale: float = spec(1.0, minimum=0.0, doc='multiplies the base learning rate')

    def validate(self, path: str) -> None:
        """Parts must be known; a stage must train something with some loss."""
        for i, part in enumerate(self.train):
            if part not in PARTS:
                raise ConfigError(f'{path}.train[{i}]: {part!r} is not a part; choose from '
                                  f'{", ".join(PARTS)}')
        if self.lambda_e2e == 0 and self.lambda_modular == 0:
            raise ConfigError(f'{path}: lambda_e2e and lambda_modular are both 0')


@dataclasses.dataclass
class EpisodeWeight:
    """One rule of `data.episode_weights`: the episodes it matches and their weight."""

    weight: float = spec(minimum=0.0, doc='how many times an epoch each matched sample is '
                         'read on average (0 = leave these episodes out of training)')
    path: Optional[str] = spec(None, doc='glob matched against the bag directory\'s '
                               'absolute path (fnmatch: `*` also crosses `/`), e.g. '
                               '"*/mt50_revised/*"; unset = any path')
    task: Optional[str] = spec(None, doc='the task recorded in the bag (hybrid_vla.task, '
                               'e.g. disassemble); unset = any task')

    def validate(self, path: str) -> None:
        """A rule must name its episodes by path, task or both."""
        if self.path is None and self.task is None:
            raise ConfigError(f'{path}: give `path` (a glob of bag paths), `task` or both; '
                              'a rule without either would weight every episode')

    def matches(self, bag_path: str, task: str) -> bool:
        """True when the episode at `bag_path` recording `task` is one this rule names."""
        if self.path is not None and not fnmatch.fnmatchcase(str(bag_path), self.path):
            return False
        return self.task is None or task == self.task


@dataclasses.dataclass
class DataConfig:
    """Where samples come from and how they are split."""

    topic_map: str = spec('config/data/metaworld.yaml', doc='topic map YAML')
    val_fraction: float = spec(0.1, minimum=0.0, maximum=0.9,
                               doc='fraction of episodes held out for validation')
    cache_dir: Optional[str] = spec(None, doc='on-disk decoded-episode cache directory')
    augment_shift: int = spec(4, minimum=0, doc='random image shift, pixels (0 = off)')
    drop_failed: bool = spec(False, doc='leave out episodes whose bag says the '
                             'demonstration failed (hybrid_vla.success false); policy-driven '
                             '(DAgger, collect --policy) episodes are kept: their labels are '
                             'the expert\'s')
    episode_weights: List[EpisodeWeight] = spec(
        default_factory=list, doc='how often training reads each episode: rules of '
        '{path: GLOB, task: NAME, weight: W}; a matched episode\'s samples are read W times '
        'an epoch on average (0 = left out; several matching rules multiply) and an epoch '
        'becomes the weighted sample count, drawn with replacement; a rule that matches no '
        'training episode is an error; empty = every sample once an epoch, shuffled')
    augment_proprio_noise: float = spec(
        0.0, minimum=0.0, doc='Gaussian noise added to the proprioception the network sees '
        'in training, in units of each field\'s standard deviation (0 = off); keeps the '
        'policy from reading the goal off its own hand position')
    augment_proprio_fields: List[str] = spec(
        default_factory=list, doc='proprioception fields the noise applies to, by name '
        '(e.g. ee_pose.position.x); empty = every field')
    paraphrases: Optional[str] = spec(
        None, doc='paraphrase file (groups of instructions that mean the same, '
        'docs/training.md); in training an instruction found in a group is replaced by a '
        'member of its group drawn at random; unset = the recorded words only')
    paraphrase_probability: float = spec(
        0.5, minimum=0.0, maximum=1.0, doc='chance that a training sample whose instruction '
        'has paraphrases reads a drawn one (the draw may be the recorded phrasing itself)')
    num_workers: int = spec(0, minimum=0, doc='DataLoader worker processes')


@dataclasses.dataclass
class OptimConfig:
    """Optimisation settings shared by every stage."""

    strategy: str = spec('hybrid', choices=STRATEGIES, doc='e2e | staged | hybrid')
    seed: int = spec(0, doc='seeds torch, numpy, the split and shuffling')
    batch_size: int = spec(64, minimum=1, doc='samples per step (per process under DDP)')
    epochs: float = spec(10.0, minimum=0.0, doc='epochs of the single stage (e2e, hybrid)')
    stop_after_epochs: Optional[float] = spec(
        None, minimum=0.0, doc='e2e, hybrid: end the run after this many epochs while the '
        'learning-rate schedule still spans `epochs` (a run cut short on purpose, as stage 1 '
        'of models/mt50); unset = run the whole schedule')
    lr: float = spec(3e-4, minimum=0.0, doc='AdamW base learning rate')
    weight_decay: float = spec(0.01, minimum=0.0, doc='AdamW weight decay')
    betas: List[float] = spec(default_factory=lambda: [0.9, 0.999], doc='AdamW betas')
    warmup_steps: int = spec(200, minimum=0, doc='linear warm-up at the start of each stage')
    schedule: str = spec('cosine', choices=('cosine', 'constant'),
                         doc='learning-rate schedule after warm-up, per stage')
    min_lr_ratio: float = spec(0.05, minimum=0.0, maximum=1.0,
                               doc='cosine floor as a fraction of the stage learning rate')
    grad_clip: float = spec(1.0, minimum=0.0, doc='max gradient norm (0 = no clipping)')
    ema_decay: float = spec(
        0.0, minimum=0.0, maximum=0.99999, doc='exponential moving average of the trainable '
        'weights, per step (e.g. 0.999; 0 = off): validation, best/ and the exported model '
        'use the averaged weights, last/ keeps the raw ones to resume from; restarted at '
        'each stage')
    lambda_e2e: float = spec(1.0, minimum=0.0, doc='hybrid / e2e: weight of L_e2e')
    lambda_modular: float = spec(0.1, minimum=0.0, doc='hybrid: weight of L_modular')
    stages: Optional[List[StageConfig]] = spec(None, doc='explicit stages (override the '
                                                         'strategy preset)')
    staged_epochs: List[float] = spec(default_factory=lambda: [2.0, 8.0, 2.0],
                                      doc='staged preset: epochs of stages 1, 2 and 3 '
                                          '(stage 3 skipped when 0)')
    finetune_lr_scale: float = spec(0.1, minimum=0.0, doc='staged preset: stage 3 lr scale')
    log_every: int = spec(20, minimum=1, doc='steps between metric records')
    threads: int = spec(0, minimum=0, doc='torch intra-op threads (0 = all cores)')
    checkpoint_every: int = spec(0, minimum=0, doc='steps between saves of last/ inside an '
                                 'epoch (0 = at epoch ends only); with long epochs an '
                                 'interrupted run resumes from the latest save')
    init_from: Optional[str] = spec(None, doc='checkpoint directory whose weights and '
                                    'normalization start this run (fine-tuning); its '
                                    'architecture and spec must match the model section')


@dataclasses.dataclass
class TrainConfig:
    """A whole training run: model, data and optimisation."""

    model: Any
    data: DataConfig
    optim: OptimConfig
    source: Optional[str] = None

    def stages(self) -> List[StageConfig]:
        """The stages to run, from `optim.stages` or the strategy preset."""
        o = self.optim
        if o.stages:
            return list(o.stages)
        if o.strategy == 'e2e':
            return [StageConfig('e2e', o.epochs, o.lambda_e2e, 0.0, list(PARTS))]
        if o.strategy == 'hybrid':
            return [StageConfig('hybrid', o.epochs, o.lambda_e2e, o.lambda_modular, list(PARTS))]
        e1, e2, e3 = (list(o.staged_epochs) + [0.0, 0.0, 0.0])[:3]
        stages = [
            StageConfig('modular', e1, 0.0, 1.0, ['vision', 'language', 'modular']),
            # `modular` holds the waypoint head, which learns with the composed system;
            # the other modular heads get no gradient here (lambda_modular = 0).
            StageConfig('compose', e2, 1.0, 0.0, ['fusion', 'decoder', 'modular']),
        ]
        if e3 > 0:
            stages.append(StageConfig('finetune', e3, o.lambda_e2e, o.lambda_modular,
                                      list(PARTS), o.finetune_lr_scale))
        return stages

    def to_mapping(self) -> dict:
        """The YAML form (with the model mapping inlined)."""
        return {'model': self.model, 'data': to_mapping(self.data),
                'optim': to_mapping(self.optim)}


def load_train_config(path) -> TrainConfig:
    """Read and validate a training YAML. A top-level ``base: PATH`` names another training
    YAML whose settings this one overrides (nested mappings merge key by key), so a
    follow-on stage states only what changes. The model may be an inline mapping, a path, or
    a mapping with ``base: PATH`` whose other keys override that file's; the topic map is a
    path. Paths are looked up in the working directory, next to the YAML that names them,
    then in the package's data (`paths.find_file`)."""
    data = _read_train_yaml(path, (str(path),))
    unknown = sorted(set(data) - {'model', 'data', 'optim'})
    if unknown:
        raise ConfigError(f'{path}: {unknown[0]}: unknown key; allowed keys here: base, '
                          'model, data, optim')
    model = data.get('model', 'config/models/default.yaml')
    if isinstance(model, dict) and 'base' in model:
        overrides = {k: v for k, v in model.items() if k != 'base'}
        if not isinstance(model['base'], str):
            raise ConfigError(f'{path}: model.base: expected the path of a model YAML, got '
                              f'{model["base"]!r}')
        model = merge_mappings(_read_model(model['base'], path, 'model.base'), overrides)
    elif isinstance(model, str):
        model = _read_model(model, path, 'model')
    elif not isinstance(model, dict):
        raise ConfigError(f'{path}: model: expected a path or a mapping, got {model!r}')
    try:
        data_cfg = from_mapping(DataConfig, data.get('data'), 'data')
        for key in DATA_FILE_KEYS:
            name = getattr(data_cfg, key)
            if name is not None:
                setattr(data_cfg, key, str(find_file(name, path, f'data.{key}')))
        cfg = TrainConfig(model=model, data=data_cfg,
                          optim=from_mapping(OptimConfig, data.get('optim'), 'optim'),
                          source=str(path))
    except ConfigError as exc:
        raise ConfigError(f'{path}: {exc}') from None
    if cfg.optim.stop_after_epochs is not None and (cfg.optim.strategy == 'staged'
                                                    or cfg.optim.stages):
        raise ConfigError(f'{path}: optim.stop_after_epochs: only for one-stage runs '
                          '(strategy e2e or hybrid without optim.stages); shorten a stage '
                          'with its own epochs instead')
    if cfg.optim.strategy == 'staged' and not cfg.optim.stages and sum(
            cfg.optim.staged_epochs[:2]) == 0:
        raise ConfigError(f'{path}: optim.staged_epochs: stages 1 and 2 have no epochs')
    return cfg


def _read_train_yaml(path, chain: tuple) -> dict:
    """The mapping of training YAML `path` with its ``base:`` chain merged under it; the
    paths a base file names are made absolute first, so they mean what they meant there."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping with model, data and optim')
    if 'base' not in data:
        return data
    name = data['base']
    if not isinstance(name, str):
        raise ConfigError(f'{path}: base: expected the path of a training YAML, got {name!r}')
    base_path = str(find_file(name, path, 'base'))
    if Path(base_path).resolve() in {Path(c).resolve() for c in chain}:
        raise ConfigError(f'{path}: base: {name} makes a cycle of bases '
                          f'({" -> ".join(chain + (base_path,))}); remove one base: key')
    base = _read_train_yaml(base_path, chain + (base_path,))
    model = base.get('model')
    if isinstance(model, str):
        base['model'] = str(find_file(model, base_path, 'model'))
    elif isinstance(model, dict) and isinstance(model.get('base'), str):
        base['model'] = dict(model, base=str(find_file(model['base'], base_path, 'model.base')))
    for key in DATA_FILE_KEYS:
        name = (base.get('data') or {}).get(key)
        if isinstance(name, str):
            base['data'] = dict(base['data'],
                                **{key: str(find_file(name, base_path, f'data.{key}'))})
    return merge_mappings(base, {k: v for k, v in data.items() if k != 'base'})


def _read_model(name: str, referrer, key: str) -> dict:
    model = load_yaml(find_file(name, referrer, key))
    return model.get('model', model)


def merge_mappings(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` laid over it: nested mappings merge key by key, any other
    value (lists included) replaces the base's. Neither argument is modified."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_mappings(out[key], value)
        else:
            out[key] = value
    return out
