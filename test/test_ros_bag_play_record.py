"""``hybrid-vla play-bag`` and ``hybrid-vla record`` as separate processes over real DDS
(loopback, this run's private ROS_DOMAIN_ID): what is played is what is recorded."""

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from conftest import REPO
from ros_support import HYBRID_VLA, NodeProcess, ros_env

pytestmark = pytest.mark.ros
collect = pytest.importorskip('hybrid_vla_ros.sim.collect', reason='simulator not available')

EPISODE_TOPICS = ['front/image_raw', 'joint_states', 'ee_pose', 'instruction', 'joint_command']
# A type no package here provides: play-bag must skip its topic, not crash.
UNKNOWN_TYPE = 'hybrid_vla_test_msgs/msg/Blob'


@pytest.fixture(scope='module')
def episodes(tmp_path_factory):
    """One short arm episode (36 steps, 1.75 s, 32x32 images), zstd and uncompressed."""
    base = tmp_path_factory.mktemp('bag_play_record')
    bags = {}
    for name, compress in (('zstd', True), ('plain', False)):
        summary = collect.collect(base / name, suite='arm', tasks=['reach-red'], episodes=1,
                                  seed=5, image_size=32, compress=compress, progress=False)
        bags[name] = summary.recorded[0].path
    return bags


def read_bag(path):
    """Bare topic name -> [(log time ns, payload bytes)] in bag order, and the storage id."""
    out = {}
    with AnyReader([Path(path)]) as reader:
        for connection, ns, data in reader.messages():
            out.setdefault(connection.topic.lstrip('/'), []).append((ns, bytes(data)))
    return out


def same_payload(recorded: bytes, original: bytes) -> bool:
    """Byte-identical, allowing only the up to 3 zero bytes Fast DDS appends to a raw
    payload whose length is not a multiple of 4 (CDR alignment; docs/ros.md)."""
    if recorded == original:
        return True
    extra = recorded[len(original):]
    return (recorded.startswith(original) and len(extra) < 4 and not any(extra)
            and len(recorded) % 4 == 0)


def assert_same_messages(recorded, original, topics):
    for topic in topics:
        got, want = recorded.get(topic, []), original[topic]
        assert len(got) == len(want), (topic, len(got), len(want))
        assert all(same_payload(g, w) for (_, g), (_, w) in zip(got, want, strict=True)), topic


def span_s(messages) -> float:
    stamps = [ns for items in messages.values() for ns, _ in items]
    return (max(stamps) - min(stamps)) / 1e9


def play(bag, *args, timeout=60):
    return subprocess.run([HYBRID_VLA, 'play-bag', str(bag), *args], capture_output=True,
                          text=True, cwd=REPO, env=ros_env(), timeout=timeout)


def play_while_recording(tmp_path, bag, record_topics, play_args=(), record_args=(),
                         max_messages=None):
    """Start `record`, play the bag once it has subscribed (--wait-for-subscribers), then let
    the recorder stop by itself (--max-messages) or stop it with SIGINT. Returns (play result,
    recorder exit code, recorder output, recorded bag)."""
    out = tmp_path / 'recorded'
    args = [HYBRID_VLA, 'record', '--topics', *record_topics, '--out', str(out),
            '--duration', '60', *record_args]
    if max_messages:
        args += ['--max-messages', str(max_messages)]
    recorder = NodeProcess(args, tmp_path / 'record.log')
    try:
        played = play(bag, '--wait-for-subscribers', *play_args)
        if max_messages:
            try:
                recorder.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
    finally:
        code = recorder.stop(signal.SIGINT, timeout=20)
    return played, code, recorder.output(), out


def test_play_then_record_gives_the_same_messages_and_timing(tmp_path, episodes):
    original = read_bag(episodes['zstd'])
    total = sum(len(v) for v in original.values())
    played, code, log, out = play_while_recording(tmp_path, episodes['zstd'], EPISODE_TOPICS,
                                                  max_messages=total)
    assert played.returncode == 0, played.stdout + played.stderr
    assert f'{total} messages' in played.stdout and 'Traceback' not in played.stderr
    assert code == 0 and 'Traceback' not in log, log
    assert f'recorded {total} messages' in log, log
    assert (out / 'metadata.yaml').is_file()
    recorded = read_bag(out)
    assert sorted(recorded) == sorted(original)
    assert_same_messages(recorded, original, original)
    # Receive times follow the bag's timing (1.75 s here), loosely: no tight timing on 2 cores.
    assert 0.5 * span_s(original) < span_s(recorded) < 3.0 * span_s(original)
    with AnyReader([out]) as reader:  # other tools can decode it: definitions are stored
        for connection, _, data in reader.messages():
            reader.deserialize(data, connection.msgtype)


def test_remap_and_rate(tmp_path, episodes):
    original = read_bag(episodes['zstd'])
    played, code, log, out = play_while_recording(
        tmp_path, episodes['zstd'], ['/remapped/joint_states'],
        play_args=['--topics', '/joint_states', '--remap', 'joint_states:=/remapped/joint_states',
                   '--rate', '2'],
        max_messages=len(original['joint_states']))
    assert played.returncode == 0, played.stdout + played.stderr
    assert '/remapped/joint_states' in played.stdout and code == 0, log
    recorded = read_bag(out)
    assert list(recorded) == ['remapped/joint_states']
    assert_same_messages({'joint_states': recorded['remapped/joint_states']}, original,
                         ['joint_states'])
    # Twice as fast: about 0.875 s instead of 1.75 s.
    assert 0.3 < span_s(recorded) / (span_s(original) / 2) < 1.6


def _sqlite_bag(path):
    """std_msgs/String + sensor_msgs/JointState at 20 Hz for 1 s, and a topic of a type that
    is not installed here, as an sqlite3 bag."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg('uint8[] data', UNKNOWN_TYPE))
    types = store.types
    writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.SQLITE3)
    with writer:
        text = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=store)
        joints = writer.add_connection('/arm/joint_states', 'sensor_msgs/msg/JointState',
                                       typestore=store)
        blob = writer.add_connection('/blob', UNKNOWN_TYPE, typestore=store)
        for i in range(21):
            ns = 1_000_000_000 + i * 50_000_000
            header = types['std_msgs/msg/Header'](
                stamp=types['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9),
                frame_id='')
            msg = types['sensor_msgs/msg/JointState'](
                header=header, name=['a', 'b'], position=np.array([0.1 * i, -0.2 * i]),
                velocity=np.zeros(0), effort=np.zeros(0))
            writer.write(joints, ns, store.serialize_cdr(msg, 'sensor_msgs/msg/JointState'))
            if i % 5 == 0:
                writer.write(text, ns, store.serialize_cdr(
                    types['std_msgs/msg/String'](data=f'message {i}'), 'std_msgs/msg/String'))
                writer.write(blob, ns, store.serialize_cdr(
                    types[UNKNOWN_TYPE](data=np.arange(3, dtype=np.uint8)), UNKNOWN_TYPE))
    return path


def test_sqlite3_bag_plays_and_records_to_sqlite3(tmp_path):
    bag = _sqlite_bag(tmp_path / 'sqlite_bag')
    original = read_bag(bag)
    played, code, log, out = play_while_recording(
        tmp_path, bag, ['/chatter', '/arm/joint_states'], record_args=['--storage', 'sqlite3'])
    assert played.returncode == 0, played.stdout + played.stderr
    # The uninstalled type is skipped, named, and the rest plays.
    assert UNKNOWN_TYPE in played.stderr and 'skipped /blob' in played.stdout
    assert 'Traceback' not in played.stderr
    assert code == 0 and 'Traceback' not in log, log  # stopped by SIGINT, bag finished
    assert 'storage_identifier: sqlite3' in (out / 'metadata.yaml').read_text()
    recorded = read_bag(out)
    assert sorted(recorded) == ['arm/joint_states', 'chatter']
    assert_same_messages(recorded, original, ['arm/joint_states', 'chatter'])


def test_truncated_mcap_plays_its_readable_part(tmp_path, episodes):
    original = read_bag(episodes['plain'])
    total = sum(len(v) for v in original.values())
    bag = tmp_path / 'cut'
    bag.mkdir()
    (source,) = episodes['plain'].glob('*.mcap')
    data = source.read_bytes()
    (bag / source.name).write_bytes(data[:len(data) // 2])
    (bag / 'metadata.yaml').write_bytes((episodes['plain'] / 'metadata.yaml').read_bytes())
    played = play(bag, '--rate', '4')
    # Exit 1: part of the bag could not be read (documented); what was readable is played.
    assert played.returncode == 1, played.stdout + played.stderr
    assert 'Traceback' not in played.stderr and 'not readable' in played.stdout
    count = int(played.stdout.split(' messages in ')[0].rsplit(' ', 1)[1])
    assert total // 4 < count < total, played.stdout


def test_ctrl_c_stops_a_looping_player_cleanly(tmp_path, episodes):
    player = NodeProcess([HYBRID_VLA, 'play-bag', str(episodes['zstd']), '--loop', '--rate', '4'],
                         tmp_path / 'play.log')
    try:
        deadline = time.monotonic() + 60
        while 'playing 5 topics' not in player.output() and time.monotonic() < deadline:
            assert player.alive(), player.output()
            time.sleep(0.1)
        time.sleep(1.0)  # a few passes of 0.44 s
    finally:
        code = player.stop(signal.SIGINT, timeout=20)
    out = player.output()
    assert code == 0 and 'Traceback' not in out, out
    assert 'interrupted before the end of the bag' in out and '/joint_states' in out


def test_record_refuses_an_existing_non_empty_directory(tmp_path):
    out = tmp_path / 'taken'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    r = subprocess.run([HYBRID_VLA, 'record', '--topics', 'joint_states', '--out', str(out)],
                       capture_output=True, text=True, cwd=REPO, env=ros_env(), timeout=60)
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert 'not empty' in r.stderr and str(out) in r.stderr
    assert [p.name for p in out.iterdir()] == ['keep.txt']


def test_definitions_for_types_outside_the_rosbags_store_match_the_wire_hash():
    from hybrid_vla_ros.ros.tools.bag_player import parse_remaps
    from hybrid_vla_ros.ros.tools.bag_recorder import register_from_class
    from hybrid_vla_ros.schema import ConfigError
    reference = get_typestore(Stores.ROS2_KILTED)
    for msgtype in ('trajectory_msgs/msg/JointTrajectory', 'sensor_msgs/msg/Image',
                    'diagnostic_msgs/msg/DiagnosticArray'):
        store = get_typestore(Stores.EMPTY)
        register_from_class(store, msgtype)
        assert store.hash_rihs01(msgtype) == reference.hash_rihs01(msgtype)
    assert parse_remaps(['a:=/b/c']) == {'a': '/b/c'}
    with pytest.raises(ConfigError, match='FROM:=TO'):
        parse_remaps(['a=b'])
