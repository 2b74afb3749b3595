"""Reading one rosbag2 directory: its topics, its custom metadata and the messages of the
topics a topic map needs, as time-sorted series.

Bags are read with `rosbags.highlevel.AnyReader`, which handles MCAP and sqlite3 storage and
file-, message- and chunk-level zstd compression. Bags without embedded message definitions
(sqlite3 bags recorded by ROS 2 Humble) are decoded with the Humble type store; the standard
message types used here did not change between distributions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import struct
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
import yaml
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from ..schema import ConfigError
from .errors import BagContentError
from .messages import stamp_ns

# rosbag2 metadata versions this package writes, and which ROS 2 distributions read them
# (measured: Humble's `ros2 bag` fails on version 9's QoS list; Jazzy and Kilted read both).
BAG_VERSIONS = {8: 'Humble, Jazzy, Kilted', 9: 'Jazzy, Kilted'}
# The default: the version every supported distribution reads.
DEFAULT_BAG_VERSION = 8


def check_bag_version(version: int) -> int:
    """`version` if this package writes it, else `ConfigError` naming the choices."""
    if version not in BAG_VERSIONS:
        choices = '; '.join(f'{v} ({who})' for v, who in BAG_VERSIONS.items())
        raise ConfigError(f'bag metadata version {version} is not written here; choose {choices}')
    return int(version)


METADATA_FILE = 'metadata.yaml'
STORAGE_SUFFIXES = ('.mcap', '.db3', '.mcap.zstd', '.db3.zstd')

_DEFAULT_TYPESTORE = None


def _default_typestore():
    global _DEFAULT_TYPESTORE
    if _DEFAULT_TYPESTORE is None:
        _DEFAULT_TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
    return _DEFAULT_TYPESTORE


@dataclasses.dataclass
class Series:
    """The messages of one topic sorted by time: stamps (M,) int64 ns, and either the
    deserialized messages or, for a topic read stamps-only, ``keys``: each message's
    (receive time, serialized header stamp) in ns, to fetch it later with `iter_messages`."""

    msgtype: str
    stamps: np.ndarray
    messages: List
    keys: Optional[List[Tuple[int, int]]] = None


@contextlib.contextmanager
def open_bag(path: Path) -> Iterator[AnyReader]:
    """Open a rosbag2 directory for reading, as a context manager yielding the reader.

    Raises `BagContentError` when the bag cannot be opened (bad metadata, truncated or
    corrupt storage file, unknown storage plugin).
    """
    try:
        reader = AnyReader([Path(path)], default_typestore=_default_typestore())
        reader.open()
    except Exception as exc:  # rosbags raises several types for one meaning: unreadable
        raise BagContentError(f'cannot open the bag: {type(exc).__name__}: {exc}. '
                              f'A recording that did not finish can often be repaired with '
                              f'`ros2 bag reindex`.') from exc
    try:
        yield reader
    finally:
        reader.close()


def topics_text(topics: Dict[str, str]) -> str:
    """``name (type)`` of every topic, one list, for error messages."""
    if not topics:
        return '(no topics)'
    return ', '.join(f'{name} ({msgtype})' for name, msgtype in sorted(topics.items()))


def resolve_topic(wanted: str, topics: Dict[str, str], key_path: str) -> str:
    """The bag topic a topic-map name refers to.

    Matching is exact first, then ignoring a leading ``/``, then by namespace suffix
    (``front/image_raw`` matches ``/robot1/front/image_raw`` when exactly one topic ends so).
    Raises `ConfigError` naming the key path, the topic and every topic the bag has.
    """
    if wanted in topics:
        return wanted
    bare = wanted.lstrip('/')
    for name in topics:
        if name.lstrip('/') == bare:
            return name
    suffix = [name for name in topics if name.endswith('/' + bare)]
    if len(suffix) == 1:
        return suffix[0]
    if len(suffix) > 1:
        raise ConfigError(f'{key_path}: topic {wanted!r} is ambiguous in this bag: '
                          f'{", ".join(sorted(suffix))} all end with it; write the full name')
    raise ConfigError(f'{key_path}: topic {wanted!r} is not in this bag; the bag has: '
                      f'{topics_text(topics)}')


def bag_topics(reader: AnyReader) -> Dict[str, str]:
    """Topic name -> message type (``pkg/msg/Name``) of an open bag."""
    return {name: info.msgtype or '(several types)' for name, info in reader.topics.items()}


def read_series(reader: AnyReader, topics: Iterable[str], use_header: bool,
                stamps_only: Iterable[str] = ()) -> Dict[str, Series]:
    """Read every message of `topics` into time-sorted `Series`.

    The time of a message is its header stamp when `use_header` (see `stamp_ns`), else its
    bag receive time. Messages are sorted by that time with a stable sort, so recorders that
    wrote them out of order are handled. Topics in `stamps_only` (images) are not
    deserialized: their stamps are read from the serialized header and the messages are
    fetched later, only those needed, with `iter_messages`, so an episode of large frames
    is never held in memory at once. Raises `BagContentError` when the storage breaks while
    reading (a truncated file) or a message does not deserialize.
    """
    wanted, lazy = set(topics), set(stamps_only)
    info = reader.topics
    connections = [c for name in sorted(wanted) for c in info[name].connections]
    raw: Dict[str, List] = {name: [] for name in wanted}
    try:
        for connection, receive_ns, data in reader.messages(connections=connections):
            items = raw[connection.topic]
            if connection.topic in lazy:
                key = (int(receive_ns), cdr_header_stamp(data))
                items.append((key[1] if use_header and key[1] else key[0], key))
            else:
                msg = reader.deserialize(data, connection.msgtype)
                items.append((stamp_ns(msg, receive_ns, use_header), msg))
    except Exception as exc:  # any storage/serde failure mid-read means a damaged bag
        raise BagContentError(f'reading messages failed: {type(exc).__name__}: '
                              f'{exc}') from exc
    series = {}
    for name in wanted:
        items = raw[name]
        stamps = np.array([s for s, _ in items], dtype=np.int64)
        order = np.argsort(stamps, kind='stable')
        payload = [items[i][1] for i in order]
        series[name] = Series(info[name].msgtype, stamps[order],
                              [] if name in lazy else payload,
                              payload if name in lazy else None)
    return series


def iter_messages(reader: AnyReader, topic: str, keys: Iterable[Tuple[int, int]]) -> Iterator:
    """Yield (key, message) for the messages of `topic` whose (receive ns, header stamp ns)
    key (see `Series.keys`) is in `keys`, deserializing only those; each key once (two
    messages with the same receive time and stamp are indistinguishable: the first read
    stands for both)."""
    wanted = set(keys)
    if not wanted:
        return
    start = min(k[0] for k in wanted)
    stop = max(k[0] for k in wanted) + 1
    try:
        for connection, receive_ns, data in reader.messages(
                connections=reader.topics[topic].connections, start=start, stop=stop):
            key = (int(receive_ns), cdr_header_stamp(data))
            if key in wanted:
                wanted.discard(key)
                yield key, reader.deserialize(data, connection.msgtype)
                if not wanted:
                    break
    except Exception as exc:  # a storage failure on the second read: a damaged bag
        raise BagContentError(f'reading {topic!r} failed: {type(exc).__name__}: '
                              f'{exc}') from exc


def cdr_header_stamp(data) -> int:
    """The header stamp (ns) of a CDR-serialized message whose first field is a
    std_msgs/Header (sensor_msgs/Image, CompressedImage), without deserializing the rest:
    4 bytes of encapsulation (byte 1 = 1 for little endian), then int32 sec, uint32 nanosec.
    Returns 0 when the stamp is unset."""
    order = '<' if data[1] == 1 else '>'
    sec, nanosec = struct.unpack_from(f'{order}iI', data, 4)
    return sec * 1_000_000_000 + nanosec


def read_custom_data(path: Path) -> Dict[str, str]:
    """The ``custom_data`` mapping of a bag's metadata.yaml (empty when absent)."""
    try:
        with open(Path(path) / METADATA_FILE, encoding='utf-8') as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return {}
    info = doc.get('rosbag2_bagfile_information', {}) if isinstance(doc, dict) else {}
    custom = info.get('custom_data') if isinstance(info, dict) else None
    if not isinstance(custom, dict):
        return {}
    return {str(k): str(v) for k, v in custom.items()}


def parse_bool(value: Optional[str]) -> Optional[bool]:
    """'true'/'false' (any case, also 1/0, yes/no) -> bool; None for absent or unknown."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ('true', '1', 'yes'):
        return True
    if text in ('false', '0', 'no'):
        return False
    return None


def parse_int(value: Optional[str]) -> Optional[int]:
    """An integer string -> int; None for absent or malformed."""
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None
