"""``hybrid-vla average-weights``: one checkpoint whose weights are the (weighted) mean of
several checkpoints of the same model.

Two fine-tunings from one parent checkpoint often fail on different tasks; their
weight-space mean (a "model soup", Wortsman et al. 2022) usually keeps most of what each
gained at the cost of one forward pass, not two. Averaging only makes sense between
checkpoints of one architecture *and* one normalization (the mean of weights trained
against different action statistics decodes to neither), so every ``model:`` section must
be identical, and so must the training topic map (the bags the model reads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from ..model.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_checkpoint_config
from ..schema import ConfigError, load_yaml, mapping_differences


def _first_difference(a: Any, b: Any, path: str) -> Optional[str]:
    """The dotted key path of the first leaf where `a` and `b` differ, or None."""
    found = next(mapping_differences(a, b, path), None)
    return found[0] if found else None


def _read(directory) -> Dict[str, Any]:
    doc, w_path = read_checkpoint_config(directory)
    try:
        with safe_open(str(w_path), 'pt') as f:
            metadata = f.metadata() or {}
            state = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for a bad file
        raise ConfigError(f'{w_path}: not a readable safetensors file ({exc}); '
                          'is the checkpoint complete?') from None
    return {'dir': Path(directory), 'doc': doc, 'metadata': metadata, 'state': state}


def average_checkpoints(checkpoints: Sequence, out, weights: Optional[Sequence[float]] = None
                        ) -> Path:
    """Write to `out` the checkpoint whose every floating-point weight is
    ``sum_i w_i * W_i / sum_i w_i`` over `checkpoints` (computed in float64, stored in each
    tensor's dtype); integer buffers must be equal and are copied.

    Args:
        checkpoints: two or more checkpoint directories (``config.yaml`` +
            ``model.safetensors``) with identical ``model:`` sections.
        out: output directory (created); must not be one of the inputs.
        weights: one positive mixing weight per checkpoint (default: all equal).

    Returns:
        `out`. Its ``config.yaml`` is the first checkpoint's, with an ``averaged_from``
        section listing each input, its mixing weight and its ``training.global_step``.

    Raises:
        ConfigError: fewer than two inputs, a missing file, a ``model:`` section, topic map,
            weight name or shape that differs (named), or bad mixing weights.

    """
    dirs = [Path(c) for c in checkpoints]
    if len(dirs) < 2:
        raise ConfigError('average-weights needs at least two checkpoints, got '
                          f'{len(dirs)}')
    out = Path(out)
    if any(out.resolve() == d.resolve() for d in dirs):
        raise ConfigError(f'--out {out} is one of the input checkpoints; write the average '
                          'to a new directory')
    if weights is None:
        weights = [1.0] * len(dirs)
    weights = [float(w) for w in weights]
    if len(weights) != len(dirs):
        raise ConfigError(f'--weights has {len(weights)} values for {len(dirs)} checkpoints; '
                          'give one per checkpoint')
    if any(not (0.0 < w < float('inf')) for w in weights):
        raise ConfigError(f'--weights must all be positive finite numbers, got {weights}')
    total = sum(weights)
    mix = [w / total for w in weights]

    inputs = [_read(d) for d in dirs]
    first = inputs[0]
    for other in inputs[1:]:
        where = _first_difference(first['doc']['model'], other['doc']['model'], 'model')
        if where:
            raise ConfigError(
                f'{other["dir"]} and {first["dir"]} differ at {where}: only checkpoints of '
                'one model with the same normalization can be averaged (fine-tune them from '
                'one parent checkpoint)')
        maps = [(i['doc'].get('training') or {}).get('topic_map') for i in (first, other)]
        if None not in maps:
            where = _first_difference(maps[0], maps[1], 'training.topic_map')
            if where:
                raise ConfigError(f'{other["dir"]} and {first["dir"]} differ at {where}: '
                                  'they were trained on differently mapped bags')

    states = [i['state'] for i in inputs]
    for i, state in enumerate(states[1:], start=1):
        missing = sorted(set(states[0]) - set(state))
        if missing:
            raise ConfigError(f'{dirs[i]}: weights {missing[:5]} are missing (present in '
                              f'{dirs[0]})')
        extra = sorted(set(state) - set(states[0]))
        if extra:
            raise ConfigError(f'{dirs[i]}: weights {extra[:5]} are not in {dirs[0]}')
    averaged: Dict[str, torch.Tensor] = {}
    for name, ref in states[0].items():
        for i, state in enumerate(states[1:], start=1):
            if state[name].shape != ref.shape:
                raise ConfigError(f'{dirs[i]}: weight {name} has shape '
                                  f'{tuple(state[name].shape)}, {dirs[0]} has '
                                  f'{tuple(ref.shape)}')
        if ref.is_floating_point():
            acc = torch.zeros(ref.shape, dtype=torch.float64)
            for w, state in zip(mix, states, strict=True):
                acc += w * state[name].to(torch.float64)
            averaged[name] = acc.to(ref.dtype).contiguous()
        else:
            for i, state in enumerate(states[1:], start=1):
                if not torch.equal(state[name], ref):
                    raise ConfigError(f'{dirs[i]}: integer weight {name} differs from '
                                      f'{dirs[0]}\'s; such checkpoints cannot be averaged')
            averaged[name] = ref.contiguous()

    doc = dict(first['doc'])
    doc['averaged_from'] = [
        {'checkpoint': str(i['dir']), 'weight': round(w, 6),
         'global_step': (i['doc'].get('training') or {}).get('global_step')}
        for i, w in zip(inputs, mix, strict=True)]
    out.mkdir(parents=True, exist_ok=True)
    tmp_w, tmp_c = out / (WEIGHTS_FILE + '.tmp'), out / (CONFIG_FILE + '.tmp')
    save_file(averaged, str(tmp_w), metadata=first['metadata'])
    tmp_c.write_text(yaml.safe_dump(doc, sort_keys=False), encoding='utf-8')
    tmp_w.replace(out / WEIGHTS_FILE)
    tmp_c.replace(out / CONFIG_FILE)
    return out


def describe(out: Path) -> List[str]:
    """Lines naming the inputs and mixing weights of the averaged checkpoint in `out`."""
    doc = load_yaml(Path(out) / CONFIG_FILE)
    return [f'  {e["weight"]:.3f} x {e["checkpoint"]} (step {e["global_step"]})'
            for e in doc.get('averaged_from', [])]
