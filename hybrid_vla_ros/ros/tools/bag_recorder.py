"""Record live topics into a new rosbag2 (``hybrid-vla record``).

Each topic is subscribed with ``raw=True``: the callback gets the serialized CDR bytes,
which are written to the bag as they are (no deserialization, byte-identical). The type of
each topic comes from the ROS graph (the publishers seen on it), so only the names are
given; a topic is subscribed as soon as a publisher appears, and one never seen is
reported when the recording closes.

The bag is written with `rosbags.rosbag2.Writer` (metadata version 8 by default, which
Humble, Jazzy and Kilted read, or 9; MCAP or sqlite3),
with every topic's message definition and type hash, so rosbags, ``ros2 bag`` and
Foxglove can decode it without this package. Definitions come from the rosbags Kilted
type store, or — for a type it does not know (your own messages) — are generated from the
installed Python message class. The log time of a message is its receive time: the
middleware's reception timestamp (system time, ns), or the node clock when the node uses
simulated time.

QoS: a topic whose publishers all offer reliable delivery is subscribed reliable (nothing
is lost to a slow disk), otherwise best effort (which matches every publisher); it is
subscribed transient-local when every publisher offers transient-local (latched topics
then deliver their current value), else volatile. The depth is `SUBSCRIPTION_DEPTH`. The
publishers' offered profiles are stored in the bag, as ``ros2 bag record`` does.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ...data.bag import DEFAULT_BAG_VERSION, check_bag_version
from ...schema import ConfigError
from .bag_player import message_class

STORAGES = ('mcap', 'sqlite3')
# Keep-last depth of each subscription: room for a backlog while the callback writes.
SUBSCRIPTION_DEPTH = 1000

_TYPESTORE = None
# rosidl type names (as `get_fields_and_field_types` spells them) -> .msg names.
_BASIC = {'boolean': 'bool', 'octet': 'byte', 'float': 'float32', 'double': 'float64',
          'long double': 'float64'}
_INFINITE = (2147483647, 4294967295)  # how rosbag2 stores an infinite QoS duration


def _typestore():
    """A private copy of the rosbags Kilted type store (custom types get registered in it)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_typestore
        _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
    return _TYPESTORE


def _msg_field_type(rosidl: str, deps: List[str]) -> str:
    """One rosidl field type (``sequence<double, 3>``, ``pkg/Name[4]``) -> .msg syntax."""
    m = re.fullmatch(r'sequence<(.+?)(?:, (\d+))?>', rosidl)
    if m:
        return _msg_field_type(m[1], deps) + (f'[<={m[2]}]' if m[2] else '[]')
    m = re.fullmatch(r'(.+)\[(\d+)\]', rosidl)
    if m:
        return _msg_field_type(m[1], deps) + f'[{m[2]}]'
    if '/' in rosidl:
        parts = rosidl.split('/')
        full = f'{parts[0]}/msg/{parts[-1]}'
        deps.append(full)
        return full
    return _BASIC.get(rosidl, rosidl)


def register_from_class(typestore, msgtype: str) -> None:
    """Register `msgtype` and the types it nests in `typestore`, from the installed Python
    message classes (field names and types; constants and defaults are not carried, and
    are not part of the RIHS01 type hash either). Raises ImportError when a class is not
    importable."""
    from rosbags.typesys import get_types_from_msg
    if msgtype in typestore.fielddefs:
        return
    deps: List[str] = []
    fields = message_class(msgtype).get_fields_and_field_types()
    text = '\n'.join(f'{_msg_field_type(kind, deps)} {name}' for name, kind in fields.items())
    for dep in deps:
        register_from_class(typestore, dep)
    typestore.register(get_types_from_msg(text, msgtype))


def message_definition(msgtype: str, live_hash: str = '') -> Tuple[str, str]:
    """(.msg definition text, RIHS01 hash) of `msgtype` for the bag's metadata.

    The rosbags type store's definition is used when its hash equals `live_hash` (the hash
    the publishers announce; '' = not known); otherwise one generated from the Python
    class. The hash written is `live_hash` when known, so readers match the wire type.
    """
    store = _typestore()
    if msgtype in store.fielddefs:
        stored = store.hash_rihs01(msgtype)
        if not live_hash or stored == live_hash:
            return store.generate_msgdef(msgtype, ros_version=2)[0], stored
    from rosbags.typesys import Stores, get_typestore
    # Another definition than the store's under the same name: a fresh store for it.
    local = store if msgtype not in store.fielddefs else get_typestore(Stores.EMPTY)
    register_from_class(local, msgtype)
    return local.generate_msgdef(msgtype, ros_version=2)[0], live_hash or \
        local.hash_rihs01(msgtype)


def _qos_time(duration) -> Tuple[int, int]:
    ns = int(getattr(duration, 'nanoseconds', 0))
    if ns >= 2**63 - 1 or ns < 0:
        return _INFINITE
    return ns // 1_000_000_000, ns % 1_000_000_000


def rosbags_qos(profile):
    """An rclpy QoSProfile (as the graph reports a publisher's) -> a rosbags ``Qos``.

    The rmw enum values and rosbags' are the same numbers."""
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)
    return Qos(QosHistory(int(profile.history)), int(profile.depth),
               QosReliability(int(profile.reliability)), QosDurability(int(profile.durability)),
               QosTime(*_qos_time(profile.deadline)), QosTime(*_qos_time(profile.lifespan)),
               QosLiveliness(int(profile.liveliness)),
               QosTime(*_qos_time(profile.liveliness_lease_duration)),
               bool(profile.avoid_ros_namespace_conventions))


def check_output_dir(out_dir) -> Path:
    """The bag directory to create; raises ConfigError when it exists and is not empty
    (a recording is never appended to or overwritten)."""
    path = Path(out_dir)
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f'--out {path}: exists and is not a directory; choose a new '
                              f'directory for the bag')
        if any(path.iterdir()):
            raise ConfigError(f'--out {path}: the directory exists and is not empty; a '
                              f'recording never overwrites, choose a new directory')
    return path


@dataclasses.dataclass
class RecordReport:
    """What a recording wrote.

    Attributes:
        path: the bag directory.
        storage: ``mcap`` or ``sqlite3``.
        counts: topic (fully qualified) -> messages written.
        types: topic -> message type, for every subscribed topic.
        missing: requested topics on which no publisher was ever seen (nothing recorded).
        duration_s: wall time from `BagRecorder.start` to `BagRecorder.close`, seconds.
        errors: writes that failed (the first ten), e.g. a full disk.

    """

    path: Path
    storage: str
    counts: Dict[str, int] = dataclasses.field(default_factory=dict)
    types: Dict[str, str] = dataclasses.field(default_factory=dict)
    missing: List[str] = dataclasses.field(default_factory=list)
    duration_s: float = 0.0
    errors: List[str] = dataclasses.field(default_factory=list)

    @property
    def total(self) -> int:
        """Messages written on all topics."""
        return sum(self.counts.values())

    def format(self) -> str:
        """The human-readable summary ``hybrid-vla record`` prints."""
        lines = [f'recorded {self.total} messages in {self.duration_s:.2f} s to {self.path} '
                 f'({self.storage})']
        for topic, count in sorted(self.counts.items()):
            lines.append(f'  {topic:<40} {count:>8}  {self.types.get(topic, "")}')
        for topic in self.missing:
            lines.append(f'  never seen: {topic} (no publisher appeared; nothing recorded)')
        for error in self.errors:
            lines.append(f'  write failed: {error}')
        return '\n'.join(lines)


class BagRecorder:
    """Records topics of a live ROS graph into a new rosbag2.

    The node must be spun (by an executor in another thread, or by the caller between
    calls) for messages to arrive; callbacks may run on several executor threads at once
    (a lock serializes writes). Stop that executor before `close`.

    Args:
        node: the rclpy node that owns the subscriptions.
        topics: topic names (relative names resolve in the node's namespace).
        out_dir: the bag directory to create; it must not exist or be empty.
        storage: ``mcap`` (default) or ``sqlite3``.
        bag_version: rosbag2 metadata version, 8 (default: every supported distribution
            reads it) or 9 (Jazzy and later).
        max_messages: stop recording after this many messages in all (None = no limit);
            `done` is set then.

    Raises:
        ConfigError: an existing non-empty `out_dir`, an unknown storage, no topics.

    """

    def __init__(self, node, topics: Sequence[str], out_dir, storage: str = 'mcap',
                 max_messages: Optional[int] = None,
                 bag_version: int = DEFAULT_BAG_VERSION) -> None:
        self.bag_version = check_bag_version(bag_version)
        if storage not in STORAGES:
            raise ConfigError(f'storage {storage!r}: choose one of {", ".join(STORAGES)}')
        if not topics:
            raise ConfigError('no topics to record; name them with --topics')
        if max_messages is not None and max_messages < 1:
            raise ConfigError(f'max messages must be at least 1, got {max_messages}')
        self.node = node
        self.path = check_output_dir(out_dir)
        self.storage = storage
        self.max_messages = max_messages
        self.done = threading.Event()
        self._topics: List[str] = []
        for name in topics:
            try:
                resolved = node.resolve_topic_name(name)
            except Exception as exc:  # rclpy raises several types for an invalid name
                raise ConfigError(f'{name!r} is not a valid topic name: {exc}') from None
            if resolved not in self._topics:
                self._topics.append(resolved)
        self._lock = threading.Lock()
        self._writer = None
        # Every call on the rosbags Writer runs on this one thread, in submission order:
        # sqlite3 connections may only be used by the thread that made them, and callbacks
        # may come from any executor thread. It also keeps disk writes off the executor.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix='bag_writer')
        self._errors: List[str] = []
        self._connections: Dict[str, object] = {}
        self._subscriptions: Dict[str, object] = {}
        self._callbacks: Dict[str, object] = {}
        self._counts: Dict[str, int] = {}
        self._types: Dict[str, str] = {}
        self._total = 0
        self._started = None
        self._closed = False
        self._use_receive_stamp = True

    @property
    def topics(self) -> List[str]:
        """The fully qualified topics to record."""
        return list(self._topics)

    @property
    def pending(self) -> List[str]:
        """Requested topics not subscribed yet (no publisher seen so far)."""
        return [t for t in self._topics if t not in self._subscriptions]

    def matched(self) -> bool:
        """Whether every topic is subscribed and its subscription has matched a publisher
        (discovery done in both directions: nothing published from now on is missed)."""
        return not self.pending and all(sub.get_publisher_count() > 0
                                        for sub in self._subscriptions.values())

    def counts(self) -> Dict[str, int]:
        """Topic -> messages written so far."""
        with self._lock:
            return dict(self._counts)

    def start(self, timeout_s: float = 10.0) -> List[str]:
        """Create the bag and subscribe every topic whose publisher is visible, waiting up to
        `timeout_s` seconds for the rest (each is subscribed as soon as it appears, so
        nothing sent meanwhile is missed). Returns the topics still unseen; `poll` picks
        them up later."""
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.rosbag2.errors import WriterError
        if self._writer is not None:
            raise RuntimeError('BagRecorder.start was called twice')
        # rosbags creates the directory itself and refuses an existing one, even empty.
        if self.path.is_dir():
            self.path.rmdir()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        plugin = StoragePlugin.MCAP if self.storage == 'mcap' else StoragePlugin.SQLITE3

        def create():
            writer = Writer(self.path, version=self.bag_version, storage_plugin=plugin)
            writer.open()
            return writer

        try:
            writer = self._io.submit(create).result()
        except (WriterError, OSError) as exc:
            raise ConfigError(f'cannot create the bag {self.path}: {exc}') from exc
        # With simulated time the middleware's reception stamp is on another clock.
        self._use_receive_stamp = not self.node.get_parameter('use_sim_time').value
        self._writer = writer
        self._started = time.monotonic()
        deadline = time.monotonic() + timeout_s
        while True:
            missing = self.poll()
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.1)

    def poll(self) -> List[str]:
        """Subscribe every pending topic that now has a publisher; returns those still
        unseen. Call it now and then (``hybrid-vla record`` does, ten times a second)."""
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        for topic in self.pending:
            infos = self.node.get_publishers_info_by_topic(topic)
            if not infos or self._closed:
                continue
            types = sorted({i.topic_type for i in infos})
            if len(types) > 1:
                self.node.get_logger().warning(f'{topic}: publishers of several types '
                                               f'{", ".join(types)}; recording {types[0]}')
            msgtype = types[0]
            try:
                cls = message_class(msgtype)
            except ImportError as exc:
                self.node.get_logger().error(f'{topic}: cannot record {msgtype}: {exc}')
                continue
            of_type = [i for i in infos if i.topic_type == msgtype]
            live_hash = str(of_type[0].topic_type_hash or '')
            if not live_hash.startswith('RIHS01_'):
                live_hash = ''
            msgdef, digest = message_definition(msgtype, live_hash)
            profiles = [i.qos_profile for i in of_type]
            reliable = all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
            latched = all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=SUBSCRIPTION_DEPTH,
                             reliability=(ReliabilityPolicy.RELIABLE if reliable
                                          else ReliabilityPolicy.BEST_EFFORT),
                             durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                                         else DurabilityPolicy.VOLATILE))
            try:
                offered = [rosbags_qos(p) for p in profiles]
            except (ValueError, TypeError):  # an enum value rosbags does not know
                offered = []
            with self._lock:
                if self._closed:
                    return self.pending
                self._connections[topic] = self._io.submit(
                    self._writer.add_connection, topic, msgtype, msgdef=msgdef,
                    rihs01=digest, offered_qos_profiles=offered).result()
                self._counts[topic] = 0
                self._types[topic] = msgtype
            self._callbacks[topic] = self._callback(topic)
            self._subscriptions[topic] = self.node.create_subscription(
                cls, topic, self._callbacks[topic], qos, raw=True)
            self.node.get_logger().info(
                f'recording {topic} ({msgtype}, {"reliable" if reliable else "best effort"}'
                f'{", transient local" if latched else ""})')
        return self.pending

    def _callback(self, topic: str):
        def on_message(data: bytes, info) -> None:
            stamp = info.get('received_timestamp', 0) if self._use_receive_stamp else 0
            if not stamp:
                stamp = self.node.get_clock().now().nanoseconds
            with self._lock:
                if self._closed or self.done.is_set():
                    return
                self._io.submit(self._write, self._connections[topic], int(stamp), data)
                self._counts[topic] += 1
                self._total += 1
                if self.max_messages is not None and self._total >= self.max_messages:
                    self.done.set()
        return on_message

    def close(self) -> RecordReport:
        """Stop recording, finish the bag (metadata.yaml) and return the report. Safe to
        call twice.

        Messages already delivered to a subscription but not yet taken by an executor are
        taken and written here, so stop the executor spinning the node first (then no
        callback is left half done) and nothing the middleware received is lost.
        """
        for topic, subscription in self._subscriptions.items():
            self._drain(subscription, self._callbacks[topic])
            self.node.destroy_subscription(subscription)
        with self._lock:
            # A callback still running holds the lock: it finishes its write first.
            first_close = not self._closed
            self._closed = True
        if first_close:
            if self._writer is not None:
                # Runs after every write submitted before it (one worker, FIFO).
                self._io.submit(self._writer.close).result()
            self._io.shutdown(wait=True)
        return RecordReport(self.path, self.storage, dict(self._counts), dict(self._types),
                            self.pending,
                            time.monotonic() - self._started if self._started else 0.0,
                            list(self._errors))

    def _write(self, connection, ns: int, data: bytes) -> None:
        """One message, on the writer thread; a failure (disk full) is kept for the report."""
        try:
            self._writer.write(connection, ns, data)
        except Exception as exc:  # the recording goes on; the report says what failed
            if len(self._errors) < 10:
                self._errors.append(f'{connection.topic}: {type(exc).__name__}: {exc}')

    def _drain(self, subscription, callback) -> None:
        """Write what is queued in `subscription` (at most its depth: a publisher that keeps
        sending cannot hold the close up). Uses the take call rclpy's executor uses; if that
        is unavailable only the drain is lost."""
        for _ in range(SUBSCRIPTION_DEPTH):
            if self._closed:
                return
            try:
                with subscription.handle:
                    taken = subscription.handle.take_message(subscription.msg_type, True)
            except Exception:  # destroyed, or another rclpy: nothing more to take
                return
            if taken is None:
                return
            callback(*taken)
