#!/usr/bin/env python3
"""Does a policy find its goal in the camera image or in its own hand position?

A cloned policy whose hand starts at the same place in every episode can read where the
expert was heading off the hand's position a few steps in (the "copycat" shortcut): the
expert moved towards the goal, so the displacement points at it. In closed loop such a
policy follows its own first guess instead of the picture.

For each episode (Meta-World, seeds 1000.., training phrasing 0) the scripted expert drives
the robot for `--step` control steps; then the checkpoint predicts, from that moment's
camera image and proprioception, (a) the hand position at the expert's next grasp (the
waypoint head, when the model has one) and (b) its first action, and again with one input
swapped:

- ``true``: the image and the proprioception of that moment;
- ``start proprio``: the image of that moment, the proprioception of step 0;
- ``start image``: the image of step 0, the proprioception of that moment;
- ``mirrored proprio``: the hand's displacement since step 0 reversed.

A policy that uses the camera keeps its error when the proprioception is swapped and loses
it when the image is; a copycat does the opposite. Prints one line per condition: the
median |dx|, |dy| of the waypoint from the hand position at the expert's first grasp (cm),
and the median |action - expert action| over x, y, z.

    .venv/bin/python scripts/proprio_reliance.py models/default --episodes 8 --step 8
"""

import argparse
import os

import numpy as np

os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('PYOPENGL_PLATFORM', 'egl')

CONDITIONS = ('true', 'start proprio', 'start image', 'mirrored proprio')


def main() -> None:
    """Parse the arguments, run the episodes, print one line per condition."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint')
    parser.add_argument('--tasks', nargs='+',
                        default=['pick-place-red', 'pick-place-green', 'pick-place-blue'])
    parser.add_argument('--episodes', type=int, default=8, help='episodes per task')
    parser.add_argument('--step', type=int, default=8, help='expert steps before the probe')
    args = parser.parse_args()
    import torch
    from hybrid_vla_ros.model import load_checkpoint
    from hybrid_vla_ros.sim import make_env
    torch.set_num_threads(1)
    policy = load_checkpoint(args.checkpoint).eval()
    cameras = [c.name for c in policy.cfg.observation.cameras]
    size = (policy.cfg.observation.cameras[0].height, policy.cfg.observation.cameras[0].width)
    waypoint_err = {c: [] for c in CONDITIONS}
    action_err = {c: [] for c in CONDITIONS}
    for task in args.tasks:
        env = make_env('metaworld', task, seed=1000, image_size=size, cameras=cameras)
        for seed in range(1000, 1000 + args.episodes):
            probe = expert_probe(env, seed, args.step)
            if probe is None:
                continue
            first, now, expert_now, grasp = probe
            mirrored = now.proprio.copy()
            mirrored[:2] = 2 * first.proprio[:2] - now.proprio[:2]
            inputs = {'true': (now.images, now.proprio),
                      'start proprio': (now.images, first.proprio),
                      'start image': (first.images, now.proprio),
                      'mirrored proprio': (now.images, mirrored)}
            text = env.instruction(0)
            for name, (images, proprio) in inputs.items():
                action, waypoint = predict(policy, cameras, images, text, proprio)
                action_err[name].append(np.abs(action[:3] - expert_now[:3]))
                if waypoint is not None:
                    waypoint_err[name].append(np.abs(waypoint[:2] - grasp[:2]))
        env.close()
    for name in CONDITIONS:
        a = np.array(action_err[name])
        line = f'{name:17s} '
        if waypoint_err[name]:
            w = np.array(waypoint_err[name]) * 100
            line += (f'waypoint |dx| {np.median(w[:, 0]):.1f} cm |dy| '
                     f'{np.median(w[:, 1]):.1f} cm; ')
        line += f'first action |error| {np.median(a):.2f} ({len(a)} episodes)'
        print(line)


def expert_probe(env, seed: int, step: int):
    """Run the expert from reset: (observation at step 0, observation at `step`, the
    expert's action there, hand position at the expert's first grasp or the last step),
    or None when the episode ends before `step`."""
    obs = env.reset(seed)
    first, now, expert_now, grasp = obs, None, None, None
    t = 0
    while True:
        action = env.expert_action(obs)
        if t == step:
            now, expert_now = obs, action
        if grasp is None and action[3] > 0.5:
            grasp = obs.ee_position.copy()
        if now is not None and grasp is not None:
            break
        obs, _, done = env.step(action)
        t += 1
        if done:
            break
    if now is None:
        return None
    return first, now, expert_now, obs.ee_position.copy() if grasp is None else grasp


def predict(policy, cameras, images, text, proprio):
    """(first action (A,), waypoint (P,) or None), robot units."""
    import torch
    stacked = torch.from_numpy(np.stack([images[c] for c in cameras])[None])
    ids, mask = policy.tokenize([text])
    with torch.no_grad():
        out = policy(stacked, ids, mask, torch.from_numpy(proprio[None]).float())
        action = policy.unnormalize_actions(out['actions'])[0, 0].numpy()
        head = policy.modular.waypoint_head
        waypoint = None
        if head is not None:
            w = head(out['readouts'].flatten(1)) * policy.proprio_std + policy.proprio_mean
            waypoint = w[0].numpy()
    return action, waypoint


if __name__ == '__main__':
    main()
