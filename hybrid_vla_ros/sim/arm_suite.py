"""The ``arm`` suite: a 4-joint MuJoCo arm reaching the coloured target the instruction names.

The arm (`ARM_XML`) stands at the origin of a checkered floor: a base yaw joint
(``shoulder_pan``) and three pitch joints (``shoulder_lift``, ``elbow``, ``wrist``), links of
0.30, 0.25 and 0.10 m, position-controlled (``kp`` 80, critically damped), with gravity
compensation so a commanded position is held exactly. Three target balls (red, green,
blue; mocap bodies, no collisions) are placed in front of it per episode, at least 0.15 m
apart, and the arm starts near a ready pose. Success: the fingertip site ``ee`` within
`SUCCESS_RADIUS` of the named target.

Units: the action is the (4,) vector of target joint positions in radians, held for one
control period of 0.05 s (25 physics steps of 2 ms); the matching ROS command is a
one-point trajectory_msgs/JointTrajectory with ``time_from_start`` = 0.05 s. Proprioception
is the (4,) joint positions.

Expert: a damped least-squares Jacobian controller moving the fingertip straight towards
the target at up to `EXPERT_SPEED`, each step's joint change limited to
`EXPERT_MAX_JOINT_STEP`.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from . import _headless  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)

import mujoco
import numpy as np

from .env import JointCommand, Observation, SimEnv
from .rendering import look_at_quat
from .tasks import COLOURS, TaskError, TaskSpec

JOINTS = ('shoulder_pan', 'shoulder_lift', 'elbow', 'wrist')
TIMESTEP = 0.002
SUBSTEPS = 25                      # control period 0.05 s (20 Hz)
READY_POSE = (0.0, -1.2, 2.0, 0.6)  # rad; fingertip about (0.30, 0, 0.20) m
START_NOISE = (0.3, 0.1, 0.1, 0.1)  # rad, uniform +- per joint
TARGET_RADIUS_RANGE = (0.30, 0.55)  # m, horizontal distance from the base axis
TARGET_AZIMUTH_RANGE = (-0.9, 0.9)  # rad
TARGET_HEIGHT_RANGE = (0.06, 0.30)  # m
TARGET_SPACING = 0.15              # m between targets
SUCCESS_RADIUS = 0.03              # m, fingertip to target centre
EXPERT_SPEED = 0.5                 # m/s, fingertip speed of the expert
EXPERT_MAX_JOINT_STEP = 0.1        # rad per control step
EXPERT_DAMPING = 0.05              # damped least squares lambda
RGBA = {'red': '0.85 0.1 0.1 1', 'green': '0.1 0.7 0.15 1', 'blue': '0.1 0.25 0.9 1'}
CAMERAS = ('front', 'top')
FRONT_CAMERA = ((0.95, -0.6, 0.6), (0.32, 0.0, 0.12))
TOP_CAMERA = ((0.35, 0.0, 1.5), (0.35, 0.0, 0.0))


def _quat_attr(position, target) -> str:
    # A camera looking straight down has no horizon; give it +x as image up.
    if np.allclose(np.asarray(target)[:2], np.asarray(position)[:2]):
        return 'quat="0.7071068 0 0 -0.7071068"'
    return 'quat="{:.7f} {:.7f} {:.7f} {:.7f}"'.format(*look_at_quat(position, target))


def _target_bodies() -> str:
    return '\n'.join(
        f'    <body name="target_{c}" mocap="true" pos="{0.4 + 0.1 * i} 0 0.1">\n'
        f'      <geom name="target_{c}" type="sphere" size="0.03" rgba="{RGBA[c]}"/>\n'
        f'    </body>' for i, c in enumerate(COLOURS))


ARM_XML = f"""
<mujoco model="hybrid_vla_reach_arm">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP}" integrator="implicitfast"/>
  <visual>
    <global offwidth="640" offheight="640"/>
    <headlight ambient="0.4 0.4 0.4" diffuse="0.6 0.6 0.6"/>
  </visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.78 0.78 0.76"
             rgb2="0.66 0.66 0.64" width="256" height="256"/>
    <material name="grid" texture="grid" texrepeat="20 20"/>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.75 0.8 0.86"
             rgb2="0.35 0.38 0.42" width="64" height="64"/>
    <material name="link" rgba="0.55 0.57 0.6 1"/>
    <material name="joint" rgba="0.25 0.25 0.28 1"/>
  </asset>
  <default>
    <geom contype="0" conaffinity="0" material="link"/>
    <joint damping="0.5" armature="0.02"/>
    <position kp="80" dampratio="1"/>
  </default>
  <worldbody>
    <light pos="0 0 2.5" dir="0 0 -1" directional="true" diffuse="0.5 0.5 0.5"/>
    <geom name="floor" type="plane" size="3 3 0.05" material="grid"/>
    <camera name="front" pos="{' '.join(map(str, FRONT_CAMERA[0]))}"
            {_quat_attr(*FRONT_CAMERA)} fovy="50"/>
    <camera name="top" pos="{' '.join(map(str, TOP_CAMERA[0]))}"
            {_quat_attr(*TOP_CAMERA)} fovy="50"/>
    <body name="base">
      <geom type="cylinder" size="0.07 0.05" pos="0 0 0.05" material="joint"/>
      <body name="link1" pos="0 0 0.1" gravcomp="1">
        <joint name="shoulder_pan" axis="0 0 1" range="-2.6 2.6"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.1" size="0.04"/>
        <body name="link2" pos="0 0 0.1" gravcomp="1">
          <joint name="shoulder_lift" axis="0 1 0" range="-2.0 1.0"/>
          <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.035"/>
          <body name="link3" pos="0.3 0 0" gravcomp="1">
            <joint name="elbow" axis="0 1 0" range="0 2.6"/>
            <geom type="capsule" fromto="0 0 0 0.25 0 0" size="0.03"/>
            <body name="link4" pos="0.25 0 0" gravcomp="1">
              <joint name="wrist" axis="0 1 0" range="-2.0 2.0"/>
              <geom type="capsule" fromto="0 0 0 0.085 0 0" size="0.022" material="joint"/>
              <geom type="sphere" pos="0.1 0 0" size="0.015" rgba="1 1 1 1"/>
              <site name="ee" pos="0.1 0 0" size="0.005"/>
            </body>
          </body>
        </body>
      </body>
    </body>
{_target_bodies()}
  </worldbody>
  <actuator>
{chr(10).join(f'    <position name="{j}" joint="{j}"/>' for j in JOINTS)}
  </actuator>
</mujoco>
"""


class ArmEnv(SimEnv):
    """One task of the ``arm`` suite: reach the target of the task's colour.

    Args:
        task: an ``arm`` task.
        seed, image_size, cameras: see `SimEnv`; cameras are any of `CAMERAS`.

    """

    command_kind = 'joint'
    action_dim = len(JOINTS)
    control_period = TIMESTEP * SUBSTEPS

    def __init__(self, task: TaskSpec, seed: int = 0, image_size=128,
                 cameras: Optional[Sequence[str]] = None) -> None:
        super().__init__(task, seed, image_size, cameras)
        unknown = [c for c in self.cameras if c not in CAMERAS]
        if unknown:
            raise TaskError(f'unknown camera(s) {", ".join(unknown)} for the arm suite; '
                            f'choose from {", ".join(CAMERAS)}')
        self.model = mujoco.MjModel.from_xml_string(ARM_XML)
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)  # kinematics for the expert
        self._qpos = np.array([self.model.joint(j).qposadr[0] for j in JOINTS])
        self.joint_range = self.model.jnt_range[[self.model.joint(j).id for j in JOINTS]]
        self._ee = self.model.site('ee').id
        self._mocap = {c: self.model.body_mocapid[self.model.body(f'target_{c}').id]
                       for c in COLOURS}
        self.colour = task.params['colour']

    @property
    def target_position(self) -> np.ndarray:
        """(3,) position of the instructed target, m."""
        return self.data.mocap_pos[self._mocap[self.colour]].copy()

    # ----------------------------------------------------------------- layout and start
    def _reset_sim(self, rng: np.random.Generator) -> None:
        targets = _sample_targets(rng)
        start = np.array(READY_POSE) + rng.uniform(-1.0, 1.0, 4) * np.array(START_NOISE)
        mujoco.mj_resetData(self.model, self.data)
        for colour, position in zip(COLOURS, targets, strict=True):
            self.data.mocap_pos[self._mocap[colour]] = position
        self.data.qpos[self._qpos] = start
        self.data.ctrl[:] = start
        mujoco.mj_forward(self.model, self.data)

    def _step_sim(self, action: np.ndarray) -> None:
        self.data.ctrl[:] = np.clip(action, self.joint_range[:, 0], self.joint_range[:, 1])
        mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS)

    def _evaluate_success(self) -> bool:
        distance = np.linalg.norm(self.data.site_xpos[self._ee] - self.target_position)
        return bool(distance < SUCCESS_RADIUS)

    def _expert_state(self) -> np.ndarray:
        """(7,): joint positions (rad) and the instructed target's position (m)."""
        return np.concatenate([self.data.qpos[self._qpos], self.target_position])

    def expert_action(self, obs: Optional[Observation] = None) -> np.ndarray:
        """Damped least-squares step of the fingertip towards the target: (4,) joint targets."""
        state = self._expert_state() if obs is None else obs.state
        q, target = state[:4], state[4:7]
        scratch = self._scratch
        scratch.qpos[self._qpos] = q
        mujoco.mj_kinematics(self.model, scratch)
        mujoco.mj_comPos(self.model, scratch)
        error = target - scratch.site_xpos[self._ee]
        reach = EXPERT_SPEED * self.control_period
        distance = np.linalg.norm(error)
        if distance > reach:
            error *= reach / distance
        jac = np.zeros((3, self.model.nv))
        mujoco.mj_jacSite(self.model, scratch, jac, None, self._ee)
        jac = jac[:, self._qpos]  # hinge joints: dof index == qpos index here
        dq = jac.T @ np.linalg.solve(jac @ jac.T + EXPERT_DAMPING ** 2 * np.eye(3), error)
        dq = np.clip(dq, -EXPERT_MAX_JOINT_STEP, EXPERT_MAX_JOINT_STEP)
        return np.clip(q + dq, self.joint_range[:, 0], self.joint_range[:, 1])

    # ----------------------------------------------------------------- sensing
    def proprio(self) -> np.ndarray:
        """(4,) float32 joint positions, rad."""
        return self.data.qpos[self._qpos].astype(np.float32)

    def joint_state(self) -> Tuple[Tuple[str, ...], np.ndarray]:
        """The four joint names and positions (rad)."""
        return JOINTS, self.data.qpos[self._qpos].astype(np.float64)

    def ee_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        """Fingertip position (m) and orientation (x, y, z, w) in the world frame."""
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._ee])
        w, x, y, z = quat
        return self.data.site_xpos[self._ee].copy(), np.array([x, y, z, w])

    def _model(self):
        return self.model

    def _data(self):
        return self.data

    # ----------------------------------------------------------------- units
    def action_to_command(self, action) -> JointCommand:
        """Joint targets (rad) -> a one-point trajectory reaching them in one control period."""
        return JointCommand(JOINTS, np.asarray(action, dtype=np.float64).copy(),
                            self.control_period)

    def command_to_action(self, command: JointCommand) -> np.ndarray:
        """A joint command -> (4,) targets in this arm's joint order, clipped to the limits."""
        names = tuple(command.names)
        if sorted(names) != sorted(JOINTS):
            raise ValueError(f'joint command names {names} do not match the arm joints {JOINTS}')
        positions = dict(zip(names, np.asarray(command.positions, dtype=np.float64), strict=True))
        action = np.array([positions[j] for j in JOINTS])
        return np.clip(action, self.joint_range[:, 0], self.joint_range[:, 1])


def _sample_targets(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) target positions (red, green, blue), pairwise at least `TARGET_SPACING` apart."""
    while True:
        radius = rng.uniform(*TARGET_RADIUS_RANGE, size=3)
        azimuth = rng.uniform(*TARGET_AZIMUTH_RANGE, size=3)
        height = rng.uniform(*TARGET_HEIGHT_RANGE, size=3)
        points = np.stack([radius * np.cos(azimuth), radius * np.sin(azimuth), height], -1)
        gaps = np.linalg.norm(points[:, None] - points[None], axis=-1)[np.triu_indices(3, 1)]
        if gaps.min() >= TARGET_SPACING:
            return points
