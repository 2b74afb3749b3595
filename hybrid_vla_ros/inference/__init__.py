"""Inference backends (torch, onnxruntime, tensorrt) behind one interface.

Nothing here imports torch or transformers at module level: the onnxruntime and tensorrt
backends run on a robot image that has neither. See `load_backend`.
"""

from .backend import (Backend, BackendUnavailable, InputError, available_backends,
                      load_backend)
from .manifest import ManifestError
from .spec import PolicySpec

__all__ = ['Backend', 'BackendUnavailable', 'InputError', 'ManifestError', 'PolicySpec',
           'available_backends', 'load_backend']
