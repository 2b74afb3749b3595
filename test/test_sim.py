"""Simulated tasks recorded as rosbag2: real Meta-World/MuJoCo frames, real MCAP files."""

import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader

from hybrid_vla_ros.sim import LINGER_STEPS, make_env
from hybrid_vla_ros.sim.collect import collect, record_episode

EE_TOPICS = {
    'front/image_raw': 'sensor_msgs/msg/Image',
    'joint_states': 'sensor_msgs/msg/JointState',
    'ee_pose': 'geometry_msgs/msg/PoseStamped',
    'instruction': 'std_msgs/msg/String',
    'ee_command': 'geometry_msgs/msg/TwistStamped',
    'gripper_command': 'std_msgs/msg/Float64',
}
JOINT_TOPICS = {
    'front/image_raw': 'sensor_msgs/msg/Image',
    'joint_states': 'sensor_msgs/msg/JointState',
    'ee_pose': 'geometry_msgs/msg/PoseStamped',
    'instruction': 'std_msgs/msg/String',
    'joint_command': 'trajectory_msgs/msg/JointTrajectory',
}


def read_bag(path):
    """(topic -> type, topic -> [(log time ns, message)], custom_data)."""
    with AnyReader([path]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        messages = {topic: [] for topic in types}
        for conn, t, raw in reader.messages():
            messages[conn.topic].append((t, reader.deserialize(raw, conn.msgtype)))
    meta = yaml.safe_load((path / 'metadata.yaml').read_text())
    return types, messages, meta['rosbag2_bagfile_information']['custom_data']


def stamp_ns(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class Spy:
    """Wraps an env and remembers every action its expert returned."""

    def __init__(self, env):
        self.env, self.actions = env, []

    def __getattr__(self, name):
        return getattr(self.env, name)

    def expert_action(self, obs=None):
        action = self.env.expert_action(obs)
        self.actions.append(action.copy())
        return action


@pytest.mark.parametrize('suite,task,topics', [
    ('metaworld', 'drawer-close', EE_TOPICS),
    ('arm', 'reach-green', JOINT_TOPICS),
])
def test_recorded_episodes_follow_the_contract(tmp_path, suite, task, topics):
    env = make_env(suite, task, image_size=(96, 128))
    spies = []
    for seed in (3, 4):
        spy = Spy(env)
        result = record_episode(spy, seed, tmp_path / f'{task}_{seed}')
        spies.append((seed, spy, result))
    env.close()
    for seed, spy, result in spies:
        types, msgs, custom = read_bag(result.path)
        assert types == topics
        steps = len(spy.actions)
        assert steps == result.steps >= 1 and result.success
        counts = {topic: len(m) for topic, m in msgs.items()}
        assert counts == {t: (1 if t == 'instruction' else steps) for t in topics}
        assert custom == {
            'hybrid_vla.task': task, 'hybrid_vla.suite': suite, 'hybrid_vla.seed': str(seed),
            'hybrid_vla.success': 'true', 'hybrid_vla.instruction': result.instruction,
            'hybrid_vla.control_period': repr(env.control_period)}
        assert msgs['instruction'][0][1].data == result.instruction
        assert result.instruction in env.task.instructions
        # Every step: observation and command stamped alike, at step * control period.
        period_ns = round(env.control_period * 1e9)
        expected = [k * period_ns for k in range(steps)]
        for topic in topics:
            if topic == 'instruction':
                assert msgs[topic][0][0] == 0
                continue
            assert [t for t, _ in msgs[topic]] == expected, topic
            if hasattr(msgs[topic][0][1], 'header'):
                assert [stamp_ns(m) for _, m in msgs[topic]] == expected, topic
        image = msgs['front/image_raw'][0][1]
        assert (image.height, image.width, image.encoding, image.step) == (96, 128, 'rgb8', 384)
        assert image.header.frame_id == 'front_optical_frame'
        assert msgs['ee_pose'][0][1].header.frame_id == 'world'
        actions = np.array(spy.actions)
        if suite == 'metaworld':
            linear = np.array([[m.twist.linear.x, m.twist.linear.y, m.twist.linear.z]
                               for _, m in msgs['ee_command']])
            grip = np.array([m.data for _, m in msgs['gripper_command']])
            scale = env.action_scale / env.control_period
            np.testing.assert_allclose(linear, actions[:, :3] * scale, rtol=0, atol=1e-12)
            np.testing.assert_array_equal(grip, actions[:, 3])
            joints = msgs['joint_states'][0][1]
            assert joints.name[-1] == 'gripper' and len(joints.name) == 8
        else:
            points = [m.points for _, m in msgs['joint_command']]
            assert all(len(p) == 1 for p in points)
            np.testing.assert_array_equal(np.array([p[0].positions for p in points]), actions)
            duration = points[0][0].time_from_start
            assert duration.sec * 1e9 + duration.nanosec == period_ns
            assert msgs['joint_command'][0][1].joint_names == list(
                msgs['joint_states'][0][1].name)
        # The expert succeeded, so the episode ended LINGER_STEPS later, before the limit.
        assert LINGER_STEPS < steps < env.task.max_steps


def test_collection_is_deterministic_per_seed(tmp_path):
    # Seeds 0, 1 in one run (the env is reused) and seed 1 alone: episode 1 must match.
    a = collect(tmp_path / 'a', suite='arm', tasks=['reach-blue'], episodes=2, seed=0,
                progress=False)
    b = collect(tmp_path / 'b', suite='arm', tasks=['reach-blue'], episodes=1, seed=1,
                progress=False)
    assert [r.path.name for r in a.recorded] == ['reach-blue_0', 'reach-blue_1']
    _, first, _ = read_bag(a.recorded[1].path)
    _, second, _ = read_bag(b.recorded[0].path)
    for topic in ('front/image_raw', 'joint_command', 'joint_states'):
        assert len(first[topic]) == len(second[topic])
        for (t1, m1), (t2, m2) in zip(first[topic], second[topic], strict=True):
            assert t1 == t2
            if topic == 'front/image_raw':
                np.testing.assert_array_equal(m1.data, m2.data)
            elif topic == 'joint_command':
                np.testing.assert_array_equal(m1.points[0].positions, m2.points[0].positions)
            else:
                np.testing.assert_array_equal(m1.position, m2.position)


def test_metaworld_episode_is_deterministic_and_seeds_differ():
    env = make_env('metaworld', 'pick-place-green', image_size=64)
    runs = []
    for seed in (7, 7, 8):
        obs = env.reset(seed)
        frames, actions = [obs.images['front']], []
        for _ in range(15):
            actions.append(env.expert_action(obs))
            obs, _, _ = env.step(actions[-1])
            frames.append(obs.images['front'])
        runs.append((np.array(frames), np.array(actions)))
    env.close()
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0][0], runs[2][0][0])


@pytest.mark.parametrize('tasks', [
    ('drawer-open', 'drawer-close'), ('window-open', 'window-close'),
    ('faucet-open', 'faucet-close'), ('door-lock', 'door-unlock'),
    ('pick-place-red', 'pick-place-green', 'pick-place-blue'),
])
def test_same_scene_tasks_differ_only_by_instruction(tasks):
    starts = []
    for name in tasks:
        env = make_env('metaworld', name, seed=11, image_size=64)
        obs = env.reset()
        starts.append((obs, env.instruction(), env.success))
        env.close()
    first = starts[0][0]
    for obs, _, solved in starts:
        assert not solved
        # Identical pictures (the blocks may differ in a pixel or two where a block of the
        # same colour is drawn by another geom), identical robot state.
        diff = np.abs(obs.images['front'].astype(int) - first.images['front'].astype(int))
        assert (diff > 2).sum() <= 2
        np.testing.assert_array_equal(obs.proprio, first.proprio)
        np.testing.assert_array_equal(obs.joint_positions, first.joint_positions)
    assert len({text for _, text, _ in starts}) == len(tasks)


def test_episode_stops_a_few_steps_after_success():
    env = make_env('metaworld', 'drawer-close', seed=2, cameras=[])
    obs = env.reset()
    assert obs.images == {}
    first = None
    while True:
        obs, success, done = env.step(env.expert_action(obs))
        if success and first is None:
            first = env.steps
        if done:
            break
    env.close()
    assert env.succeeded and env.steps == first + LINGER_STEPS


def test_command_units_round_trip():
    mw = make_env('metaworld', 'window-open', cameras=[])
    action = np.array([0.5, -1.0, 0.25, 1.0])
    command = mw.action_to_command(action)
    # 0.01 m per step per unit, 12.5 ms per step: 0.8 m/s per unit.
    np.testing.assert_allclose(command.linear_velocity, [0.4, -0.8, 0.2])
    assert command.gripper == 1.0
    np.testing.assert_allclose(mw.command_to_action(command), action)
    fast = mw.action_to_command(np.array([3.0, 0, 0, 0]))  # clipped like the simulator does
    np.testing.assert_allclose(fast.linear_velocity, [0.8, 0, 0])
    mw.close()
    arm = make_env('arm', 'reach-red', cameras=[])
    with pytest.raises(RuntimeError, match='reset'):
        arm.step(np.zeros(4))
    arm.reset()
    target = np.array([0.1, -0.5, 1.0, 0.2])
    command = arm.action_to_command(target)
    assert command.names == ('shoulder_pan', 'shoulder_lift', 'elbow', 'wrist')
    assert command.time_from_start == pytest.approx(0.05)
    shuffled = type(command)(command.names[::-1], command.positions[::-1], 0.05)
    np.testing.assert_allclose(arm.command_to_action(shuffled), target)
    with pytest.raises(ValueError, match='do not match the arm joints'):
        arm.command_to_action(type(command)(('a', 'b', 'c', 'd'), target, 0.05))
    with pytest.raises(ValueError, match=r'shape \(4,\)'):
        arm.step(np.zeros(3))
    arm.close()


def test_proprio_and_pose_units():
    env = make_env('metaworld', 'faucet-open', seed=0, cameras=[])
    obs = env.reset()
    assert obs.proprio.shape == (4,) and obs.proprio.dtype == np.float32
    np.testing.assert_allclose(obs.proprio[:3], obs.ee_position, atol=1e-6)
    assert 0.0 <= obs.proprio[3] <= 1.0
    assert obs.joint_names[-1] == 'gripper' and obs.joint_positions[-1] == obs.proprio[3]
    assert np.linalg.norm(obs.ee_orientation) == pytest.approx(1.0)
    env.close()
    arm = make_env('arm', 'reach-red', seed=0, cameras=[])
    obs = arm.reset()
    np.testing.assert_allclose(obs.proprio, obs.joint_positions, atol=1e-6)
    assert obs.proprio.shape == (4,)
    arm.close()


def test_unknown_camera_is_a_clear_error():
    with pytest.raises(ValueError, match='choose from front, corner'):
        make_env('metaworld', 'drawer-open', cameras=['eye_in_hand'])


def test_action_noise_perturbs_what_runs_not_what_is_recorded(tmp_path):
    """`--action-noise`: the executed action is the expert's plus correlated noise on dx, dy,
    dz (never the gripper); the recorded command is the expert's clean action for the state
    it saw; the same seed gives the same noise; the bag says how it was collected."""
    env = make_env('metaworld', 'pick-place-red', seed=3, image_size=32)
    expert_actions, executed = [], []
    expert, step = env.expert_action, env.step
    env.expert_action = lambda obs=None: expert_actions.append(expert(obs)) or expert_actions[-1]
    env.step = lambda action: executed.append(np.array(action)) or step(action)
    try:
        result = record_episode(env, 3, tmp_path / 'noisy', action_noise=0.2)
        clean_track = [tuple(env.reset(3).proprio)]
    finally:
        env.close()
    expert_actions, executed = np.array(expert_actions), np.array(executed)
    difference = executed - expert_actions
    assert np.all(np.abs(executed) <= 1.0)
    assert np.abs(difference[:, :3]).max() > 0.1            # dx, dy, dz perturbed
    np.testing.assert_array_equal(difference[:, 3], 0.0)     # gripper never
    # Correlated in time: consecutive perturbations agree in sign far more than chance.
    unclipped = np.abs(executed[:, :3]) < 1.0
    both = unclipped[1:] & unclipped[:-1]
    agree = np.sign(difference[1:, :3]) == np.sign(difference[:-1, :3])
    assert agree[both].mean() > 0.7
    _, topics, custom = read_bag(result.path)
    assert custom['hybrid_vla.action_noise'] == '0.2'
    recorded = np.array([[m.twist.linear.x, m.twist.linear.y, m.twist.linear.z]
                         for _, m in topics['ee_command']])
    ee_first = topics['ee_pose'][0][1].pose.position
    assert np.allclose((ee_first.x, ee_first.y, ee_first.z), clean_track[0][:3], atol=1e-6)
    assert len(recorded) == len(expert_actions) == result.steps
    # The command stores the expert's action in m/s: the same direction, never the noise.
    speed = np.linalg.norm(recorded, axis=1) > 1e-9
    cos = np.sum(recorded * expert_actions[:, :3], 1)[speed] / (
        np.linalg.norm(recorded, axis=1)[speed] * np.linalg.norm(expert_actions[speed, :3], axis=1))
    assert np.all(cos > 1 - 1e-6)
    again = collect(tmp_path / 'again', tasks=['pick-place-red'], episodes=1, seed=3,
                    image_size=32, progress=False, action_noise=0.2)
    _, topics_again, _ = read_bag(again.recorded[0].path)
    assert [m.pose.position.x for _, m in topics_again['ee_pose']] == \
        [m.pose.position.x for _, m in topics['ee_pose']]
    with pytest.raises(ValueError, match='action_noise'):
        collect(tmp_path / 'bad', tasks=['pick-place-red'], episodes=1, action_noise=-1)


def test_start_jitter_moves_only_the_hand_and_the_bag_says_so(tmp_path):
    """`start_jitter`: the hand starts within the box around home that the seed picks (the
    same seed, the same start), the layout and phrasing of a seed do not change, the expert
    still solves the task, and the recorded bag names the jitter."""
    plain = make_env('metaworld', 'pick-place-blue', image_size=32, cameras=[])
    jittered = make_env('metaworld', 'pick-place-blue', image_size=32, cameras=[],
                        start_jitter=0.08)
    try:
        home = plain.reset(5).ee_position
        starts = []
        for seed in (5, 5, 6):
            obs = jittered.reset(seed)
            # Object poses (state 4:18) and goal (36:39) are where the plain seed has them.
            same = plain.reset(seed).state
            np.testing.assert_allclose(obs.state[4:18], same[4:18], atol=2e-3)
            np.testing.assert_allclose(obs.state[36:], same[36:], atol=1e-9)
            assert jittered.instruction() == plain.instruction()
            starts.append(obs.ee_position)
        offset = starts[0] - home
        assert np.all(np.abs(offset) <= 0.08 + 5e-3) and np.linalg.norm(offset) > 0.01
        np.testing.assert_allclose(starts[0], starts[1], atol=1e-9)
        assert np.linalg.norm(starts[2] - starts[0]) > 0.01
        np.testing.assert_allclose(starts[0], home + jittered.start_offset(5), atol=5e-3)
        result = record_episode(jittered, 5, tmp_path / 'jit')
    finally:
        plain.close()
        jittered.close()
    assert result.success
    _, topics, custom = read_bag(result.path)
    assert custom['hybrid_vla.start_jitter'] == '0.08'
    first = topics['ee_pose'][0][1].pose.position
    np.testing.assert_allclose((first.x, first.y, first.z), starts[0], atol=1e-6)


def test_start_jitter_errors_name_the_problem():
    with pytest.raises(ValueError, match='start_jitter must be between 0 and 0.1'):
        make_env('metaworld', 'drawer-open', cameras=[], start_jitter=0.5)
    with pytest.raises(ValueError, match='metaworld suite'):
        make_env('arm', 'reach-red', cameras=[], start_jitter=0.05)


def test_bags_default_to_the_metadata_version_every_distribution_reads(tmp_path):
    """Version 8 by default (Humble's ros2 bag reads it), 9 on request; both are read back
    with their custom metadata; another version is refused naming the choices."""
    import yaml as _yaml

    from hybrid_vla_ros.data.episode import load_episode
    from hybrid_vla_ros.data.topic_map import load_topic_map
    from hybrid_vla_ros.schema import ConfigError
    for version in (None, 9):
        out = tmp_path / f'v{version}'
        kwargs = {} if version is None else {'bag_version': version}
        summary = collect(out, tasks=['drawer-open'], episodes=1, seed=0, image_size=32,
                          progress=False, **kwargs)
        bag = summary.recorded[0].path
        meta = _yaml.safe_load((bag / 'metadata.yaml').read_text())
        info = meta['rosbag2_bagfile_information']
        assert info['version'] == (version or 8)
        assert info['custom_data']['hybrid_vla.success'] == 'true'
        tm = load_topic_map('config/data/metaworld.yaml')
        assert len(load_episode(bag, tm)) > 10
    with pytest.raises(ConfigError, match=r'version 7 is not written here; choose 8 '
                                          r'\(Humble, Jazzy, Kilted\); 9 \(Jazzy, Kilted\)'):
        collect(tmp_path / 'v7', tasks=['drawer-open'], episodes=1, bag_version=7,
                progress=False)
