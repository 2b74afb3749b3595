"""The safety filter between the action decoder and the command publisher (numpy only).

One (A,) action per control tick goes in; either a command that respects the configured
limits comes out, or nothing (the caller holds) with the reason. What it enforces, in order:

1. **Shape and finiteness**: a wrong-sized action or one with NaN / Inf is rejected
   (`FilterResult.error`); nothing is published from it.
2. **Per-entry bounds** `action_min` / `action_max` (joint limits in rad for joint position
   commands, velocity limits in m/s for end-effector velocities, metres for position
   targets); values are clipped.
3. **Gripper range**: the entry `gripper_index` is clipped to [`gripper_min`, `gripper_max`].
4. **Kind-specific limits**, where the first three entries of an end-effector action are
   x, y, z:

   - ``ee_velocity``: the linear speed ``|v|`` is scaled down to `max_speed` (m/s), and an
     axis velocity that would carry the end effector out of the workspace box within one
     `period` is reduced so it stops at the boundary (outside the box, only motion back
     towards it is allowed; the filter never pushes).
   - ``ee_position``: the target position is clipped into the workspace box.
   - ``joint_position``: nothing more than the bounds.

5. **Maximum change per tick** `max_delta` (per entry, same units as the action per tick;
   0 or less = no limit), relative to the previous command; before the first command the
   reference is the measured state (positions) or rest (zero velocity).

Every limit that changed the action is named in `FilterResult.clamped`, so diagnostics can
say *which* limit is active. The filter is stateful only through the previous command
(for `max_delta`); call `reset` after a flush and `note_hold` when the caller held.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

import numpy as np

KINDS = ('joint_position', 'ee_velocity', 'ee_position')
_AXES = 'xyz'


class SafetyConfigError(ValueError):
    """The safety limits are inconsistent (wrong lengths, min above max, unknown kind)."""


@dataclasses.dataclass
class SafetyLimits:
    """Limits for one command kind; `None` (or an empty sequence) disables a limit.

    Attributes:
        kind: ``joint_position`` (targets, rad), ``ee_velocity`` (m/s, first three entries
            x, y, z) or ``ee_position`` (target position, m, first three entries).
        action_dim: A, the length of every action.
        action_min, action_max: (A,) per-entry bounds in the action's units.
        max_delta: (A,) maximum change of each entry per tick (<= 0: no limit for that entry).
        max_speed: ``ee_velocity`` only: maximum linear speed |v| in m/s (<= 0: none).
        workspace_min, workspace_max: (3,) end-effector box in metres (the frame of the
            measured end-effector position).
        gripper_index: index of the gripper entry, or None when the action has none.
        gripper_min, gripper_max: the gripper command range.
        period: control period in seconds (how far a velocity carries in one tick).

    """

    kind: str
    action_dim: int
    action_min: Optional[Sequence[float]] = None
    action_max: Optional[Sequence[float]] = None
    max_delta: Optional[Sequence[float]] = None
    max_speed: float = 0.0
    workspace_min: Optional[Sequence[float]] = None
    workspace_max: Optional[Sequence[float]] = None
    gripper_index: Optional[int] = None
    gripper_min: float = -1.0
    gripper_max: float = 1.0
    period: float = 0.05

    def validate(self) -> None:
        """Raise SafetyConfigError naming the first inconsistent limit."""
        if self.kind not in KINDS:
            raise SafetyConfigError(f'safety kind {self.kind!r} is unknown; choose one of '
                                    f'{", ".join(KINDS)}')
        if self.action_dim < 1:
            raise SafetyConfigError(f'action_dim must be >= 1, got {self.action_dim}')
        if self.kind != 'joint_position' and self.action_dim < 3:
            raise SafetyConfigError(f'{self.kind} actions need x, y, z first; action_dim is '
                                    f'{self.action_dim}')
        for name in ('action_min', 'action_max', 'max_delta'):
            _vector(getattr(self, name), self.action_dim, name)
        for name in ('workspace_min', 'workspace_max'):
            _vector(getattr(self, name), 3, name)
        lo, hi = _vector(self.action_min, self.action_dim, 'action_min'), _vector(
            self.action_max, self.action_dim, 'action_max')
        if lo is not None and hi is not None and np.any(lo > hi):
            i = int(np.argmax(lo > hi))
            raise SafetyConfigError(f'action_min[{i}] = {lo[i]} is above action_max[{i}] = '
                                    f'{hi[i]}')
        wlo, whi = _vector(self.workspace_min, 3, 'workspace_min'), _vector(
            self.workspace_max, 3, 'workspace_max')
        if (wlo is None) != (whi is None):
            raise SafetyConfigError('give both workspace_min and workspace_max, or neither')
        if wlo is not None and np.any(wlo > whi):
            raise SafetyConfigError(f'workspace_min {list(wlo)} is above workspace_max '
                                    f'{list(whi)} on some axis')
        if self.gripper_index is not None and not 0 <= self.gripper_index < self.action_dim:
            raise SafetyConfigError(f'gripper_index {self.gripper_index} is outside the action '
                                    f'(A = {self.action_dim})')
        if self.gripper_min > self.gripper_max:
            raise SafetyConfigError(f'gripper_min {self.gripper_min} is above gripper_max '
                                    f'{self.gripper_max}')
        if self.period <= 0:
            raise SafetyConfigError(f'period must be > 0 s, got {self.period}')


def _vector(values, n: int, name: str) -> Optional[np.ndarray]:
    """None / empty -> None; otherwise an (n,) float64 array (length checked)."""
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        return None
    if arr.size != n:
        raise SafetyConfigError(f'{name} has {arr.size} values; expected {n}')
    return arr


@dataclasses.dataclass
class FilterResult:
    """What the filter made of one action.

    Attributes:
        command: (A,) float64 command to publish, or None: hold (see `error`).
        clamped: the limits that changed the action (``'action_max[2]'``,
            ``'workspace z'``, ``'max_speed'``, ``'max_delta[0]'``, ``'gripper'``).
        error: why the action was rejected (wrong shape, NaN / Inf), else None.

    """

    command: Optional[np.ndarray]
    clamped: List[str] = dataclasses.field(default_factory=list)
    error: Optional[str] = None


class SafetyFilter:
    """Applies `SafetyLimits` to one action per tick (see the module docstring)."""

    def __init__(self, limits: SafetyLimits):
        limits.validate()
        self.limits = limits
        n = limits.action_dim
        self._min = _vector(limits.action_min, n, 'action_min')
        self._max = _vector(limits.action_max, n, 'action_max')
        delta = _vector(limits.max_delta, n, 'max_delta')
        self._delta = None if delta is None or not np.any(delta > 0) else delta
        self._wmin = _vector(limits.workspace_min, 3, 'workspace_min')
        self._wmax = _vector(limits.workspace_max, 3, 'workspace_max')
        self._previous: Optional[np.ndarray] = None

    def reset(self) -> None:
        """Forget the previous command (a flush, a new episode)."""
        self._previous = None

    def note_hold(self) -> None:
        """The caller held instead of commanding: a velocity robot is now at rest (the next
        command ramps up from zero); a position robot stays at the last target."""
        if self.limits.kind == 'ee_velocity' and self._previous is not None:
            held = np.zeros_like(self._previous)
            g = self.limits.gripper_index
            if g is not None:
                held[g] = self._previous[g]
            self._previous = held

    @property
    def previous(self) -> Optional[np.ndarray]:
        """The last command that passed the filter, (A,), or None."""
        return None if self._previous is None else self._previous.copy()

    def __call__(self, action, measured: Optional[np.ndarray] = None) -> FilterResult:
        """Filter one action.

        Args:
            action: (A,) in the command's units.
            measured: the measured state the limits need: for ``joint_position`` the (A,)
                joint positions in action order (reference for `max_delta` before the first
                command); for the end-effector kinds the (3,) end-effector position in m
                (workspace box; `max_delta` reference for ``ee_position``). May be None,
                in which case the limits that need it are skipped for this tick.

        Returns:
            FilterResult; `command` is None (hold) exactly when `error` is set.

        """
        lim = self.limits
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (lim.action_dim,):
            return FilterResult(None, error=f'action has {a.size} values; the command needs '
                                            f'{lim.action_dim}')
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            return FilterResult(None, error=f'action has NaN or Inf in entries '
                                            f'{bad.tolist()}: {a.tolist()}')
        a = a.copy()
        clamped: List[str] = []
        self._bounds(a, clamped)
        if lim.kind == 'ee_velocity':
            self._speed(a, clamped)
        elif lim.kind == 'ee_position':
            self._box_target(a, clamped)
        reference = self._reference(a, measured)
        if self._delta is not None and reference is not None:
            step = a - reference
            limited = np.where(self._delta > 0, np.clip(step, -self._delta, self._delta), step)
            for i in np.flatnonzero(np.abs(limited - step) > 1e-12):
                clamped.append(f'max_delta[{i}]')
            a = reference + limited
        if lim.kind == 'ee_velocity' and measured is not None:
            # After the rate limit, so the box always has the last word.
            self._box_velocity(a, np.asarray(measured, dtype=np.float64)[:3], clamped)
        self._previous = a.copy()
        return FilterResult(a, clamped)

    def preview(self, start: np.ndarray, future: Sequence[np.ndarray]) -> List[np.ndarray]:
        """The planned actions after `start` (this tick's filtered command), each filtered
        as it would be on its own tick — bounds, gripper range, target box, and `max_delta`
        from the one before — without changing the filter's state. Stops at the first
        non-finite action (nothing after it is planned). For position trajectories: what a
        controller may execute if no newer command replaces the plan."""
        out: List[np.ndarray] = []
        previous = np.asarray(start, dtype=np.float64)
        for action in future:
            a = np.asarray(action, dtype=np.float64).reshape(-1).copy()
            if a.shape != previous.shape or not np.all(np.isfinite(a)):
                break
            ignored: List[str] = []
            self._bounds(a, ignored)
            if self.limits.kind == 'ee_position':
                self._box_target(a, ignored)
            if self._delta is not None:
                step = a - previous
                a = previous + np.where(self._delta > 0,
                                        np.clip(step, -self._delta, self._delta), step)
            out.append(a)
            previous = a
        return out

    # ----------------------------------------------------------------- steps
    def _bounds(self, a: np.ndarray, clamped: List[str]) -> None:
        if self._min is not None:
            for i in np.flatnonzero(a < self._min):
                clamped.append(f'action_min[{i}]')
            np.maximum(a, self._min, out=a)
        if self._max is not None:
            for i in np.flatnonzero(a > self._max):
                clamped.append(f'action_max[{i}]')
            np.minimum(a, self._max, out=a)
        g = self.limits.gripper_index
        if g is not None:
            value = float(np.clip(a[g], self.limits.gripper_min, self.limits.gripper_max))
            if value != a[g]:
                clamped.append('gripper')
            a[g] = value

    def _speed(self, a: np.ndarray, clamped: List[str]) -> None:
        if self.limits.max_speed > 0:
            speed = float(np.linalg.norm(a[:3]))
            if speed > self.limits.max_speed:
                a[:3] *= self.limits.max_speed / speed
                clamped.append('max_speed')

    def _box_target(self, a: np.ndarray, clamped: List[str]) -> None:
        if self._wmin is None:
            return
        target = np.clip(a[:3], self._wmin, self._wmax)
        for i in np.flatnonzero(target != a[:3]):
            clamped.append(f'workspace {_AXES[i]}')
        a[:3] = target

    def _box_velocity(self, a: np.ndarray, position: np.ndarray, clamped: List[str]) -> None:
        if self._wmin is None:
            return
        dt = self.limits.period
        # Fastest allowed velocity towards each face: reach it within one period, and never
        # negative-towards-outside (outside the box only inward motion is allowed).
        upper = np.maximum(0.0, (self._wmax - position) / dt)
        lower = np.minimum(0.0, (self._wmin - position) / dt)
        v = np.clip(a[:3], lower, upper)
        for i in np.flatnonzero(v != a[:3]):
            clamped.append(f'workspace {_AXES[i]}')
        a[:3] = v

    def _reference(self, a: np.ndarray,
                   measured: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """What `max_delta` is measured from: the previous command, else the measured state
        (positions) or rest (velocities); None: no reference, no rate limit this tick."""
        if self._previous is not None:
            return self._previous
        lim = self.limits
        if lim.kind == 'ee_velocity':
            return np.zeros(lim.action_dim)
        if measured is None:
            return None
        measured = np.asarray(measured, dtype=np.float64).reshape(-1)
        if lim.kind == 'joint_position':
            return measured.copy() if measured.size == lim.action_dim else None
        # ee_position: only x, y, z have a measured reference; other entries (the gripper)
        # are referenced to themselves, i.e. not limited on the first command.
        ref = a.copy()
        ref[:3] = measured[:3]
        return ref


def loosening(name: str, old, new) -> Optional[str]:
    """Why changing safety limit `name` (``max_speed``, ``workspace_min``, ...; the
    `SafetyLimits` field) from `old` to `new` loosens it, or None when it keeps or tightens
    every bound. Unset (None, empty, or <= 0 where that means "no limit") is the loosest."""
    def seq(v):
        return None if v is None or len(v) == 0 else [float(x) for x in v]

    if name == 'max_speed':
        old_v, new_v = float(old or 0.0), float(new or 0.0)
        if old_v > 0 and (new_v <= 0 or new_v > old_v):
            return f'{name} {new_v:g} is looser than {old_v:g}'
        return None
    if name in ('action_min', 'action_max', 'max_delta', 'workspace_min', 'workspace_max'):
        old_s, new_s = seq(old), seq(new)
        if old_s is None:
            return None
        if new_s is None or len(new_s) != len(old_s):
            return f'{name} would be removed or resized ({old_s} -> {new_s})'
        for i, (o, n) in enumerate(zip(old_s, new_s, strict=True)):
            if name == 'max_delta':
                if o > 0 and (n <= 0 or n > o):
                    return f'{name}[{i}] {n:g} is looser than {o:g}'
            elif name.endswith('_min') and n < o:
                return f'{name}[{i}] {n:g} is below {o:g}'
            elif name.endswith('_max') and n > o:
                return f'{name}[{i}] {n:g} is above {o:g}'
        return None
    if name == 'gripper_min':
        return f'{name} {float(new):g} is below {float(old):g}' if float(new) < float(old) else None
    if name == 'gripper_max':
        return f'{name} {float(new):g} is above {float(old):g}' if float(new) > float(old) else None
    return f'{name} is not a safety limit'
