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

import dataclasses
import json
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..inference import load_backend
from ..inference.control import ControlSettings, PolicyController
from ..inference.manifest import model_fingerprint
from ..schema import ConfigError
from ..sim.policy_step import policy_env_action, sim_controller
from ..worker_processes import (WorkerDied, describe_exit, picklable, queued_jobs,
                                run_in_processes, watch_parent)


# Tasks finished so far, one JSON line each, in the output directory: a stopped evaluation
# run again with the same settings continues from them.
PARTIAL_FILE = 'eval_sim.partial.jsonl'


def run_episode(env, controller: Optional[PolicyController], seed: int,
                instruction: str) -> dict:
    """One episode with the policy (or the scripted expert when `controller` is None):
    {'seed', 'success', 'steps', 'held_ticks', 'clamped_ticks'}."""
    obs = env.reset(seed)
    if controller is not None:
        controller.reset(instruction)
    held = clamped = 0
    while True:
        if controller is None:
            action = env.expert_action(obs)
        else:
            action, result = policy_env_action(env, controller, obs)
            held += result.action is None
            clamped += bool(result.clamped)
        obs, success, done = env.step(action)
        if done:
            return {'seed': seed, 'success': bool(env.succeeded), 'steps': env.steps,
                    'held_ticks': held, 'clamped_ticks': clamped}


def evaluate(checkpoint, suite: str = 'metaworld', tasks: Optional[Sequence[str]] = None,
             episodes: int = 10, seed: int = 1000, backend: str = 'onnxruntime',
             control: Optional[ControlSettings] = None, expert: bool = True,
             blank_instruction: bool = False, progress: bool = True, log=print,
             workers: int = 1, start_jitter: float = 0.0, params_file=None,
             resume_file=None) -> dict:
    """Run the closed-loop evaluation; returns the results document (see `write_report`).

    The policy runs through the robot's control path (`PolicyController`): `control` is
    its scheduling (default: the policy node's in `params_file`), and the safety limits of
    the policy node in `params_file` (default the suite's simulated-robot parameter file,
    `sim.policy_step.sim_parameter_file`) filter every action. `tasks` may name tasks or,
    on mt50, tiers. `workers` > 1 runs whole tasks in that many processes, each with its
    own simulator and a one-thread backend; the episodes and their results are the same as
    with one worker. `start_jitter` (metres, metaworld) starts the hand away from home (see
    `make_env`); the policy and the expert see the same start of each seed. `resume_file`
    (a JSON-lines file): every finished task is appended there, and tasks already there
    from a run with the same settings are not run again (a stopped evaluation continues).
    """
    from ..sim.policy_step import sim_control_settings, sim_parameter_file
    from ..sim.tasks import select_tasks
    names = select_tasks(suite, tasks)
    if workers < 1:
        raise ConfigError(f'--workers must be at least 1, got {workers}')
    if episodes < 1:
        raise ConfigError(f'--episodes must be at least 1, got {episodes}')
    params_file = str(params_file or sim_parameter_file(suite))
    control = control or sim_control_settings(params_file)
    # Fail on bad settings here, not in every worker: load, check, build the limits once.
    # This process evaluates with it too when it runs the tasks itself.
    controller = _make_controller(str(checkpoint), backend, control, suite, params_file)
    limits = controller.limits
    fingerprint = model_fingerprint(checkpoint, controller.backend)
    job = _TaskJob(str(checkpoint), suite, episodes, seed, expert, blank_instruction,
                   float(start_jitter))
    settings = {'checkpoint': fingerprint, 'suite': suite, 'episodes': episodes,
                'seed': seed, 'backend': backend, 'control': dataclasses.asdict(control),
                'expert': expert, 'blank_instruction': blank_instruction,
                'start_jitter': float(start_jitter),
                'limits': dataclasses.asdict(limits) if limits is not None else None}
    results: Dict[str, dict] = {}
    described = ''
    if resume_file is not None:
        results, described = _resumed(resume_file, settings, names)
        if results:
            log(f'resuming: {len(results)} of {len(names)} tasks already evaluated with the '
                f'same settings ({resume_file})')
    todo = [name for name in names if name not in results]
    bar = None
    if progress and todo:
        from tqdm import tqdm
        per_task = episodes * (2 + int(expert))
        bar = tqdm(total=len(todo) * per_task, desc='eval-sim', unit='ep', dynamic_ncols=True)
    tick = bar.update if bar is not None else (lambda n=1: None)
    t0 = time.monotonic()

    def report(name: str, row: dict, backend_description: str) -> None:
        nonlocal described
        results[name] = row
        described = backend_description
        if resume_file is not None:
            with open(resume_file, 'a', encoding='utf-8') as f:
                f.write(json.dumps({'settings': settings, 'task': name, 'row': row,
                                    'backend': backend_description}) + '\n')
        log(f'{name:<26} train {row["train"]["success_rate"]:.0%}  held-out '
            f'{row["held_out"]["success_rate"]:.0%}' +
            (f'  expert {row["expert"]["success_rate"]:.0%}' if expert else ''))

    interrupted = False
    failed: Optional[str] = None
    try:
        if workers == 1 or len(todo) == 1:
            for name in todo:
                report(name, job.run(controller, name, tick), controller.backend.describe())
        elif todo:
            # The workers load their own: free this process's model meanwhile.
            controller.close()
            controller = None
            _evaluate_in_processes(job, todo, min(workers, len(todo)), backend, control,
                                   params_file, tick, report)
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
        if controller is not None:
            controller.close()
        if bar is not None:
            bar.close()
    results = {name: results[name] for name in names if name in results}
    splits = [s for s in ('train', 'held_out', 'expert')
              if results and all(s in r for r in results.values())]
    summary = {s: float(np.mean([r[s]['success_rate'] for r in results.values()]))
               for s in splits}
    doc = {'checkpoint': str(checkpoint), 'suite': suite, 'episodes_per_task': episodes,
           'seeds': [seed, seed + episodes - 1], 'backend': described,
           'scheduler': control.scheduler, 'replan_every': control.replan_every,
           'blank_instruction': blank_instruction, 'start_jitter': float(start_jitter),
           'safety_parameters': _shown_path(params_file), 'workers': workers,
           'seconds': time.monotonic() - t0, 'mean_success': summary,
           'interrupted': interrupted, 'failed': failed, 'tasks_requested': names,
           'tasks': results}
    if suite == 'mt50':
        doc['tiers'] = tier_summary(results, splits)
    return doc


def _shown_path(path: str) -> str:
    """`path` as written into a results file: relative to the package's data for its own
    files (``config/ros/sim_mt50.yaml``, the same on every machine), else as given."""
    from ..paths import data_root
    try:
        return Path(path).resolve().relative_to(data_root().resolve()).as_posix()
    except ValueError:
        return str(path)


def tier_summary(results: Dict[str, dict], splits: Sequence[str]) -> dict:
    """mt50: per difficulty tier the mean success of its finished tasks, per split, and the
    two averages the papers and this package report: ``tier_average`` (the mean of the
    four tier means, as the published MT50 tables) and ``task_average`` (the mean over the
    tasks). Tiers with no finished task are left out of the tier average."""
    from ..sim.tasks import MT50_TIERS
    tiers: Dict[str, dict] = {}
    for tier, members in MT50_TIERS.items():
        done = [results[t] for t in members if t in results]
        tiers[tier] = {'tasks': len(done), 'of': len(members),
                       **{s: float(np.mean([r[s]['success_rate'] for r in done]))
                          for s in splits if done}}
    averages = {}
    for s in splits:
        means = [t[s] for t in tiers.values() if s in t]
        averages[s] = {'tier_average': float(np.mean(means)) if means else float('nan'),
                       'task_average': float(np.mean([r[s]['success_rate']
                                                      for r in results.values()]))}
    return {'tiers': tiers, 'averages': averages}


def _resumed(path, settings: dict, names: Sequence[str]):
    """(task -> row, backend description) of the tasks in `path` run with `settings`."""
    results: Dict[str, dict] = {}
    described = ''
    try:
        lines = Path(path).read_text(encoding='utf-8').splitlines()
    except FileNotFoundError:
        return results, described
    wanted = json.loads(json.dumps(settings))   # as it reads back from the file
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:  # a line cut short by a kill: that task runs again
            continue
        if entry.get('settings') == wanted and entry.get('task') in names:
            results[entry['task']] = entry['row']
            described = entry.get('backend', described)
    return results, described


def _make_controller(checkpoint: str, backend: str, control: ControlSettings, suite: str,
                     params_file: str) -> PolicyController:
    return sim_controller(load_backend(checkpoint, backend, threads=1), suite, control,
                          params_file)


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

    def run(self, controller: PolicyController, name: str,
            tick: Callable[[int], None]) -> dict:
        """Per-split results of task `name`: {'train'|'held_out'|'expert': {...}}."""
        from ..sim import make_env
        spec = controller.spec
        env = make_env(self.suite, name, seed=self.seed,
                       image_size=(spec.cameras[0]['height'], spec.cameras[0]['width']),
                       cameras=[c['name'] for c in spec.cameras],
                       start_jitter=self.start_jitter)
        # Only the frames the policy encodes are rendered: the results are the same, the
        # expert's episodes render nothing and a policy that replans every N ticks one in N.
        env.render_on_read = True
        row: Dict[str, List[dict]] = {'train': [], 'held_out': [], 'expert': []}
        try:
            for i in range(self.episodes):
                s = self.seed + i
                for split, held_out in (('train', False), ('held_out', True)):
                    env.reset(s)
                    n_phr = len(env.task.held_out if held_out else env.task.instructions)
                    text = ('' if self.blank_instruction
                            else env.instruction(i % n_phr, held_out=held_out))
                    ep = run_episode(env, controller, s, text)
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


class EvalWorkerDied(WorkerDied):
    """A worker process of ``eval-sim --workers N`` ended without reporting its task (killed
    by a signal, e.g. the out-of-memory killer, or crashed inside native code)."""


def _eval_worker_died(pid: int, code: Optional[int], task: Optional[str]) -> EvalWorkerDied:
    where = f'while evaluating task {task}' if task else 'before taking a task'
    return EvalWorkerDied(
        f'evaluation worker process {pid} died {where} ({describe_exit(code)}). Rerun with '
        'fewer --workers, or with --workers 1 to see any error in this process.')


def _worker_main(checkpoint: str, backend: str, control: ControlSettings, suite: str,
                 params_file: str, jobs, events, stop) -> None:
    """A worker process (`run_in_processes`): load one backend, then evaluate the tasks
    taken from `jobs`, posting ('start', pid, name), ('tick', n), ('done', name, row,
    backend_description), ('exit',) or ('error', exception) on `events`."""
    import os
    orphaned = watch_parent()

    def exit_if_orphaned() -> None:
        if orphaned():
            os._exit(1)

    def tick(n: int = 1) -> None:
        exit_if_orphaned()
        events.put(('tick', n))

    try:
        controller = _make_controller(checkpoint, backend, control, suite, params_file)
        for job, name in queued_jobs(jobs, exit_if_orphaned):
            events.put(('start', os.getpid(), name))
            row = job.run(controller, name, tick)
            events.put(('done', name, row, controller.backend.describe()))
        events.put(('exit',))
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent, which re-raises
        events.put(('error', picklable(exc)))


def _evaluate_in_processes(job: _TaskJob, names: List[str], workers: int, backend: str,
                           control: ControlSettings, params_file: str, tick, report) -> None:
    """Evaluate `names` in `workers` spawned processes, calling `report(name, row,
    backend_description)` as each task finishes. A worker's exception is re-raised here; a
    worker that dies without a word raises `EvalWorkerDied` naming its task; on any
    exception (Ctrl-C included) the other workers are terminated before it propagates."""

    def handle(event) -> None:
        if event[0] == 'tick':
            tick(event[1])
        elif event[0] == 'done':
            report(*event[1:])

    run_in_processes(_worker_main, (job.checkpoint, backend, control, job.suite, params_file),
                     [(job, name) for name in names], workers, handle, 'eval-sim',
                     _eval_worker_died)


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
    if doc.get('tiers') and doc['tasks']:
        lines += [''] + tier_table(doc)
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


def tier_table(doc: dict) -> List[str]:
    """mt50: the per-tier Markdown table with the tier average (mean of the four tier
    means, as the published MT50 tables) and the mean over the tasks."""
    tiers, averages = doc['tiers']['tiers'], doc['tiers']['averages']
    splits = [s for s in ('train', 'held_out', 'expert') if s in averages]
    titles = {'train': 'training phrasings', 'held_out': 'held-out phrasings',
              'expert': 'scripted expert'}
    lines = ['| tier | tasks | ' + ' | '.join(titles[s] for s in splits) + ' |',
             '|---|---|' + '---|' * len(splits)]
    for tier, row in tiers.items():
        cells = [f'{row[s]:.1%}' if s in row else '–' for s in splits]
        lines.append(f'| {tier} | {row["tasks"]}/{row["of"]} | ' + ' | '.join(cells) + ' |')
    lines.append('| **tier average** (mean of tier means) | | ' + ' | '.join(
        f'**{averages[s]["tier_average"]:.1%}**' for s in splits) + ' |')
    lines.append('| **task average** (mean over tasks) | | ' + ' | '.join(
        f'**{averages[s]["task_average"]:.1%}**' for s in splits) + ' |')
    return lines


def write_report(doc: dict, out) -> Path:
    """Write ``eval_sim.json`` and ``eval_sim.md`` into directory `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'eval_sim.json').write_text(json.dumps(doc, indent=2), encoding='utf-8')
    (out / 'eval_sim.md').write_text(markdown_table(doc), encoding='utf-8')
    return out
