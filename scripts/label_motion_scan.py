#!/usr/bin/env python3
"""Find the tasks whose expert labels point against what a policy did and still solved.

For every mt50 task in the recorded bags, and per axis (x, y, z): the share of control
steps in which the recorded command (the expert's label) points against the hand's actual
motion over the next step, counted over the episodes that succeeded. In the expert's own
episodes this share stays small (the command leads the motion by a step or two); in
policy-driven (DAgger) episodes a large share means the expert answers something else than
what solved the task there — the mark of a label a revised expert may have to correct
(docs/mt50.md, "Revised labels for basketball"). Only steps where the hand moved more than
2 mm and the label exceeds 0.1 m/s on that axis count. A second table counts the steps in
which the hand rises (more than 2 mm) with the fingers closed (opening below 0.7) and how
many of them are labelled "descend" (below -0.1 m/s): the mark of an expert whose
"descend onto the object" gate a held object sits outside.

    .venv/bin/python scripts/label_motion_scan.py data/mt50 data/mt50_dagger9 --tasks basketball
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MIN_MOTION_M = 0.002      # hand displacement over one step that counts as moving (m)
MIN_LABEL = 0.1           # label speed that counts as pointing somewhere (m/s)
CLOSED_OPENING = 0.7      # gripper opening below which the fingers count as closed


def rising_closed_steps(proprio: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(2,) int: the steps in which the hand rises with the fingers closed, and how many of
    them are labelled "descend", for one episode's proprio (T, 4) and actions (T, 4)."""
    rising = np.r_[np.diff(proprio[:, 2]) > MIN_MOTION_M, False] & (proprio[:, 3] < CLOSED_OPENING)
    return np.array([rising.sum(), (rising & (actions[:, 2] < -MIN_LABEL)).sum()])


def opposed_steps(proprio: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(2, 3) int: per axis x, y, z, the steps whose label opposes the next step's motion and
    the steps that count, for one episode's proprio (T, 4) (hand x, y, z in m, opening) and
    actions (T, 4) (vx, vy, vz in m/s, grip)."""
    motion = np.diff(proprio[:, :3], axis=0)
    label = actions[:-1, :3]
    counted = (np.abs(motion) > MIN_MOTION_M) & (np.abs(label) > MIN_LABEL)
    opposed = counted & (np.sign(motion) != np.sign(label))
    return np.stack([opposed.sum(0), counted.sum(0)])


def main() -> int:
    """Print per task the opposed share per axis and the rising-closed counts, one column
    per bag directory; exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('dirs', nargs='+', help='collection directories (one bag per episode)')
    parser.add_argument('--tasks', nargs='*', help='only these tasks (default: all found)')
    args = parser.parse_args()
    from hybrid_vla_ros.data.bag import read_custom_data
    from hybrid_vla_ros.data.discovery import find_bags
    from hybrid_vla_ros.data.episode import load_episode
    from hybrid_vla_ros.data.topic_map import load_topic_map
    topic_map = load_topic_map(REPO / 'config' / 'data' / 'mt50.yaml')
    counts = defaultdict(lambda: np.zeros((2, 3), np.int64))
    rising = defaultdict(lambda: np.zeros(2, np.int64))
    for directory in args.dirs:
        root = Path(directory)
        if not root.is_dir():
            print(f'{directory}: not a directory of bags', file=sys.stderr)
            return 2
        for bag in find_bags([root])[0]:
            meta = read_custom_data(bag)     # task and outcome without decoding the bag
            task = meta.get('hybrid_vla.task')
            if (args.tasks and task not in args.tasks) or meta.get('hybrid_vla.success') != 'true':
                continue
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                episode = load_episode(bag, topic_map)
            counts[(task, root.name)] += opposed_steps(episode.proprio, episode.actions)
            rising[(task, root.name)] += rising_closed_steps(episode.proprio, episode.actions)
    names = [Path(d).name for d in args.dirs]
    print(f'{"task":22s} axis ' + ''.join(f'{n:>26s}' for n in names))
    for task in sorted({t for t, _ in counts}):
        for axis in range(3):
            cells = []
            for name in names:
                opposed, counted = counts[(task, name)][:, axis]
                cells.append(f'{100 * opposed / counted:5.1f} % of {counted:5d}' if counted
                             else '-')
            print(f'{task:22s} {"xyz"[axis]}    ' + ''.join(f'{c:>26s}' for c in cells))
    print(f'\n{"task":22s} rising with the fingers closed: labelled "descend" of all')
    for task in sorted({t for t, _ in rising}):
        cells = []
        for name in names:
            steps, descend = rising[(task, name)]
            cells.append(f'{descend:5d} of {steps:5d}' if steps else '-')
        print(f'{task:22s}      ' + ''.join(f'{c:>26s}' for c in cells))
    return 0


if __name__ == '__main__':
    sys.exit(main())
