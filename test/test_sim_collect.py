"""``hybrid-vla collect`` run as a user would: summary, resume, and Ctrl-C safety."""

import os
import signal
import subprocess
import sys
import time

from rosbags.highlevel import AnyReader

from conftest import REPO

EXE = os.path.join(os.path.dirname(sys.executable), 'hybrid-vla')


def run(*args, **kwargs):
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=REPO, timeout=300,
                          **kwargs)


def complete(bag):
    """A bag is complete when its metadata is written and every message reads back."""
    with AnyReader([bag]) as reader:
        counts = {c.topic: 0 for c in reader.connections}
        for conn, _, raw in reader.messages():
            reader.deserialize(raw, conn.msgtype)
            counts[conn.topic] += 1
    return counts['instruction'] == 1 and counts['joint_states'] == counts['joint_command'] > 0


def test_collect_prints_a_summary_and_resumes(tmp_path):
    out = tmp_path / 'arm'
    r = run('collect', '--suite', 'arm', '--episodes', '2', '--seed', '5', '--out', str(out),
            '--tasks', 'reach-red', '--image-size', '64', '--quiet')
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ['reach-red_5', 'reach-red_6']
    assert 'reach-red' in r.stdout and '2 episodes recorded' in r.stdout
    assert 'episodes/minute' in r.stdout
    again = run('collect', '--suite', 'arm', '--episodes', '3', '--seed', '5', '--out', str(out),
                '--tasks', 'reach-red', '--image-size', '64', '--quiet')
    assert again.returncode == 0, again.stderr
    assert '1 episodes recorded' in again.stdout and '2 episodes already recorded' in again.stdout
    assert all(complete(out / f'reach-red_{s}') for s in (5, 6, 7))
    done = run('collect', '--suite', 'arm', '--episodes', '3', '--seed', '5', '--out',
               str(out), '--tasks', 'reach-red', '--image-size', '64', '--quiet')
    assert done.returncode == 0, done.stderr
    assert 'nothing to record: all 3 episodes already recorded' in done.stdout
    assert 'episodes/minute' not in done.stdout


def test_bad_arguments_are_one_clear_line(tmp_path):
    r = run('collect', '--episodes', '1', '--out', str(tmp_path), '--tasks', 'drawer-opn')
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert 'drawer-opn' in r.stderr and 'drawer-open' in r.stderr
    r = run('collect', '--episodes', '1', '--out', str(tmp_path), '--image-size', 'huge')
    assert r.returncode == 2 and '--image-size' in r.stderr


def test_ctrl_c_keeps_finished_episodes_and_removes_the_unfinished_one(tmp_path):
    out = tmp_path / 'demos'
    proc = subprocess.Popen([EXE, 'collect', '--suite', 'arm', '--episodes', '40', '--out',
                             str(out), '--image-size', '64', '--quiet'], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(list(out.glob('*/metadata.yaml'))) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert 'interrupted' in stdout
    bags = sorted(p for p in out.iterdir() if not p.name.startswith('.'))
    assert len(bags) >= 2
    assert all((b / 'metadata.yaml').exists() and complete(b) for b in bags)
    assert not (out / '.partial').exists()
    assert f'{len(bags)} episodes recorded' in stdout


def test_start_jitter_argument_errors_are_one_clear_line(tmp_path):
    r = run('collect', '--episodes', '1', '--out', str(tmp_path), '--start-jitter', '0.3')
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert '--start-jitter' in r.stderr and '0.1' in r.stderr
    r = run('collect', '--suite', 'arm', '--episodes', '1', '--out', str(tmp_path),
            '--start-jitter', '0.05')
    assert r.returncode == 2 and '--start-jitter' in r.stderr and 'metaworld' in r.stderr
    assert not any(tmp_path.iterdir())
