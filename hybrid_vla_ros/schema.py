"""Typed configuration: dataclasses filled from YAML mappings, validated at load time.

Every configuration section of the package (model components, data, training) is a
dataclass. `from_mapping` fills one from a plain dict and fails with a `ConfigError` that
names the full key path (``model.fusion.layers``), what was expected and what was given, so
a user can fix the YAML without reading code. Defaults live in the dataclass fields, nowhere
else.

Per-field constraints are given with `spec(...)` in the field's metadata:
``choices`` (allowed values), ``minimum`` / ``maximum`` (inclusive bounds) and ``doc``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key path."""


def spec(default: Any = dataclasses.MISSING, *, doc: str = '', choices=None, minimum=None,
         maximum=None, default_factory: Any = dataclasses.MISSING):
    """Declare a dataclass field with documentation and validation constraints."""
    metadata = {'doc': doc, 'choices': choices, 'minimum': minimum, 'maximum': maximum}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return ' or '.join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f'a list of {_type_name(args[0])}' if args else 'a list'
    if origin is dict:
        return 'a mapping'
    if tp is type(None):
        return 'null'
    if dataclasses.is_dataclass(tp):
        return 'a mapping'
    return {int: 'an integer', float: 'a number', bool: 'true or false', str: 'a string'}.get(
        tp, getattr(tp, '__name__', str(tp)))


def _coerce(value: Any, tp, path: str):
    """Convert `value` to type `tp` or raise ConfigError naming `path`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f'{path}: expected {_type_name(tp)}, got {value!r}')
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{path}: expected {_type_name(tp)}, got {value!r}')
        (item_tp,) = typing.get_args(tp)[:1] or (Any,)
        items = [_coerce(v, item_tp, f'{path}[{i}]') for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f'{path}: expected a mapping, got {value!r}')
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f'{path}: expected true or false, got {value!r}')
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f'{path}: expected an integer, got {value!r}')
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f'{path}: expected a number, got {value!r}')
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f'{path}: expected a string, got {value!r}')
    return value


def _check_constraints(value: Any, meta: Mapping, path: str) -> None:
    choices = meta.get('choices')
    if choices is not None and value is not None and value not in choices:
        allowed = ', '.join(repr(c) for c in choices)
        raise ConfigError(f'{path}: {value!r} is not allowed; choose one of {allowed}')
    lo, hi = meta.get('minimum'), meta.get('maximum')
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if lo is not None and value < lo:
            raise ConfigError(f'{path}: must be >= {lo}, got {value!r}')
        if hi is not None and value > hi:
            raise ConfigError(f'{path}: must be <= {hi}, got {value!r}')


def from_mapping(cls, data: Any, path: str = ''):
    """Build dataclass `cls` from a mapping, validating every key.

    Unknown keys, missing required keys, wrong types and values outside `choices` /
    bounds raise `ConfigError` with the dotted key path.
    """
    prefix = f'{path}.' if path else ''
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f'{path or "config"}: expected a mapping, got {data!r}')
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        allowed = ', '.join(sorted(fields))
        raise ConfigError(f'{prefix}{unknown[0]}: unknown key; allowed keys here: {allowed}')
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        key_path = f'{prefix}{name}'
        if name in data:
            value = _coerce(data[name], hints[name], key_path)
        elif field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            raise ConfigError(f'{key_path}: required key is missing')
        _check_constraints(value, field.metadata, key_path)
        kwargs[name] = value
    obj = cls(**kwargs)
    validate = getattr(obj, 'validate', None)
    if callable(validate):
        validate(path)
    return obj


def to_mapping(obj) -> Any:
    """Turn a (nested) dataclass back into plain YAML-serializable values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def load_yaml(path) -> dict:
    """Read a YAML file into a dict, with a clear error for a missing or malformed file."""
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f'{path}: file not found') from None
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: not valid YAML: {exc}') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: the top level must be a mapping, got {type(data).__name__}')
    return data


def load_section(path, section: str, parse):
    """Read YAML file `path`, take its ``section:`` mapping when present (training configs and
    checkpoints nest sections) or the whole file otherwise, and validate it with `parse`;
    a `ConfigError` is prefixed with the file name."""
    data = load_yaml(path)
    if section in data:
        data = data[section]
    try:
        return parse(data)
    except ConfigError as exc:
        raise ConfigError(f'{path}: {exc}') from None


def mapping_hash(mapping: Mapping, exclude=()) -> str:
    """SHA-256 (hex, first 16 chars) of a mapping's canonical JSON, top-level keys in
    `exclude` left out. Used to tie exported graphs to the configuration they came from."""
    import hashlib
    import json
    doc = {k: v for k, v in mapping.items() if k not in exclude}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def mapping_differences(a: Any, b: Any, path: str):
    """Every leaf that differs between two nested mappings, in sorted key order:
    (dotted key path, value in `a`, value in `b`) tuples; a key missing on one side has
    None there, and lists are compared whole."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            yield from mapping_differences(a.get(key), b.get(key), f'{path}.{key}')
    elif a != b:
        yield path, a, b
