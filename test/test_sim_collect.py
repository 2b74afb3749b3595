"""``hybrid-vla collect`` run as a user would: summary, resume, Ctrl-C safety, and worker
processes (same bags, clean stops, a dead worker reported)."""

import os
import signal
import subprocess
import sys
import time

from rosbags.highlevel import AnyReader

from conftest import REPO, process_state, spawned_workers, still_running_after

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


def messages(bag):
    """Every message of a bag as (topic, timestamp, raw bytes), in file order."""
    with AnyReader([bag]) as reader:
        return [(conn.topic, t, bytes(raw)) for conn, t, raw in reader.messages()]


def test_workers_record_the_same_bags_as_one_process(tmp_path):
    args = ['collect', '--suite', 'arm', '--episodes', '3', '--seed', '7', '--tasks',
            'reach-red', 'reach-blue', '--image-size', '48', '--quiet']
    serial = run(*args, '--out', str(tmp_path / 'one'))
    assert serial.returncode == 0, serial.stderr
    (tmp_path / 'two').mkdir()
    # One episode already there: skipped by the workers as by one process.
    import shutil
    shutil.copytree(tmp_path / 'one' / 'reach-blue_8', tmp_path / 'two' / 'reach-blue_8')
    parallel = run(*args, '--out', str(tmp_path / 'two'), '--workers', '2')
    assert parallel.returncode == 0, parallel.stderr
    assert '5 episodes recorded' in parallel.stdout
    assert '1 episodes already recorded' in parallel.stdout
    names = sorted(p.name for p in (tmp_path / 'one').iterdir())
    assert names == sorted(p.name for p in (tmp_path / 'two').iterdir())  # no .partial left
    assert len(names) == 6
    for name in names:  # every episode follows from its seed alone
        assert messages(tmp_path / 'one' / name) == messages(tmp_path / 'two' / name), name
    # The per-task table lists the tasks in the order asked for, as one process does.
    table = [line.split()[0] for line in parallel.stdout.splitlines()[1:3]]
    assert table == ['reach-red', 'reach-blue']


def _start_parallel_collection(out):
    return subprocess.Popen([EXE, 'collect', '--suite', 'arm', '--episodes', '40', '--out',
                             str(out), '--image-size', '48', '--quiet', '--workers', '2'],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for_bags(out, count, proc):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(out.glob('*/metadata.yaml'))) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f'fewer than {count} bags in {out} after 120 s')


def test_ctrl_c_with_workers_keeps_only_complete_bags(tmp_path):
    out = tmp_path / 'demos'
    proc = _start_parallel_collection(out)
    _wait_for_bags(out, 2, proc)
    workers = spawned_workers(proc.pid)
    proc.send_signal(signal.SIGINT)  # to the parent only: it stops its workers
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert 'interrupted' in stdout and 'Traceback' not in stderr
    bags = sorted(p for p in out.iterdir() if not p.name.startswith('.'))
    assert len(bags) >= 2 and all(complete(b) for b in bags)
    assert not (out / '.partial').exists()
    assert f'{len(bags)} episodes recorded' in stdout
    assert len(workers) == 2 and all(process_state(pid) is None for pid in workers)


def test_a_killed_worker_is_reported_and_the_other_stopped(tmp_path):
    out = tmp_path / 'demos'
    proc = _start_parallel_collection(out)
    _wait_for_bags(out, 2, proc)
    workers = spawned_workers(proc.pid)
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer would
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 1, stderr
    assert f'collector worker process {workers[0]} died (killed by SIGKILL' in stdout
    assert 'Run the same command again' in stdout and 'Traceback' not in stderr
    assert process_state(workers[1]) is None  # stopped, not left recording for nobody
    bags = sorted(p for p in out.iterdir() if not p.name.startswith('.'))
    assert len(bags) >= 2 and all(complete(b) for b in bags)
    # Running the command again records the rest (the killed worker's partial bag is gone).
    again = run('collect', '--suite', 'arm', '--episodes', '2', '--out', str(out),
                '--image-size', '48', '--quiet', '--workers', '2')
    assert again.returncode == 0, again.stderr
    assert not (out / '.partial').exists()


def test_workers_stop_when_the_collector_is_killed(tmp_path):
    out = tmp_path / 'demos'
    proc = _start_parallel_collection(out)
    try:
        _wait_for_bags(out, 1, proc)
        workers = spawned_workers(proc.pid)
        assert len(workers) == 2, workers
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    left = still_running_after(workers)
    assert not left, f'workers {left} still recording after their parent was killed'
