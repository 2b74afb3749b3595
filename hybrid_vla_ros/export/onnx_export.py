"""``hybrid-vla export``: a checkpoint's three deployed parts to ONNX, checked for parity.

Writes ``CHECKPOINT/onnx/{vision,language,policy_core}.onnx``, ``tokenizer.json`` (so the
runtime needs no transformers) and ``manifest.json`` (names, shapes, dtypes, opset, file
checksums, the configuration and weights hashes). Graphs have a dynamic batch axis and
static everything else (fixed image size, TensorRT-friendly), are exported with a batch-2
example (a batch-1 example can silently fix the batch), and keep their weights inside the
file. `fp16` adds half-precision vision and core graphs. After export every part is run
with onnxruntime on random inputs at batch 1 and 4 and compared with torch; export fails
(and removes what it wrote) when the maximum absolute difference exceeds the tolerance.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from ..inference.manifest import MANIFEST_FILE, MANIFEST_FORMAT, ONNX_DIR, sha256_file
from ..inference.spec import read_spec
from ..model import load_checkpoint
from ..schema import ConfigError
from ..inference.io_spec import part_io

from .defaults import DEFAULT_OPSET, PARITY_TOLERANCE  # noqa: E402  (re-exported)
FP16_TOLERANCE = 5e-2
# The language part runs once per instruction, so it stays float32 (the transformers text
# encoder also mixes float32 LayerNorm into half graphs, which onnxruntime refuses).
FP16_PARTS = ('vision', 'policy_core')


class ParityError(RuntimeError):
    """An exported graph does not reproduce the torch model within tolerance."""


class _Part(nn.Module):
    """Wraps one deployed part of a policy as a module with positional inputs, optionally
    computing in float16 between float32 boundaries."""

    def __init__(self, policy, part: str, fp16: bool = False):
        super().__init__()
        self.policy, self.part, self.fp16 = policy, part, fp16

    def forward(self, *inputs):
        if self.fp16:
            inputs = [x.half() if x.is_floating_point() else x for x in inputs]
        if self.part == 'vision':
            out = self.policy.encode_vision(*inputs)
        elif self.part == 'language':
            out = self.policy.encode_language(*inputs)
        else:
            out = self.policy.core(*inputs)
        return out.float()


def random_inputs(policy, io: dict, batch: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """Random but valid inputs for one part: images uint8, instructions tokenized from real
    text, tokens from the model's own encoders, proprio ~ its statistics."""
    rng = np.random.default_rng(seed)
    cfg = policy.cfg
    texts = [f'open the drawer {i}' if i % 2 else 'pick up the red block and place it'
             for i in range(batch)]
    ids, mask = policy.tokenizer(texts)
    images = rng.integers(0, 256, size=[batch, *io['vision']['inputs'][0]['shape'][1:]],
                          dtype=np.uint8)
    with torch.no_grad():
        visual = policy.encode_vision(torch.from_numpy(images)).numpy()
        language = policy.encode_language(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    proprio = (rng.standard_normal((batch, cfg.observation.proprio_dim)).astype(np.float32)
               * policy.proprio_std.numpy() + policy.proprio_mean.numpy()).astype(np.float32)
    return {'images': images, 'token_ids': ids, 'token_mask': mask, 'visual_tokens': visual,
            'language_tokens': language, 'proprio': proprio}


def torch_reference(policy, part: str, feeds: Dict[str, np.ndarray]) -> np.ndarray:
    """Run `part` in eager torch on numpy feeds."""
    t = {k: torch.from_numpy(v) for k, v in feeds.items()}
    with torch.no_grad():
        if part == 'vision':
            return policy.encode_vision(t['images']).numpy()
        if part == 'language':
            return policy.encode_language(t['token_ids'], t['token_mask']).numpy()
        return policy.core(t['visual_tokens'], t['language_tokens'], t['token_mask'],
                           t['proprio']).numpy()


def _export_part(policy, part: str, io: dict, path: Path, opset: int, fp16: bool) -> None:
    names_in = [i['name'] for i in io['inputs']]
    names_out = [o['name'] for o in io['outputs']]
    example = random_inputs(policy, part_io(policy), batch=2)
    args = tuple(torch.from_numpy(example[n]) for n in names_in)
    # A half-precision copy: converting the policy itself back and forth would round its
    # float32 weights.
    source = copy.deepcopy(policy).half() if fp16 else policy
    # The exporter restores the wrapper's training flag on exit, recursively; an eval()
    # wrapper keeps the policy in eval mode.
    module = _Part(source, part, fp16).eval()
    dynamic = {n: {0: 'batch'} for n in names_in + names_out}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, args, str(path), input_names=names_in,
                          output_names=names_out, dynamic_axes=dynamic,
                          opset_version=opset, do_constant_folding=True, dynamo=False)


def check_parity(policy, onnx_dir: Path, entries: dict, tolerance: float,
                 batches=(1, 4)) -> Dict[str, float]:
    """Max |onnxruntime - torch| per part over random inputs at each batch size; raises
    ParityError naming the part when one exceeds `tolerance`."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    io = part_io(policy)
    worst: Dict[str, float] = {}
    for part, entry in entries.items():
        sess = ort.InferenceSession(str(onnx_dir / entry['file']), opts,
                                    providers=['CPUExecutionProvider'])
        for b in batches:
            feeds_all = random_inputs(policy, io, batch=b, seed=100 + b)
            feeds = {i['name']: feeds_all[i['name']] for i in io[part]['inputs']}
            got = sess.run(None, feeds)[0]
            ref = torch_reference(policy, part, feeds)
            if got.shape != ref.shape:
                raise ParityError(f'{part}: onnxruntime output shape {got.shape} != torch '
                                  f'{ref.shape} at batch {b}')
            diff = float(np.max(np.abs(got - ref)))
            worst[part] = max(worst.get(part, 0.0), diff)
            if not diff <= tolerance:
                raise ParityError(f'{part}: onnxruntime differs from torch by {diff:.3g} '
                                  f'(> {tolerance:g}) at batch {b}')
    return worst


def export_checkpoint(checkpoint_dir, opset: int = DEFAULT_OPSET, fp16: bool = False,
                      tolerance: float = PARITY_TOLERANCE, log=print) -> dict:
    """Export the checkpoint in `checkpoint_dir`; returns the manifest written.

    Raises ConfigError for a missing or invalid checkpoint and ParityError when an exported
    graph does not match torch (nothing is left behind in that case).
    """
    if opset < 17:
        raise ConfigError(f'opset {opset} is too old: LayerNormalization needs opset >= 17')
    ckpt = Path(checkpoint_dir)
    policy = load_checkpoint(ckpt).eval()
    io = part_io(policy)
    final_dir = ckpt / ONNX_DIR
    work = ckpt / (ONNX_DIR + '.partial')
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        parts: Dict[str, dict] = {}
        half: Dict[str, dict] = {}
        for part, part_spec in io.items():
            t0 = time.monotonic()
            _export_part(policy, part, part_spec, work / f'{part}.onnx', opset, fp16=False)
            parts[part] = {'file': f'{part}.onnx', **part_spec}
            log(f'exported {part:<12} {time.monotonic() - t0:5.1f} s')
            if fp16 and part in FP16_PARTS:
                _export_part(policy, part, part_spec, work / f'{part}.fp16.onnx', opset,
                             fp16=True)
                half[part] = {'file': f'{part}.fp16.onnx', **part_spec}
        parity = check_parity(policy, work, parts, tolerance)
        log('parity (max |onnxruntime - torch|, batch 1 and 4): ' +
            ', '.join(f'{k} {v:.2e}' for k, v in parity.items()))
        parity_fp16: Optional[dict] = None
        if fp16:
            parity_fp16 = check_parity(policy, work, half, FP16_TOLERANCE)
            log('fp16 parity: ' + ', '.join(f'{k} {v:.2e}' for k, v in parity_fp16.items()))
        shutil.copyfile(policy.tokenizer.path, work / 'tokenizer.json')
        for entry in list(parts.values()) + list(half.values()):
            entry['sha256'] = sha256_file(work / entry['file'])
        manifest = {
            'format': MANIFEST_FORMAT,
            'opset': opset,
            # The hash runtimes compare: of config.yaml as written, so that a later release
            # adding a config key (with its default) does not orphan existing exports.
            'config_hash': read_spec(ckpt).config_hash,
            'weights_sha256': sha256_file(ckpt / 'model.safetensors'),
            'torch_version': torch.__version__,
            'exported_unix_time': int(time.time()),
            'tokenizer': {'file': 'tokenizer.json', 'max_tokens': policy.cfg.instruction_max_tokens,
                          'sha256': sha256_file(work / 'tokenizer.json')},
            'parts': parts,
            'fp16': half,
            'parity_max_abs_diff': parity,
            'parity_fp16_max_abs_diff': parity_fp16,
        }
        (work / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding='utf-8')
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(final_dir, ignore_errors=True)
    work.replace(final_dir)
    return manifest
