"""A policy driven step by step outside ROS: observation in, one action per tick out.

Wraps a `Backend` and a `ChunkScheduler` the way the policy node does (language encoded
once per instruction, vision + core when the scheduler wants a chunk), so closed-loop
evaluation measures the behaviour the robot will see.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ..inference.backend import Backend
from ..inference.scheduling import ChunkScheduler


class PolicyRunner:
    """Runs `backend` with `scheduler` settings; call `reset(instruction)` then `act` once
    per control tick."""

    def __init__(self, backend: Backend, mode: str = 'replan', replan_every: int = 4,
                 ensemble_decay: float = 0.1):
        self.backend = backend
        self.spec = backend.spec
        self.scheduler = ChunkScheduler(mode, self.spec.chunk, replan_every, ensemble_decay)
        self._language: Optional[tuple] = None
        self._instruction: Optional[str] = None
        self.tick = 0
        self.inferences = 0

    def reset(self, instruction: str) -> None:
        """Start an episode with `instruction` (encoded once, cached across episodes)."""
        if instruction != self._instruction:
            self._language = self.backend.encode_instruction(instruction)
            self._instruction = instruction
        self.scheduler.reset()
        self.tick = 0

    def images_array(self, images: Dict[str, np.ndarray]) -> np.ndarray:
        """camera name -> (H, W, 3) uint8 to the (1, N, H, W, 3) input, in spec order."""
        try:
            frames = [images[c['name']] for c in self.spec.cameras]
        except KeyError as exc:
            raise KeyError(f'camera {exc} is missing from the observation; it has '
                           f'{sorted(images)}') from None
        return np.stack(frames)[None]

    def act(self, images: Dict[str, np.ndarray], proprio: np.ndarray) -> np.ndarray:
        """(A,) action for this tick, in the policy's (ROS) units."""
        if self.scheduler.wants_chunk(self.tick) or self.scheduler.queued == 0:
            lang, mask = self._language
            visual = self.backend.encode_vision(self.images_array(images))
            prop = np.asarray(proprio, dtype=np.float32)[None]
            chunk = self.backend.core(visual, lang, mask, prop)[0]
            self.scheduler.add_chunk(chunk, self.tick)
            self.inferences += 1
        action = self.scheduler.action(self.tick)
        self.tick += 1
        return action
