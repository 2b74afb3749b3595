"""What a deployed policy consumes and produces, read without torch from ``config.yaml``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List

from ..model.config import ActionSpec, HASH_EXCLUDED, ObservationSpec
from ..schema import ConfigError, from_mapping, load_yaml, mapping_hash


@dataclasses.dataclass
class PolicySpec:
    """Interface facts of a checkpoint: cameras (name, H, W), proprioception and action
    sizes and names, chunk length K, instruction length L, and the configuration hash that
    exported graphs must carry."""

    cameras: List[dict]
    proprio_dim: int
    proprio_names: List[str]
    action_dim: int
    action_names: List[str]
    chunk: int
    max_tokens: int
    config_hash: str
    model_id: str

    @property
    def image_shape(self) -> tuple:
        """(N, H, W, 3) of one observation's images."""
        c = self.cameras[0]
        return (len(self.cameras), c['height'], c['width'], 3)


def read_spec(checkpoint_dir) -> PolicySpec:
    """Read the spec of the checkpoint in `checkpoint_dir` from its ``config.yaml``."""
    path = Path(checkpoint_dir) / 'config.yaml'
    if not path.is_file():
        raise ConfigError(f'checkpoint {checkpoint_dir}: config.yaml is missing (is this a '
                          'checkpoint directory? `hybrid-vla train` writes them)')
    data = load_yaml(path)
    model = data.get('model')
    if not isinstance(model, dict):
        raise ConfigError(f'{path}: the "model" section is missing')
    obs = from_mapping(ObservationSpec, model.get('observation'), 'model.observation')
    act = from_mapping(ActionSpec, model.get('action'), 'model.action')
    config_hash = mapping_hash(model, exclude=HASH_EXCLUDED)
    return PolicySpec(
        cameras=[dataclasses.asdict(c) for c in obs.cameras], proprio_dim=obs.proprio_dim,
        proprio_names=list(obs.proprio_names), action_dim=act.dim,
        action_names=list(act.names), chunk=act.chunk,
        max_tokens=int(model.get('instruction_max_tokens', 24)),
        config_hash=config_hash,
        model_id=f'{Path(checkpoint_dir).resolve().name}@{config_hash}')
