"""The model configuration: observation and action spec, components, losses, statistics.

A model YAML (``config/models/*.yaml``) and a checkpoint's ``config.yaml`` share this
schema; the checkpoint adds the normalization statistics measured on its training data.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional

from ..schema import ConfigError, from_mapping, load_section, mapping_hash, spec, to_mapping
from .registry import ComponentSpec, parse_component


@dataclasses.dataclass
class CameraSpec:
    """One camera the policy sees: a name (matched to a topic by the data/ROS layer) and the
    image size the model takes, in pixels. Images of other sizes are resized upstream."""

    name: str = spec(doc='camera name, e.g. "front"')
    height: int = spec(128, minimum=8, doc='image height the model takes, pixels')
    width: int = spec(128, minimum=8, doc='image width the model takes, pixels')


@dataclasses.dataclass
class ObservationSpec:
    """What the policy observes: RGB cameras and a proprioception vector."""

    cameras: List[CameraSpec] = spec(
        default_factory=lambda: [CameraSpec(name='front')], doc='one or more cameras')
    proprio_dim: int = spec(4, minimum=0, doc='length of the proprioception vector')
    proprio_names: List[str] = spec(
        default_factory=list, doc='names of the proprioception entries (joint names, ...)')

    def validate(self, path: str) -> None:
        """Check cross-field consistency."""
        if not self.cameras:
            raise ConfigError(f'{path}.cameras: at least one camera is required')
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ConfigError(f'{path}.cameras: camera names must be unique, got {names}')
        if self.proprio_names and len(self.proprio_names) != self.proprio_dim:
            raise ConfigError(f'{path}.proprio_names: {len(self.proprio_names)} names given '
                              f'but proprio_dim is {self.proprio_dim}')


@dataclasses.dataclass
class ActionSpec:
    """The action the decoder predicts: `chunk` future steps of a `dim`-vector, (K, A)."""

    dim: int = spec(4, minimum=1, doc='action dimension A')
    chunk: int = spec(8, minimum=1, doc='chunk length K (future control steps predicted)')
    names: List[str] = spec(default_factory=list, doc='names of the action entries')

    def validate(self, path: str) -> None:
        """Check cross-field consistency."""
        if self.names and len(self.names) != self.dim:
            raise ConfigError(f'{path}.names: {len(self.names)} names given but dim is '
                              f'{self.dim}')


@dataclasses.dataclass
class Stats:
    """Per-dimension mean and standard deviation of a vector quantity."""

    mean: List[float] = spec(doc='per-dimension mean')
    std: List[float] = spec(doc='per-dimension standard deviation (> 0)')

    def validate(self, path: str) -> None:
        """Check that mean and std have one entry each per dimension and std is positive."""
        if len(self.mean) != len(self.std):
            raise ConfigError(f'{path}: mean has {len(self.mean)} entries, std has '
                              f'{len(self.std)}')
        if any(not s > 0 for s in self.std):
            raise ConfigError(f'{path}.std: every entry must be > 0, got {self.std}')


@dataclasses.dataclass
class NormalizationSpec:
    """Normalization statistics stored with the model (identity when absent)."""

    action: Optional[Stats] = spec(None, doc='action statistics, from the training split')
    proprio: Optional[Stats] = spec(None, doc='proprioception statistics')


@dataclasses.dataclass
class LossSpec:
    """Loss weights: ``L = lambda_e2e * (L_e2e + waypoint_weight * L_waypoint)
    + lambda_modular * L_modular`` where ``L_modular = contrastive_weight * L_align
    + proprio_weight * L_proprio + privileged_weight * L_privileged``."""

    lambda_e2e: float = spec(1.0, minimum=0.0, doc='weight of the action-chunk L1 loss')
    lambda_modular: float = spec(0.1, minimum=0.0, doc='weight of the modular objectives')
    contrastive_weight: float = spec(1.0, minimum=0.0,
                                     doc='image-instruction contrastive alignment weight')
    proprio_weight: float = spec(1.0, minimum=0.0,
                                 doc='proprioception-from-vision prediction weight')
    privileged_weight: float = spec(1.0, minimum=0.0,
                                    doc='privileged-target prediction weight')
    privileged_dim: int = spec(0, minimum=0,
                               doc='length of the privileged target vector (0 = none)')
    waypoint_weight: float = spec(0.0, minimum=0.0,
                                  doc='weight of the waypoint objective (proprioception at the '
                                      'next keyframe predicted from the fused readouts), '
                                      'added to L_e2e; 0 = off')
    temperature: float = spec(0.1, minimum=1e-4, doc='contrastive softmax temperature')
    modular_dim: int = spec(128, minimum=8, doc='width of the alignment embedding')


# Training-only settings that do not change what the deployed graphs compute.
HASH_EXCLUDED = ('loss',)

COMPONENT_DEFAULTS = {
    'vision': {'type': 'cnn'},
    'language': {'type': 'hf_text'},
    'fusion': {'type': 'transformer'},
    'decoder': {'type': 'mlp_chunk'},
}


@dataclasses.dataclass
class ModelConfig:
    """A whole hybrid policy: spec, the four components, losses and statistics."""

    observation: ObservationSpec
    action: ActionSpec
    instruction_max_tokens: int
    vision: ComponentSpec
    language: ComponentSpec
    fusion: ComponentSpec
    decoder: ComponentSpec
    loss: LossSpec
    normalization: NormalizationSpec

    def to_mapping(self) -> dict:
        """The YAML form of this configuration."""
        return {
            'observation': to_mapping(self.observation),
            'action': to_mapping(self.action),
            'instruction_max_tokens': self.instruction_max_tokens,
            'vision': self.vision.to_mapping(),
            'language': self.language.to_mapping(),
            'fusion': self.fusion.to_mapping(),
            'decoder': self.decoder.to_mapping(),
            'loss': to_mapping(self.loss),
            'normalization': to_mapping(self.normalization),
        }

    def architecture_hash(self) -> str:
        """Hash (16 hex chars) of everything the deployed graphs compute: the architecture,
        the spec and the normalization statistics (not the training-only loss settings).

        Exported graphs record it so a graph from another configuration is refused.
        """
        return mapping_hash(self.to_mapping(), exclude=HASH_EXCLUDED)


_TOP_KEYS = ('observation', 'action', 'instruction_max_tokens', 'vision', 'language',
             'fusion', 'decoder', 'loss', 'normalization')


def parse_model_config(data: dict, path: str = 'model') -> ModelConfig:
    """Validate a model mapping (as read from YAML) into a `ModelConfig`.

    Raises `ConfigError` naming the key path of the first problem found.
    """
    # The built-in components register themselves on import (they need torch; the
    # torch-free inference path uses only the spec dataclasses above).
    from . import decoders, fusion, language, vision  # noqa: F401
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping, got {data!r}')
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(f'{path}.{unknown[0]}: unknown key; allowed keys here: '
                          f'{", ".join(_TOP_KEYS)}')
    max_tokens = data.get('instruction_max_tokens', 24)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not (
            2 <= max_tokens <= 512):
        raise ConfigError(f'{path}.instruction_max_tokens: expected an integer in [2, 512], '
                          f'got {max_tokens!r}')
    components = {
        kind: parse_component(kind, data.get(kind, COMPONENT_DEFAULTS[kind]), f'{path}.{kind}')
        for kind in COMPONENT_DEFAULTS
    }
    cfg = ModelConfig(
        observation=from_mapping(ObservationSpec, data.get('observation'), f'{path}.observation'),
        action=from_mapping(ActionSpec, data.get('action'), f'{path}.action'),
        instruction_max_tokens=max_tokens,
        loss=from_mapping(LossSpec, data.get('loss'), f'{path}.loss'),
        normalization=from_mapping(NormalizationSpec, data.get('normalization'),
                                   f'{path}.normalization'),
        **components,
    )
    _check_composition(cfg, path)
    return cfg


def _check_composition(cfg: ModelConfig, path: str) -> None:
    """Cross-component rules: which parts may be combined, and statistics sizes."""
    # Vision encoders produce either encoded feature tokens or raw patch embeddings; each
    # fusion says which it consumes (modular + transformer vs end-to-end + modular).
    produces = cfg.vision.cls.token_kind
    consumes = cfg.fusion.cls.vision_token_kind
    if produces != consumes:
        from .registry import available, component_class
        fitting = [n for n in available('vision')
                   if component_class('vision', n).token_kind == consumes]
        raise ConfigError(
            f'{path}.vision.type: fusion {cfg.fusion.type!r} takes {consumes} tokens but '
            f'vision {cfg.vision.type!r} produces {produces} tokens; choose one of '
            f'{", ".join(repr(n) for n in fitting)}')
    norm = cfg.normalization
    if norm.action is not None and len(norm.action.mean) != cfg.action.dim:
        raise ConfigError(f'{path}.normalization.action: {len(norm.action.mean)} entries '
                          f'but action.dim is {cfg.action.dim}')
    if norm.proprio is not None and len(norm.proprio.mean) != cfg.observation.proprio_dim:
        raise ConfigError(f'{path}.normalization.proprio: {len(norm.proprio.mean)} entries '
                          f'but observation.proprio_dim is {cfg.observation.proprio_dim}')


def load_model_config(path) -> ModelConfig:
    """Read and validate a model YAML file. A file may hold the model at the top level or
    under a ``model:`` key (as training configs and checkpoints do)."""
    return load_section(path, 'model', parse_model_config)
