"""The policy node's decision per control tick, without ROS (so it is unit-testable).

Per tick the node hands over the newest visual tokens and proprioception; `ControlLoop`
runs the policy core when the chunk scheduler wants a new chunk, takes this tick's action
from the scheduler, and passes it through the safety filter. The answer is an action, or a
hold with the reason and a diagnostic level.

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
from typing import Callable, List, Optional, Tuple

import numpy as np

from ..inference.safety import SafetyFilter
from ..inference.scheduling import ChunkScheduler
from .diagnostics import ERROR, OK, WARN, LatencyWindow

CoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass
class TickInput:
    """What one tick sees.

    Attributes:
        tick: control tick index (increasing by one per tick).
        visual: (1, T, Dv) float32 visual tokens of the newest image(s).
        proprio: (P,) float32 proprioception.
        measured: the safety filter's measured state ((A,) joint positions, or (3,)
            end-effector position), or None.

    """

    tick: int
    visual: np.ndarray
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

    """

    action: Optional[np.ndarray]
    hold_reason: Optional[str] = None
    level: int = OK
    clamped: List[str] = dataclasses.field(default_factory=list)
    inferred: bool = False


def _hold(reason: str, level: int, inferred: bool = False) -> TickResult:
    return TickResult(None, reason, level, inferred=inferred)


class ControlLoop:
    """Chunk scheduling, (a)synchronous inference and safety filtering for one policy.

    Args:
        core: ``core(visual (1,T,Dv), language (1,L,Dl), mask (1,L) int64, proprio (1,P))``
            -> (1, K, A) chunk in robot units (`Backend.core`).
        chunk: K.
        mode, replan_every, ensemble_decay: `ChunkScheduler` settings.
        asynchronous: run `core` in a worker thread (see the module docstring).
        safety: the filter every action passes.

    """

    def __init__(self, core: CoreFn, chunk: int, mode: str = 'replan', replan_every: int = 4,
                 ensemble_decay: float = 0.1, asynchronous: bool = False,
                 safety: Optional[SafetyFilter] = None):
        self.core = core
        self.scheduler = ChunkScheduler(mode, chunk, replan_every, ensemble_decay)
        self.asynchronous = asynchronous
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
            return TickResult(np.asarray(action, dtype=np.float64), inferred=inferred)
        result = self.safety(action, inp.measured)
        if result.error is not None:
            self.interrupt()
            return _hold(f'safety filter rejected the action: {result.error}', ERROR,
                         inferred)
        return TickResult(result.command, clamped=result.clamped, inferred=inferred)

    def _inputs(self, inp: TickInput):
        tokens, mask = self._language
        proprio = np.asarray(inp.proprio, dtype=np.float32).reshape(1, -1)
        return inp.visual, tokens, mask, proprio

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
