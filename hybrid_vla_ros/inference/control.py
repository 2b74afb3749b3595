"""The one control path: features + proprioception -> a safe action or a hold, per tick.

Everything that turns a policy's chunks into commands goes through here — the policy node
on a robot, closed-loop evaluation (``eval-sim``) and the collector's policy driver
(``collect --policy``) — so the evaluation measures what a robot would do:

- `ControlSettings`: scheduler, replan interval, ensemble decay, asynchronous inference;
  `ControlSettings.check` refuses invalid values with one message everywhere (never a
  silent clamp).
- `ControlLoop`: per tick, runs the policy core when the chunk scheduler wants a new
  chunk, takes this tick's action from the scheduler and passes it through the safety
  filter. The answer is an action, or a hold with the reason and a diagnostic level.
- `PolicyController`: a `ControlLoop` around a whole `Backend` for code that has images,
  not features (evaluation, the collector): it encodes the instruction once and the images
  only when a chunk is computed, and knows the hold action of its command kind.

Inference runs either **synchronously** (inside the tick) or **asynchronously** in one
worker thread: the chunk for tick t is computed while the ticks after t keep executing the
queued chunk, and it is placed at tick t when it arrives, so the actions for ticks that
already passed are dropped (`ChunkScheduler.add_chunk`). onnxruntime releases the GIL, so
the control thread keeps its rate while the model runs.

`flush` (a new instruction, a reset) and `interrupt` (the node held for an outside reason:
stale input, e-stop, disable) discard the queued chunk and any chunk still being computed.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ..schema import ConfigError
from .monitoring import ERROR, OK, WARN, LatencyWindow
from .safety import SafetyFilter, SafetyLimits
from .scheduling import MODES, ChunkScheduler

CoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ControlSettings:
    """How chunks become per-tick actions (the policy node's parameters of the same names).

    Attributes:
        scheduler: ``replan`` (execute-then-replan) or ``ensemble`` (temporal ensembling).
        replan_every: replan: ticks between new chunks, 1..K (the chunk length).
        ensemble_decay: ensemble: weight exp(-decay * i) of the i-th oldest prediction, >= 0.
        asynchronous: compute the next chunk in a worker thread while the current one runs.

    """

    scheduler: str = 'replan'
    replan_every: int = 4
    ensemble_decay: float = 0.1
    asynchronous: bool = False

    def check(self, chunk: int) -> None:
        """Raise `ConfigError` naming the setting, its value and what is allowed for a
        policy whose chunks are `chunk` (K) actions long."""
        if self.scheduler not in MODES:
            raise ConfigError(f'scheduler {self.scheduler!r} is not allowed; choose one of '
                              f'{", ".join(MODES)}')
        if self.scheduler == 'replan' and not 1 <= self.replan_every <= chunk:
            raise ConfigError(f'replan_every {self.replan_every} is not allowed: it must be '
                              f'between 1 and the checkpoint\'s chunk length K = {chunk} '
                              f'(ticks executed from each chunk before the next one)')
        if not (self.ensemble_decay >= 0 and np.isfinite(self.ensemble_decay)):
            raise ConfigError(f'ensemble_decay {self.ensemble_decay} is not allowed: it must '
                              'be a finite number >= 0')


@dataclasses.dataclass
class TickInput:
    """What one tick sees.

    Attributes:
        tick: control tick index (increasing by one per tick).
        visual: (1, T, Dv) float32 visual tokens of the newest image(s), or a function
            returning them, called only when a chunk is computed this tick.
        proprio: (P,) float32 proprioception.
        measured: the safety filter's measured state ((A,) joint positions, or (3,)
            end-effector position), or None.

    """

    tick: int
    visual: Union[np.ndarray, Callable[[], np.ndarray]]
    proprio: np.ndarray
    measured: Optional[np.ndarray] = None


@dataclasses.dataclass
class TickResult:
    """The decision of one tick.

    Attributes:
        action: (A,) float64 filtered command, or None: hold.
        hold_reason: why it holds (None when acting).
        level: diagnostics level (OK, WARN, ERROR) of this decision.
        clamped: safety limits that changed the action.
        inferred: whether a chunk was computed (sync) or requested (async) this tick.
        planned: the filtered actions scheduled for the following ticks (only when the
            loop's `plan_ahead` > 0), for commands that carry a plan (joint trajectories).

    """

    action: Optional[np.ndarray]
    hold_reason: Optional[str] = None
    level: int = OK
    clamped: List[str] = dataclasses.field(default_factory=list)
    inferred: bool = False
    planned: List[np.ndarray] = dataclasses.field(default_factory=list)


def _hold(reason: str, level: int, inferred: bool = False) -> TickResult:
    return TickResult(None, reason, level, inferred=inferred)


class ControlLoop:
    """Chunk scheduling, (a)synchronous inference and safety filtering for one policy.

    Args:
        core: ``core(visual (1,T,Dv), language (1,L,Dl), mask (1,L) int64, proprio (1,P))``
            -> (1, K, A) chunk in robot units (`Backend.core`).
        chunk: K.
        settings: scheduling and threading (checked against `chunk`: `ConfigError`).
        safety: the filter every action passes (None: actions pass unfiltered).

    """

    def __init__(self, core: CoreFn, chunk: int, settings: ControlSettings = ControlSettings(),
                 safety: Optional[SafetyFilter] = None):
        settings.check(chunk)
        self.core = core
        self.settings = settings
        self.scheduler = ChunkScheduler(settings.scheduler, chunk, settings.replan_every,
                                        settings.ensemble_decay)
        asynchronous = self.asynchronous = settings.asynchronous
        self.safety = safety
        self._language: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self._epoch = 0
        self._pool = (ThreadPoolExecutor(1, thread_name_prefix='policy-core')
                      if asynchronous else None)
        self._job: Optional[Tuple[Future, int, int]] = None
        self._async_error: Optional[str] = None
        self.inference = LatencyWindow(200)
        self.inferences = 0
        self.flushes = 0
        # Actions after this tick's to return as `TickResult.planned` (0: none).
        self.plan_ahead = 0

    # ----------------------------------------------------------------- language
    def set_language(self, tokens: np.ndarray, mask: np.ndarray) -> None:
        """Use a new instruction's tokens (1, L, Dl) and mask (1, L); flushes the queue."""
        self._language = (np.ascontiguousarray(tokens, dtype=np.float32),
                          np.ascontiguousarray(mask, dtype=np.int64))
        self.flush()

    def clear_language(self) -> None:
        """No usable instruction: hold until a new one; flushes the queue."""
        self._language = None
        self.flush()

    @property
    def has_language(self) -> bool:
        """Whether an instruction is set."""
        return self._language is not None

    # ----------------------------------------------------------------- flushing
    def flush(self) -> None:
        """Discard queued and in-flight chunks and the safety filter's history."""
        self.scheduler.reset()
        if self.safety is not None:
            self.safety.reset()
        self._epoch += 1
        self.flushes += 1

    def interrupt(self) -> None:
        """The node held for an outside reason: the plan no longer matches the robot, so
        discard it; a velocity robot is at rest now (the rate limit restarts from zero)."""
        self.scheduler.reset()
        if self.safety is not None:
            self.safety.note_hold()
        self._epoch += 1

    # ----------------------------------------------------------------- ticks
    def step(self, inp: TickInput) -> TickResult:
        """Decide this tick: an action, or a hold with the reason."""
        if self._language is None:
            return _hold('no instruction: waiting for one on the instruction topic', WARN)
        self._collect()
        if self._async_error is not None:
            error, self._async_error = self._async_error, None
            self.interrupt()
            return _hold(f'policy core failed: {error}', ERROR)
        inferred = False
        if self.scheduler.wants_chunk(inp.tick) or self.scheduler.queued == 0:
            if self.asynchronous:
                inferred = self._submit(inp)
            else:
                try:
                    self._infer_now(inp)
                except Exception as exc:  # InputError (shapes), runtime errors
                    self.interrupt()
                    return _hold(f'policy core failed: {exc}', ERROR, True)
                inferred = True
        action = self.scheduler.action(inp.tick)
        if action is None:
            reason = ('waiting for the first action chunk' if self._job is not None
                      else 'no action scheduled for this tick')
            return _hold(reason, WARN, inferred)
        if self.safety is None:
            planned = (self.scheduler.planned(inp.tick, self.plan_ahead)
                       if self.plan_ahead > 0 else [])
            return TickResult(np.asarray(action, dtype=np.float64), inferred=inferred,
                              planned=planned)
        result = self.safety(action, inp.measured)
        if result.error is not None:
            self.interrupt()
            return _hold(f'safety filter rejected the action: {result.error}', ERROR,
                         inferred)
        planned = []
        if self.plan_ahead > 0:
            planned = self.safety.preview(result.command,
                                          self.scheduler.planned(inp.tick, self.plan_ahead))
        return TickResult(result.command, clamped=result.clamped, inferred=inferred,
                          planned=planned)

    def _inputs(self, inp: TickInput):
        tokens, mask = self._language
        proprio = np.asarray(inp.proprio, dtype=np.float32).reshape(1, -1)
        visual = inp.visual() if callable(inp.visual) else inp.visual
        return visual, tokens, mask, proprio

    def _infer_now(self, inp: TickInput) -> None:
        t0 = time.perf_counter()
        chunk = np.asarray(self.core(*self._inputs(inp)))
        self.inference.add(time.perf_counter() - t0)
        self.inferences += 1
        self.scheduler.add_chunk(chunk[0], inp.tick)

    def _submit(self, inp: TickInput) -> bool:
        if self._job is not None:
            return False
        future = self._pool.submit(self._timed_core, *self._inputs(inp))
        self._job = (future, inp.tick, self._epoch)
        return True

    def _timed_core(self, *inputs) -> Tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        chunk = np.asarray(self.core(*inputs))
        return chunk, time.perf_counter() - t0

    def _collect(self) -> None:
        """Take a finished asynchronous chunk into the scheduler (if still current)."""
        if self._job is None or not self._job[0].done():
            return
        future, tick, epoch = self._job
        self._job = None
        try:
            chunk, seconds = future.result()
        except Exception as exc:
            if epoch == self._epoch:
                self._async_error = str(exc)
            return
        self.inference.add(seconds)
        self.inferences += 1
        if epoch == self._epoch:
            self.scheduler.add_chunk(chunk[0], tick)

    def close(self) -> None:
        """Stop the worker thread (an in-flight chunk is abandoned)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def safety_kind(command_kind: str) -> str:
    """The safety filter's kind for a simulator's command kind (``end_effector``: the
    velocity twist of the Meta-World suites; ``joint``: joint position targets)."""
    return 'ee_velocity' if command_kind == 'end_effector' else 'joint_position'


def safety_limits(values: Dict[str, object], kind: str, action_dim: int,
                  gripper_index: Optional[int], period: float) -> SafetyLimits:
    """`SafetyLimits` from the policy node's ``safety.*`` parameter values (a mapping of
    dotted names such as ``safety.max_speed``; absent or empty = that limit off)."""
    def seq(name):
        value = values.get(f'safety.{name}')
        return list(value) if value else None
    return SafetyLimits(
        kind=kind, action_dim=action_dim, action_min=seq('action_min'),
        action_max=seq('action_max'), max_delta=seq('max_delta'),
        max_speed=float(values.get('safety.max_speed') or 0.0),
        workspace_min=seq('workspace_min'), workspace_max=seq('workspace_max'),
        gripper_index=gripper_index,
        gripper_min=float(values.get('safety.gripper_min', -1.0)),
        gripper_max=float(values.get('safety.gripper_max', 1.0)), period=period)


class PolicyController:
    """A `ControlLoop` around a whole `Backend`, driven with camera images (no ROS).

    Call `reset(instruction)` at the start of an episode, then `act` once per control tick.
    The instruction is encoded once (and cached across episodes); images are encoded only
    on the ticks where the scheduler computes a chunk, as the robot's perception node would
    have for that frame.

    Args:
        backend: a `Backend` with vision, language and policy core.
        settings: scheduling (checked against the backend's chunk length).
        limits: the safety limits every action passes (None: unfiltered).

    """

    def __init__(self, backend, settings: ControlSettings = ControlSettings(),
                 limits: Optional[SafetyLimits] = None):
        self.backend = backend
        self.spec = backend.spec
        self.limits = limits
        self.loop = ControlLoop(backend.core, self.spec.chunk, settings,
                                SafetyFilter(limits) if limits is not None else None)
        self._instruction: Optional[str] = None
        self._language: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self.tick = 0
        self.holds = 0
        self.last_action: Optional[np.ndarray] = None

    @property
    def inferences(self) -> int:
        """Chunks computed so far."""
        return self.loop.inferences

    def reset(self, instruction: str) -> None:
        """Start an episode with `instruction`: flush the plan, forget the last action."""
        if instruction != self._instruction:
            self._language = self.backend.encode_instruction(instruction)
            self._instruction = instruction
        self.loop.set_language(*self._language)
        self.tick = 0
        self.last_action = None

    def images_array(self, images: Dict[str, np.ndarray]) -> np.ndarray:
        """camera name -> (H, W, 3) uint8 to the (1, N, H, W, 3) input, in spec order."""
        try:
            frames = [images[c['name']] for c in self.spec.cameras]
        except KeyError as exc:
            raise KeyError(f'camera {exc} is missing from the observation; it has '
                           f'{sorted(images)}') from None
        return np.stack(frames)[None]

    def act(self, images: Dict[str, np.ndarray], proprio: np.ndarray,
            measured: Optional[np.ndarray] = None) -> TickResult:
        """Decide this tick: `TickResult.action` (A,) in the policy's (ROS) units, or a
        hold (`action` None, with the reason). `measured` is the safety filter's measured
        state ((3,) end-effector position in m, or joint positions in rad)."""
        result = self.loop.step(TickInput(
            self.tick, lambda: self.backend.encode_vision(self.images_array(images)),
            proprio, measured))
        self.tick += 1
        if result.action is None:
            self.holds += 1
        else:
            self.last_action = result.action
        return result

    def hold_action(self, measured: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """The (A,) command that holds the robot, as the policy node's hold does: zero
        velocity (gripper unchanged) for ``ee_velocity``; the last target, else the measured
        state, for position kinds; None when there is nothing safe to hold at."""
        dim = self.spec.action_dim
        kind = self.limits.kind if self.limits is not None else 'ee_velocity'
        gripper = self.limits.gripper_index if self.limits is not None else None
        if kind == 'ee_velocity':
            action = np.zeros(dim)
            if gripper is not None and self.last_action is not None:
                action[gripper] = self.last_action[gripper]
            return action
        if self.last_action is not None:
            return self.last_action.copy()
        if measured is not None and len(measured) == dim:
            return np.asarray(measured, dtype=np.float64)
        return None

    def close(self) -> None:
        """Stop the asynchronous worker thread, if any."""
        self.loop.close()


def read_policy_parameters(path) -> Dict[str, object]:
    """The policy node's parameters in a ROS 2 parameter file (sections ``/**``,
    ``/**/policy``, ``policy``, ``/policy``, later ones winning), with nested mappings
    flattened to dotted names (``safety.max_speed``). Raises `ConfigError` naming the file
    when it cannot be read."""
    import yaml
    try:
        with open(path, encoding='utf-8') as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f'cannot read the parameter file {path}: {exc}') from None
    values: Dict[str, object] = {}

    def flatten(prefix: str, mapping) -> None:
        for key, value in mapping.items():
            name = f'{prefix}{key}'
            if isinstance(value, dict):
                flatten(f'{name}.', value)
            else:
                values[name] = value

    for section in ('/**', '/**/policy', 'policy', '/policy'):
        params = (doc.get(section) or {}).get('ros__parameters') if isinstance(doc, dict) else None
        if isinstance(params, dict):
            flatten('', params)
    return values
