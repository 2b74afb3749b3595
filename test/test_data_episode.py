"""One bag -> one episode: real bags written with rosbags, decoded for real."""

import copy
import sqlite3
import warnings

import cv2

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from hybrid_vla_ros.data import BagContentError, DataWarning, load_episode, parse_topic_map
from hybrid_vla_ros.schema import ConfigError

from test_data_bags import (METAWORLD_MAP, PERIOD_NS, T0_NS, TS, BagWriter, action_value,
                            frame_rgb, frame_value, proprio_value, write_arm_episode,
                            write_episode)


def topic_map(**changes):
    mapping = copy.deepcopy(METAWORLD_MAP)
    mapping.update(changes)
    return parse_topic_map(mapping)


def expected_chunk(t, steps, k):
    want = np.stack([action_value(min(t + j, steps - 1)) for j in range(k)])
    return want.astype(np.float32), np.arange(t, t + k) < steps


@pytest.mark.parametrize('storage, compression', [
    ('mcap', None), ('sqlite3', None), ('mcap', 'storage'), ('mcap', 'file'),
    ('sqlite3', 'message'), ('sqlite3', 'file'),
])
def test_every_storage_and_compression_reads_the_same(tmp_path, storage, compression):
    steps = 7
    bag = write_episode(tmp_path / 'ep', steps=steps, storage=storage, compression=compression)
    ep = load_episode(bag, topic_map())
    assert len(ep) == steps and ep.dropped_steps == 0
    np.testing.assert_array_equal(ep.actions, np.stack([action_value(t) for t in range(steps)]))
    np.testing.assert_array_equal(ep.proprio, np.stack([proprio_value(t) for t in range(steps)]))
    np.testing.assert_allclose(ep.stamps, (T0_NS + np.arange(steps) * PERIOD_NS) / 1e9)
    assert ep.images.shape == (steps, 1, 16, 16, 3) and ep.images.dtype == np.uint8
    assert [int(ep.images_at(t)[0, 5, 5, 0]) for t in range(steps)] == [
        frame_value(t) for t in range(steps)]
    assert ep.task == 'drawer-open' and ep.seed == 7 and ep.success is True
    assert ep.metadata['hybrid_vla.suite'] == 'metaworld'
    assert ep.proprio_names == ['ee_pose.position.x', 'ee_pose.position.y',
                                'ee_pose.position.z', 'joint_states.gripper']
    assert ep.action_names == ['ee_command.linear.x', 'ee_command.linear.y',
                               'ee_command.linear.z', 'gripper_command.data']


def test_action_chunks_align_with_commands_and_pad_past_the_end(tmp_path):
    steps, k = 9, 4
    ep = load_episode(write_episode(tmp_path / 'ep', steps=steps), topic_map(chunk=k))
    for t in range(steps):
        actions, valid = ep.action_chunk(t, k)
        want, want_valid = expected_chunk(t, steps, k)
        np.testing.assert_array_equal(actions, want)
        np.testing.assert_array_equal(valid, want_valid)
    _, valid = ep.action_chunk(steps - 1, k)
    assert valid.tolist() == [True, False, False, False]


def test_instruction_change_mid_episode_round_trips(tmp_path):
    bag = write_episode(tmp_path / 'ep', steps=8,
                        instructions={0: 'open the drawer', 5: 'close the drawer'})
    ep = load_episode(bag, topic_map())
    assert [ep.instruction_at(t) for t in range(8)] == ['open the drawer'] * 5 + [
        'close the drawer'] * 3
    assert ep.instructions == ['open the drawer', 'close the drawer']


def test_slow_camera_gives_the_latest_frame_at_or_before_each_step(tmp_path):
    bag = write_episode(tmp_path / 'ep', steps=10, image_every=3)
    ep = load_episode(bag, topic_map())
    assert len(ep) == 10
    shown = [int(ep.images_at(t)[0, 0, 0, 0]) for t in range(10)]
    assert shown == [frame_value(3 * (t // 3)) for t in range(10)]
    # Frames are stored once, not once per step.
    assert ep.frames[0].shape[0] == 4


def test_steps_before_the_first_image_are_dropped_and_counted(tmp_path):
    bag = write_episode(tmp_path / 'ep', steps=10, first_image_step=3)
    ep = load_episode(bag, topic_map())
    assert len(ep) == 7 and ep.dropped_steps == 3
    np.testing.assert_array_equal(ep.actions[0], action_value(3))
    assert int(ep.images_at(0)[0, 0, 0, 0]) == frame_value(3)


def test_out_of_order_messages_are_sorted_by_header_stamp(tmp_path):
    bag = write_episode(tmp_path / 'ep', steps=8, swap_steps=(4, 5))
    ep = load_episode(bag, topic_map())
    np.testing.assert_array_equal(ep.actions, np.stack([action_value(t) for t in range(8)]))
    assert np.all(np.diff(ep.stamps) > 0)


def test_receive_time_base(tmp_path):
    ep = load_episode(write_episode(tmp_path / 'ep', steps=5), topic_map(stamps='receive'))
    assert len(ep) == 5
    np.testing.assert_array_equal(ep.actions, np.stack([action_value(t) for t in range(5)]))


def test_tolerance_lets_a_late_header_less_command_count_for_its_step(tmp_path):
    bag = write_episode(tmp_path / 'ep', steps=5, gripper_delay_ns=3_000_000)
    strict = load_episode(bag, topic_map())
    # Strictly at-or-before, each step sees the previous step's gripper command.
    assert strict.dropped_steps == 1
    np.testing.assert_array_equal(strict.actions[:, 3], [action_value(t)[3] for t in range(4)])
    lenient = load_episode(bag, topic_map(tolerance=0.005))
    assert lenient.dropped_steps == 0
    np.testing.assert_array_equal(lenient.actions[:, 3], [action_value(t)[3] for t in range(5)])


@pytest.mark.parametrize('encoding', ['bgr8', 'mono8', 'rgba8', 'bgra8'])
def test_encodings_convert_to_rgb(tmp_path, encoding):
    ep = load_episode(write_episode(tmp_path / 'ep', steps=3, encoding=encoding), topic_map())
    pixel = ep.images_at(2)[0, 4, 4].tolist()
    v = frame_value(2)
    assert pixel == ([v, v, v] if encoding == 'mono8' else [v, 255 - v, 7])


def test_other_image_size_is_resized_with_one_warning(tmp_path):
    bag = write_episode(tmp_path / 'ep', steps=6, image_size=(48, 40))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ep = load_episode(bag, topic_map())
    resize = [w for w in caught if issubclass(w.category, DataWarning)]
    assert len(resize) == 1 and '48x40' in str(resize[0].message)
    assert 'resizing to 16x16' in str(resize[0].message)
    assert ep.frames[0].shape == (6, 16, 16, 3) and ep.source_sizes == {'front': [48, 40]}
    assert int(ep.images_at(4)[0, 8, 8, 0]) == frame_value(4)
    # A shared `warned` set says it once across episodes too.
    said = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        load_episode(bag, topic_map(), warned=said)
        load_episode(bag, topic_map(), warned=said)
    assert len([w for w in caught if issubclass(w.category, DataWarning)]) == 1


def test_missing_topic_names_it_and_lists_the_bags_topics(tmp_path):
    bag = write_episode(tmp_path / 'ep', steps=3, skip_topics=('gripper_command',))
    with pytest.raises(ConfigError) as info:
        load_episode(bag, topic_map())
    msg = str(info.value)
    assert "topic_map.action[1]: topic 'gripper_command' is not in this bag" in msg
    assert str(bag) in msg
    for topic in ('ee_command (geometry_msgs/msg/TwistStamped)', 'ee_pose', 'front/image_raw',
                  'instruction', 'joint_states'):
        assert topic in msg


def test_joint_state_without_a_mapped_joint_lists_its_names(tmp_path):
    mapping = copy.deepcopy(METAWORLD_MAP)
    mapping['proprio'][1]['joints'] = ['gripper', 'wrist']
    with pytest.raises(ConfigError) as info:
        load_episode(write_episode(tmp_path / 'ep', steps=3), parse_topic_map(mapping))
    msg = str(info.value)
    assert "topic_map.proprio[1].joints" in msg and "'wrist'" in msg
    assert 'it has: j0, j1, gripper' in msg


def test_wrong_field_for_the_message_type_lists_the_choices(tmp_path):
    mapping = copy.deepcopy(METAWORLD_MAP)
    mapping['action'][0]['field'] = 'position'
    with pytest.raises(ConfigError) as info:
        load_episode(write_episode(tmp_path / 'ep', steps=3), parse_topic_map(mapping))
    msg = str(info.value)
    assert "topic_map.action[0].field: 'position' is not a field of " in msg
    assert "'linear', 'angular'" in msg


def test_absolute_and_namespaced_topic_names_match(tmp_path):
    mapping = copy.deepcopy(METAWORLD_MAP)
    mapping['cameras'] = {'front': '/front/image_raw'}
    mapping['action'][1]['topic'] = 'robot/gripper_command'
    bag = write_episode(tmp_path / 'ep', steps=3)
    # Rewrite the bag with absolute names and the gripper topic in a namespace.
    ns_bag = tmp_path / 'ns'
    with AnyReader([bag]) as reader, BagWriter(ns_bag) as out:
        for conn, stamp, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            topic = '/ns/robot/gripper_command' if conn.topic == 'gripper_command' else (
                '/' + conn.topic)
            out.write(topic, msg, stamp)
    ep = load_episode(ns_bag, parse_topic_map(mapping))
    np.testing.assert_array_equal(ep.actions[:, 3], [action_value(t)[3] for t in range(3)])


def test_no_step_with_every_input_is_a_content_error_with_a_hint(tmp_path):
    bag = write_episode(tmp_path / 'ep', steps=4, instructions={10: 'too late'})
    with pytest.raises(BagContentError) as info:
        load_episode(bag, topic_map())
    msg = str(info.value)
    assert str(bag) in msg and "topic_map.instruction ('instruction': first at" in msg
    assert 'stamps: receive' in msg


def test_late_instruction_drops_the_steps_before_it(tmp_path):
    bag = write_episode(tmp_path / 'ep', steps=4, instructions={3: 'late start'})
    ep = load_episode(bag, topic_map())
    assert len(ep) == 1 and ep.dropped_steps == 3 and ep.instruction_at(0) == 'late start'


def test_joint_space_bag_with_trajectory_commands(tmp_path):
    mapping = {
        'cameras': {'front': 'front/image_raw'},
        'proprio': [{'topic': 'joint_states', 'joints': ['j0', 'j1', 'j2', 'j3']}],
        'action': [{'topic': 'joint_command', 'joints': ['j0', 'j1', 'j2', 'j3']}],
        'instruction': {'text': 'reach the red target'},
        'image_size': [16, 16], 'chunk': 3,
    }
    ep = load_episode(write_arm_episode(tmp_path / 'arm', steps=5), parse_topic_map(mapping))
    # Messages list j3, j2, j1, j0 with values base+0..3: the map's order reverses them.
    np.testing.assert_array_equal(ep.proprio[2], [23, 22, 21, 20])
    np.testing.assert_array_equal(ep.actions[4], [403, 402, 401, 400])
    assert ep.instruction_at(0) == 'reach the red target'
    assert ep.action_names == ['joint_command.j0', 'joint_command.j1', 'joint_command.j2',
                               'joint_command.j3']
    assert ep.task == '' and ep.seed is None and ep.success is None


def test_indices_select_entries(tmp_path):
    mapping = copy.deepcopy(METAWORLD_MAP)
    mapping['proprio'][0]['indices'] = [2, 0]
    ep = load_episode(write_episode(tmp_path / 'ep', steps=3), parse_topic_map(mapping))
    np.testing.assert_array_equal(ep.proprio[2, :2], [proprio_value(2)[2], proprio_value(2)[0]])
    assert ep.proprio_names[:2] == ['ee_pose.position.z', 'ee_pose.position.x']
    mapping['proprio'][0]['indices'] = [5]
    with pytest.raises(ConfigError, match=r'proprio\[0\]\.indices'):
        load_episode(tmp_path / 'ep', parse_topic_map(mapping))


@pytest.mark.parametrize('damage', ['half', 'garbage', 'metadata'])
def test_damaged_bag_is_a_content_error(tmp_path, damage):
    bag = write_episode(tmp_path / 'ep', steps=4)
    storage = next(p for p in bag.iterdir() if p.suffix == '.mcap')
    if damage == 'half':
        storage.write_bytes(storage.read_bytes()[:storage.stat().st_size // 2])
    elif damage == 'garbage':
        storage.write_bytes(bytes(range(256)) * 20)
    else:
        (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: {version: 9}\n')
    with pytest.raises(BagContentError) as info:
        load_episode(bag, topic_map())
    assert str(bag) in str(info.value)


def test_sqlite3_bag_without_message_definitions_reads_with_the_humble_types(tmp_path):
    # ROS 2 Humble's recorder stores no message definitions in sqlite3 bags.
    bag = write_episode(tmp_path / 'ep', steps=4, storage='sqlite3')
    with sqlite3.connect(next(bag.glob('*.db3'))) as db:
        db.execute('DELETE FROM message_definitions')
    ep = load_episode(bag, topic_map())
    np.testing.assert_array_equal(ep.actions, np.stack([action_value(t) for t in range(4)]))


def test_compressed_images_multiarray_and_joint_velocity(tmp_path):
    types = TS.types
    path = tmp_path / 'ep'
    with BagWriter(path) as bag:
        for t in range(4):
            ns = T0_NS + t * PERIOD_NS
            header = types['std_msgs/msg/Header'](
                stamp=types['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9),
                frame_id='cam')
            ok, png = cv2.imencode('.png', frame_rgb(t, (16, 16))[..., ::-1])
            assert ok
            bag.write('cam/compressed', types['sensor_msgs/msg/CompressedImage'](
                header=header, format='png', data=png.reshape(-1)), ns)
            bag.write('joint_states', types['sensor_msgs/msg/JointState'](
                header=header, name=['a', 'b'], position=np.array([1.0, 2.0]),
                velocity=np.array([0.5 * t, -0.5 * t]), effort=np.zeros(0)), ns)
            bag.write('commands', types['std_msgs/msg/Float64MultiArray'](
                layout=types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0),
                data=np.array([t, 10.0 * t, 100.0 * t])), ns)
    tm = parse_topic_map({
        'cameras': {'front': 'cam/compressed'},
        'proprio': [{'topic': 'joint_states', 'joints': ['b'], 'field': 'velocity'}],
        'action': [{'topic': 'commands'}],
        'instruction': {'text': 'wave'}, 'image_size': [16, 16], 'chunk': 2})
    ep = load_episode(path, tm)
    assert [int(ep.images_at(t)[0, 3, 3, 0]) for t in range(4)] == [frame_value(t)
                                                                    for t in range(4)]
    np.testing.assert_array_equal(ep.proprio[:, 0], [-0.5 * t for t in range(4)])
    np.testing.assert_array_equal(ep.actions[3], [3, 30, 300])
    assert ep.proprio_names == ['joint_states.b.velocity']
    assert ep.action_names == ['commands.data[0]', 'commands.data[1]', 'commands.data[2]']
