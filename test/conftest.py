"""Shared test set-up: loopback-only ROS 2 traffic in a private domain, offline HF, EGL."""

import os
import signal
import time
from pathlib import Path

import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_LOCALHOST_ONLY'] = '1'
# A domain private to this test run (1..100), so parallel runs on one machine do not mix.
os.environ['ROS_DOMAIN_ID'] = str(1 + os.getpid() % 100)
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('PYOPENGL_PLATFORM', os.environ['MUJOCO_GL'])

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session')
def repo_root():
    """Absolute path of the repository checkout."""
    return REPO


def spawned_workers(parent_pid: int) -> list:
    """Pids of the multiprocessing spawn workers whose parent is `parent_pid`."""
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / 'stat').read_text()
            cmdline = (entry / 'cmdline').read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(')', 1)[1].split()[1])
        if ppid == parent_pid and b'spawn_main' in cmdline:
            found.append(int(entry.name))
    return found


def process_state(pid: int):
    """The state letter of process `pid` (R, S, Z, ...), or None when it is gone."""
    try:
        return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def still_running_after(pids, timeout: float = 30.0) -> list:
    """The processes of `pids` still running (not gone, not zombies) after waiting up to
    `timeout` seconds for them to end; those are SIGKILLed so that a failing check does
    not leave them running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
            process_state(pid) not in (None, 'Z') for pid in pids):
        time.sleep(0.2)
    left = [pid for pid in pids if process_state(pid) not in (None, 'Z')]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left
