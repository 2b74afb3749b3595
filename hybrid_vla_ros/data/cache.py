"""On-disk episode cache: decoded episodes as uncompressed .npz, so a second training run
reads arrays instead of decoding bags again.

The camera frames of a cached episode are memory-mapped from its file, not read into
memory: a training run holds only the images it is reading (the operating system's page
cache keeps the rest while memory allows, and drops it when not), so a dataset larger than
the machine's memory trains. The small arrays (actions, proprioception, stamps) are read.

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
import struct
import tempfile
import zipfile
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


def _mapped_member(path: Path, archive: zipfile.ZipFile, name: str) -> Optional[np.ndarray]:
    """The array `name` of the .npz `archive` at `path` as a read-only memory map, or None
    when the member is compressed or not a plain .npy (then it is read instead)."""
    try:
        info = archive.getinfo(f'{name}.npy')
    except KeyError:
        return None
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, 'rb') as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) != 30 or local[:4] != b'PK\x03\x04':
            return None
        name_length, extra_length = struct.unpack('<HH', local[26:30])
        f.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return None
        offset = f.tell()
    if dtype.hasobject or int(np.prod(shape)) == 0:
        return None
    return np.memmap(path, dtype=dtype, mode='r', shape=shape, offset=offset,
                     order='F' if fortran else 'C')


def load_cached(path: Path, map_frames: bool = True) -> Optional[Episode]:
    """The episode stored at `path`, or None when absent or unreadable. With `map_frames`
    its camera frames ((F, H, W, 3) uint8 per camera) are read-only memory maps of the file
    (see the module docstring); otherwise they are read into memory."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z['meta']))
            names = [f'frames_{n}' for n in range(len(meta['cameras']))]
            frames = None
            if map_frames:
                mapped = [_mapped_member(path, z.zip, name) for name in names]
                if all(m is not None for m in mapped):
                    frames = mapped
            if frames is None:
                frames = [z[name] for name in names]
            return Episode(
                path=meta['path'], cameras=meta['cameras'], frames=frames,
                frame_index=z['frame_index'], proprio=z['proprio'], actions=z['actions'],
                instructions=meta['instructions'], instruction_index=z['instruction_index'],
                stamps=z['stamps'], proprio_names=meta['proprio_names'],
                action_names=meta['action_names'], metadata=meta['metadata'],
                dropped_steps=meta['dropped_steps'], source_sizes=meta['source_sizes'])
    except Exception:  # a damaged cache entry is only a cache miss
        return None
