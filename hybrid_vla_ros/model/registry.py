"""Component registry: a new component is one class plus its name in YAML.

Kinds are ``vision``, ``language``, ``fusion`` and ``decoder``. A component class has a
nested ``Config`` dataclass (its YAML keys, with defaults) and registers itself with
``@register('vision', 'cnn')``. A YAML section ``{type: cnn, channels: [...]}`` is resolved
by `parse_component` into a `ComponentSpec` holding the validated ``Config``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict

from ..schema import ConfigError, from_mapping, to_mapping

KINDS = ('vision', 'language', 'fusion', 'decoder')
_REGISTRY: Dict[str, Dict[str, type]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str) -> Callable[[type], type]:
    """Class decorator registering a component of `kind` under `name`."""
    if kind not in _REGISTRY:
        raise ValueError(f'unknown component kind {kind!r}; kinds are {", ".join(KINDS)}')

    def decorate(cls: type) -> type:
        if not dataclasses.is_dataclass(getattr(cls, 'Config', None)):
            raise TypeError(f'{cls.__name__} must define a nested dataclass named Config')
        if name in _REGISTRY[kind] and _REGISTRY[kind][name] is not cls:
            raise ValueError(f'{kind} component {name!r} is already registered')
        _REGISTRY[kind][name] = cls
        cls.component_name = name
        return cls

    return decorate


def available(kind: str) -> list:
    """Names registered for `kind`, sorted."""
    return sorted(_REGISTRY[kind])


def component_class(kind: str, name: str) -> type:
    """The class registered as `name` for `kind` (KeyError-free: raises ConfigError)."""
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        raise ConfigError(
            f'{kind}.type: {name!r} is not a registered {kind} component; '
            f'choose one of {", ".join(available(kind))}') from None


@dataclasses.dataclass
class ComponentSpec:
    """A resolved YAML component section: its registered type name and validated Config."""

    kind: str
    type: str
    config: Any

    def to_mapping(self) -> dict:
        """The YAML form: ``{type: NAME, **config}``."""
        return {'type': self.type, **to_mapping(self.config)}

    @property
    def cls(self) -> type:
        """The component class this section builds."""
        return component_class(self.kind, self.type)


def parse_component(kind: str, data: Any, path: str) -> ComponentSpec:
    """Validate a component section (``{type: NAME, ...}``) found at key `path`."""
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping with a "type" key, got {data!r}')
    if 'type' not in data:
        raise ConfigError(f'{path}.type: required key is missing; choose one of '
                          f'{", ".join(available(kind))}')
    name = data['type']
    if name not in _REGISTRY[kind]:
        raise ConfigError(f'{path}.type: {name!r} is not a registered {kind} component; '
                          f'choose one of {", ".join(available(kind))}')
    params = {k: v for k, v in data.items() if k != 'type'}
    config = from_mapping(_REGISTRY[kind][name].Config, params, path)
    return ComponentSpec(kind=kind, type=name, config=config)
