#!/usr/bin/env python3
"""Compare two ``eval-sim`` results episode by episode on the seeds they share.

Two checkpoints evaluated on the same seeds face the same layouts, so the fair question is
how their success differs *on those episodes*: this script pairs the episodes of each task
by seed, prints the tasks whose success changed, the tier and task averages of both on the
shared episodes (mt50: the four published tiers), and the standard error of the change in
the task average (per-task differences, paired by seed).

    .venv/bin/python scripts/compare_eval.py models/mt50/eval_stage4 models/mt50/eval
    .venv/bin/python scripts/compare_eval.py OLD/eval_sim.json NEW/eval_sim.json --all

Either argument may be an ``eval_sim.json`` or the directory holding it (a directory of an
evaluation still running is read from its ``eval_sim.partial.jsonl``). Exit status 2 when
a file is missing or the two share no task and seed.
"""

import argparse
import json
import math
import sys
from pathlib import Path

SPLITS = ('train', 'held_out')


def load(path):
    """The results document of an eval-sim run (file or its directory). A directory whose
    run has not finished yet is read from its ``eval_sim.partial.jsonl`` (the tasks done so
    far), so a running evaluation can be compared as it goes."""
    p = Path(path)
    if p.is_dir():
        partial = p / 'eval_sim.partial.jsonl'
        p = p / 'eval_sim.json'
        if not p.is_file() and partial.is_file():
            tasks, suite = {}, 'metaworld'
            for line in partial.read_text(encoding='utf-8').splitlines():
                if line.strip():
                    entry = json.loads(line)
                    tasks[entry['task']] = entry['row']
                    suite = entry.get('settings', {}).get('suite', suite)
            return partial, {'suite': suite, 'tasks': tasks}
    if not p.is_file():
        print(f'compare_eval: {p} not found (give an eval_sim.json or its directory)',
              file=sys.stderr)
        sys.exit(2)
    return p, json.loads(p.read_text(encoding='utf-8'))


def by_seed(row, split):
    """{seed: success} of one task's split (empty when the split was not run)."""
    return {int(e['seed']): bool(e['success'])
            for e in (row.get(split) or {}).get('episodes', [])}


def paired(a, b):
    """{task: {split: (rate_a, rate_b, episodes)}} over the seeds both runs hold."""
    out = {}
    for task in a['tasks']:
        if task not in b['tasks']:
            continue
        row = {}
        for split in SPLITS:
            ea, eb = by_seed(a['tasks'][task], split), by_seed(b['tasks'][task], split)
            seeds = sorted(set(ea) & set(eb))
            if seeds:
                row[split] = (sum(ea[s] for s in seeds) / len(seeds),
                              sum(eb[s] for s in seeds) / len(seeds), len(seeds))
        if row:
            out[task] = row
    return out


def tier_of(suite, task):
    """The published tier of an mt50 task, else None."""
    if suite != 'mt50':
        return None
    from hybrid_vla_ros.sim.tasks import mt50_tier
    return mt50_tier(task)


def averages(rows, suite, split, side):
    """(tier average or None, task average) of one side (0 = first run, 1 = second), by
    eval-sim's own `tier_summary` over the tasks that ran `split`."""
    from hybrid_vla_ros.evaluation.closed_loop import tier_summary
    results = {t: {split: {'success_rate': r[split][side]}} for t, r in rows.items()
               if split in r}
    summary = tier_summary(results, [split])['averages'][split]
    return (summary['tier_average'] if suite == 'mt50' else None), summary['task_average']


def main(argv=None):
    """Print the comparison; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('first', help='eval_sim.json (or its directory) of the old run')
    parser.add_argument('second', help='eval_sim.json (or its directory) of the new run')
    parser.add_argument('--all', action='store_true', help='list unchanged tasks too')
    args = parser.parse_args(argv)
    pa, a = load(args.first)
    pb, b = load(args.second)
    suite = a.get('suite', 'metaworld')
    rows = paired(a, b)
    if not rows:
        print(f'compare_eval: {pa} and {pb} share no task and seed', file=sys.stderr)
        return 2
    print(f'first:  {pa}\nsecond: {pb}\n')
    print('| task | tier | training: first → second | held-out: first → second | episodes |')
    print('|---|---|---|---|---|')
    for task, row in rows.items():
        changed = any(abs(r[1] - r[0]) > 1e-9 for r in row.values())
        if not (changed or args.all):
            continue
        cells = [f'{row[s][0]:.0%} → {row[s][1]:.0%}' if s in row else '–' for s in SPLITS]
        episodes = max(r[2] for r in row.values())
        print(f'| {task} | {tier_of(suite, task) or "–"} | {cells[0]} | {cells[1]} '
              f'| {episodes} |')
    print()
    for split in SPLITS:
        if not any(split in r for r in rows.values()):
            continue
        (ta, ka), (tb, kb) = averages(rows, suite, split, 0), averages(rows, suite, split, 1)
        diffs = [r[split][1] - r[split][0] for r in rows.values() if split in r]
        mean = sum(diffs) / len(diffs)
        var = sum((d - mean) ** 2 for d in diffs) / max(1, len(diffs) - 1)
        se = math.sqrt(var / len(diffs))
        tier = f'tier average {ta:.1%} → {tb:.1%}; ' if ta is not None else ''
        print(f'{split}: {tier}task average {ka:.1%} → {kb:.1%} '
              f'({mean:+.1%} ± {se:.1%} standard error over {len(diffs)} tasks)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
