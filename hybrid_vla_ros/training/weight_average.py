"""An exponential moving average of trainable weights (``optim.ema_decay``).

Behaviour cloning with a regression head ends each run on weights that still move with
the last few hundred batches; their running average is a smoother function of the state
and usually closes the loop better. The average lives beside the raw weights: training
always steps the raw ones, validation and the saved ``best/`` swap the average in.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List

import torch
from torch import nn


class WeightAverage:
    """Running average ``avg = d * avg + (1 - d) * w`` of `params`, float32 tensors of
    the shapes of the parameters, updated after every optimisation step.

    The effective decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after n updates, so
    the first steps of a stage are not dominated by where the stage started.

    Args:
        params: the trainable parameters (their order is the state's order).
        decay: per-step decay in [0, 1).

    """

    def __init__(self, params: List[nn.Parameter], decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'ema decay must be in [0, 1), got {decay}')
        self.params = list(params)
        self.decay = float(decay)
        self.updates = 0
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current parameter values into the average (after `optimizer.step`)."""
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for avg, p in zip(self.shadow, self.params, strict=True):
            avg.mul_(d).add_(p.detach(), alpha=1.0 - d)
        self.updates += 1

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block the parameters hold the average; the raw values come back
        afterwards (also on an exception)."""
        with torch.no_grad():
            raw = [p.detach().clone() for p in self.params]
            for avg, p in zip(self.shadow, self.params, strict=True):
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for value, p in zip(raw, self.params, strict=True):
                    p.copy_(value)

    def state_dict(self) -> Dict[str, object]:
        """What `load_state_dict` needs to continue the average (resume)."""
        return {'decay': self.decay, 'updates': self.updates, 'shadow': self.shadow}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        """Restore a saved average; its tensors must match the parameters' shapes."""
        shadow = list(state['shadow'])
        if len(shadow) != len(self.params) or any(
                s.shape != p.shape for s, p in zip(shadow, self.params, strict=False)):
            raise ValueError('the saved weight average does not match the trainable '
                             'parameters (another model or stage)')
        self.shadow = [s.clone().to(p.dtype) for s, p in zip(shadow, self.params, strict=True)]
        self.updates = int(state['updates'])
