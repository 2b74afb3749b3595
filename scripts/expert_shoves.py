#!/usr/bin/env python3
"""Run the protocol and the revised scripted expert of one mt50 task under lateral shoves.

A revised expert (``collect --expert revised``, hybrid_vla_ros/sim/mt50_experts.py) must
still solve its task from the states a policy reaches, not only on its own clean path.
This script drives both experts on the same seeds while every N-th step's x-y action gets
Gaussian noise added (the same draws for both), and prints success and median episode
length (steps, the settled tail after success included):

    .venv/bin/python scripts/expert_shoves.py plate-slide-back --sigma 0.5 --every 10
    .venv/bin/python scripts/expert_shoves.py plate-slide-back --sigma 1.0 --every 5

Exit status 2 for a task without a revision.
"""

import argparse
import sys
import warnings

import numpy as np


def run_episode(task, expert, seed, sigma, every):
    """One episode of `task` driven by `expert` (protocol or revised), its x-y action
    shoved by N(0, sigma) every `every` steps (0 = never): (succeeded, steps)."""
    from hybrid_vla_ros.sim import make_env
    from hybrid_vla_ros.sim.mt50_experts import make_expert
    env = make_env('mt50', task, seed=seed, cameras=[])
    policy = make_expert(f'{task}-v3', expert)
    rng = np.random.default_rng(seed + 12345)
    try:
        obs = env.reset(seed)
        while not env.done:
            action = np.clip(policy.get_action(obs.state), -1.0, 1.0)
            if every and env.steps % every == every - 1:
                action = action.copy()
                action[:2] += rng.normal(0.0, sigma, 2)
            obs, _, _ = env.step(np.clip(action, -1.0, 1.0))
        return env.succeeded, env.steps
    finally:
        env.close()


def main(argv=None):
    """Parse `argv`, run both experts on the seeds and print one line each; exit status."""
    from hybrid_vla_ros.sim.mt50_experts import HOLD_RULES
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('task', help='an mt50 task with a revised expert')
    parser.add_argument('--sigma', type=float, default=0.5,
                        help='standard deviation of the shove, action units (default 0.5)')
    parser.add_argument('--every', type=int, default=10,
                        help='shove every N-th step, 0 = never (default 10)')
    parser.add_argument('--seeds', type=int, default=30, help='episodes (default 30)')
    parser.add_argument('--first-seed', type=int, default=100, help='first seed (default 100)')
    args = parser.parse_args(argv)
    if f'{args.task}-v3' not in HOLD_RULES:
        known = ', '.join(sorted(name[:-3] for name in HOLD_RULES))
        print(f'{args.task}: no revised expert; tasks with one: {known}', file=sys.stderr)
        return 2
    warnings.simplefilter('ignore')   # Meta-World warns when its gain saturates
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for expert in ('protocol', 'revised'):
        results = [run_episode(args.task, expert, s, args.sigma, args.every) for s in seeds]
        print(f'{expert:9s} sigma={args.sigma} every={args.every}: success '
              f'{sum(ok for ok, _ in results)}/{len(results)}, median steps '
              f'{int(np.median([steps for _, steps in results]))}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
