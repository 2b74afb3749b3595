"""``hybrid-vla replay-check``: a collected bag replayed through the perception,
instruction and policy nodes (separate processes, real DDS on loopback, the bag's clock)
gives the actions eval-bag computes offline for the same bag."""

import json
import subprocess

import pytest
import yaml

from conftest import REPO
from ros_support import HYBRID_VLA, IMAGE_SIZE, ros_env, tiny_checkpoint

pytestmark = pytest.mark.ros


def test_online_commands_agree_with_offline_eval_bag(tmp_path_factory):
    from rosbags.highlevel import AnyReader

    from hybrid_vla_ros.sim.collect import collect
    checkpoint = tiny_checkpoint(tmp_path_factory)
    base = tmp_path_factory.mktemp('replay_check')
    summary = collect(base / 'bags', tasks=['drawer-open'], episodes=1, seed=11,
                      image_size=IMAGE_SIZE, progress=False)
    bag = summary.recorded[0].path
    tm = yaml.safe_load(open(f'{REPO}/config/data/metaworld.yaml'))
    tm['image_size'] = [IMAGE_SIZE, IMAGE_SIZE]
    (base / 'map.yaml').write_text(yaml.safe_dump(tm))
    out = base / 'out'
    r = subprocess.run([HYBRID_VLA, 'replay-check', '--checkpoint', str(checkpoint), '--bag',
                        str(bag), '--out', str(out), '--topic-map', str(base / 'map.yaml'),
                        # The command's default rate: 50 ms per image leaves headroom on a
                        # loaded 2-core machine (at 0.5 a busy policy dropped a frame once).
                        '--rate', '0.25'], capture_output=True, text=True, timeout=400,
                       env=ros_env())
    if r.returncode != 0:   # the whole report, not an assertion repr cut to one line
        print(r.stdout[-6000:], r.stderr[-6000:], sep='\n--- stderr ---\n')
    assert r.returncode == 0, 'replay-check failed: its output is in the captured stdout'
    assert 'AGREE' in r.stdout
    doc = json.loads((out / 'replay_check.json').read_text())
    offline = json.loads((out / 'offline' / 'eval_bag.json').read_text())
    assert doc['ok'] and doc['missed'] == [] and doc['mismatches'] == []
    assert doc['matched'] == doc['steps'] > 10
    assert max(doc['max_abs_diff']) <= doc['tolerance'] == 1e-4
    # every timed step but the first (answered while priming the graph) has a latency
    assert doc['latency_ms']['n'] == doc['steps'] - 1 and doc['latency_ms']['p50'] > 0
    # The online commands were recorded to a real rosbag2, one twist per answered image.
    with AnyReader([out / 'online_commands']) as reader:
        counts = {c.topic.lstrip('/'): c.msgcount for c in reader.connections}
    assert counts['ee_command'] >= doc['steps'] and counts['gripper_command'] >= doc['steps']
    assert offline['episodes'][0]['metrics']['steps'] == doc['steps']
