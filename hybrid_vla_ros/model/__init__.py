"""The hybrid model library (no ROS): components, registry, composition, losses, checkpoints.

Typical use::

    from hybrid_vla_ros.model import load_model_config, build_policy
    policy = build_policy(load_model_config('config/models/default.yaml'))

Names are imported lazily so that torch-free code (the onnxruntime inference path) can
use ``hybrid_vla_ros.model.config`` without importing torch.
"""

import importlib

_EXPORTS = {
    'load_checkpoint': 'checkpoint', 'save_checkpoint': 'checkpoint',
    'ModelConfig': 'config', 'load_model_config': 'config', 'parse_model_config': 'config',
    'e2e_loss': 'losses', 'hybrid_objective': 'losses', 'modular_losses': 'losses',
    'HybridPolicy': 'policy', 'build_policy': 'policy',
    'available': 'registry', 'register': 'registry',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    module = importlib.import_module(f'.{_EXPORTS[name]}', __name__)
    return getattr(module, name)
