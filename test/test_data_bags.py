"""Writers of real rosbag2 episodes for the dataset tests (no tests of their own).

`write_episode` records one episode the way docs/data-format.md says the collector does,
with values that encode the step index, so a test can check exactly which message ended up
in which sample:

- step t is stamped ``T0 + t * PERIOD`` (header stamps; receive time a little later);
- ``ee_command`` linear = ``action_value(t)[:3]``, ``gripper_command`` = ``action_value(t)[3]``;
- ``ee_pose`` position = ``(t, 2t, 3t) / 4``; ``joint_states`` has j0, j1 and gripper
  (``t / 8``);
- every image's pixels are ``frame_value(t)`` in the red channel (after RGB conversion),
  ``255 - frame_value(t)`` in green, 7 in blue.
"""

from pathlib import Path

import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

TS = get_typestore(Stores.ROS2_KILTED)
T0_NS = 1_700_000_000 * 10**9
PERIOD_NS = 50_000_000          # 20 Hz control
LATENCY_NS = 2_000_000          # receive time = header stamp + 2 ms
JOINTS = ('j0', 'j1', 'gripper')

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
COMPRESSIONS = {None: None, 'file': CompressionMode.FILE, 'message': CompressionMode.MESSAGE,
                'storage': CompressionMode.STORAGE}

METAWORLD_MAP = {
    'cameras': {'front': 'front/image_raw'},
    'proprio': [{'topic': 'ee_pose', 'field': 'position'},
                {'topic': 'joint_states', 'joints': ['gripper']}],
    'action': [{'topic': 'ee_command', 'field': 'linear'},
               {'topic': 'gripper_command', 'field': 'data'}],
    'instruction': {'topic': 'instruction'},
    'image_size': [16, 16],
    'chunk': 4,
}


def action_value(t):
    """The action commanded at step t: exactly representable in float32."""
    return np.array([t, t + 0.5, -t, (t % 2) * 2 - 1], dtype=np.float64)


def proprio_value(t):
    """ee_pose position (3) + gripper joint (1) at step t."""
    return np.array([t / 4, 2 * t / 4, 3 * t / 4, t / 8], dtype=np.float64)


def frame_value(t):
    """The red value of the image recorded at step t."""
    return (10 * t + 3) % 256


def _time(ns):
    return TS.types['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9)


def _header(ns, frame_id='world'):
    return TS.types['std_msgs/msg/Header'](stamp=_time(ns), frame_id=frame_id)


def image_msg(ns, rgb, encoding='rgb8'):
    """A sensor_msgs/Image of the (h, w, 3) uint8 RGB array in the given encoding."""
    if encoding == 'rgb8':
        data = rgb
    elif encoding == 'bgr8':
        data = rgb[..., ::-1]
    elif encoding == 'rgba8':
        data = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    elif encoding == 'bgra8':
        data = np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 9, np.uint8)],
                              axis=-1)
    elif encoding == 'mono8':
        data = rgb[..., :1]
    else:
        raise ValueError(encoding)
    h, w, c = data.shape
    # Pad every row by 4 bytes, as some drivers do, to exercise the `step` handling.
    padded = np.zeros((h, w * c + 4), np.uint8)
    padded[:, :w * c] = data.reshape(h, w * c)
    return TS.types['sensor_msgs/msg/Image'](
        header=_header(ns, 'front_optical_frame'), height=h, width=w, encoding=encoding,
        is_bigendian=0, step=w * c + 4, data=padded.reshape(-1))


def frame_rgb(t, size):
    """The RGB image recorded at step t, (h, w, 3) uint8."""
    img = np.empty(tuple(size) + (3,), np.uint8)
    img[..., 0] = frame_value(t)
    img[..., 1] = 255 - frame_value(t)
    img[..., 2] = 7
    return img


class BagWriter:
    """A rosbags Writer with typed helpers: ``with BagWriter(path) as w: w.write(...)``."""

    def __init__(self, path, storage='mcap', compression=None, custom=None):
        self.writer = Writer(Path(path), version=9, storage_plugin=STORAGES[storage])
        if COMPRESSIONS[compression] is not None:
            self.writer.set_compression(COMPRESSIONS[compression], CompressionFormat.ZSTD)
        for key, value in (custom or {}).items():
            self.writer.set_custom_data(key, value)
        self.connections = {}

    def __enter__(self):
        self.writer.open()
        return self

    def __exit__(self, *exc):
        self.writer.close()
        return False

    def write(self, topic, msg, receive_ns):
        """Write `msg` on `topic` with bag receive time `receive_ns`."""
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(topic, msg.__msgtype__,
                                                                 typestore=TS)
        self.writer.write(self.connections[topic], int(receive_ns),
                          TS.serialize_cdr(msg, msg.__msgtype__))


def write_episode(path, *, steps=10, storage='mcap', compression=None, image_every=1,
                  image_size=(16, 16), encoding='rgb8', instructions=None, custom=None,
                  first_image_step=0, skip_topics=(), swap_steps=None, gripper_delay_ns=0):
    """Record one Meta-World-style episode of `steps` control steps (module docstring).

    `instructions`: {step: text} published at those steps (default: one at step 0; steps
    past the end are written after the last step).
    `image_every` / `first_image_step`: camera rate and start. `skip_topics` leaves topics
    out. `swap_steps` = (a, b) writes the ee_command messages of steps a and b in swapped
    receive order (header stamps stay right), to exercise sorting. `gripper_delay_ns`
    delays the header-less gripper command's receive time after its step.
    """
    instructions = {0: 'open the drawer'} if instructions is None else instructions
    custom = {'hybrid_vla.task': 'drawer-open', 'hybrid_vla.suite': 'metaworld',
              'hybrid_vla.seed': '7', 'hybrid_vla.success': 'true',
              'hybrid_vla.control_period': str(PERIOD_NS / 1e9), **(custom or {})}
    types = TS.types
    with BagWriter(path, storage, compression, custom) as bag:
        for t in range(steps):
            ns = T0_NS + t * PERIOD_NS
            recv = ns + LATENCY_NS

            def put(topic, msg, at=recv):
                if topic not in skip_topics:
                    bag.write(topic, msg, at)

            if t in instructions:
                put('instruction', types['std_msgs/msg/String'](data=instructions[t]), ns)
            if t >= first_image_step and (t - first_image_step) % image_every == 0:
                put('front/image_raw', image_msg(ns, frame_rgb(t, image_size), encoding))
            p = proprio_value(t)
            pose = types['geometry_msgs/msg/Pose'](
                position=types['geometry_msgs/msg/Point'](x=p[0], y=p[1], z=p[2]),
                orientation=types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0))
            put('ee_pose', types['geometry_msgs/msg/PoseStamped'](header=_header(ns),
                                                                    pose=pose))
            put('joint_states', types['sensor_msgs/msg/JointState'](
                header=_header(ns), name=list(JOINTS),
                position=np.array([0.1 * t, -0.1 * t, p[3]]),
                velocity=np.zeros(3), effort=np.zeros(0)))
            stamp_t = t
            if swap_steps is not None and t in swap_steps:
                stamp_t = swap_steps[1] if t == swap_steps[0] else swap_steps[0]
            a = action_value(stamp_t)
            v3 = types['geometry_msgs/msg/Vector3']
            twist = types['geometry_msgs/msg/Twist'](linear=v3(x=a[0], y=a[1], z=a[2]),
                                                     angular=v3(x=0.0, y=0.0, z=0.0))
            put('ee_command', types['geometry_msgs/msg/TwistStamped'](
                header=_header(T0_NS + stamp_t * PERIOD_NS), twist=twist))
            # Float64 has no header: its receive time is the step's time.
            put('gripper_command', types['std_msgs/msg/Float64'](data=action_value(t)[3]),
                ns + gripper_delay_ns)
        for t in sorted(k for k in instructions if k >= steps):  # after the last step
            bag.write('instruction', types['std_msgs/msg/String'](data=instructions[t]),
                      T0_NS + t * PERIOD_NS)
    return Path(path)


def write_arm_episode(path, *, steps=6, joints=('j0', 'j1', 'j2', 'j3')):
    """A joint-space episode: joint_states + JointTrajectory commands, fixed-text map."""
    types = TS.types
    with BagWriter(path) as bag:
        for t in range(steps):
            ns = T0_NS + t * PERIOD_NS
            bag.write('front/image_raw', image_msg(ns, frame_rgb(t, (16, 16))), ns)
            # Joint order in the message differs from the map's on purpose.
            names = list(reversed(joints))
            bag.write('joint_states', types['sensor_msgs/msg/JointState'](
                header=_header(ns), name=names,
                position=np.array([10 * t + i for i in range(len(names))], np.float64),
                velocity=np.zeros(0), effort=np.zeros(0)), ns)
            point = types['trajectory_msgs/msg/JointTrajectoryPoint'](
                positions=np.array([100 * t + i for i in range(len(names))], np.float64),
                velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
                time_from_start=types['builtin_interfaces/msg/Duration'](sec=0,
                                                                          nanosec=PERIOD_NS))
            bag.write('joint_command', types['trajectory_msgs/msg/JointTrajectory'](
                header=_header(ns), joint_names=names, points=[point]), ns)
    return Path(path)
