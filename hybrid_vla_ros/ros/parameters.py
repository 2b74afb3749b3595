"""Every node's parameters as data — importable without rclpy or torch.

Each runtime node lists `ParamSpec`s here (`PERCEPTION_PARAMS`, `INSTRUCTION_PARAMS`,
`POLICY_PARAMS`; the simulated robot's are in `tools.sim_parameters`); `declare` turns
them into ROS 2 parameters with descriptors (description with units, type, range, allowed
values, read-only) when a node starts. Keeping the lists as data lets the documentation
test check that docs/ros.md names every parameter, lets the parameter files be checked
against them without starting a node, and gives every node the same validation: a value
outside its choices or range is refused with a message that names the parameter, the
value and what is allowed.

A spec whose default is None declares a *typed but unset* parameter (ROS 2 cannot infer a
type from an empty list): reading it gives the empty value of its type.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple

from ..inference.control import ControlSettings
from ..inference.scheduling import MODES as SCHEDULER_MODES
from ..schema import ConfigError

# The chunk-scheduling defaults live once, in `ControlSettings` (the simulator and the
# evaluation read them there too), so the node and eval-sim cannot drift apart.
_CONTROL_DEFAULTS = ControlSettings()

# kind -> (rclpy Parameter.Type name, empty value used when unset)
KINDS = {
    'bool': ('BOOL', False), 'int': ('INTEGER', 0), 'double': ('DOUBLE', 0.0),
    'string': ('STRING', ''), 'string_array': ('STRING_ARRAY', []),
    'double_array': ('DOUBLE_ARRAY', []), 'int_array': ('INTEGER_ARRAY', []),
}


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One parameter.

    Attributes:
        name: parameter name (dots group, e.g. ``safety.max_speed``).
        default: default value; None = typed but unset (see the module docstring).
        description: what it does, with units.
        kind: one of `KINDS`; inferred from `default` when empty.
        choices: allowed values of a string parameter.
        range: (min, max) inclusive, for int / double parameters.
        dynamic: may be changed while the node runs (``ros2 param set``); else read-only.

    """

    name: str
    default: Any
    description: str
    kind: str = ''
    choices: Tuple[str, ...] = ()
    range: Optional[Tuple[float, float]] = None
    dynamic: bool = False

    @property
    def type_kind(self) -> str:
        """The kind, inferred from the default when not given."""
        if self.kind:
            return self.kind
        d = self.default
        if isinstance(d, bool):
            return 'bool'
        if isinstance(d, int):
            return 'int'
        if isinstance(d, float):
            return 'double'
        if isinstance(d, str):
            return 'string'
        if isinstance(d, (list, tuple)) and d:
            if all(isinstance(v, str) for v in d):
                return 'string_array'
            if all(isinstance(v, float) for v in d):
                return 'double_array'
            if all(isinstance(v, int) and not isinstance(v, bool) for v in d):
                return 'int_array'
        raise ConfigError(f'parameter {self.name}: give kind= for default {d!r}')

    def check(self, value) -> Optional[str]:
        """None when `value` is allowed, else the reason it is not."""
        if self.choices and value not in self.choices:
            return (f'parameter {self.name}: {value!r} is not allowed; choose one of '
                    f'{", ".join(self.choices)}')
        if self.range is not None and isinstance(value, (int, float)):
            lo, hi = self.range
            if not lo <= value <= hi:
                return f'parameter {self.name}: {value} is outside [{lo}, {hi}]'
        return None


def _descriptor(spec: ParamSpec):
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor)
    kind = spec.type_kind
    text = spec.description
    if spec.choices:
        text += f' (one of: {", ".join(spec.choices)})'
    desc = ParameterDescriptor(description=text, read_only=not spec.dynamic)
    if spec.choices:
        desc.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    if spec.range is not None:
        lo, hi = spec.range
        if kind == 'int':
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        elif kind == 'double':
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo),
                                                            to_value=float(hi), step=0.0)]
    return desc


class Params:
    """The declared values of a node's parameters: ``params['name']`` or ``params.name``
    with dots as underscores (``params.safety_max_speed``)."""

    def __init__(self, values: Dict[str, Any], specs: Dict[str, ParamSpec]):
        self._values = values
        self.specs = specs

    def __getitem__(self, name: str):
        return self._values[name]

    def __getattr__(self, name: str):
        values = self.__dict__.get('_values', {})
        dotted = {k.replace('.', '_'): v for k, v in values.items()}
        if name in dotted:
            return dotted[name]
        raise AttributeError(name)

    def set(self, name: str, value) -> None:
        """Record a dynamic change."""
        self._values[name] = value

    def as_dict(self) -> Dict[str, Any]:
        """name -> value."""
        return dict(self._values)


def declare(node, specs: Sequence[ParamSpec]) -> Tuple[Params, list]:
    """Declare `specs` on `node`; return (values, problems).

    Fail closed: a value given at start-up (a parameter file, ``-p``) that breaks its
    spec's type, choices or range is never used and never reported as if in force. The
    parameter is declared with its default instead (so ``ros2 param get`` shows what the
    node holds) and the reason — parameter, the value given, what is allowed — goes into
    `problems`; a managed node then refuses to configure (it never commands on a value it
    replaced).
    """
    from rclpy.exceptions import ParameterUninitializedException
    from rclpy.parameter import Parameter
    values: Dict[str, Any] = {}
    problems = []
    overrides = getattr(node, '_parameter_overrides', {}) or {}
    for spec in specs:
        kind = spec.type_kind
        type_name, empty = KINDS[kind]
        ptype = getattr(Parameter.Type, type_name)
        default = ptype if spec.default is None else (
            list(spec.default) if isinstance(spec.default, tuple) else spec.default)
        given = overrides.get(spec.name)
        reason = _override_problem(spec, given, ptype) if given is not None else None
        if reason:
            problems.append(reason)
        try:
            node.declare_parameter(spec.name, default, _descriptor(spec),
                                   ignore_override=bool(reason))
            value = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            value = list(empty) if isinstance(empty, list) else empty
        except Exception as exc:  # a wrongly-typed override rclpy refused on its own
            problems.append(f'parameter {spec.name}: {exc}')
            node.declare_parameter(spec.name, default, _descriptor(spec),
                                   ignore_override=True)
            value = spec.default if spec.default is not None else empty
        if isinstance(value, tuple):
            value = list(value)
        values[spec.name] = list(value) if hasattr(value, 'tolist') else value
    return Params(values, {s.name: s for s in specs}), problems


def _override_problem(spec: ParamSpec, given, ptype) -> Optional[str]:
    """Why the start-up value `given` (an rclpy Parameter) is not allowed, or None."""
    from rclpy.parameter import Parameter
    if given.type_ == Parameter.Type.NOT_SET:
        return None
    value = given.value
    if isinstance(value, tuple):
        value = list(value)
    if given.type_ != ptype and not (ptype == Parameter.Type.DOUBLE
                                     and given.type_ == Parameter.Type.INTEGER):
        return (f'parameter {spec.name}: {value!r} is a {given.type_.name.lower()}; it must '
                f'be a {ptype.name.lower()} (not used: the node stays unconfigured)')
    reason = spec.check(value)
    return f'{reason} (not used: the node stays unconfigured)' if reason else None

# ---------------------------------------------------------------------------- declarations
# The policy's command messages (`command_output`): twist + gripper, pose target, joint
# trajectory, forward-controller array.
COMMAND_MODES = ('twist', 'pose', 'joint_trajectory', 'joint_forward')

# Every managed node (perception, instruction, policy): how it comes up without a
# lifecycle manager. With one (nav2's lifecycle_manager, or `ros2 lifecycle set`), set
# autoconfigure false and drive configure / activate from outside.
LIFECYCLE_PARAMS = (
    ParamSpec('autoconfigure', True, 'configure at start (load and check the model) without '
                                     'waiting for a lifecycle manager'),
)

COMMON_PARAMS = LIFECYCLE_PARAMS + (
    ParamSpec('checkpoint', '', 'checkpoint directory (exported: contains onnx/ from '
                                '`hybrid-vla export`)'),
    ParamSpec('backend', 'onnxruntime', 'inference backend',
              choices=('onnxruntime', 'torch', 'tensorrt')),
    ParamSpec('threads', 1, 'intra-op threads of the backend', range=(1, 64)),
    ParamSpec('providers', ['cpu'], 'onnxruntime execution providers in preference order '
                                    '(cpu, cuda, tensorrt)'),
    ParamSpec('fp16', False, 'use the half-precision graphs / engines where exported'),
    ParamSpec('diagnostics_period', 1.0, 'seconds between periodic /diagnostics messages',
              range=(0.05, 60.0)),
    ParamSpec('clock_skew_tolerance', 0.05, 'seconds an input\'s stamp may be ahead of this '
                                            'node\'s clock; further ahead it is refused as '
                                            'clock skew (and counts as stale)',
              range=(0.0, 10.0)),
)

# The perception and instruction nodes activate themselves (they never move the robot).
_ENCODER_AUTOSTART = ParamSpec('autostart', True, 'activate at start (publish features at '
                                                  'once); needs autoconfigure')

PERCEPTION_PARAMS = COMMON_PARAMS + (
    _ENCODER_AUTOSTART,
    ParamSpec('image_topics', None, 'image topic per checkpoint camera, in the checkpoint\'s '
                                    'camera order (default: <camera>/image_raw, or '
                                    '<camera>/image_raw/compressed for compressed cameras)',
              kind='string_array'),
    ParamSpec('image_transports', None, 'raw or compressed per checkpoint camera, in its '
                                        'camera order: sensor_msgs/Image or '
                                        'CompressedImage (jpeg, png); unset: all raw',
              kind='string_array'),
    ParamSpec('sync_tolerance', 0.05, 'several cameras: largest stamp difference (s) between '
                                      'the first camera\'s frame and the others\'',
              range=(0.0, 10.0)),
    ParamSpec('camera_timeout', 0.5, 'seconds without a usable frame after which the node '
                                     'reports its camera stale (ERROR on /diagnostics)',
              range=(0.01, 3600.0)),
)


INSTRUCTION_PARAMS = COMMON_PARAMS + (
    _ENCODER_AUTOSTART,
    ParamSpec('max_chars', 500, 'longest accepted instruction, characters; longer ones are '
                                'refused (the robot holds)', range=(1, 100000)),
    ParamSpec('max_unknown_fraction', 0.5, 'largest share of word pieces unknown to the '
                                           'tokenizer before an instruction is refused',
              range=(0.0, 1.0)),
    ParamSpec('cache_size', 64, 'distinct instructions whose encodings are kept',
              range=(1, 100000)),
    ParamSpec('duplicate_window', 0.5, 'seconds within which the same text arriving again '
                                       '(on the second subscription) is ignored',
              range=(0.0, 60.0)),
)


POLICY_PARAMS = COMMON_PARAMS + (
    ParamSpec('control_rate', 20.0, 'control ticks per second (Hz): the timer rate, and the '
                                    'watchdog rate with tick_source features',
              range=(0.1, 1000.0)),
    ParamSpec('tick_source', 'features', 'what starts a control tick',
              choices=('features', 'timer')),
    ParamSpec('scheduler', _CONTROL_DEFAULTS.scheduler, 'action-chunk scheduling',
              choices=SCHEDULER_MODES),
    ParamSpec('replan_every', _CONTROL_DEFAULTS.replan_every,
              'replan: ticks between new chunks (1..K)', range=(1, 10000)),
    ParamSpec('ensemble_decay', _CONTROL_DEFAULTS.ensemble_decay,
              'ensemble: weight exp(-decay * i) of the i-th oldest prediction',
              range=(0.0, 100.0)),
    ParamSpec('async_inference', _CONTROL_DEFAULTS.asynchronous,
              'compute the next chunk in a worker thread while the current one executes'),
    ParamSpec('autostart', False, 'activate at start: command the robot at once (else it '
                                  'waits, configured and inactive, for ~/enable or a '
                                  'lifecycle activate); needs autoconfigure'),
    ParamSpec('dry_run', False, 'publish commands on ~/debug/<topic> only; at run time only '
                                'true is accepted unless allow_runtime_loosening',
              dynamic=True),
    ParamSpec('allow_runtime_loosening', False, 'at start-up only: allow dry_run false and '
                                                'looser safety limits to be set while the node '
                                                'runs (else only tightening is accepted)'),
    ParamSpec('estop_mode', 'latch', 'latch: estop true stops until false and re-enable; '
                                     'heartbeat: also command only while an estop false '
                                     'message is younger than estop_timeout',
              choices=('latch', 'heartbeat')),
    ParamSpec('estop_timeout', 0.5, 'heartbeat: seconds an estop false message keeps the '
                                    'policy allowed to command', range=(0.01, 60.0)),
    ParamSpec('trusted_vision_publishers', ['perception'], 'node names (this namespace) '
              'whose vision_features are accepted; others are refused (empty: any)',
              kind='string_array'),
    ParamSpec('trusted_language_publishers', ['instruction'], 'node names (this namespace) '
              'whose language_features are accepted; others are refused (empty: any)',
              kind='string_array'),
    ParamSpec('command_mode', 'twist', 'command messages', choices=COMMAND_MODES),
    ParamSpec('frame_id', 'world', 'frame_id of end-effector commands'),
    ParamSpec('joint_names', None, 'joint modes: joint name of each non-gripper action entry '
                                   '(default: the checkpoint\'s action names)',
              kind='string_array'),
    ParamSpec('gripper_index', 3, 'index of the gripper entry in the action (-1: none); it '
                                  'is published on gripper_command', range=(-1, 1000)),
    ParamSpec('proprio_sources', ['ee_pose.position', 'joint_states.gripper'],
              'what makes the proprioception vector, in order: ee_pose.position, '
              'ee_pose.orientation, joint_states.<joint>'),
    ParamSpec('max_age', 0.25, 'seconds after which an image (by stamp), features or joint '
                               'states are stale: the robot holds', range=(0.001, 3600.0)),
    ParamSpec('proprio_wait', 0.02, 'tick_source features: seconds to wait for joint states '
                                    'at least as new as the image', range=(0.0, 10.0)),
    # Safety limits may change while the node runs, but only to tighter values unless
    # allow_runtime_loosening (inference.safety.loosened_limits decides).
    ParamSpec('safety.action_min', None, 'per-entry lower bound of the action (rad, m/s or '
                                         'm; A values)', kind='double_array', dynamic=True),
    ParamSpec('safety.action_max', None, 'per-entry upper bound of the action (A values)',
              kind='double_array', dynamic=True),
    ParamSpec('safety.max_delta', None, 'per-entry maximum change per tick (A values, action '
                                        'units per tick; <= 0: no limit)', kind='double_array',
              dynamic=True),
    ParamSpec('safety.max_speed', 0.0, 'twist: maximum linear speed, m/s (0: none)',
              range=(0.0, 1000.0), dynamic=True),
    ParamSpec('safety.workspace_min', None, 'end-effector box lower corner x, y, z (m, the '
                                            'ee_pose frame)', kind='double_array',
              dynamic=True),
    ParamSpec('safety.workspace_max', None, 'end-effector box upper corner x, y, z (m)',
              kind='double_array', dynamic=True),
    ParamSpec('safety.gripper_min', -1.0, 'lowest gripper command', dynamic=True),
    ParamSpec('safety.gripper_max', 1.0, 'highest gripper command', dynamic=True),
)

# What each managed node declares and which deployed part it runs (`base.ManagedNode`).
NODE_PARAMS = {'perception': PERCEPTION_PARAMS, 'instruction': INSTRUCTION_PARAMS,
               'policy': POLICY_PARAMS}
NODE_PARTS = {'perception': ('vision',), 'instruction': ('language',),
              'policy': ('policy_core',)}
