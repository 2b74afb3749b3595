"""scripts/compare_eval.py on the committed protocol evaluations of models/mt50."""

import json
import subprocess
import sys

from conftest import REPO

SCRIPT = f'{REPO}/scripts/compare_eval.py'


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_paired_averages_are_each_runs_own_on_shared_seeds():
    old, new = f'{REPO}/models/mt50/eval_stage3', f'{REPO}/models/mt50/eval_stage4'
    r = run(old, new)
    assert r.returncode == 0, r.stderr
    docs = [json.load(open(f'{d}/eval_sim.json')) for d in (old, new)]
    # Both ran seeds 1000-1049 on all 50 tasks: the paired averages are the files' own.
    for split, label in (('train', 'train:'), ('held_out', 'held_out:')):
        line = next(x for x in r.stdout.splitlines() if x.startswith(label))
        a, b = (d['tiers']['averages'][split] for d in docs)
        assert f'tier average {a["tier_average"]:.1%} → {b["tier_average"]:.1%}' in line
        assert f'task average {a["task_average"]:.1%} → {b["task_average"]:.1%}' in line
    # Only changed tasks are listed unless --all; every listed row names its tier.
    def rows(out):
        return [x for x in out.splitlines() if x.startswith('| ') and '%' in x]

    listed = rows(r.stdout)
    assert 0 < len(listed) < 50
    assert len(rows(run('--all', old, new).stdout)) == 50
    assert all(x.split('|')[2].strip() in ('easy', 'medium', 'hard', 'very-hard')
               for x in listed)


def test_missing_file_is_named():
    r = run(f'{REPO}/no-such-eval', f'{REPO}/models/mt50/eval_stage4')
    assert r.returncode == 2 and 'no-such-eval' in r.stderr and 'Traceback' not in r.stderr


def test_a_running_evaluation_is_read_from_its_partial_file(tmp_path):
    """An output directory without eval_sim.json yet: the tasks finished so far."""
    done = json.load(open(f'{REPO}/models/mt50/eval_stage4/eval_sim.json'))
    with open(tmp_path / 'eval_sim.partial.jsonl', 'w') as f:
        for task in ('reach', 'door-lock'):
            f.write(json.dumps({'settings': {'suite': 'mt50'}, 'task': task,
                                'row': done['tasks'][task]}) + '\n')
    r = run(f'{REPO}/models/mt50/eval_stage4', str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert 'eval_sim.partial.jsonl' in r.stdout
    line = next(x for x in r.stdout.splitlines() if x.startswith('train:'))
    assert 'over 2 tasks' in line and '+0.0%' in line
