"""The ``mt50`` suite: all 50 Meta-World v3 tasks under the published MT50 protocol.

What the published multi-task results (Meta-World MT50 as LeRobot evaluates SmolVLA, pi0
and the other VLAs on it) fix, and how this suite follows it:

- **Layouts**: Meta-World's own object and goal sampling on every reset — its random
  vector drawn from its `_random_reset_space`, re-drawn by the environment's own rejection
  loops (goal too close to the object, ...) — with the random stream taken from the
  episode seed (``numpy.random.default_rng(seed)``), so episode *s* is the same layout
  wherever it runs. Start states (a drawer shut for drawer-open, open for drawer-close),
  goal markers and the hand's start are Meta-World's, unchanged.
- **Success**: Meta-World's ``info['success']`` at any step within the task's
  ``max_path_length`` of 500 control steps (`tasks.MT50_MAX_STEPS`).
- **Camera**: ``corner2`` moved to (0.75, 0.075, 0.7) m, as the LeRobot Meta-World
  environment does; its frame is turned upright (the same picture as LeRobot's image
  flipped on both axes). Default image size 128x128 (LeRobot renders 480x480; the
  difference is stated with every result in docs/mt50.md).
- **Proprioception**: hand position x, y, z (m) and gripper opening, as LeRobot's
  ``agent_pos``.

Actions, units and the scripted experts (``metaworld.policies``; peg-insert-side's is
``SawyerPegInsertionSideV3Policy``) are those of the ``metaworld`` suite (`MetaWorldEnv`).
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

from . import _headless  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)

import mujoco
import numpy as np

from .metaworld_suite import UPSIDE_DOWN_CAMERAS, WRIST_CAMERA, MetaWorldEnv
from .mt50_experts import make_expert
from .tasks import DEFAULT_EXPERT, TaskSpec

# LeRobot's Meta-World evaluation camera: corner2 moved here (metres, world frame).
CORNER2_POSITION = (0.75, 0.075, 0.7)
CAMERAS = ('corner2', 'corner', 'corner3', 'corner4', 'topview', 'wrist')


def _protocol_model() -> Callable[[object], Tuple]:
    """A replacement for gymnasium's `_initialize_simulation`: Meta-World's model with the
    protocol camera placement, upright corner cameras and the hand camera named ``wrist``."""

    def initialize(env) -> Tuple[mujoco.MjModel, mujoco.MjData]:
        spec = mujoco.MjSpec.from_file(env.fullpath)
        spec.camera(WRIST_CAMERA).name = 'wrist'
        model = spec.compile()
        model.camera('corner2').pos[:] = CORNER2_POSITION
        for name in UPSIDE_DOWN_CAMERAS:
            cam = model.camera(name)
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, cam.quat.copy(), np.array([0.0, 0.0, 0.0, 1.0]))
            cam.quat[:] = quat
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, env.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, env.height)
        return model, mujoco.MjData(model)

    return initialize


_ENV_CLASSES: Dict[str, type] = {}


def _env_class(env_name: str) -> type:
    """Meta-World's env class for `env_name`, subclassed to build the protocol model."""
    if env_name not in _ENV_CLASSES:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        base = ALL_V3_ENVIRONMENTS[env_name]
        _ENV_CLASSES[env_name] = type(f'{base.__name__}Protocol', (base,),
                                      {'_initialize_simulation': _protocol_model()})
    return _ENV_CLASSES[env_name]


class MT50Env(MetaWorldEnv):
    """One task of the ``mt50`` suite (see the module docstring for the protocol).

    Args:
        task: an ``mt50`` task.
        seed, image_size, cameras: see `SimEnv`; cameras are any of `CAMERAS` (default
            ``corner2``).
        start_jitter: must be 0 (the protocol starts the hand where Meta-World does).
        expert: the scripted expert behind `expert_action`: ``protocol`` (Meta-World's) or
            ``revised`` (training labels only; `mt50_experts`).

    """

    available_cameras = CAMERAS
    default_cameras = ('corner2',)

    def __init__(self, task: TaskSpec, seed: int = 0, image_size=128, cameras=None,
                 start_jitter: float = 0.0, expert: str = DEFAULT_EXPERT) -> None:
        self.expert_name = expert  # read by `_make_expert` during the base initialisation
        super().__init__(task, seed, image_size, cameras, start_jitter)

    def _make_expert(self, env_name: str):
        return make_expert(env_name, self.expert_name)

    def _make_meta_world_env(self, env_name: str, task: TaskSpec):
        return _env_class(env_name)()

    def _reset_sim(self, rng: np.random.Generator) -> None:
        env = self.mw
        # Meta-World's own sampling (rejection loops included), fed from the episode seed.
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env.np_random = rng
        try:
            state, _ = env.reset()
        finally:
            env._freeze_rand_vec = True
        self._state = np.asarray(state, dtype=np.float64)
        _, info = env.evaluate_state(self._state, np.zeros(4))
        self._mw_success = bool(info['success'])

    def layout(self) -> np.ndarray:
        """Meta-World's random vector of the current episode (object and goal positions, m)."""
        return np.array(self.mw._last_rand_vec, dtype=np.float64)
