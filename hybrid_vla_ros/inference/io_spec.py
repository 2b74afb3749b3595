"""Input/output names, shapes and dtypes of the three deployed parts of a policy.

The names are the contract between export, the manifest and every backend. Batch is the
symbolic first axis ``batch``.
"""

from __future__ import annotations

from typing import Dict


def part_io(policy) -> Dict[str, dict]:
    """{part: {'inputs': [{name, shape, dtype}], 'outputs': [...]}} for a `HybridPolicy`."""
    cfg = policy.cfg
    cam = cfg.observation.cameras[0]
    n_cam = len(cfg.observation.cameras)
    t, dv = policy.vision.num_tokens, policy.vision.out_dim
    ln, dl = cfg.instruction_max_tokens, policy.language.out_dim
    p, k, a = cfg.observation.proprio_dim, cfg.action.chunk, cfg.action.dim
    b = 'batch'

    def io(name, shape, dtype):
        return {'name': name, 'shape': [b, *shape], 'dtype': dtype}

    visual = io('visual_tokens', [t, dv], 'float32')
    language = io('language_tokens', [ln, dl], 'float32')
    mask = io('token_mask', [ln], 'int64')
    return {
        'vision': {'inputs': [io('images', [n_cam, cam.height, cam.width, 3], 'uint8')],
                   'outputs': [visual]},
        'language': {'inputs': [io('token_ids', [ln], 'int64'), mask],
                     'outputs': [language]},
        'policy_core': {'inputs': [visual, language, mask, io('proprio', [p], 'float32')],
                        'outputs': [io('action_chunk', [k, a], 'float32')]},
    }
