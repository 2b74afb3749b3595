"""Action vectors -> command messages, for the four command modes of the policy node.

==================  ==============================================  =======================
``command_mode``    topics (relative; ``~/debug/<topic>`` in dry run)  action entries
==================  ==============================================  =======================
``twist``           ``ee_command`` geometry_msgs/TwistStamped       vx, vy, vz (m/s), grip
                    + ``gripper_command`` std_msgs/Float64
``pose``            ``ee_target`` geometry_msgs/PoseStamped         x, y, z (m), grip
                    + ``gripper_command`` std_msgs/Float64
``joint_trajectory``  ``joint_command`` trajectory_msgs/JointTrajectory  joint targets (rad)
                    (this tick's target and the rest of the chunk,  (+ grip)
                    one point per control period, "start on receipt")
``joint_forward``   ``forward_command`` std_msgs/Float64MultiArray  joint targets (rad)
                    (a ros2_control forward position controller)     (+ grip)
==================  ==============================================  =======================

The gripper entry (``gripper_index``, -1 for none) always goes to ``gripper_command``.
Every stamped command carries the **source image stamp** of the tick it answers, like the
recorded bags (docs/data-format.md), so a lock-step simulator matches command to step and
an observer measures camera-to-command latency from the header alone — except joint
trajectories: ros2_control's joint_trajectory_controller reads a trajectory's header stamp
as its start time and drops one that ends in the past, so a trajectory carries a **zero
stamp** ("start on receipt") and the image stamp goes out beside it on
``~/command_source`` (std_msgs/Header: stamp = image stamp, frame_id = the command topic).
Its points are this tick's target and the chunk's remaining (safety-filtered) targets at
``time_from_start`` = 1, 2, ... control periods, so the controller has the plan the policy
already predicted; each new tick replaces it. The gripper command is published before the
arm command of the same tick.

Holding: ``twist`` publishes a zero twist (and repeats the last gripper command: holding an
object must not drop it); the position modes repeat the last target, or the measured state
when nothing was commanded yet.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .parameters import COMMAND_MODES as MODES  # noqa: F401  (re-exported)
SAFETY_KIND = {'twist': 'ee_velocity', 'pose': 'ee_position',
               'joint_trajectory': 'joint_position', 'joint_forward': 'joint_position'}
ARM_TOPIC = {'twist': 'ee_command', 'pose': 'ee_target', 'joint_trajectory': 'joint_command',
             'joint_forward': 'forward_command'}


def is_end_effector(mode: str) -> bool:
    """Whether `mode` commands the end effector (x, y, z first) rather than joints."""
    return mode in ('twist', 'pose')


class CommandOutput:
    """Publishes actions and holds for one command mode (see the module docstring).

    Args:
        node: the rclpy node.
        mode: one of `MODES`.
        frame_id: frame of end-effector commands.
        joint_names: joint names of the joint entries (joint modes).
        gripper_index: index of the gripper entry in the action, or None.
        period: control period (s): a trajectory point's ``time_from_start``.

    """

    def __init__(self, node, mode: str, frame_id: str, joint_names: Sequence[str],
                 gripper_index: Optional[int], period: float):
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from std_msgs.msg import Float64, Float64MultiArray
        from trajectory_msgs.msg import JointTrajectory

        from .qos import COMMAND
        self.mode, self.frame_id = mode, frame_id
        self.joint_names = list(joint_names)
        self.gripper_index = gripper_index
        self.period = period
        arm_type = {'twist': TwistStamped, 'pose': PoseStamped,
                    'joint_trajectory': JointTrajectory,
                    'joint_forward': Float64MultiArray}[mode]
        topic = ARM_TOPIC[mode]
        self._arm = {False: node.create_publisher(arm_type, topic, COMMAND),
                     True: node.create_publisher(arm_type, f'~/debug/{topic}', COMMAND)}
        self._grip = None
        if gripper_index is not None:
            self._grip = {False: node.create_publisher(Float64, 'gripper_command', COMMAND),
                          True: node.create_publisher(Float64, '~/debug/gripper_command',
                                                      COMMAND)}
        # Joint trajectories carry a zero stamp; the image stamp goes here (docstring).
        self._source = None
        if mode == 'joint_trajectory':
            from std_msgs.msg import Header
            self._source = node.create_publisher(Header, '~/command_source', COMMAND)
        self.last_arm: Optional[np.ndarray] = None
        self.last_gripper: Optional[float] = None
        self.orientation = (0.0, 0.0, 0.0, 1.0)

    def close(self, node) -> None:
        """Destroy this output's publishers on `node` (the policy's cleanup)."""
        for pubs in (self._arm, self._grip or {}):
            for pub in pubs.values():
                node.destroy_publisher(pub)
        if self._source is not None:
            node.destroy_publisher(self._source)

    def split(self, action: np.ndarray):
        """(A,) -> (arm entries, gripper value or None)."""
        g = self.gripper_index
        if g is None:
            return np.asarray(action, dtype=np.float64), None
        arm = np.delete(np.asarray(action, dtype=np.float64), g)
        return arm, float(action[g])

    @property
    def topics(self) -> List[str]:
        """The command topics (resolved) this output publishes to when not in dry run."""
        pubs = [self._arm[False]] + ([self._grip[False]] if self._grip else [])
        return [p.topic_name for p in pubs]

    def publish(self, action: np.ndarray, stamp, dry_run: bool,
                planned: Sequence[np.ndarray] = ()) -> None:
        """Publish one filtered (A,) action answering the image stamped `stamp`
        (builtin_interfaces/Time); `planned` (joint trajectories) are the filtered (A,)
        actions of the following ticks, sent as the trajectory's later points."""
        arm, grip = self.split(action)
        later = [self.split(a)[0] for a in planned] if self.mode == 'joint_trajectory' else []
        self._send(arm, grip, stamp, dry_run, later)

    def hold(self, stamp, dry_run: bool, measured: Optional[np.ndarray] = None) -> bool:
        """Publish a hold command; False when there is nothing safe to hold at (a position
        mode with no previous target and no measured state)."""
        if self.mode == 'twist':
            self._send(np.zeros(3), self.last_gripper, stamp, dry_run)
            return True
        target = self.last_arm
        if target is None and measured is not None:
            target = np.asarray(measured, dtype=np.float64)[:3 if self.mode == 'pose' else None]
        if target is None:
            return False
        self._send(target, self.last_gripper, stamp, dry_run)
        return True

    def _send(self, arm: np.ndarray, grip: Optional[float], stamp, dry_run: bool,
              later: Sequence[np.ndarray] = ()) -> None:
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from std_msgs.msg import Float64, Float64MultiArray
        from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
        if grip is not None and self._grip is not None:
            self._grip[dry_run].publish(Float64(data=float(grip)))
            self.last_gripper = float(grip)
        if self.mode == 'twist':
            msg = TwistStamped()
            msg.header.stamp, msg.header.frame_id = stamp, self.frame_id
            msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v)
                                                                          for v in arm[:3])
        elif self.mode == 'pose':
            msg = PoseStamped()
            msg.header.stamp, msg.header.frame_id = stamp, self.frame_id
            p, q = msg.pose.position, msg.pose.orientation
            p.x, p.y, p.z = (float(v) for v in arm[:3])
            q.x, q.y, q.z, q.w = (float(v) for v in self.orientation)
        elif self.mode == 'joint_trajectory':
            msg = JointTrajectory()   # header.stamp zero: start on receipt
            msg.joint_names = self.joint_names
            for i, target in enumerate([arm, *later]):
                ns = int(round((i + 1) * self.period * 1e9))
                point = JointTrajectoryPoint(positions=[float(v) for v in target])
                point.time_from_start.sec, point.time_from_start.nanosec = divmod(
                    ns, 1_000_000_000)
                msg.points.append(point)
        else:
            msg = Float64MultiArray(data=[float(v) for v in arm])
        self._arm[dry_run].publish(msg)
        if self._source is not None:
            from std_msgs.msg import Header
            self._source.publish(Header(stamp=stamp, frame_id=self._arm[dry_run].topic_name))
        if self.mode != 'twist':
            self.last_arm = np.asarray(arm, dtype=np.float64).copy()

    def forget(self) -> None:
        """Forget the last targets (a reset): the next hold uses the measured state."""
        self.last_arm = None
