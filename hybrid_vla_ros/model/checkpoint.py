"""Checkpoint directories: ``config.yaml`` + ``model.safetensors``.

``config.yaml`` holds the whole model configuration under ``model:`` (architecture,
observation and action spec, normalization statistics, instruction length) plus any extra
top-level sections a caller adds (training settings, provenance). Frozen pretrained weights
that are re-read from their source (the packaged MiniLM, a local HF directory) are not
stored, which keeps checkpoints small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import torch
import yaml
from safetensors.torch import load_file, save_file

from ..schema import ConfigError, load_yaml
from .config import parse_model_config
from .policy import HybridPolicy

CONFIG_FILE = 'config.yaml'
WEIGHTS_FILE = 'model.safetensors'


def stored_state(policy: HybridPolicy) -> dict:
    """The state dict a checkpoint stores: everything but external frozen weights."""
    skip = tuple(policy.external_state_prefixes())
    return {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()
            if not (skip and k.startswith(skip))}


def save_checkpoint(policy: HybridPolicy, directory, extra: Optional[dict] = None) -> Path:
    """Write `policy` to `directory` (created if needed); returns the directory.

    The weights are written to a temporary file and renamed, so an interrupted save never
    leaves a half-written ``model.safetensors``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    doc = {'model': policy.cfg.to_mapping()}
    if extra:
        doc.update(extra)
    tmp_cfg = out / (CONFIG_FILE + '.tmp')
    tmp_cfg.write_text(yaml.safe_dump(doc, sort_keys=False), encoding='utf-8')
    tmp_w = out / (WEIGHTS_FILE + '.tmp')
    save_file(stored_state(policy), str(tmp_w),
              metadata={'architecture_hash': policy.cfg.architecture_hash()})
    tmp_w.replace(out / WEIGHTS_FILE)
    tmp_cfg.replace(out / CONFIG_FILE)
    return out


def read_checkpoint_config(directory) -> Tuple[dict, Path]:
    """(the parsed ``DIR/config.yaml``, the path of ``DIR/model.safetensors``).

    Raises `ConfigError` naming the directory or file when the directory, either file or
    the config's ``model:`` section is missing.
    """
    d = Path(directory)
    cfg_path, w_path = d / CONFIG_FILE, d / WEIGHTS_FILE
    if not d.is_dir():
        raise ConfigError(f'checkpoint {d}: directory does not exist')
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise ConfigError(f'checkpoint {d}: {p.name} is missing; a checkpoint directory '
                              f'holds {CONFIG_FILE} and {WEIGHTS_FILE}')
    data = load_yaml(cfg_path)
    if 'model' not in data:
        raise ConfigError(f'{cfg_path}: the "model" section is missing')
    return data, w_path


def load_checkpoint(directory, map_location: str = 'cpu') -> HybridPolicy:
    """Build the policy described by ``DIR/config.yaml`` and load ``DIR/model.safetensors``.

    Raises `ConfigError` naming the file when the directory, a file, or a weight is
    missing or does not match the configuration.
    """
    d = Path(directory)
    cfg_path = d / CONFIG_FILE
    data, w_path = read_checkpoint_config(d)
    try:
        cfg = parse_model_config(data['model'])
    except ConfigError as exc:
        raise ConfigError(f'{cfg_path}: {exc}') from None
    policy = HybridPolicy(cfg)
    state = load_file(str(w_path), device=map_location)
    expected = stored_state(policy)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ConfigError(
            f'checkpoint {d}: {WEIGHTS_FILE} does not match {CONFIG_FILE} '
            f'(missing {missing[:5]}{"..." if len(missing) > 5 else ""}, '
            f'unexpected {unexpected[:5]}{"..." if len(unexpected) > 5 else ""})')
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise ConfigError(f'checkpoint {d}: weight {k} has shape {tuple(v.shape)} but '
                              f'{CONFIG_FILE} implies {tuple(expected[k].shape)}')
    policy.load_state_dict(state, strict=False)
    policy.to(torch.device(map_location))
    return policy
