"""Recovering the readable part of a truncated or damaged MCAP rosbag2.

A recording that was cut off (power loss, a killed recorder, a copy that did not finish)
has no MCAP summary and no end magic, and indexed readers such as rosbags refuse the whole
file. The MCAP format is a plain sequence of ``opcode (u8) | length (u64) | content``
records, so the messages before the damage can be read in order: `salvage_mcap` scans the
file record by record (decompressing zstd / lz4 chunks), stops at the first record that is
cut short or does not decode, and writes what it read into a new, well-formed bag with the
original topics, message definitions, receive times and custom metadata. The data layer
then reads the copy like any other bag and reports what was lost.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import yaml

MAGIC = b'\x89MCAP0\r\n'
OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_FOOTER, OP_DATA_END = 0x03, 0x04, 0x05, 0x06, \
    0x02, 0x0F


class _Truncated(Exception):
    """A record runs past the end of the available bytes."""


@dataclasses.dataclass
class SalvageReport:
    """What `salvage_mcap` recovered from a damaged bag.

    ``messages``: messages recovered per topic; ``last_time_ns``: receive time of the last
    recovered message (ns); ``error``: why reading stopped (None when the file ended
    cleanly, i.e. only the index was missing); ``bytes_read`` / ``bytes_total``: how far
    into the storage file the readable part reaches.
    """

    source: str
    messages: Dict[str, int]
    last_time_ns: Optional[int]
    error: Optional[str]
    bytes_read: int
    bytes_total: int

    @property
    def total(self) -> int:
        """Messages recovered over all topics."""
        return sum(self.messages.values())

    def describe(self) -> str:
        """One line for reports: how much was recovered and why reading stopped."""
        share = 100.0 * self.bytes_read / max(self.bytes_total, 1)
        reason = self.error or 'the file ends without its index'
        return (f'damaged bag: {self.total} messages recovered from the first {share:.0f}% of '
                f'the file ({reason}); later messages are lost')


class _Cursor:
    def __init__(self, data: bytes, offset: int = 0):
        self.data, self.pos = data, offset

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _Truncated(f'record cut short at byte {self.pos}')
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack('<H', self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack('<I', self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack('<Q', self.take(8))[0]

    def string(self) -> str:
        return self.take(self.u32()).decode('utf-8')

    def strmap(self) -> Dict[str, str]:
        end = self.u32() + self.pos
        out = {}
        while self.pos < end:
            key = self.string()
            out[key] = self.string()
        return out


def _decompress(kind: str, payload: bytes, complete: bool) -> bytes:
    """Decompress a chunk's records; a cut-off payload (`complete` False) is decompressed
    as far as it goes, since zstd and lz4 frames stream."""
    if kind == '':
        return payload
    if kind == 'zstd':
        try:
            from compression import zstd  # Python >= 3.14
        except ImportError:
            from backports import zstd
        if complete:
            return zstd.decompress(payload)
        return zstd.ZstdDecompressor().decompress(payload)
    if kind == 'lz4':
        import lz4.frame
        if complete:
            return lz4.frame.decompress(payload)
        return lz4.frame.LZ4FrameDecompressor().decompress(payload)
    raise ValueError(f'unknown chunk compression {kind!r}')


def _records(data: bytes, start: int) -> Iterator[Tuple[int, bytes, int, bool]]:
    """(opcode, content, end offset, complete) of each record from `start`. The last record
    of a cut-off file comes with complete False and whatever content exists."""
    cur = _Cursor(data, start)
    while cur.pos < len(data):
        opcode = cur.take(1)[0]
        length = cur.u64()
        available = min(length, len(data) - cur.pos)
        content = cur.take(available)
        yield opcode, content, cur.pos, available == length
        if available < length:
            return


def _chunk_records(content: bytes, complete: bool) -> Iterator[Tuple[int, bytes]]:
    cur = _Cursor(content)
    cur.u64(), cur.u64(), cur.u64(), cur.u32()
    kind = cur.string()
    size = cur.u64()
    payload = content[cur.pos:cur.pos + size]
    inner = _decompress(kind, payload, complete and len(payload) == size)
    for opcode, inner_content, _, inner_complete in _records(inner, 0):
        if not inner_complete:
            raise _Truncated('a chunk is cut short')
        yield opcode, inner_content


def _scan(data: bytes, sink) -> Tuple[int, Optional[str]]:
    """Feed schemas, channels and messages to `sink` in file order; return (bytes of the
    file read completely, why reading stopped or None)."""
    if data[:len(MAGIC)] != MAGIC:
        return 0, 'the file does not start with the MCAP magic'
    good = len(MAGIC)
    try:
        for opcode, content, end, complete in _records(data, len(MAGIC)):
            if opcode == OP_CHUNK:
                for inner_op, inner_content in _chunk_records(content, complete):
                    sink(inner_op, inner_content)
            elif complete:
                sink(opcode, content)
            if not complete:
                return good, f'the file is cut short at byte {len(data)}'
            good = end
            if opcode in (OP_DATA_END, OP_FOOTER):
                return good, None
    except _Truncated as exc:
        return good, f'{exc} (file cut at byte {len(data)})'
    except Exception as exc:  # a chunk that does not decompress or decode: damage
        return good, f'{type(exc).__name__}: {exc}'
    return good, None


def storage_file(bag_dir: Path) -> Optional[Path]:
    """The single ``.mcap`` storage file of a bag directory, or None."""
    files = sorted(Path(bag_dir).glob('*.mcap'))
    return files[0] if len(files) == 1 else None


def salvage_mcap(bag_dir, out_dir) -> SalvageReport:
    """Copy the readable messages of the MCAP bag `bag_dir` into a new bag `out_dir`.

    The copy keeps topics, message types and definitions, receive times (ns), serialized
    payloads and the ``custom_data`` of the source's metadata.yaml. Raises `ValueError`
    when `bag_dir` has no single ``.mcap`` file or not a single message can be read.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    bag_dir, out_dir = Path(bag_dir), Path(out_dir)
    source = storage_file(bag_dir)
    if source is None:
        raise ValueError(f'{bag_dir}: no single .mcap storage file to salvage')
    data = source.read_bytes()
    schemas: Dict[int, Tuple[str, str]] = {}
    channels: Dict[int, Tuple[str, int]] = {}
    messages: List[Tuple[int, int, bytes]] = []

    def sink(opcode: int, content: bytes) -> None:
        cur = _Cursor(content)
        if opcode == OP_SCHEMA:
            sid, name, _encoding = cur.u16(), cur.string(), cur.string()
            schemas[sid] = (name, cur.take(cur.u32()).decode('utf-8'))
        elif opcode == OP_CHANNEL:
            cid, sid, topic = cur.u16(), cur.u16(), cur.string()
            channels[cid] = (topic, sid)
        elif opcode == OP_MESSAGE:
            cid = cur.u16()
            cur.u32()
            log_time = cur.u64()
            cur.u64()
            messages.append((cid, log_time, content[cur.pos:]))

    good, error = _scan(data, sink)
    usable = [(cid, t, payload) for cid, t, payload in messages
              if cid in channels and channels[cid][1] in schemas]
    if not usable:
        raise ValueError(f'{source}: no message could be read ({error or "empty file"})')
    custom = _custom_data(bag_dir)
    writer = Writer(out_dir, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    counts: Dict[str, int] = {}
    try:
        connections = {}
        # The recorded definitions are registered so that types unknown to the built-in
        # store (custom messages) are written with their own definitions.
        typestore = get_typestore(Stores.LATEST)
        for msgtype, msgdef in schemas.values():
            if msgtype not in typestore.fielddefs:
                typestore.register(get_types_from_msg(msgdef, msgtype))
        for cid, (topic, sid) in sorted(channels.items()):
            if sid not in schemas:
                continue
            connections[cid] = writer.add_connection(topic, schemas[sid][0],
                                                     typestore=typestore)
            counts[topic] = 0
        for cid, t, payload in sorted(usable, key=lambda m: m[1]):
            writer.write(connections[cid], t, payload)
            counts[channels[cid][0]] += 1
        for key, value in custom.items():
            writer.set_custom_data(key, value)
    finally:
        writer.close()
    return SalvageReport(str(bag_dir), counts, max(t for _, t, _ in usable), error, good,
                         len(data))


def _custom_data(bag_dir: Path) -> Dict[str, str]:
    try:
        meta = yaml.safe_load((bag_dir / 'metadata.yaml').read_text())
        return dict(meta['rosbag2_bagfile_information'].get('custom_data') or {})
    except Exception:  # metadata is optional for salvage: the messages are what matter
        return {}
