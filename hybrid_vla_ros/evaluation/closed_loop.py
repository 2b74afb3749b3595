"""``hybrid-vla eval-sim``: closed-loop success of a checkpoint in the built-in simulator
(no ROS graph), per task, for the training phrasings and for held-out phrasings never used
in training, beside the scripted expert on the same seeds.

Episode seeds are ``seed + i`` for i in range(episodes); every task of a suite uses the
same seeds, so tasks that share a scene start from the same layout and differ only by the
instruction. ``--blank-instruction`` replaces the instruction by an empty string, to show
how much the policy relies on language.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..inference import load_backend
from .policy_runner import PolicyRunner


def vector_to_command(env, vector: np.ndarray):
    """A policy's (A,) action vector in ROS units -> the env's command object."""
    from ..sim.env import EndEffectorCommand, JointCommand
    if env.command_kind == 'end_effector':
        return EndEffectorCommand(linear_velocity=np.asarray(vector[:3], np.float64),
                                  gripper=float(vector[3]))
    names = env.joint_state()[0][:len(vector)]
    return JointCommand(names=tuple(names), positions=np.asarray(vector, np.float64),
                        time_from_start=env.control_period)


def run_episode(env, runner: Optional[PolicyRunner], seed: int, instruction: str) -> dict:
    """One episode with the policy (or the scripted expert when `runner` is None)."""
    obs = env.reset(seed)
    if runner is not None:
        runner.reset(instruction)
    held = 0
    while True:
        if runner is None:
            action = env.expert_action(obs)
        else:
            vector = runner.act(obs.images, obs.proprio)
            if vector is None or not np.all(np.isfinite(vector)):
                held += 1
                vector = np.zeros(runner.spec.action_dim)
            action = env.command_to_action(vector_to_command(env, vector))
        obs, success, done = env.step(action)
        if done:
            return {'seed': seed, 'success': bool(env.succeeded), 'steps': env.steps,
                    'held_ticks': held}


def evaluate(checkpoint, suite: str = 'metaworld', tasks: Optional[Sequence[str]] = None,
             episodes: int = 10, seed: int = 1000, backend: str = 'onnxruntime',
             mode: str = 'replan', replan_every: int = 4, expert: bool = True,
             blank_instruction: bool = False, progress: bool = True, log=print) -> dict:
    """Run the closed-loop evaluation; returns the results document (see `write_report`)."""
    from ..sim import make_env
    from ..sim.tasks import task_names
    be = load_backend(checkpoint, backend, threads=1)
    runner = PolicyRunner(be, mode=mode, replan_every=replan_every)
    names = list(tasks) if tasks else task_names(suite)
    size = (be.spec.cameras[0]['height'], be.spec.cameras[0]['width'])
    cameras = [c['name'] for c in be.spec.cameras]
    bar = None
    if progress:
        from tqdm import tqdm
        per_task = episodes * (2 + int(expert))
        bar = tqdm(total=len(names) * per_task, desc='eval-sim', unit='ep', dynamic_ncols=True)
    results: Dict[str, dict] = {}
    t0 = time.monotonic()
    for name in names:
        env = make_env(suite, name, seed=seed, image_size=size, cameras=cameras)
        row: Dict[str, List[dict]] = {'train': [], 'held_out': [], 'expert': []}
        for i in range(episodes):
            s = seed + i
            for split, held_out in (('train', False), ('held_out', True)):
                env.reset(s)
                n_phr = len(env.task.held_out if held_out else env.task.instructions)
                text = '' if blank_instruction else env.instruction(i % n_phr, held_out=held_out)
                ep = run_episode(env, runner, s, text)
                ep['instruction'] = text
                row[split].append(ep)
                if bar is not None:
                    bar.update(1)
            if expert:
                row['expert'].append(run_episode(env, None, s, ''))
                if bar is not None:
                    bar.update(1)
        env.close()
        results[name] = {split: {'success_rate': _rate(eps), 'episodes': eps}
                         for split, eps in row.items() if eps}
        log(f'{name:<24} train {results[name]["train"]["success_rate"]:.0%}  held-out '
            f'{results[name]["held_out"]["success_rate"]:.0%}' +
            (f'  expert {results[name]["expert"]["success_rate"]:.0%}' if expert else ''))
    if bar is not None:
        bar.close()
    splits = [s for s in ('train', 'held_out', 'expert')
              if all(s in r for r in results.values())]
    summary = {s: float(np.mean([r[s]['success_rate'] for r in results.values()]))
               for s in splits}
    return {'checkpoint': str(checkpoint), 'suite': suite, 'episodes_per_task': episodes,
            'seeds': [seed, seed + episodes - 1], 'backend': be.describe(), 'scheduler': mode,
            'replan_every': replan_every, 'blank_instruction': blank_instruction,
            'seconds': time.monotonic() - t0, 'mean_success': summary, 'tasks': results}


def _rate(episodes: List[dict]) -> float:
    return float(np.mean([e['success'] for e in episodes])) if episodes else float('nan')


def markdown_table(doc: dict) -> str:
    """The per-task success table of an `evaluate` result, as Markdown."""
    expert = 'expert' in doc['mean_success']
    head = ('| task | training phrasings | held-out phrasings |'
            + (' scripted expert |' if expert else ''))
    sep = '|---|---|---|' + ('---|' if expert else '')
    lines = [head, sep]
    for name, r in doc['tasks'].items():
        cells = [f'{r["train"]["success_rate"]:.0%}', f'{r["held_out"]["success_rate"]:.0%}']
        if expert:
            cells.append(f'{r["expert"]["success_rate"]:.0%}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    m = doc['mean_success']
    cells = [f'**{m["train"]:.1%}**', f'**{m["held_out"]:.1%}**']
    if expert:
        cells.append(f'**{m["expert"]:.1%}**')
    lines.append('| **mean** | ' + ' | '.join(cells) + ' |')
    n = doc['episodes_per_task']
    lines.append('')
    lines.append(f'{n} episodes per task and phrasing set, seeds {doc["seeds"][0]}–'
                 f'{doc["seeds"][1]}, backend {doc["backend"]}, scheduler {doc["scheduler"]}'
                 f'{" (instruction blanked)" if doc["blank_instruction"] else ""}.')
    return '\n'.join(lines) + '\n'


def write_report(doc: dict, out) -> Path:
    """Write ``eval_sim.json`` and ``eval_sim.md`` into directory `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'eval_sim.json').write_text(json.dumps(doc, indent=2), encoding='utf-8')
    (out / 'eval_sim.md').write_text(markdown_table(doc), encoding='utf-8')
    return out
