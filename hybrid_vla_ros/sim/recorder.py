"""Write one simulated episode as a rosbag2 directory (MCAP), as docs/data-format.md specifies.

Topics (relative names), one message per control step unless noted, all stamped with the
simulation time of the step (the header stamp and the bag's log time are equal; the
observation of step t and the command of step t carry the same stamp):

=========================  ===================================  ===========================
topic                      type                                 content
=========================  ===================================  ===========================
``<camera>/image_raw``     sensor_msgs/msg/Image                rgb8, upright, frame
                                                                ``<camera>_optical_frame``
``joint_states``           sensor_msgs/msg/JointState           joint positions (rad);
                                                                Meta-World adds ``gripper``
``ee_pose``                geometry_msgs/msg/PoseStamped        end effector, frame ``world``
``instruction``            std_msgs/msg/String                  once, at the episode start
``ee_command``             geometry_msgs/msg/TwistStamped       end-effector tasks: m/s
``gripper_command``        std_msgs/msg/Float64                 end-effector tasks: [-1, 1]
``joint_command``          trajectory_msgs/msg/JointTrajectory  joint tasks: one point
=========================  ===================================  ===========================

Episode metadata goes to the bag's ``custom_data``: ``hybrid_vla.task``, ``.suite``,
``.seed``, ``.success`` (``true``/``false``), ``.instruction``, ``.control_period`` (s), and
where a collection option set them ``.action_noise`` / ``.noise_correlation``,
``.start_jitter``, ``.driver_policy`` / ``.driver_share`` / ``.driver_steps`` and ``.expert``.

A bag is written under the hidden ``.partial/`` directory beside its destination and renamed
into place by `EpisodeWriter.commit`, so an interrupted episode never looks like a finished
one (one collector per output directory).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ..data.bag import DEFAULT_BAG_VERSION, check_bag_version
from .env import Command, EndEffectorCommand, JointCommand, Observation

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
_T = TYPESTORE.types

IMAGE, JOINT_STATE, POSE = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/JointState',
                            'geometry_msgs/msg/PoseStamped')
STRING, TWIST, FLOAT64, TRAJECTORY = ('std_msgs/msg/String', 'geometry_msgs/msg/TwistStamped',
                                      'std_msgs/msg/Float64',
                                      'trajectory_msgs/msg/JointTrajectory')
METADATA_KEYS = ('task', 'suite', 'seed', 'success', 'instruction', 'control_period')
WORLD_FRAME = 'world'
PARTIAL_DIR = '.partial'


def partial_path(path: Path) -> Path:
    """Where the bag for `path` is written until it is complete (same file system)."""
    return path.parent / PARTIAL_DIR / path.name


def topics_for(cameras: Sequence[str], command_kind: str) -> Dict[str, str]:
    """Topic -> message type for `cameras` and ``end_effector`` or ``joint`` commands."""
    topics = {f'{cam}/image_raw': IMAGE for cam in cameras}
    topics.update({'joint_states': JOINT_STATE, 'ee_pose': POSE, 'instruction': STRING})
    if command_kind == 'end_effector':
        topics.update({'ee_command': TWIST, 'gripper_command': FLOAT64})
    elif command_kind == 'joint':
        topics['joint_command'] = TRAJECTORY
    else:
        raise ValueError(f"command kind {command_kind!r}: expected 'end_effector' or 'joint'")
    return topics


def _nanoseconds(seconds: float) -> int:
    return int(round(seconds * 1e9))


def _header(ns: int, frame_id: str = ''):
    stamp = _T['builtin_interfaces/msg/Time'](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
    return _T['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id)


def _vector3(values):
    x, y, z = (float(v) for v in values)
    return _T['geometry_msgs/msg/Vector3'](x=x, y=y, z=z)


def image_message(ns: int, camera: str, image: np.ndarray):
    """sensor_msgs/Image (rgb8) of an (H, W, 3) uint8 image."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'camera {camera}: expected an (H, W, 3) uint8 image, got '
                         f'{image.shape} {image.dtype}')
    height, width, _ = image.shape
    return _T[IMAGE](header=_header(ns, f'{camera}_optical_frame'), height=height, width=width,
                     encoding='rgb8', is_bigendian=0, step=width * 3,
                     data=np.ascontiguousarray(image).reshape(-1))


def joint_state_message(ns: int, names: Sequence[str], positions: np.ndarray):
    """sensor_msgs/JointState with positions only (velocity and effort empty)."""
    empty = np.zeros(0, dtype=np.float64)
    return _T[JOINT_STATE](header=_header(ns), name=list(names),
                           position=np.asarray(positions, dtype=np.float64), velocity=empty,
                           effort=empty)


def pose_message(ns: int, position: np.ndarray, orientation: np.ndarray):
    """geometry_msgs/PoseStamped in the world frame; orientation is (x, y, z, w)."""
    x, y, z = (float(v) for v in position)
    qx, qy, qz, qw = (float(v) for v in orientation)
    pose = _T['geometry_msgs/msg/Pose'](
        position=_T['geometry_msgs/msg/Point'](x=x, y=y, z=z),
        orientation=_T['geometry_msgs/msg/Quaternion'](x=qx, y=qy, z=qz, w=qw))
    return _T[POSE](header=_header(ns, WORLD_FRAME), pose=pose)


def twist_message(ns: int, linear_velocity: np.ndarray):
    """geometry_msgs/TwistStamped: linear velocity (m/s) in the world frame, angular zero."""
    twist = _T['geometry_msgs/msg/Twist'](linear=_vector3(linear_velocity),
                                          angular=_vector3((0.0, 0.0, 0.0)))
    return _T[TWIST](header=_header(ns, WORLD_FRAME), twist=twist)


def trajectory_message(ns: int, command: JointCommand):
    """trajectory_msgs/JointTrajectory with one point reached at `command.time_from_start`."""
    dt = _nanoseconds(command.time_from_start)
    empty = np.zeros(0, dtype=np.float64)
    point = _T['trajectory_msgs/msg/JointTrajectoryPoint'](
        positions=np.asarray(command.positions, dtype=np.float64), velocities=empty,
        accelerations=empty, effort=empty,
        time_from_start=_T['builtin_interfaces/msg/Duration'](sec=dt // 1_000_000_000,
                                                              nanosec=dt % 1_000_000_000))
    return _T[TRAJECTORY](header=_header(ns), joint_names=list(command.names), points=[point])


class EpisodeWriter:
    """One episode's rosbag2 (MCAP), written atomically.

    Use as a context manager; call `commit` when the episode is complete. Leaving the block
    without a commit (an exception, Ctrl-C) deletes the partial bag::

        with EpisodeWriter(out / 'drawer-open_3', ['front'], 'end_effector') as bag:
            bag.write_instruction(0.0, text)
            bag.write_observation(obs)
            bag.write_command(obs.time, env.action_to_command(action))
            bag.commit({'task': ..., 'suite': ..., 'seed': ..., 'success': ..., ...})

    Args:
        path: the bag directory to create; it must not exist.
        cameras: camera names whose images are recorded.
        command_kind: ``end_effector`` (ee_command + gripper_command) or ``joint``
            (joint_command).
        compress: zstd chunk compression inside the MCAP file (readers need no setting).
        shared_partial_dir: other writers (collector worker processes) use the same
            ``.partial/`` directory at the same time, so it is never removed here (another
            writer may be about to create its bag in it); the caller removes it.

    """

    def __init__(self, path, cameras: Sequence[str], command_kind: str,
                 compress: bool = True, shared_partial_dir: bool = False,
                 bag_version: int = DEFAULT_BAG_VERSION) -> None:
        self.path = Path(path)
        self.bag_version = check_bag_version(bag_version)
        if self.path.exists():
            raise FileExistsError(f'{self.path} exists already; remove it or choose another '
                                  f'output directory')
        self.topics = topics_for(cameras, command_kind)
        self.cameras = tuple(cameras)
        self.command_kind = command_kind
        self.compress = compress
        self._tmp = partial_path(self.path)
        self._shared_partial_dir = shared_partial_dir
        self._writer: Optional[Writer] = None
        self._connections = {}
        self._committed = False

    def __enter__(self) -> EpisodeWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:
            self.abort()

    def open(self) -> None:
        """Create the partial bag (a stale one from a killed run is replaced)."""
        if self._tmp.exists():
            shutil.rmtree(self._tmp)
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        writer = Writer(self._tmp, version=self.bag_version,
                        storage_plugin=StoragePlugin.MCAP)
        if self.compress:
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        writer.open()
        self._writer = writer
        self._connections = {topic: writer.add_connection(topic, msgtype, typestore=TYPESTORE)
                             for topic, msgtype in self.topics.items()}

    def _write(self, topic: str, ns: int, message) -> None:
        data = TYPESTORE.serialize_cdr(message, self.topics[topic])
        self._writer.write(self._connections[topic], ns, data)

    def write_instruction(self, time: float, text: str) -> None:
        """The instruction (std_msgs/String) at `time` seconds."""
        self._write('instruction', _nanoseconds(time), _T[STRING](data=text))

    def write_observation(self, obs: Observation) -> None:
        """Images, joint state and end-effector pose of one step, stamped `obs.time`."""
        ns = _nanoseconds(obs.time)
        for camera in self.cameras:
            self._write(f'{camera}/image_raw', ns, image_message(ns, camera, obs.images[camera]))
        self._write('joint_states', ns, joint_state_message(ns, obs.joint_names,
                                                            obs.joint_positions))
        self._write('ee_pose', ns, pose_message(ns, obs.ee_position, obs.ee_orientation))

    def write_command(self, time: float, command: Command) -> None:
        """The command of the step at `time` seconds (same stamp as its observation)."""
        ns = _nanoseconds(time)
        if isinstance(command, EndEffectorCommand) and self.command_kind == 'end_effector':
            self._write('ee_command', ns, twist_message(ns, command.linear_velocity))
            self._write('gripper_command', ns, _T[FLOAT64](data=float(command.gripper)))
        elif isinstance(command, JointCommand) and self.command_kind == 'joint':
            self._write('joint_command', ns, trajectory_message(ns, command))
        else:
            raise TypeError(f'a {type(command).__name__} cannot be recorded in a '
                            f'{self.command_kind} episode')

    def commit(self, metadata: Mapping[str, object]) -> Path:
        """Store the episode metadata, close the bag and move it into place; returns its path.

        Args:
            metadata: the `METADATA_KEYS` (``success`` a bool; every value becomes a string
                under ``hybrid_vla.<key>``), and any further keys (e.g. ``action_noise``).

        """
        missing = [k for k in METADATA_KEYS if k not in metadata]
        if missing:
            raise ValueError(f'episode metadata lacks {", ".join(missing)}')
        for key in [*METADATA_KEYS, *(k for k in metadata if k not in METADATA_KEYS)]:
            value = metadata[key]
            text = ('true' if value else 'false') if isinstance(value, bool) else str(value)
            self._writer.set_custom_data(f'hybrid_vla.{key}', text)
        self._writer.close()
        self._writer = None
        self._tmp.rename(self.path)
        self._committed = True
        self._remove_empty_partial_dir()
        return self.path

    def abort(self) -> None:
        """Discard the partial bag."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._remove_empty_partial_dir()

    def _remove_empty_partial_dir(self) -> None:
        if self._shared_partial_dir:
            return
        try:
            self._tmp.parent.rmdir()
        except OSError:  # not empty (another bag in progress) or already gone
            pass
