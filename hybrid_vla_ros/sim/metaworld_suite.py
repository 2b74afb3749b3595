"""The ``metaworld`` suite: Meta-World 3 tasks on shared scenes, end-effector control.

Each task wraps one Meta-World v3 environment (its physics, success criterion and scripted
expert from ``metaworld.policies``) and changes four things:

- **Layouts come from our seed.** Meta-World's own random vector is replaced by one drawn
  from ``numpy.random.default_rng(seed)``, with the same ranges for every task of a scene.
- **Shared scenes start in the same state.** Drawer, window and door lock start half-way
  (drawer 7-11 cm open, window 8-12 cm open, lock lever at 0.6-1.0 rad), so opening and
  closing start from the same picture; Meta-World's goal markers, which would give the task
  away, are hidden. The ``blocks`` scene extends pick-place with two more cylinders: red,
  green and blue blocks at seeded positions; the target colour's block is Meta-World's main
  object, so the scripted expert and success criterion apply unchanged. Its goal marker is
  yellow and visible (the goal position is part of the task).
- **Cameras are upright.** Meta-World's ``corner``..``corner4`` cameras render upside down;
  their frames are turned 180 degrees about the optical axis when the model is built. A
  ``front`` camera (the default) is added, looking at the table from the robot's left, where
  drawer front, window handle, lock lever and faucet are in view; in the blocks scene it
  faces the robot from across the table, close enough for the blocks to be told apart and
  located. Meta-World's hand camera is available as ``wrist``.
- **Every task of a scene starts from the same arm pose** (Meta-World's hand reset), unless
  ``start_jitter`` > 0: then the hand starts at that pose plus an offset drawn uniformly
  from [-start_jitter, start_jitter] metres on each of x, y, z (from its own random stream:
  the same seed keeps the same layout and phrasing with or without jitter). With one fixed
  start, the hand's position alone tells a policy which way the episode is going (the
  copycat shortcut, docs/ablations.md "Does the policy look at the camera?").

Units: action ``[dx, dy, dz, grip]`` in [-1, 1]; one unit of dx moves the hand's mocap
target ``action_scale`` = 0.01 m per control step of ``control_period`` = 0.0125 s
(``frame_skip`` 5 x 2.5 ms), i.e. 0.8 m/s. Grip +1 closes.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable, Dict, Optional, Sequence, Tuple

from . import _headless  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)

import mujoco
import numpy as np

from .env import EndEffectorCommand, Observation, SimEnv
from .rendering import look_at_quat
from .tasks import COLOURS, TaskError, TaskSpec, check_start_jitter

# Camera placement of the added ``front`` camera: position and look-at point, metres.
FRONT_CAMERA = ((-0.9, 0.4, 0.55), (0.0, 0.72, 0.12))
# The blocks scene's ``front`` camera faces the robot from across the table, closer and
# higher: from the side view above, a 128-pixel image shows each block 4 pixels wide and
# a pixel of height spans about 1.7 cm of depth, too coarse to say where to grasp
# (docs/ablations.md, "Pick-and-place localization").
BLOCKS_CAMERA = ((0.0, 1.15, 0.65), (0.0, 0.68, 0.05))
FRONT_FOVY = 45.0
# Meta-World's built-in fixed cameras whose frame is upside down in the XML.
UPSIDE_DOWN_CAMERAS = ('corner', 'corner2', 'corner3', 'corner4')
# Meta-World's hand camera (``gripperPOV``: 90 degree fov, between the fingers, looking down
# and ahead; it follows the hand, whose orientation never changes), exposed as ``wrist``.
WRIST_CAMERA = 'gripperPOV'
CAMERAS = ('front', 'corner', 'corner2', 'corner3', 'corner4', 'topview', 'wrist')

# Seed-sequence entry of the start-offset stream, so jitter leaves the layout stream alone.
_JITTER_STREAM = 0x5A17

RGBA = {'red': (0.85, 0.1, 0.1, 1.0), 'green': (0.1, 0.7, 0.15, 1.0),
        'blue': (0.1, 0.25, 0.9, 1.0)}
GOAL_RGBA = (1.0, 0.85, 0.0, 1.0)  # the pick-place goal marker: yellow, no block is yellow

# Blocks scene: block and goal ranges (x, y, z), minimum distances, metres.
BLOCK_LOW, BLOCK_HIGH = (-0.15, 0.55, 0.02), (0.15, 0.70, 0.02)
GOAL_LOW, GOAL_HIGH = (-0.1, 0.8, 0.05), (0.1, 0.9, 0.3)
BLOCK_SPACING = 0.09       # between block centres: room for the open fingers
GOAL_CLEARANCE = 0.15      # block to goal in xy; Meta-World's pick-place re-draws below it


@dataclasses.dataclass(frozen=True)
class Scene:
    """How one scene is laid out and started (shared by all its tasks).

    Attributes:
        low, high: range of Meta-World's random vector (object and goal positions), or None
            to use the environment's own range.
        start: the start-state range of the articulated joint (None: Meta-World's start).
        joint: that joint's qpos index.
        hide_goals: hide Meta-World's goal sites (they differ between tasks of a scene).
        camera: the ``front`` camera's (position, look-at point), metres.

    """

    low: Optional[Tuple[float, ...]] = None
    high: Optional[Tuple[float, ...]] = None
    start: Optional[Tuple[float, float]] = None
    joint: int = 9
    hide_goals: bool = True
    camera: Tuple[Tuple[float, float, float], Tuple[float, float, float]] = FRONT_CAMERA


SCENES: Dict[str, Scene] = {
    # Drawer slide joint: 0 closed, -0.16 fully open.
    'drawer': Scene((-0.1, 0.9, 0.0), (0.1, 0.9, 0.0), start=(-0.11, -0.07)),
    # Window slide joint: 0 closed, 0.2 open.
    'window': Scene((-0.05, 0.75, 0.16), (0.05, 0.9, 0.16), start=(0.08, 0.12)),
    'faucet': Scene((-0.05, 0.8, 0.0), (0.05, 0.85, 0.0)),
    # Lock lever: 0 unlocked (horizontal), 1.57 locked (down).
    'door-lock': Scene((-0.1, 0.8, 0.15), (0.1, 0.85, 0.15), start=(0.6, 1.0)),
    'button': Scene(),
    'blocks': Scene(hide_goals=False, camera=BLOCKS_CAMERA),
}


def _scene_model(scene: str) -> Callable[[object], Tuple]:
    """A replacement for gymnasium's `_initialize_simulation` that builds our scene model."""

    def initialize(env) -> Tuple[mujoco.MjModel, mujoco.MjData]:
        spec = mujoco.MjSpec.from_file(env.fullpath)
        camera = SCENES[scene].camera
        spec.worldbody.add_camera(name='front', pos=camera[0], quat=look_at_quat(*camera),
                                  fovy=FRONT_FOVY)
        if scene == 'blocks':
            _add_blocks(spec)
        spec.camera(WRIST_CAMERA).name = 'wrist'
        model = spec.compile()
        for name in UPSIDE_DOWN_CAMERAS:
            cam = model.camera(name)
            # Turn the camera 180 degrees about its optical (z) axis: q * (0, 0, 0, 1).
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, cam.quat.copy(), np.array([0.0, 0.0, 0.0, 1.0]))
            cam.quat[:] = quat
        for i in range(model.nsite):
            if model.site(i).name.startswith('goal'):
                if SCENES[scene].hide_goals:
                    model.site_rgba[i, 3] = 0.0
                elif scene == 'blocks':
                    model.site_rgba[i] = GOAL_RGBA
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, env.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, env.height)
        return model, mujoco.MjData(model)

    return initialize


def _add_blocks(spec: mujoco.MjSpec) -> None:
    """Two more copies of pick-place's cylinder (``d1_obj``, ``d2_obj``), plain coloured."""
    spec.geom('objGeom').material = ''  # a plain colour: the wood texture hides the hue
    for i, x in ((1, -0.35), (2, 0.35)):
        # Parked beside the table until the layout places them.
        frame = spec.worldbody.add_frame(pos=[x, -0.15, 0.0])
        frame.attach_body(spec.copy().body('obj'), f'd{i}_', '')


_ENV_CLASSES: Dict[Tuple[str, str], type] = {}


def _env_class(env_name: str, scene: str) -> type:
    """Meta-World's env class for `env_name`, subclassed to build the `scene` model."""
    key = (env_name, scene)
    if key not in _ENV_CLASSES:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        base = ALL_V3_ENVIRONMENTS[env_name]
        _ENV_CLASSES[key] = type(f'{base.__name__}Scene', (base,),
                                 {'_initialize_simulation': _scene_model(scene)})
    return _ENV_CLASSES[key]


class MetaWorldEnv(SimEnv):
    """One task of the ``metaworld`` suite (see the module docstring for what it changes).

    Args:
        task: a ``metaworld`` task.
        seed, image_size, cameras: see `SimEnv`; cameras are any of `CAMERAS`.

    """

    command_kind = 'end_effector'
    action_dim = 4
    available_cameras: Tuple[str, ...] = CAMERAS

    def __init__(self, task: TaskSpec, seed: int = 0, image_size=128,
                 cameras: Optional[Sequence[str]] = None, start_jitter: float = 0.0) -> None:
        super().__init__(task, seed, image_size, cameras)
        check_start_jitter(task.suite, start_jitter)
        self.start_jitter = float(start_jitter)
        unknown = [c for c in self.cameras if c not in self.available_cameras]
        if unknown:
            raise TaskError(f'unknown camera(s) {", ".join(unknown)} for the {task.suite} '
                            f'suite; choose from {", ".join(self.available_cameras)}')
        self.scene = SCENES.get(task.scene)
        env_name = task.params['env']
        env = self._make_meta_world_env(env_name, task)
        # Goal position in the observation (the experts read it); our layouts, not theirs.
        env._partially_observable = False
        del env.sawyer_observation_space  # cached for the partially observable setting
        env._set_task_called = True
        env._freeze_rand_vec = True
        self.mw = env
        self.expert = self._make_expert(env_name)
        self.control_period = float(env.dt)
        self.action_scale = float(env.action_scale)
        model = env.model
        self._arm_joints = tuple(f'right_j{i}' for i in range(7))
        self._arm_qpos = np.array([model.joint(n).qposadr[0] for n in self._arm_joints])
        self._hand = model.body('hand').id
        self._state = np.zeros(39)
        self._mw_success = False
        self._rest = self._rest_pose()
        self._hand_home = np.array(env.hand_init_pos, dtype=np.float64)

    def _make_expert(self, env_name: str):
        """The scripted policy that `expert_action` asks (Meta-World's for `env_name`)."""
        from metaworld.policies import ENV_POLICY_MAP
        return ENV_POLICY_MAP[env_name]()

    def _make_meta_world_env(self, env_name: str, task: TaskSpec):
        """Meta-World's environment of `env_name`, built with this suite's scene model."""
        return _env_class(env_name, task.scene)()

    def _rest_pose(self) -> Tuple[np.ndarray, ...]:
        """Arm state after Meta-World's hand reset: (qpos, qvel) of the 9 arm and finger
        joints, mocap position and orientation."""
        env = self.mw
        mujoco.mj_resetData(env.model, env.data)
        env._reset_hand()
        data = env.data
        return (data.qpos[:9].copy(), data.qvel[:9].copy(), data.mocap_pos.copy(),
                data.mocap_quat.copy())

    # ----------------------------------------------------------------- layout and start
    def _layout(self, rng: np.random.Generator) -> Tuple[np.ndarray, dict]:
        """Meta-World's random vector for this episode and the scene's extra start values."""
        if self.task.scene == 'blocks':
            return _blocks_layout(rng, self.task.params['colour'])
        scene = self.scene
        if scene.low is None:
            space = self.mw._random_reset_space
            low, high = space.low, space.high
        else:
            low, high = np.array(scene.low), np.array(scene.high)
        vec = rng.uniform(low, high)
        extra = {}
        if scene.start is not None:
            extra['joint'] = float(rng.uniform(*scene.start))
        return vec, extra

    def _reset_sim(self, rng: np.random.Generator) -> None:
        vec, extra = self._layout(rng)
        env = self.mw
        env._last_rand_vec = vec
        env.reset()
        data = env.data
        # Some resets (door-lock) simulate a few more steps than their sibling's: start every
        # task of a scene from the same arm state.
        qpos, qvel, mocap_pos, mocap_quat = self._rest
        data.qpos[:9], data.qvel[:9] = qpos, qvel
        data.mocap_pos[:], data.mocap_quat[:] = mocap_pos, mocap_quat
        if 'joint' in extra:
            data.qpos[self.scene.joint] = extra['joint']
            data.qvel[:] = 0.0
        if 'blocks' in extra:
            self._place_blocks(extra['blocks'])
        if self.start_jitter > 0:
            self._move_hand_start(self.start_offset(self.seed))
        mujoco.mj_forward(env.model, data)
        # Re-read the observation after our changes (Meta-World stacks two frames).
        env._prev_obs = env._get_curr_obs_combined_no_goal()
        self._state = env._get_obs()
        _, info = env.evaluate_state(self._state, np.zeros(4))
        self._mw_success = bool(info['success'])

    def start_offset(self, seed: int) -> np.ndarray:
        """(3,) hand start offset of episode `seed` in metres (zeros without jitter)."""
        if self.start_jitter <= 0:
            return np.zeros(3)
        rng = np.random.default_rng([int(seed), _JITTER_STREAM])
        return rng.uniform(-self.start_jitter, self.start_jitter, 3)

    def _move_hand_start(self, offset: np.ndarray) -> None:
        """Drive the hand from the rest pose to home + `offset` (metres) the way Meta-World's hand
        reset does (the mocap weld pulls it there over 50 simulated control periods)."""
        env = self.mw
        # An offset that would leave the mocap's box is mirrored, so the first action does
        # not snap the hand back inside (window and faucet homes sit on the box's y edge).
        low, high = env.mocap_low, env.mocap_high
        target = self._hand_home + offset
        target = np.where((target < low) | (target > high), self._hand_home - offset, target)
        env.hand_init_pos = np.clip(target, low, high)
        try:
            env._reset_hand()
        finally:
            env.hand_init_pos = self._hand_home.copy()
        env.data.qvel[:9] = 0.0

    def _place_blocks(self, blocks: Dict[str, np.ndarray]) -> None:
        """Colour the main object as the target and put the distractors where theirs are."""
        model, data = self.mw.model, self.mw.data
        target = self.task.params['colour']
        others = [c for c in COLOURS if c != target]
        model.geom_rgba[model.geom('objGeom').id] = RGBA[target]
        for i, colour in enumerate(others, start=1):
            model.geom_rgba[model.geom(f'd{i}_objGeom').id] = RGBA[colour]
            joint = model.joint(f'd{i}_objjoint')
            qpos, dof = joint.qposadr[0], joint.dofadr[0]
            data.qpos[qpos:qpos + 7] = (*blocks[colour], 1.0, 0.0, 0.0, 0.0)
            data.qvel[dof:dof + 6] = 0.0

    # ----------------------------------------------------------------- stepping
    def _step_sim(self, action: np.ndarray) -> None:
        action = np.clip(action, -1.0, 1.0)
        obs, _, _, _, info = self.mw.step(action)
        self._state = obs
        self._mw_success = bool(info['success'])

    def _evaluate_success(self) -> bool:
        return self._mw_success

    def _expert_state(self) -> np.ndarray:
        return self._state.copy()

    def expert_action(self, obs: Optional[Observation] = None) -> np.ndarray:
        """Meta-World's scripted policy, clipped to the action range: (4,) float64."""
        state = self._state if obs is None else obs.state
        with warnings.catch_warnings():
            # The policies warn whenever their gain saturates; the env clips anyway.
            warnings.simplefilter('ignore')
            action = self.expert.get_action(state)
        return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)

    # ----------------------------------------------------------------- sensing
    def proprio(self) -> np.ndarray:
        """(4,) float32: hand position x, y, z (m) and gripper opening (0 closed .. 1 open)."""
        return self._state[:4].astype(np.float32)

    def joint_state(self) -> Tuple[Tuple[str, ...], np.ndarray]:
        """The 7 Sawyer joints (rad) and a ``gripper`` entry (Meta-World's opening, 0..1)."""
        positions = np.append(self.mw.data.qpos[self._arm_qpos], self._state[3])
        return self._arm_joints + ('gripper',), positions.astype(np.float64)

    def ee_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        """The hand body's position (m) and orientation (x, y, z, w) in the world frame."""
        data = self.mw.data
        w, x, y, z = data.xquat[self._hand]
        return data.xpos[self._hand].copy(), np.array([x, y, z, w])

    def _model(self):
        return self.mw.model

    def _data(self):
        return self.mw.data

    # ----------------------------------------------------------------- units
    def action_to_command(self, action) -> EndEffectorCommand:
        """[dx, dy, dz, grip] -> hand velocity (m/s) = clip(d) * action_scale / control_period."""
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return EndEffectorCommand(action[:3] * self.action_scale / self.control_period,
                                  float(action[3]))

    def command_to_action(self, command: EndEffectorCommand) -> np.ndarray:
        """Hand velocity (m/s) and gripper -> [dx, dy, dz, grip], clipped to [-1, 1]."""
        delta = np.asarray(command.linear_velocity, dtype=np.float64) * (
            self.control_period / self.action_scale)
        return np.clip(np.append(delta, command.gripper), -1.0, 1.0)

    def close(self) -> None:
        """Release the renderer and Meta-World's environment."""
        super().close()
        self.mw.close()


def _blocks_layout(rng: np.random.Generator, target: str) -> Tuple[np.ndarray, dict]:
    """Positions of the red, green and blue blocks and of the goal (rejection-sampled)."""
    while True:
        blocks = {c: rng.uniform(BLOCK_LOW, BLOCK_HIGH) for c in COLOURS}
        pts = np.array([blocks[c][:2] for c in COLOURS])
        gaps = np.linalg.norm(pts[:, None] - pts[None], axis=-1)[np.triu_indices(3, 1)]
        if gaps.min() >= BLOCK_SPACING:
            break
    while True:
        goal = rng.uniform(GOAL_LOW, GOAL_HIGH)
        if np.linalg.norm(pts - goal[:2], axis=-1).min() >= GOAL_CLEARANCE:
            break
    return np.concatenate([blocks[target], goal]), {'blocks': blocks}
