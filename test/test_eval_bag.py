"""``hybrid-vla eval-bag``: offline scoring on simulator bags, on an sqlite3 bag from
"another recorder" (other topic names, no instruction topic, out-of-order receive times),
and on damaged bags; reports, CSVs and plots checked against an independent computation."""

import csv
import json
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from conftest import REPO
from test_data_bags import PERIOD_NS, T0_NS, TS, BagWriter, _header, frame_rgb, image_msg
from ros_support import HYBRID_VLA, IMAGE_SIZE, tiny_checkpoint

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope='module')
def collected(tmp_path_factory):
    """One drawer-open and one pick-place-red expert episode at the tiny model's size."""
    from hybrid_vla_ros.sim.collect import collect
    out = tmp_path_factory.mktemp('eval_bags')
    summary = collect(out / 'bags', tasks=['drawer-open', 'pick-place-red'], episodes=1,
                      seed=3, image_size=IMAGE_SIZE, progress=False)
    assert len(summary.recorded) == 2
    tm = yaml.safe_load(open(f'{REPO}/config/data/metaworld.yaml'))
    tm['image_size'] = [IMAGE_SIZE, IMAGE_SIZE]
    (out / 'map.yaml').write_text(yaml.safe_dump(tm))
    return out


def eval_bag(*args, timeout=300):
    return subprocess.run([HYBRID_VLA, 'eval-bag', *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def read_steps(out):
    with open(out / 'steps.csv') as f:
        return list(csv.DictReader(f))


def test_scores_collected_bags_reproducibly_with_plots(checkpoint, collected, tmp_path):
    from hybrid_vla_ros.data.episode import load_episode
    from hybrid_vla_ros.data.topic_map import load_topic_map
    from hybrid_vla_ros.inference.backend import load_backend

    outs = [tmp_path / 'a', tmp_path / 'b']
    for out in outs:
        r = eval_bag('--checkpoint', checkpoint, '--bags', collected / 'bags', '--out', out,
                     '--topic-map', collected / 'map.yaml')
        assert r.returncode == 0, r.stderr[-3000:]
    docs = [json.loads((o / 'eval_bag.json').read_text()) for o in outs]
    assert docs[0] == docs[1]
    assert (outs[0] / 'steps.csv').read_bytes() == (outs[1] / 'steps.csv').read_bytes()
    doc, out = docs[0], outs[0]
    assert doc['skipped'] == [] and len(doc['episodes']) == 2
    assert {e['task'] for e in doc['episodes']} == {'drawer-open', 'pick-place-red'}

    # Independent computation: the backend on the recorded observation of one step.
    tm = load_topic_map(collected / 'map.yaml')
    bag = sorted((collected / 'bags').iterdir())[0]
    ep = load_episode(bag, tm)
    assert doc['episodes'][0]['metrics']['steps'] == len(ep)
    be = load_backend(checkpoint, 'onnxruntime', threads=1)
    lang, mask = be.encode_instruction(ep.instruction_at(0))
    t = len(ep) // 2
    chunk = be.core(be.encode_vision(ep.images_at(t)[None]), lang, mask,
                    ep.proprio[t:t + 1].astype(np.float32))[0]
    rows = [r for r in read_steps(out) if r['bag'] == str(bag) and int(r['step']) == t]
    assert [r['dimension'] for r in rows] == doc['action_names']
    np.testing.assert_allclose([float(r['predicted']) for r in rows], chunk[0], rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose([float(r['recorded']) for r in rows], ep.actions[t],
                               rtol=1e-4, atol=1e-6)

    # The overall next-action MAE is the mean absolute error of the steps table.
    rows = read_steps(out)
    for a, name in enumerate(doc['action_names']):
        err = [float(r['abs_error']) for r in rows if r['dimension'] == name]
        m = doc['overall']['next_action'][name]
        assert m['n'] == len(err)
        assert m['mae'] == pytest.approx(np.mean(err), rel=1e-3, abs=1e-6)
        assert m['mae_normalized'] == pytest.approx(m['mae'] / doc['action_std'][a])
    horizon = doc['overall']['horizon']
    assert [h['k'] for h in horizon] == list(range(doc['chunk']))
    assert horizon[0]['n'] > horizon[-1]['n'] > 0  # fewer recorded steps far ahead
    assert doc['gripper_dim'] == 3 and 0.0 <= doc['overall']['gripper_agreement'] <= 1.0

    # Plots: valid PNGs with one panel per action dimension, linked from the report.
    import matplotlib.image
    report = (out / 'report.md').read_text()
    assert set(doc['plots']) == {'plots/trajectories_00.png', 'plots/trajectories_01.png',
                                 'plots/error_histograms.png', 'plots/horizon.png'}
    for rel, panels in doc['plots'].items():
        data = (out / rel).read_bytes()
        assert data.startswith(PNG_MAGIC)
        img = matplotlib.image.imread(out / rel)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        if 'horizon' not in rel:
            assert panels == doc['action_names']
        assert rel in report
    with open(out / 'metrics.csv') as f:
        scopes = {r['scope'] for r in csv.DictReader(f)}
    assert scopes == {'overall'} | {e['bag'] for e in doc['episodes']}


def write_foreign_bag(path, steps=12):
    """An sqlite3 bag with its own topic names, no instruction topic, messages written in
    reverse step order, and stamped messages of even steps received after those of the
    next step (receive order differs from header-stamp order). The commanded x velocity of
    step t is 0.01 t, so the scored order can be checked."""
    types, v3 = TS.types, TS.types['geometry_msgs/msg/Vector3']
    with BagWriter(path, storage='sqlite3') as bag:
        for t in reversed(range(steps)):
            ns = T0_NS + t * PERIOD_NS
            recv = ns + (60_000_000 if t % 2 == 0 else 0)
            bag.write('/camera/color/image_raw',
                      image_msg(ns, frame_rgb(t, (IMAGE_SIZE, IMAGE_SIZE))), recv)
            pose = types['geometry_msgs/msg/Pose'](
                position=types['geometry_msgs/msg/Point'](x=0.0, y=0.6, z=0.2 + 0.001 * t),
                orientation=types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0))
            bag.write('/robot/tcp_pose', types['geometry_msgs/msg/PoseStamped'](
                header=_header(ns), pose=pose), recv)
            bag.write('/robot/joint_states', types['sensor_msgs/msg/JointState'](
                header=_header(ns), name=['finger'], position=np.array([0.5]),
                velocity=np.zeros(0), effort=np.zeros(0)), recv)
            twist = types['geometry_msgs/msg/Twist'](linear=v3(x=0.01 * t, y=0.0, z=0.0),
                                                     angular=v3(x=0.0, y=0.0, z=0.0))
            bag.write('/controller/twist_cmd', types['geometry_msgs/msg/TwistStamped'](
                header=_header(ns), twist=twist), recv)
            grip = types['std_msgs/msg/Float64MultiArray'](
                layout=types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0),
                data=np.array([1.0 if t > steps // 2 else 0.0]))
            bag.write('/controller/gripper', grip, ns)  # no header: received on time
    return path


def test_sqlite3_bag_with_other_topics_and_no_instruction(checkpoint, tmp_path):
    bag = write_foreign_bag(tmp_path / 'bags' / 'other_recorder')
    assert list(bag.glob('*.db3'))
    tm = {'cameras': {'front': '/camera/color/image_raw'},
          'proprio': [{'topic': '/robot/tcp_pose', 'field': 'position'},
                      {'topic': '/robot/joint_states', 'joints': ['finger']}],
          'action': [{'topic': '/controller/twist_cmd', 'field': 'linear'},
                     {'topic': '/controller/gripper', 'field': 'data'}],
          'instruction': {'topic': 'instruction'},
          # header stamps are the time base: the receive times run backwards
          'image_size': [IMAGE_SIZE, IMAGE_SIZE], 'chunk': 8, 'stamps': 'header'}
    (tmp_path / 'map.yaml').write_text(yaml.safe_dump(tm))
    out = tmp_path / 'out'
    r = eval_bag('--checkpoint', checkpoint, '--bags', tmp_path / 'bags', '--out', out,
                 '--topic-map', tmp_path / 'map.yaml', '--instruction', 'open the drawer')
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / 'eval_bag.json').read_text())
    (ep,) = doc['episodes']
    assert ep['metrics']['steps'] == 12 and ep['instruction'] == 'open the drawer'
    assert doc['instruction_override'] == 'open the drawer'
    xs = [float(r['recorded']) for r in read_steps(out)
          if r['dimension'] == doc['action_names'][0]]
    np.testing.assert_allclose(xs, 0.01 * np.arange(12), atol=1e-9)


def test_damaged_bags_are_scored_as_far_as_readable_and_reported(checkpoint, collected,
                                                                 tmp_path):
    src = sorted((collected / 'bags').iterdir())[1]
    truncated = tmp_path / 'bags' / 'truncated'
    shutil.copytree(src, truncated)
    (mcap,) = truncated.glob('*.mcap')
    data = mcap.read_bytes()
    mcap.write_bytes(data[:int(len(data) * 0.6)])
    corrupt = tmp_path / 'bags' / 'corrupt'
    shutil.copytree(src, corrupt)
    (mcap,) = corrupt.glob('*.mcap')
    mcap.write_bytes(b'not an mcap file at all' * 100)
    from test_data_bags import write_episode
    write_episode(tmp_path / 'bags' / 'no_camera', skip_topics=('front/image_raw',))
    out = tmp_path / 'out'
    r = eval_bag('--checkpoint', checkpoint, '--bags', tmp_path / 'bags', '--out', out,
                 '--topic-map', collected / 'map.yaml')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Traceback' not in r.stderr
    doc = json.loads((out / 'eval_bag.json').read_text())
    (ep,) = doc['episodes']
    assert ep['bag'] == str(truncated) and 'damaged bag' in ep['note']
    from hybrid_vla_ros.data.episode import load_episode
    from hybrid_vla_ros.data.topic_map import load_topic_map
    whole = len(load_episode(src, load_topic_map(collected / 'map.yaml')))
    assert 0 < ep['metrics']['steps'] < whole
    corrupt_skip, no_camera_skip = doc['skipped']
    assert corrupt_skip['bag'] == str(corrupt) and 'cannot open' in corrupt_skip['reason']
    # A bag without a topic of the map: skipped, naming it and listing what the bag has.
    assert no_camera_skip['bag'].endswith('no_camera')
    assert 'front/image_raw' in no_camera_skip['reason']
    assert 'ee_pose' in no_camera_skip['reason']
    report = (out / 'report.md').read_text()
    assert 'corrupt' in report and 'damaged bag' in report


def test_missing_topic_is_named_with_the_bags_topics(checkpoint, collected, tmp_path):
    tm = yaml.safe_load((collected / 'map.yaml').read_text())
    tm['cameras'] = {'front': 'wrist/image_raw'}
    (tmp_path / 'map.yaml').write_text(yaml.safe_dump(tm))
    r = eval_bag('--checkpoint', checkpoint, '--bags', collected / 'bags', '--out',
                 tmp_path / 'out', '--topic-map', tmp_path / 'map.yaml')
    assert r.returncode == 2
    assert 'wrist/image_raw' in r.stderr and 'front/image_raw' in r.stderr
    assert 'Traceback' not in r.stderr


def test_checkpoint_without_a_topic_map_asks_for_one(checkpoint, collected, tmp_path):
    r = eval_bag('--checkpoint', checkpoint, '--bags', collected / 'bags', '--out',
                 tmp_path / 'out')
    assert r.returncode == 2 and '--topic-map' in r.stderr
    assert 'Traceback' not in r.stderr


def test_eval_bag_on_onnxruntime_needs_no_torch(checkpoint, collected, tmp_path):
    """What a robot without torch can run: the same scoring, torch and transformers
    unimportable (test_layers.BLOCKED)."""
    import sys

    from test_layers import BLOCKED
    out = tmp_path / 'no_torch'
    r = subprocess.run([sys.executable, '-c', BLOCKED, 'eval-bag', '--checkpoint',
                        str(checkpoint), '--bags', str(collected / 'bags'), '--out', str(out),
                        '--topic-map', str(collected / 'map.yaml')],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    doc = json.loads((out / 'eval_bag.json').read_text())
    assert len(doc['episodes']) == 2
    assert np.isfinite(doc['overall']['summary']['next_action_mae_normalized'])
