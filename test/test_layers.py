"""The layer contract (`.importlinter`, docs/architecture.md) and the torch-free command
line: checked on the real package, and shown to fail when a forbidden import is added."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

LINT = os.path.join(os.path.dirname(sys.executable), 'lint-imports')

# Run a CLI call with torch and transformers unimportable, as on a robot without them.
BLOCKED = '''
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers'):
            raise ImportError(f'{name} is not installed on this robot (blocked by the test)')
sys.meta_path.insert(0, Blocked())
from hybrid_vla_ros.cli import main
code = main(sys.argv[1:])
assert 'torch' not in sys.modules and 'transformers' not in sys.modules
sys.exit(code)
'''


def test_the_package_keeps_its_import_contract():
    r = subprocess.run([LINT, '--no-cache'], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert 'broken' in r.stdout and '0 broken' in r.stdout


def test_a_forbidden_import_breaks_the_lint(tmp_path):
    """rclpy in the model layer: `make lint` (lint-imports) fails and names the contract."""
    shutil.copytree(os.path.join(REPO, 'hybrid_vla_ros'), tmp_path / 'hybrid_vla_ros',
                    ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(os.path.join(REPO, '.importlinter'), tmp_path / '.importlinter')
    registry = tmp_path / 'hybrid_vla_ros' / 'model' / 'registry.py'
    registry.write_text(registry.read_text() + '\n\ndef _spin():\n    import rclpy\n'
                        '    from ..ros import qos\n    return rclpy, qos\n')
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    r = subprocess.run([LINT, '--no-cache'], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode != 0
    assert 'only ros/ imports rclpy and ROS message packages BROKEN' in r.stdout
    assert 'model is the bottom layer: it imports no other layer BROKEN' in r.stdout
    assert 'hybrid_vla_ros.model.registry -> rclpy' in r.stdout.replace('\n', ' ')


@pytest.mark.parametrize('argv', [
    ['--help'], ['say', '--help'], ['bringup', '--print', 'robot'], ['bringup', '--help'],
    ['play-bag', '--help'], ['record', '--help'], ['replay-check', '--help'],
    ['bench-model', '--help'], ['eval-bag', '--help'], ['data-info', '--help'],
])
def test_the_robot_commands_start_without_torch(argv):
    r = subprocess.run([sys.executable, '-c', BLOCKED, *argv], capture_output=True,
                       text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert 'Traceback' not in r.stderr


def test_bench_model_on_onnxruntime_needs_no_torch(tmp_path_factory, tmp_path):
    """A real onnxruntime benchmark of an exported checkpoint, torch blocked."""
    from ros_support import tiny_checkpoint
    ckpt = tiny_checkpoint(tmp_path_factory)
    out = tmp_path / 'latency.json'
    r = subprocess.run([sys.executable, '-c', BLOCKED, 'bench-model', '--checkpoint',
                        str(ckpt), '--backends', 'onnxruntime', '--threads', '1',
                        '--iterations', '5', '--out', str(out)],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc['results']['onnxruntime/threads=1']['control_step']['p50_ms'] > 0
