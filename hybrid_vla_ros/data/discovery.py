"""Finding rosbag2 episode directories under the paths a user gives."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, List, Tuple

from ..schema import ConfigError
from .bag import METADATA_FILE, STORAGE_SUFFIXES


def find_bags(sources: Iterable) -> Tuple[List[Path], List[Path]]:
    """Rosbag2 directories among and below `sources` (bag directories or parents of them).

    A rosbag2 directory is one containing ``metadata.yaml``; the search does not descend
    into it, nor into hidden directories (``.partial/``, where `hybrid-vla collect` writes
    episodes until they are complete). Returns (bags, unfinished), both sorted:
    ``unfinished`` are directories with storage files (.mcap, .db3) but no metadata.yaml,
    i.e. recordings that did not finish; they are reported, never silently ignored.
    Raises `ConfigError` for a path that does not exist.
    """
    bags, unfinished = set(), set()
    for source in sources:
        root = Path(source)
        if not root.exists():
            raise ConfigError(f'{root}: dataset path does not exist')
        if not root.is_dir():
            raise ConfigError(f'{root}: expected a rosbag2 directory (with {METADATA_FILE}) '
                              f'or a directory of them, got a file')
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            if METADATA_FILE in filenames:
                bags.add(Path(dirpath).resolve())
                dirnames[:] = []  # a bag's own files are not more bags
            elif any(name.endswith(STORAGE_SUFFIXES) for name in filenames):
                unfinished.add(Path(dirpath).resolve())
            dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
    return sorted(bags), sorted(unfinished)
