"""The simulated-robot interface every suite implements, and the commands it understands.

One `SimEnv` is one task of one suite. A closed-loop evaluation, the collector and the
simulated robot node all drive it the same way::

    env = make_env('metaworld', 'drawer-open', seed=3)       # or make_env('arm', 'reach-red')
    obs = env.reset()                                         # layout from the seed
    text = env.instruction()                                  # this episode's phrasing
    while True:
        action = env.expert_action(obs)                       # or a policy's action
        obs, success, done = env.step(action)
        if done:
            break

Actions are in the simulator's units: Meta-World ``[dx, dy, dz, grip]`` in [-1, 1] (one unit
moves the hand target `action_scale` metres per control step; grip +1 closes), the arm the
target joint positions in radians. The ROS commands a policy node publishes
(`EndEffectorCommand` ~ TwistStamped + Float64, `JointCommand` ~ JointTrajectory) convert
with `action_to_command` / `command_to_action`.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from typing import Dict, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from .rendering import CameraRenderer, parse_image_size
from .tasks import DEFAULT_EXPERT, TaskSpec

# Control steps recorded after the first success, so demonstrations show the settled state.
LINGER_STEPS = 5


@dataclasses.dataclass
class Observation:
    """What the robot senses at one control step.

    Attributes:
        step: control step index (0 at reset).
        time: simulation time of the step in seconds (step * control_period).
        images: camera name -> (H, W, 3) uint8 RGB, upright; empty with no cameras. A
            `RenderedOnRead` mapping when the env's `render_on_read` is set.
        proprio: (P,) float32; Meta-World: end-effector xyz (m) + gripper opening (0..1),
            arm: joint positions (rad).
        joint_names: names of `joint_positions` (Meta-World ends with ``gripper``).
        joint_positions: (J,) float64, rad (the ``gripper`` entry is Meta-World's opening).
        ee_position: (3,) float64 end-effector position in the world frame, metres.
        ee_orientation: (4,) float64 end-effector orientation quaternion (x, y, z, w).
        state: privileged simulator state the scripted expert reads (not for policies).

    """

    step: int
    time: float
    images: Mapping
    proprio: np.ndarray
    joint_names: Tuple[str, ...]
    joint_positions: np.ndarray
    ee_position: np.ndarray
    ee_orientation: np.ndarray
    state: np.ndarray


@dataclasses.dataclass(frozen=True)
class EndEffectorCommand:
    """An end-effector velocity command (what geometry_msgs/TwistStamped + Float64 carry).

    Attributes:
        linear_velocity: (3,) commanded hand velocity in the world frame, m/s.
        gripper: gripper command in [-1, 1]; +1 closes.

    """

    linear_velocity: np.ndarray
    gripper: float


@dataclasses.dataclass(frozen=True)
class JointCommand:
    """A joint position command (what a one-point trajectory_msgs/JointTrajectory carries).

    Attributes:
        names: joint names, in the order of `positions`.
        positions: (J,) target joint positions, rad.
        time_from_start: seconds in which the targets should be reached (one control period).

    """

    names: Tuple[str, ...]
    positions: np.ndarray
    time_from_start: float


Command = Union[EndEffectorCommand, JointCommand]


class StaleObservation(RuntimeError):
    """A `RenderedOnRead` observation's images were first read after its env moved on."""


class RenderedOnRead(Mapping):
    """Camera name -> (H, W, 3) uint8 image, rendered on the first read, not at the step.

    Rendering is most of a simulated control step's cost on a CPU (a few ms per 128x128
    frame against about 1 ms of physics), and many observations are never looked at: the
    scripted expert reads the state, and a policy that replans every N ticks encodes one
    frame in N. The images are those of the state the observation was taken in; reading
    them after the env has stepped or reset raises `StaleObservation` instead of
    returning a later frame.
    """

    def __init__(self, env: SimEnv) -> None:
        self._env = env
        self._moment = env._moment
        self._images: Optional[Dict[str, np.ndarray]] = None

    def _rendered(self) -> Dict[str, np.ndarray]:
        if self._images is None:
            if self._env._moment != self._moment:
                raise StaleObservation(
                    f'{self._env.task.name}: the images of an observation were first read '
                    'after the env stepped; read them before the next step() or reset()')
            self._images = self._env.render()
        return self._images

    def __getitem__(self, camera: str) -> np.ndarray:
        if camera not in self._env.cameras:
            raise KeyError(camera)
        return self._rendered()[camera]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env.cameras)

    def __len__(self) -> int:
        return len(self._env.cameras)


class SimEnv(abc.ABC):
    """One task of a suite: reset from a seed, step with actions, render, expert, units.

    Args:
        task: the task.
        seed: seed of the first episode (`reset` without a seed uses it).
        image_size: int, (h, w) or ``'HxW'``; every camera renders at this size.
        cameras: camera names to render (default: the suite's ``front``); empty for none.

    Subclasses set `control_period` (s), `command_kind` (``'end_effector'`` or ``'joint'``)
    and `action_dim`, and implement the abstract methods.

    """

    control_period: float
    command_kind: str
    action_dim: int
    start_jitter: float = 0.0  # metres per axis; only the metaworld suite varies its start
    expert_name: str = DEFAULT_EXPERT  # which scripted expert labels (mt50 also: 'revised')
    default_cameras: Tuple[str, ...] = ('front',)
    # True: observations render their images when first read (`RenderedOnRead`), which a
    # closed-loop evaluation uses; False: every observation renders at once (recording).
    render_on_read: bool = False

    def __init__(self, task: TaskSpec, seed: int = 0, image_size=128,
                 cameras: Optional[Sequence[str]] = None) -> None:
        self.task = task
        self.seed = int(seed)
        self.image_size = parse_image_size(image_size)
        self.cameras = tuple(self.default_cameras if cameras is None else cameras)
        self._renderer: Optional[CameraRenderer] = None
        self._steps = 0
        self._first_success: Optional[int] = None
        self._success = False
        self._started = False
        self._moment = 0  # counts resets and steps; a `RenderedOnRead` checks it

    # ----------------------------------------------------------------- episode loop
    def reset(self, seed: Optional[int] = None) -> Observation:
        """Start an episode whose layout is drawn from `seed` (default: the env's seed)."""
        if seed is not None:
            self.seed = int(seed)
        self._reset_sim(np.random.default_rng(self.seed))
        self._moment += 1
        self._started = True
        self._steps = 0
        self._first_success = None
        self._success = self._evaluate_success()
        return self.observe()

    def step(self, action) -> Tuple[Observation, bool, bool]:
        """Apply `action` for one control period.

        Args:
            action: (action_dim,) in the suite's action units (see the module docstring).

        Returns:
            (observation after the step, task solved now, episode over). The episode is over
            `LINGER_STEPS` steps after the first success or at the task's `max_steps`.

        """
        if not self._started:
            raise RuntimeError(f'{self.task.name}: call reset() before step()')
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (self.action_dim,):
            raise ValueError(f'{self.task.name}: expected an action of shape '
                             f'({self.action_dim},), got {action.shape}')
        if not np.all(np.isfinite(action)):
            raise ValueError(f'{self.task.name}: action has NaN or Inf: {action}')
        self._step_sim(action)
        self._moment += 1
        self._steps += 1
        self._success = self._evaluate_success()
        if self._success and self._first_success is None:
            self._first_success = self._steps
        return self.observe(), self._success, self.done

    @property
    def steps(self) -> int:
        """Control steps taken in this episode."""
        return self._steps

    @property
    def success(self) -> bool:
        """Whether the task is solved in the current state."""
        return self._success

    @property
    def succeeded(self) -> bool:
        """Whether the task was solved at any step of this episode (the episode's success)."""
        return self._first_success is not None

    @property
    def done(self) -> bool:
        """True `LINGER_STEPS` steps after the first success, or at the step limit."""
        if self._steps >= self.task.max_steps:
            return True
        return (self._first_success is not None
                and self._steps >= self._first_success + LINGER_STEPS)

    # ----------------------------------------------------------------- sensing
    def observe(self) -> Observation:
        """The observation of the current state (renders every camera, now or, with
        `render_on_read`, when its images are first read)."""
        names, positions = self.joint_state()
        position, orientation = self.ee_pose()
        images = RenderedOnRead(self) if self.render_on_read else self.render()
        return Observation(step=self._steps, time=self._steps * self.control_period,
                           images=images, proprio=self.proprio(),
                           joint_names=names, joint_positions=positions,
                           ee_position=position, ee_orientation=orientation,
                           state=self._expert_state())

    def render(self) -> Dict[str, np.ndarray]:
        """Camera name -> (H, W, 3) uint8 RGB upright image of the current state."""
        if not self.cameras:
            return {}
        if self._renderer is None:
            self._renderer = CameraRenderer(self._model(), self.cameras, *self.image_size)
        return self._renderer.render(self._data())

    def instruction(self, index: Optional[int] = None, held_out: bool = False) -> str:
        """The instruction text.

        Args:
            index: phrasing number; default: the training phrasing this episode's seed picks
                (``seed % number of phrasings``), or held-out phrasing 0.
            held_out: take the phrasing from the held-out list (never recorded).

        """
        if index is None and not held_out:
            index = self.seed % len(self.task.instructions)
        return self.task.instruction(index, held_out=held_out)

    # ----------------------------------------------------------------- units
    @abc.abstractmethod
    def action_to_command(self, action) -> Command:
        """The ROS-unit command equivalent to the simulator `action`."""

    @abc.abstractmethod
    def command_to_action(self, command: Command) -> np.ndarray:
        """The simulator action equivalent to a ROS-unit `command` (clipped to its range)."""

    # ----------------------------------------------------------------- suite hooks
    @abc.abstractmethod
    def proprio(self) -> np.ndarray:
        """(P,) float32 proprioception of the current state (see `Observation.proprio`)."""

    @abc.abstractmethod
    def joint_state(self) -> Tuple[Tuple[str, ...], np.ndarray]:
        """(names, (J,) positions) for sensor_msgs/JointState."""

    @abc.abstractmethod
    def ee_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        """((3,) position in m, (4,) quaternion x, y, z, w) of the end effector, world frame."""

    @abc.abstractmethod
    def expert_action(self, obs: Optional[Observation] = None) -> np.ndarray:
        """The scripted expert's (action_dim,) action for `obs` (default: the current state)."""

    @abc.abstractmethod
    def _reset_sim(self, rng: np.random.Generator) -> None:
        """Lay out the scene from `rng` and put the simulator in the start state."""

    @abc.abstractmethod
    def _step_sim(self, action: np.ndarray) -> None:
        """Advance the simulator by one control period under `action`."""

    @abc.abstractmethod
    def _evaluate_success(self) -> bool:
        """Whether the current state solves the task."""

    @abc.abstractmethod
    def _expert_state(self) -> np.ndarray:
        """The privileged state vector the expert reads."""

    @abc.abstractmethod
    def _model(self):
        """The mujoco.MjModel being simulated."""

    @abc.abstractmethod
    def _data(self):
        """The mujoco.MjData being simulated."""

    def close(self) -> None:
        """Release the renderer's OpenGL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
