#!/usr/bin/env python3
"""Run the ablation study of docs/ablations.md: same data, same budget, one row per config.

For each config in config/train/ablations/: train on the first EPISODES seeds of every task
of the collected built-in suite, export, evaluate closed loop (training and held-out
phrasings), and for the default recipe also with the instruction blanked. Writes
runs/ablations/results.json and prints the Markdown table for docs/ablations.md.

    .venv/bin/python scripts/ablations.py --data data/metaworld_default --episodes 20
"""

import argparse
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
ROWS = [
    ('modular + transformer, hybrid', 'modular_hybrid'),
    ('end-to-end + modular (early fusion), hybrid', 'early_hybrid'),
    ('modular + transformer, e2e', 'modular_e2e'),
    ('modular + transformer, staged', 'modular_staged'),
]


def run(cmd):
    """Echo and run a command, failing the study on error."""
    print('+', ' '.join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def main():
    """Train, export and evaluate every row; print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', default='data/metaworld_default')
    ap.add_argument('--episodes', type=int, default=20, help='training episodes per task')
    ap.add_argument('--eval-episodes', type=int, default=5, help='per task and phrasing set')
    ap.add_argument('--out', default='runs/ablations')
    args = ap.parse_args()
    bags = sorted(p for p in glob.glob(os.path.join(args.data, '*_*'))
                  if int(p.rsplit('_', 1)[1]) < args.episodes)
    out = Path(args.out)
    results = {}
    for label, name in ROWS:
        run_dir = out / name
        if not (run_dir / 'last').exists():
            run([BIN / 'hybrid-vla', 'train', '--config', f'config/train/ablations/{name}.yaml',
                 '--data', *bags, '--out', run_dir])
        ckpt = run_dir / 'last'
        run([BIN / 'hybrid-vla', 'export', '--checkpoint', ckpt])
        variants = [('', [])]
        if name == 'modular_hybrid':
            variants.append(('_blank', ['--blank-instruction']))
        for suffix, flags in variants:
            ev = run_dir / f'eval{suffix}'
            run([BIN / 'hybrid-vla', 'eval-sim', '--checkpoint', ckpt, '--episodes',
                 args.eval_episodes, '--no-expert', '--out', ev, *flags])
            doc = json.loads((ev / 'eval_sim.json').read_text())
            results[label + (' — instruction blanked' if suffix else '')] = doc
    (out / 'results.json').write_text(json.dumps(results, indent=2))
    print(f'| row | training phrasings | held-out phrasings | (training: {len(bags)} '
          f'episodes, 1 epoch) |\n|---|---|---|---|')
    for label, doc in results.items():
        m = doc['mean_success']
        print(f'| {label} | {m["train"]:.1%} | {m["held_out"]:.1%} | |')


if __name__ == '__main__':
    main()
