"""Where the package's data (config/, models/, launch/) is, and how a file named in a YAML
file is found.

A source checkout has them beside the package; ``colcon install`` puts them under
``share/hybrid_vla_ros``. Paths written in configuration files (a training config's model
and topic map) are looked up where a user means them, so commands work from any directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from .schema import ConfigError

PACKAGE = 'hybrid_vla_ros'


def repo_root() -> Optional[Path]:
    """The source checkout this module runs from, if it is one (has config/ros/)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / 'config' / 'ros').is_dir() else None


def share_dir() -> Optional[Path]:
    """share/hybrid_vla_ros of an installed package (colcon), if there is one."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # not installed with colcon, or ament_index absent
        return None


def data_root() -> Path:
    """Where config/ and models/ are: the checkout first, else the installed share dir."""
    root = repo_root() or share_dir()
    if root is None:
        raise ConfigError('cannot find config/ros: run from the source checkout or install '
                          'the package with colcon')
    return root


def find_file(name: str, referrer, key: str) -> Path:
    """The file a configuration value `name` means: as given (absolute, or relative to the
    working directory), else next to the YAML file `referrer` that names it, else under
    the package data (``config/data/metaworld.yaml`` works from any directory).

    Raises `ConfigError` naming `key`, the referrer and every place looked in.
    """
    candidates: List[Path] = [Path(name)]
    if not Path(name).is_absolute():
        candidates.append(Path(referrer).parent / name)
        root = repo_root() or share_dir()
        if root is not None:
            candidates.append(root / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f'{referrer}: {key}: {name} not found (looked in: '
                      f'{", ".join(str(c) for c in candidates)})')
