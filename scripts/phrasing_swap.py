#!/usr/bin/env python3
"""Does a policy follow each phrasing, or does the scene decide? (shared-scene task pairs)

For a pair of tasks that share a scene (door-lock / door-unlock by default), runs the
policy closed loop in each task's scene with every *training* phrasing of both tasks
(seeds 1000.., onnxruntime, replanning every 4 steps as eval-sim does) and prints the
success per (scene, phrasing), beside the cosine similarity of the phrasing to the nearest
training phrasing of the other task in MiniLM's sentence embedding (what the policy reads
with ``language.pool: mean``). A phrasing the policy understands succeeds in its own scene
and fails in the partner's; a phrasing that succeeds about as often in either scene, or as
rarely in its own as the partner's phrasings do, is not being read.

    .venv/bin/python scripts/phrasing_swap.py models/default --episodes 10
    .venv/bin/python scripts/phrasing_swap.py models/default --pair drawer-open drawer-close
"""

import argparse
import os
import sys

import numpy as np

os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('PYOPENGL_PLATFORM', 'egl')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    """Parse the arguments, run every (scene, phrasing) cell, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='exported checkpoint directory (onnx/)')
    parser.add_argument('--pair', nargs=2, default=['door-lock', 'door-unlock'],
                        metavar='TASK', help='two metaworld tasks sharing a scene')
    parser.add_argument('--episodes', type=int, default=10,
                        help='episodes per scene and phrasing (seeds 1000..)')
    args = parser.parse_args()
    from phrasing_report import sentence_embeddings

    from hybrid_vla_ros.evaluation.closed_loop import run_episode
    from hybrid_vla_ros.inference import load_backend
    from hybrid_vla_ros.sim import make_env
    from hybrid_vla_ros.sim.policy_step import sim_controller
    from hybrid_vla_ros.sim.tasks import get_task

    tasks = list(args.pair)
    phrasings = {t: list(get_task('metaworld', t).instructions) for t in tasks}
    texts = [p for t in tasks for p in phrasings[t]]
    emb = dict(zip(texts, sentence_embeddings(texts), strict=True))
    backend = load_backend(args.checkpoint, 'onnxruntime', threads=1)
    runner = sim_controller(backend, 'metaworld')   # replan every 4, the robot's limits
    size = (backend.spec.cameras[0]['height'], backend.spec.cameras[0]['width'])
    print(f'{args.checkpoint}: {args.episodes} episodes per cell, seeds 1000-'
          f'{999 + args.episodes}')
    print(f'| phrasing (task) | cos to the other task | {tasks[0]} scene | {tasks[1]} scene |')
    print('|---|---|---|---|')
    rates = {}
    for scene in tasks:
        env = make_env('metaworld', scene, seed=1000, image_size=size,
                       cameras=[c['name'] for c in backend.spec.cameras])
        for text in texts:
            wins = [run_episode(env, runner, 1000 + i, text)['success']
                    for i in range(args.episodes)]
            rates[scene, text] = float(np.mean(wins))
        env.close()
    for task in tasks:
        other = [t for t in tasks if t != task][0]
        for text in phrasings[task]:
            cos = max(float(emb[text] @ emb[p]) for p in phrasings[other])
            print(f'| "{text}" ({task}) | {cos:.3f} | {rates[tasks[0], text]:.0%} | '
                  f'{rates[tasks[1], text]:.0%} |')


if __name__ == '__main__':
    main()
