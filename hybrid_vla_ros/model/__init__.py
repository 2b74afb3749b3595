"""The hybrid model library (no ROS): components, registry, composition, losses, checkpoints.

Typical use::

    from hybrid_vla_ros.model import load_model_config, build_policy
    policy = build_policy(load_model_config('config/models/default.yaml'))
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ModelConfig, load_model_config, parse_model_config
from .losses import e2e_loss, hybrid_objective, modular_losses
from .policy import HybridPolicy, build_policy
from .registry import available, register

__all__ = [
    'HybridPolicy', 'ModelConfig', 'available', 'build_policy', 'e2e_loss', 'hybrid_objective',
    'load_checkpoint', 'load_model_config', 'modular_losses', 'parse_model_config', 'register',
    'save_checkpoint',
]
