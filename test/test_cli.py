"""The hybrid-vla console script, run as a user would."""

import os
import subprocess
import sys

from conftest import REPO

EXE = os.path.join(os.path.dirname(sys.executable), 'hybrid-vla')


def run(*args):
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_model_info_reports_parts_and_parameters():
    r = run('model-info', '--config', 'config/models/default.yaml')
    assert r.returncode == 0, r.stderr
    assert 'vision         cnn: 16 tokens x 192' in r.stdout
    assert 'language       hf_text: 16 tokens x 384' in r.stdout
    trainable = int(r.stdout.strip().splitlines()[-1].split()[-1].replace(',', ''))
    assert 2_500_000 < trainable < 4_000_000


def test_bad_config_is_one_clear_line(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('decoder: {type: diffusion}\n')
    r = run('model-info', '--config', str(bad))
    assert r.returncode == 2
    assert 'Traceback' not in r.stderr
    assert 'model.decoder.type' in r.stderr and 'mlp_chunk' in r.stderr


def test_help_lists_commands():
    r = run('--help')
    assert r.returncode == 0 and 'model-info' in r.stdout
