"""``hybrid-vla eval-sim``: closed-loop success of a checkpoint in the built-in simulator
(no ROS graph), per task, for the training phrasings and for held-out phrasings never used
in training, beside the scripted expert on the same seeds.

Episode seeds are ``seed + i`` for i in range(episodes); every task of a suite uses the
same seeds, so tasks that share a scene start from the same layout and differ only by the
instruction. ``--blank-instruction`` replaces the instruction by an empty string, to show
how much the policy relies on language. ``--workers N`` evaluates N tasks at a time in
separate processes (one per core is the useful maximum).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..inference import load_backend
from ..schema import ConfigError
from ..worker_processes import describe_exit, job_queue, picklable, queued_jobs, watch_parent
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


def policy_env_action(env, runner: PolicyRunner, obs) -> Optional[np.ndarray]:
    """The env action of `runner`'s policy for `obs` (one control tick); None when the
    policy gave no finite action."""
    vector = runner.act(obs.images, obs.proprio)
    if vector is None or not np.all(np.isfinite(vector)):
        return None
    return env.command_to_action(vector_to_command(env, vector))


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
            action = policy_env_action(env, runner, obs)
            if action is None:
                held += 1
                action = env.command_to_action(
                    vector_to_command(env, np.zeros(runner.spec.action_dim)))
        obs, success, done = env.step(action)
        if done:
            return {'seed': seed, 'success': bool(env.succeeded), 'steps': env.steps,
                    'held_ticks': held}


def evaluate(checkpoint, suite: str = 'metaworld', tasks: Optional[Sequence[str]] = None,
             episodes: int = 10, seed: int = 1000, backend: str = 'onnxruntime',
             mode: str = 'replan', replan_every: int = 4, expert: bool = True,
             blank_instruction: bool = False, progress: bool = True, log=print,
             workers: int = 1, start_jitter: float = 0.0) -> dict:
    """Run the closed-loop evaluation; returns the results document (see `write_report`).

    `workers` > 1 runs whole tasks in that many processes, each with its own simulator and
    a one-thread backend; the episodes and their results are the same as with one worker.
    `start_jitter` (metres, metaworld) starts the hand away from home (see `make_env`); the
    policy and the expert see the same start of each seed.
    """
    from ..sim.tasks import task_names
    names = list(tasks) if tasks else task_names(suite)
    if workers < 1:
        raise ConfigError(f'--workers must be at least 1, got {workers}')
    job = _TaskJob(str(checkpoint), suite, episodes, seed, expert, blank_instruction,
                   float(start_jitter))
    bar = None
    if progress:
        from tqdm import tqdm
        per_task = episodes * (2 + int(expert))
        bar = tqdm(total=len(names) * per_task, desc='eval-sim', unit='ep', dynamic_ncols=True)
    tick = bar.update if bar is not None else (lambda n=1: None)
    t0 = time.monotonic()
    results: Dict[str, dict] = {}
    described = ''

    def report(name: str, row: dict, backend_description: str) -> None:
        nonlocal described
        results[name] = row
        described = backend_description
        log(f'{name:<24} train {row["train"]["success_rate"]:.0%}  held-out '
            f'{row["held_out"]["success_rate"]:.0%}' +
            (f'  expert {row["expert"]["success_rate"]:.0%}' if expert else ''))

    interrupted = False
    failed: Optional[str] = None
    try:
        if workers == 1 or len(names) == 1:
            runner = _make_runner(checkpoint, backend, mode, replan_every)
            for name in names:
                report(name, job.run(runner, name, tick), runner.backend.describe())
        else:
            _evaluate_in_processes(job, names, min(workers, len(names)), backend, mode,
                                   replan_every, tick, report)
    except KeyboardInterrupt:
        if not results:
            raise
        # Keep what finished: a long evaluation stopped by Ctrl-C still reports whole tasks.
        interrupted = True
        log(f'interrupted: reporting the {len(results)} of {len(names)} tasks that finished')
    except EvalWorkerDied as exc:
        # Keep what finished, as for Ctrl-C; the command still fails.
        failed = str(exc)
        log(f'error: {exc}')
    finally:
        if bar is not None:
            bar.close()
    results = {name: results[name] for name in names if name in results}
    splits = [s for s in ('train', 'held_out', 'expert')
              if results and all(s in r for r in results.values())]
    summary = {s: float(np.mean([r[s]['success_rate'] for r in results.values()]))
               for s in splits}
    return {'checkpoint': str(checkpoint), 'suite': suite, 'episodes_per_task': episodes,
            'seeds': [seed, seed + episodes - 1], 'backend': described, 'scheduler': mode,
            'replan_every': replan_every, 'blank_instruction': blank_instruction,
            'start_jitter': float(start_jitter),
            'workers': workers, 'seconds': time.monotonic() - t0, 'mean_success': summary,
            'interrupted': interrupted, 'failed': failed, 'tasks_requested': names,
            'tasks': results}


def _make_runner(checkpoint, backend: str, mode: str, replan_every: int) -> PolicyRunner:
    return PolicyRunner(load_backend(checkpoint, backend, threads=1), mode=mode,
                        replan_every=replan_every)


@dataclass(frozen=True)
class _TaskJob:
    """What every task of one evaluation shares; `run` evaluates one task (picklable, so
    worker processes get the same job)."""

    checkpoint: str
    suite: str
    episodes: int
    seed: int
    expert: bool
    blank_instruction: bool
    start_jitter: float = 0.0

    def run(self, runner: PolicyRunner, name: str, tick: Callable[[int], None]) -> dict:
        """Per-split results of task `name`: {'train'|'held_out'|'expert': {...}}."""
        from ..sim import make_env
        spec = runner.spec
        env = make_env(self.suite, name, seed=self.seed,
                       image_size=(spec.cameras[0]['height'], spec.cameras[0]['width']),
                       cameras=[c['name'] for c in spec.cameras],
                       start_jitter=self.start_jitter)
        row: Dict[str, List[dict]] = {'train': [], 'held_out': [], 'expert': []}
        try:
            for i in range(self.episodes):
                s = self.seed + i
                for split, held_out in (('train', False), ('held_out', True)):
                    env.reset(s)
                    n_phr = len(env.task.held_out if held_out else env.task.instructions)
                    text = ('' if self.blank_instruction
                            else env.instruction(i % n_phr, held_out=held_out))
                    ep = run_episode(env, runner, s, text)
                    ep['instruction'] = text
                    row[split].append(ep)
                    tick(1)
                if self.expert:
                    row['expert'].append(run_episode(env, None, s, ''))
                    tick(1)
        finally:
            env.close()
        return {split: {'success_rate': _rate(eps), 'episodes': eps}
                for split, eps in row.items() if eps}


class EvalWorkerDied(RuntimeError):
    """A worker process of ``eval-sim --workers N`` ended without reporting its task (killed
    by a signal, e.g. the out-of-memory killer, or crashed inside native code)."""


def _worker_main(checkpoint: str, backend: str, mode: str, replan_every: int,
                 jobs, events) -> None:
    """A worker process: load one backend, then evaluate the tasks taken from `jobs` until
    its None sentinel, posting ('start', pid, name), ('tick', n), ('done', name, row,
    backend_description) or ('error', name, exception) on `events`."""
    import os
    orphaned = watch_parent()

    def exit_if_orphaned() -> None:
        if orphaned():
            os._exit(1)

    def tick(n: int = 1) -> None:
        exit_if_orphaned()
        events.put(('tick', n))

    try:
        runner = _make_runner(checkpoint, backend, mode, replan_every)
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent, which re-raises
        events.put(('error', None, picklable(exc)))
        return
    for job, name in queued_jobs(jobs, exit_if_orphaned):
        events.put(('start', os.getpid(), name))
        try:
            row = job.run(runner, name, tick)
        except BaseException as exc:  # noqa: BLE001 -- reported to the parent, which re-raises
            events.put(('error', name, picklable(exc)))
            return
        events.put(('done', name, row, runner.backend.describe()))


def _evaluate_in_processes(job: _TaskJob, names: List[str], workers: int, backend: str,
                           mode: str, replan_every: int, tick, report) -> None:
    """Evaluate `names` in `workers` spawned processes, calling `report(name, row,
    backend_description)` as each task finishes. A worker's exception is re-raised here; a
    worker that dies without a word raises `EvalWorkerDied` naming its task. On any
    exception (Ctrl-C included) the other workers are terminated before it propagates.

    Own processes rather than multiprocessing.Pool: a Pool silently replaces a killed worker
    and waits for its task forever."""
    import multiprocessing as mp
    import queue
    # spawn, not fork: MuJoCo's GL context and onnxruntime's threads do not survive a fork.
    ctx = mp.get_context('spawn')
    jobs, events = job_queue(ctx, [(job, name) for name in names], workers), ctx.Queue()
    procs = [ctx.Process(target=_worker_main, name=f'eval-sim-worker-{i}', daemon=True,
                         args=(job.checkpoint, backend, mode, replan_every, jobs, events))
             for i in range(workers)]
    running: Dict[int, str] = {}
    remaining = set(names)
    try:
        for p in procs:
            p.start()
        while remaining:
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                _check_workers_alive(procs, running, remaining)
                continue
            kind = event[0]
            if kind == 'tick':
                tick(event[1])
            elif kind == 'start':
                running[event[1]] = event[2]
            elif kind == 'done':
                _, name, row, described = event
                remaining.discard(name)
                report(name, row, described)
            else:
                raise event[2]
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    finally:
        for p in procs:
            p.join(timeout=10)


def _check_workers_alive(procs, running: Dict[int, str], remaining: set) -> None:
    """Raise `EvalWorkerDied` when a worker ended abnormally, or when every worker ended and
    tasks are still missing."""
    for p in procs:
        if p.exitcode not in (None, 0):
            task = running.get(p.pid)
            where = f'while evaluating task {task}' if task else 'before taking a task'
            raise EvalWorkerDied(
                f'evaluation worker process {p.pid} died {where} '
                f'({describe_exit(p.exitcode)}). Rerun with fewer --workers, or with '
                '--workers 1 to see any error in this process.')
    if all(p.exitcode is not None for p in procs):
        raise EvalWorkerDied(f'every evaluation worker ended with tasks unfinished: '
                             f'{", ".join(sorted(remaining))}')


def _rate(episodes: List[dict]) -> float:
    return float(np.mean([e['success'] for e in episodes])) if episodes else float('nan')


def markdown_table(doc: dict) -> str:
    """The per-task success table of an `evaluate` result, as Markdown."""
    expert = 'expert' in doc['mean_success']
    head = ('| task | training phrasings | held-out phrasings |'
            + (' scripted expert |' if expert else ''))
    sep = '|---|---|---|' + ('---|' if expert else '')
    lines = [head, sep] if doc['tasks'] else ['No task finished.']
    for name, r in doc['tasks'].items():
        cells = [f'{r["train"]["success_rate"]:.0%}', f'{r["held_out"]["success_rate"]:.0%}']
        if expert:
            cells.append(f'{r["expert"]["success_rate"]:.0%}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    m = doc['mean_success']
    if doc['tasks']:
        cells = [f'**{m["train"]:.1%}**', f'**{m["held_out"]:.1%}**']
        if expert:
            cells.append(f'**{m["expert"]:.1%}**')
        lines.append('| **mean** | ' + ' | '.join(cells) + ' |')
    n = doc['episodes_per_task']
    lines.append('')
    lines.append(f'{n} episodes per task and phrasing set, seeds {doc["seeds"][0]}–'
                 f'{doc["seeds"][1]}, backend {doc["backend"]}, scheduler {doc["scheduler"]}'
                 f'{" (instruction blanked)" if doc["blank_instruction"] else ""}'
                 + (f', hand start jittered up to {doc["start_jitter"] * 100:g} cm per axis'
                    if doc.get('start_jitter') else '') + '.')
    if doc.get('interrupted'):
        lines.append(f'Interrupted: {len(doc["tasks"])} of {len(doc["tasks_requested"])} '
                     'tasks finished; the mean is over those.')
    if doc.get('failed'):
        lines.append(f'Failed: {doc["failed"]} {len(doc["tasks"])} of '
                     f'{len(doc["tasks_requested"])} tasks finished; the mean is over those.')
    return '\n'.join(lines) + '\n'


def write_report(doc: dict, out) -> Path:
    """Write ``eval_sim.json`` and ``eval_sim.md`` into directory `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'eval_sim.json').write_text(json.dumps(doc, indent=2), encoding='utf-8')
    (out / 'eval_sim.md').write_text(markdown_table(doc), encoding='utf-8')
    return out
