"""Node parameters as data: each node lists `ParamSpec`s, `declare` turns them into ROS 2
parameters with descriptors (description with units, type, range, allowed values, read-only).

Keeping the list as data lets the documentation test check that docs/ros.md names every
parameter, and gives every node the same validation: a value outside its choices or range
is refused with a message that names the parameter, the value and what is allowed.

A spec whose default is None declares a *typed but unset* parameter (ROS 2 cannot infer a
type from an empty list): reading it gives the empty value of its type.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple

from ..schema import ConfigError

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

    Values that break a spec's choices or range are kept out: the default is used and the
    reason goes into `problems` (the node reports them; it does not crash).
    """
    from rclpy.exceptions import ParameterUninitializedException
    from rclpy.parameter import Parameter
    values: Dict[str, Any] = {}
    problems = []
    for spec in specs:
        kind = spec.type_kind
        type_name, empty = KINDS[kind]
        ptype = getattr(Parameter.Type, type_name)
        default = ptype if spec.default is None else (
            list(spec.default) if isinstance(spec.default, tuple) else spec.default)
        try:
            node.declare_parameter(spec.name, default, _descriptor(spec))
            value = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            value = list(empty) if isinstance(empty, list) else empty
        except Exception as exc:  # a wrongly-typed override: report, keep the default
            problems.append(f'parameter {spec.name}: {exc}')
            value = spec.default if spec.default is not None else empty
        if isinstance(value, tuple):
            value = list(value)
        reason = spec.check(value)
        if reason:
            problems.append(reason + f'; using {spec.default!r}')
            value = spec.default
        values[spec.name] = list(value) if hasattr(value, 'tolist') else value
    return Params(values, {s.name: s for s in specs}), problems
