"""Run the scripted experts and record one rosbag2 per episode (``hybrid-vla collect``).

For every task and every seed ``seed, seed + 1, ..., seed + episodes - 1`` the task's
environment is reset with that seed (layout and instruction phrasing follow from it), the
expert drives it until `LINGER_STEPS` after success or the task's step limit, and each step
is recorded: observation first, then the command the expert gave, with the same stamp. The
bag is ``<out>/<task>_<seed>/``. Episodes whose bag already exists are skipped, so an
interrupted collection resumes where it stopped.

With ``action_noise`` > 0 the executed action is the expert's plus temporally correlated
Gaussian noise (DART-style noise injection), while the *recorded* command stays the
expert's clean action for the state it saw. The robot then drifts off the expert's nominal
path and the bag shows how the expert steers back — the states a cloned policy reaches
after its own small errors, which clean demonstrations never contain.

With a ``policy`` (an exported checkpoint) the trained policy drives instead, on a share of
the control steps, while the bag still records the expert's action for every state it
passes through (DAgger's data aggregation): the states are the ones the policy reaches with
its own mistakes, the labels say what the expert would do there.

Ctrl-C stops at the next control step: the unfinished episode's partial bag is removed, every
finished one stays complete (a bag is never interrupted while it is being finalized). A
second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import camera_names, make_env
from ..data.bag import DEFAULT_BAG_VERSION, check_bag_version
from .env import SimEnv
from .recorder import PARTIAL_DIR, EpisodeWriter
from ..schema import ConfigError
from ..worker_processes import (WorkerDied, describe_exit, picklable, queued_jobs,
                                run_in_processes, watch_parent)
from .tasks import (DEFAULT_EXPERT, DEFAULT_SUITE, TaskError, check_expert_choice,
                    select_tasks)


@dataclasses.dataclass
class EpisodeResult:
    """One episode: its bag, steps, whether the expert succeeded, the recorded instruction."""

    task: str
    seed: int
    path: Path
    steps: int
    success: bool
    instruction: str


@dataclasses.dataclass
class CollectionSummary:
    """What a collection did.

    Attributes:
        recorded: episodes recorded now, in order.
        skipped: bags that already existed (not re-recorded, not counted in success rates).
        seconds: wall time spent recording.
        interrupted: stopped by Ctrl-C (every recorded bag is complete).
        driver: checkpoint of the policy that drove (DAgger), None when the expert did.
        failed: why the collection stopped early (a worker process died), else None;
            every recorded bag is complete either way.

    """

    suite: str
    recorded: List[EpisodeResult] = dataclasses.field(default_factory=list)
    skipped: List[Path] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    driver: Optional[str] = None
    failed: Optional[str] = None

    @property
    def episodes_per_minute(self) -> float:
        """Recorded episodes per minute of wall time."""
        return 60.0 * len(self.recorded) / self.seconds if self.seconds > 0 else 0.0

    def per_task(self) -> Dict[str, Dict[str, float]]:
        """Task -> {'episodes', 'successes', 'success_rate', 'mean_steps'} of recorded episodes."""
        table: Dict[str, Dict[str, float]] = {}
        for r in self.recorded:
            row = table.setdefault(r.task, {'episodes': 0, 'successes': 0, 'steps': 0})
            row['episodes'] += 1
            row['successes'] += int(r.success)
            row['steps'] += r.steps
        for row in table.values():
            row['success_rate'] = row['successes'] / row['episodes']
            row['mean_steps'] = row.pop('steps') / row['episodes']
        return table

    def format(self) -> str:
        """A human-readable table (what the command prints)."""
        who = 'expert' if self.driver is None else 'policy'
        if not self.recorded and self.skipped and not (self.interrupted or self.failed):
            # Run again over a finished directory (make train-default twice): no empty table.
            return (f'nothing to record: all {len(self.skipped)} episodes already recorded '
                    '(delete a bag directory to record it again)')
        lines = [f'{"task":<24}{"episodes":>9}{who + " success":>16}{"mean steps":>12}']
        for task, row in self.per_task().items():
            lines.append(f'{task:<24}{row["episodes"]:>9}{row["successes"]:>9} '
                         f'({100 * row["success_rate"]:3.0f}%){row["mean_steps"]:>12.1f}')
        total = len(self.recorded)
        wins = sum(r.success for r in self.recorded)
        rate = f'{100 * wins / total:.0f}%' if total else '-'
        lines.append(f'{total} episodes recorded ({wins} {who} successes, {rate}) in '
                     f'{self.seconds:.1f} s: {self.episodes_per_minute:.1f} episodes/minute')
        if self.driver is not None:
            lines.append(f'driven by {self.driver}; every recorded command is the expert\'s')
        if self.skipped:
            lines.append(f'{len(self.skipped)} episodes already recorded, skipped')
        if self.interrupted:
            lines.append('interrupted: every listed episode is complete; the unfinished one '
                         'was removed')
        if self.failed:
            lines.append(f'error: {self.failed}')
        return '\n'.join(lines)


class StopRequest:
    """Turns the first Ctrl-C into a request checked at safe points (main thread only).

    Use as a context manager around a collection; `check` raises KeyboardInterrupt once a
    stop was requested. A second Ctrl-C raises immediately.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was requested."""
        if self.requested:
            raise KeyboardInterrupt


def episode_name(task: str, seed: int) -> str:
    """The bag directory name of one episode: ``<task>_<seed>``."""
    return f'{task}_{seed}'


class ActionNoise:
    """Temporally correlated Gaussian noise added to the executed expert action.

    AR(1) process per dimension: ``n_t = rho * n_{t-1} + sqrt(1 - rho^2) * sigma * eps``, so
    every step's noise has std `sigma` (action units) and the correlation time is about
    ``1 / (1 - rho)`` steps — long enough to push the robot centimetres off the expert's
    path. End-effector suites perturb dx, dy, dz and never the gripper (a dropped object is
    not a state worth demonstrating); joint suites perturb every joint. Seeded by the
    episode seed, so a collection is reproducible.
    """

    def __init__(self, sigma: float, rho: float, dims: int, seed: int):
        self.sigma, self.rho = float(sigma), float(rho)
        self.rng = np.random.default_rng([seed, 0xDA27])
        self.state = np.zeros(dims)

    def sample(self) -> np.ndarray:
        """The next (dims,) noise vector, action units."""
        eps = self.rng.standard_normal(self.state.shape)
        self.state = self.rho * self.state + np.sqrt(1.0 - self.rho ** 2) * self.sigma * eps
        return self.state


class PolicyDriver:
    """A trained policy that acts during a collection while the expert labels (DAgger).

    Args:
        checkpoint: an exported checkpoint directory (``hybrid-vla export``).
        share: probability in (0, 1] that the policy's action, not the expert's, is executed
            at a control step (drawn per step from the episode seed; the policy is run every
            step either way, so its action chunks stay in step with the episode).
        backend: inference backend (default onnxruntime, one thread).

    """

    def __init__(self, checkpoint, share: float = 1.0, backend: str = 'onnxruntime',
                 suite: str = DEFAULT_SUITE):
        from ..inference import load_backend
        from .policy_step import sim_controller
        if not 0.0 < share <= 1.0:
            raise ConfigError(f'policy share must be in (0, 1], got {share}')
        self.checkpoint = str(checkpoint)
        self.share = float(share)
        self.controller = sim_controller(load_backend(checkpoint, backend, threads=1), suite)
        self.spec = self.controller.spec

    @property
    def cameras(self) -> List[str]:
        """The camera names the policy reads, in its order."""
        return [c['name'] for c in self.spec.cameras]

    @property
    def image_size(self) -> Tuple[int, int]:
        """(height, width) of the policy's camera images, pixels."""
        return (int(self.spec.cameras[0]['height']), int(self.spec.cameras[0]['width']))

    def reset(self, instruction: str) -> None:
        """Start an episode with `instruction`."""
        self.controller.reset(instruction)

    def action(self, env: SimEnv, obs) -> Optional[np.ndarray]:
        """The policy's env action for `obs` through the robot's control path (scheduling
        and the suite's safety limits, `sim_controller`); None when the policy holds (the
        expert acts on that step)."""
        from .policy_step import policy_env_action
        action, result = policy_env_action(env, self.controller, obs)
        return None if result.action is None else action


def _perturbed_dims(env: SimEnv) -> int:
    return 3 if env.command_kind == 'end_effector' else env.action_dim


def record_episode(env: SimEnv, seed: int, path, compress: bool = True,
                   check: Optional[Callable[[], None]] = None, action_noise: float = 0.0,
                   noise_correlation: float = 0.8,
                   driver: Optional[PolicyDriver] = None,
                   shared_partial_dir: bool = False,
                   bag_version: int = DEFAULT_BAG_VERSION) -> EpisodeResult:
    """Run the expert for one episode of `env` from `seed` and write it to the bag `path`.

    `action_noise` (std, action units; 0 = clean) perturbs the executed action, never the
    recorded one (see `ActionNoise`; `noise_correlation` is its rho). With a `driver` its
    policy's action is executed on a share of the steps (see `PolicyDriver`); the recorded
    command is the expert's action either way. The bag appears at
    `path` only once complete; on any exception (Ctrl-C included) the partial bag is deleted
    and the exception propagates. `check` is called before every control step
    (`StopRequest.check` raises there). `shared_partial_dir`: other processes record into
    the same directory at the same time (see `EpisodeWriter`). `bag_version`: rosbag2
    metadata version, 8 (every supported distribution reads it) or 9.
    """
    obs = env.reset(seed)
    text = env.instruction()
    noise = (ActionNoise(action_noise, noise_correlation, _perturbed_dims(env), seed)
             if action_noise > 0 else None)
    if driver is not None:
        driver.reset(text)
        mixing = np.random.default_rng([seed, 0xDA66])
    policy_steps = 0
    with EpisodeWriter(path, env.cameras, env.command_kind, compress=compress,
                       shared_partial_dir=shared_partial_dir, bag_version=bag_version) as bag:
        bag.write_instruction(obs.time, text)
        while True:
            if check is not None:
                check()
            action = env.expert_action(obs)
            bag.write_observation(obs)
            bag.write_command(obs.time, env.action_to_command(action))
            if driver is not None:
                proposed = driver.action(env, obs)
                if mixing.random() < driver.share and proposed is not None:
                    action = proposed
                    policy_steps += 1
            if noise is not None:
                action = action.copy()
                k = noise.state.shape[0]
                action[:k] = np.clip(action[:k] + noise.sample(), -1.0, 1.0)
            obs, _, done = env.step(action)
            if done:
                break
        meta = {'task': env.task.name, 'suite': env.task.suite, 'seed': seed,
                'success': env.succeeded, 'instruction': text,
                'control_period': repr(float(env.control_period))}
        if noise is not None:
            meta['action_noise'] = repr(float(action_noise))
            meta['noise_correlation'] = repr(float(noise_correlation))
        if env.start_jitter > 0:
            meta['start_jitter'] = repr(env.start_jitter)
        if env.expert_name != DEFAULT_EXPERT:
            meta['expert'] = env.expert_name
        if driver is not None:
            meta['driver_policy'] = driver.checkpoint
            meta['driver_share'] = repr(driver.share)
            meta['driver_steps'] = str(policy_steps)
        bag.commit(meta)
    return EpisodeResult(env.task.name, seed, Path(path), env.steps, env.succeeded, text)


def collect(out_dir, suite: str = DEFAULT_SUITE, tasks: Optional[Sequence[str]] = None,
            episodes: int = 1, seed: int = 0, image_size=None,
            cameras: Optional[Sequence[str]] = None, compress: bool = True,
            progress: bool = True, action_noise: float = 0.0,
            noise_correlation: float = 0.8, start_jitter: float = 0.0,
            policy=None, policy_share: float = 1.0, workers: int = 1,
            bag_version: int = DEFAULT_BAG_VERSION,
            expert: str = DEFAULT_EXPERT) -> CollectionSummary:
    """Record `episodes` expert episodes of every task (seeds ``seed .. seed+episodes-1``).

    Args:
        out_dir: directory receiving ``<task>_<seed>/`` bags (created if needed).
        suite: ``metaworld`` or ``arm``.
        tasks: task names (default: all of the suite); unknown names raise `TaskError`.
        episodes: episodes per task.
        seed: seed of each task's first episode.
        image_size: camera image size (see `make_env`; default 128, or the policy's).
        cameras: cameras to record (default: the suite's ``front``).
        compress: zstd chunk compression in the MCAP files.
        progress: show a tqdm progress bar on stderr.
        action_noise: std of the noise added to the executed expert action, action units
            (0 = clean demonstrations; see `ActionNoise`).
        noise_correlation: the noise's step-to-step correlation rho in [0, 1).
        start_jitter: metaworld: largest hand start offset from home per axis, metres
            (0 = every episode starts at home; see `make_env`).
        policy: exported checkpoint that drives on a share of the steps while the expert
            labels (DAgger; see `PolicyDriver`). The policy's cameras and image size are
            used unless `cameras` are given, which must then include them.
        policy_share: probability that a step executes the policy's action, (0, 1].
        workers: processes recording episodes side by side (each simulates and renders on
            one core); the bags are the same as with one, since every episode follows from
            its own seed.
        bag_version: rosbag2 metadata version of the bags: 8 (default; Humble, Jazzy and
            Kilted read it) or 9 (Jazzy and later).
        expert: the scripted expert that labels (and drives without a policy): ``protocol``
            or, mt50 only, ``revised`` (`mt50_experts`); the bags say which.

    Returns:
        The summary (episodes in task, then seed order, whichever worker recorded them); on
        Ctrl-C it is returned with ``interrupted`` set instead of raising, and when a
        worker process dies with ``failed`` saying so.

    """
    if episodes < 1:
        raise ValueError(f'episodes must be at least 1, got {episodes}')
    if workers < 1:
        raise ValueError(f'workers must be at least 1, got {workers}')
    if action_noise < 0:
        raise ValueError(f'action_noise must be >= 0, got {action_noise}')
    if not 0.0 <= noise_correlation < 1.0:
        raise ValueError(f'noise_correlation must be in [0, 1), got {noise_correlation}')
    names = select_tasks(suite, tasks)  # fails on a bad name before anything runs
    check_expert_choice(suite, expert)
    unknown = [c for c in cameras or () if c not in camera_names(suite)]
    if unknown:
        raise TaskError(f'unknown camera(s) {", ".join(unknown)} for the {suite} suite; '
                        f'choose from {", ".join(camera_names(suite))}')
    driver = PolicyDriver(policy, policy_share, suite=suite) if policy is not None else None
    if driver is not None:
        cameras, image_size = _cameras_for_driver(driver, cameras, image_size)
    elif image_size is None:
        image_size = 128
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Partial bags left by a killed run (one collection per directory is assumed).
    shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)
    summary = CollectionSummary(suite, driver=driver.checkpoint if driver else None)
    pending: List[Tuple[str, int]] = []
    for name in names:
        for episode_seed in range(seed, seed + episodes):
            path = out / episode_name(name, episode_seed)
            if (path / 'metadata.yaml').exists():
                summary.skipped.append(path)
            else:
                pending.append((name, episode_seed))
    spec = _RecordSpec(suite, image_size, None if cameras is None else list(cameras),
                       compress, action_noise, noise_correlation, start_jitter,
                       None if driver is None else driver.checkpoint, policy_share,
                       check_bag_version(bag_version), expert)
    from tqdm import tqdm
    bar = tqdm(total=len(names) * episodes, unit='episode', disable=not progress,
               desc=f'collect {suite}', initial=len(summary.skipped))

    def recorded(result: EpisodeResult) -> None:
        summary.recorded.append(result)
        wins = sum(r.success for r in summary.recorded)
        bar.set_postfix(task=result.task, success=f'{wins}/{len(summary.recorded)}')
        bar.update()

    start = time.perf_counter()
    with StopRequest() as stop:
        try:
            if workers > 1 and len(pending) > 1:
                _record_in_processes(spec, out, pending, min(workers, len(pending)), stop,
                                     recorded)
            else:
                _record_serially(spec, out, pending, driver, stop.check, recorded)
        except KeyboardInterrupt:
            summary.interrupted = True
        except CollectWorkerDied as exc:
            summary.failed = str(exc)
        finally:
            summary.seconds = time.perf_counter() - start
            bar.close()
    order = {name: i for i, name in enumerate(names)}
    summary.recorded.sort(key=lambda r: (order[r.task], r.seed))
    return summary


@dataclasses.dataclass(frozen=True)
class _RecordSpec:
    """How every episode of one collection is recorded (picklable: worker processes get it)."""

    suite: str
    image_size: object
    cameras: Optional[List[str]]
    compress: bool
    action_noise: float
    noise_correlation: float
    start_jitter: float
    policy: Optional[str]
    policy_share: float
    bag_version: int = DEFAULT_BAG_VERSION
    expert: str = DEFAULT_EXPERT


def _record_serially(spec: _RecordSpec, out: Path, pending: Sequence[Tuple[str, int]],
                     driver: Optional[PolicyDriver], check: Callable[[], None],
                     recorded: Callable[[EpisodeResult], None],
                     shared_partial_dir: bool = False) -> None:
    """Record the (task, seed) episodes of `pending` in this process, one environment per
    task at a time, calling `recorded` after each. `check` raises to stop."""
    env: Optional[SimEnv] = None
    try:
        for name, episode_seed in pending:
            check()
            if env is None or env.task.name != name:
                if env is not None:
                    env.close()
                env = make_env(spec.suite, name, episode_seed, spec.image_size, spec.cameras,
                               start_jitter=spec.start_jitter, expert=spec.expert)
            recorded(record_episode(env, episode_seed, out / episode_name(name, episode_seed),
                                    spec.compress, check=check, action_noise=spec.action_noise,
                                    noise_correlation=spec.noise_correlation, driver=driver,
                                    shared_partial_dir=shared_partial_dir,
                                    bag_version=spec.bag_version))
    finally:
        if env is not None:
            env.close()


class CollectWorkerDied(WorkerDied):
    """A collector worker process ended without reporting (killed, out of memory)."""


def _collect_worker_died(pid: int, code: Optional[int], what) -> CollectWorkerDied:
    return CollectWorkerDied(
        f'collector worker process {pid} died ({describe_exit(code)}); the episodes it '
        'finished are kept. Run the same command again to record the rest, with fewer '
        '--workers if memory ran out.')


class _Orphaned(BaseException):
    """Raised inside a worker whose parent is gone: abort the episode, then exit."""


def _collect_worker(spec: _RecordSpec, out: str, jobs, events, stop) -> None:
    """A worker process (`run_in_processes`): record the (task, seed) episodes taken from
    `jobs`, posting ('done', EpisodeResult) for each, then ('exit',); ('stopped',) when
    `stop` was set, ('error', exception) on a failure."""
    import os
    orphaned = watch_parent()  # Ctrl-C is the parent's to handle: it sets `stop`

    def check() -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        if orphaned():
            raise _Orphaned

    try:
        driver = (PolicyDriver(spec.policy, spec.policy_share, suite=spec.suite)
                  if spec.policy is not None else None)
        _record_serially(spec, Path(out), queued_jobs(jobs, check), driver, check,
                         lambda result: events.put(('done', result)), shared_partial_dir=True)
        events.put(('exit',))
    except KeyboardInterrupt:
        events.put(('stopped',))
    except _Orphaned:
        os._exit(1)
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent, which re-raises
        events.put(('error', picklable(exc)))


def _record_in_processes(spec: _RecordSpec, out: Path, pending: Sequence[Tuple[str, int]],
                         workers: int, stop_request: StopRequest,
                         recorded: Callable[[EpisodeResult], None]) -> None:
    """Record `pending` in `workers` spawned processes sharing one job queue, calling
    `recorded` as episodes finish. Ctrl-C (`stop_request`) and any failure stop every worker
    at its next control step (its unfinished bag is removed) before KeyboardInterrupt or the
    error propagates; episodes finished until then are still reported."""
    try:
        run_in_processes(_collect_worker, (spec, str(out)), pending, workers,
                         lambda event: recorded(event[1]), 'collect', _collect_worker_died,
                         poll=stop_request.check, graceful_stop=30.0)
    finally:
        try:
            (out / PARTIAL_DIR).rmdir()
        except OSError:  # not empty (a killed worker's bag: the next run removes it) or gone
            pass


def _cameras_for_driver(driver: PolicyDriver, cameras, image_size):
    """The cameras and image size to render when `driver` acts: the policy's own unless
    given; given ones must include the policy's cameras at its image size."""
    from .rendering import parse_image_size
    wanted = driver.image_size
    size = wanted if image_size is None else parse_image_size(image_size)
    if size != wanted:
        raise ConfigError(f'--image-size: the driving policy {driver.checkpoint} reads '
                          f'{wanted[0]}x{wanted[1]} images; record at that size')
    if cameras is None:
        return list(driver.cameras), size
    missing = [c for c in driver.cameras if c not in cameras]
    if missing:
        raise ConfigError(f'--cameras: the driving policy {driver.checkpoint} reads camera(s) '
                          f'{", ".join(missing)}; add them')
    return list(cameras), size
