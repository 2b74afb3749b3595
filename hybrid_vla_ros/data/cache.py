"""On-disk episode cache: decoded episodes as uncompressed .npz, so a second training run
reads arrays instead of decoding bags again.

A cache file is keyed by the bag's absolute path, the names, sizes and modification times
of its files (a re-recorded or repaired bag misses the cache) and the topic map's digest
(another image size or source list misses it too). Writes are atomic (a temporary file
renamed into place), so an interrupted run leaves no half-written entry; an unreadable
entry is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from .episode import Episode
from .topic_map import TopicMap

# Bump when the stored layout or the decoding changes meaning.
FORMAT_VERSION = 1


def cache_key(bag_dir, topic_map: TopicMap) -> str:
    """Hex digest (24 chars) identifying one bag's content under one topic map."""
    bag = Path(bag_dir).resolve()
    parts = [f'v{FORMAT_VERSION}', str(bag), topic_map.digest()]
    for entry in sorted(bag.iterdir()):
        if entry.is_file():
            st = entry.stat()
            parts.append(f'{entry.name}:{st.st_size}:{st.st_mtime_ns}')
    return hashlib.sha256('\n'.join(parts).encode()).hexdigest()[:24]


def cache_path(cache_dir, bag_dir, topic_map: TopicMap) -> Path:
    """Where the cached episode of `bag_dir` lives: ``<cache_dir>/<bag name>-<key>.npz``."""
    name = f'{Path(bag_dir).name}-{cache_key(bag_dir, topic_map)}.npz'
    return Path(cache_dir).expanduser() / name


def save_episode(path: Path, episode: Episode) -> None:
    """Write `episode` to `path` atomically (uncompressed: loading is a plain read)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        'path': episode.path, 'cameras': episode.cameras,
        'instructions': episode.instructions, 'proprio_names': episode.proprio_names,
        'action_names': episode.action_names, 'metadata': episode.metadata,
        'dropped_steps': episode.dropped_steps, 'source_sizes': episode.source_sizes,
    }
    arrays = {f'frames_{n}': f for n, f in enumerate(episode.frames)}
    arrays.update(frame_index=episode.frame_index, proprio=episode.proprio,
                  actions=episode.actions, instruction_index=episode.instruction_index,
                  stamps=episode.stamps, meta=np.array(json.dumps(meta)))
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cached(path: Path) -> Optional[Episode]:
    """The episode stored at `path`, or None when absent or unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z['meta']))
            frames = [z[f'frames_{n}'] for n in range(len(meta['cameras']))]
            return Episode(
                path=meta['path'], cameras=meta['cameras'], frames=frames,
                frame_index=z['frame_index'], proprio=z['proprio'], actions=z['actions'],
                instructions=meta['instructions'], instruction_index=z['instruction_index'],
                stamps=z['stamps'], proprio_names=meta['proprio_names'],
                action_names=meta['action_names'], metadata=meta['metadata'],
                dropped_steps=meta['dropped_steps'], source_sizes=meta['source_sizes'])
    except Exception:  # a damaged cache entry is only a cache miss
        return None
