"""Replay a rosbag2 on live topics with its original timing (``hybrid-vla play-bag``).

The messages are published as the serialized CDR bytes stored in the bag (rclpy's
``Publisher.publish`` accepts ``bytes``), so nothing is deserialized and what arrives is
what was recorded, byte for byte — except that Fast DDS pads a raw payload whose length is
not a multiple of 4 with up to 3 zero bytes (CDR alignment; every decoder ignores them).
The message class of each topic is still needed to create its publisher; it is imported
from the type name in the bag (``sensor_msgs/msg/Image`` -> ``sensor_msgs.msg.Image``),
and a topic whose type is not importable here is skipped and reported, never a crash.

Bags are read with `rosbags` (`hybrid_vla_ros.data.bag.open_bag`): MCAP or sqlite3,
uncompressed or zstd-compressed. A bag that does not open because its MCAP file is cut
short (a recorder that was killed, a copy that did not finish) is *salvaged* with
`hybrid_vla_ros.data.salvage` (into a temporary copy): the messages before the damage are
played, and the damage is reported in `PlaybackReport.read_errors`.

Timing: message i is published at ``start + (t_i - t_0) / rate`` (t = the bag's log time,
i.e. receive time, in ns; start = wall time when `BagPlayer.play` begins). A player that
falls behind publishes at once and catches up; it never drops a message.

QoS: every publisher is reliable, volatile, keep-last `PUBLISHER_DEPTH` — a reliable
publisher matches both reliable and best-effort subscriptions. A topic the bag says was
offered transient-local by every recorded publisher (``/tf_static``, latched instructions)
is published transient-local, so late subscribers still get it.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from ...schema import ConfigError

# Keep-last depth of every playback publisher: a few seconds of a 30 Hz camera, so a
# subscriber that is briefly slow does not lose reliable samples (DDS keeps at most this
# many unacknowledged samples per topic).
PUBLISHER_DEPTH = 100
# After every publisher has matched a subscriber, wait this long before the first message
# (s): DDS matches the two sides of a connection separately, and a reliable volatile
# subscription that has not yet matched the publisher ignores samples sent before that.
SETTLE_S = 0.5
# At the end, wait at most this long (s) for subscribers to acknowledge the last samples,
# so a process that exits right after `play` does not take them with it.
FLUSH_TIMEOUT_S = 3.0


def message_class(msgtype: str):
    """The Python message class of a ROS 2 type name (``pkg/msg/Name``, also ``pkg/Name``).

    Raises ImportError when the package or the message is not importable in this
    environment (install its ROS package).
    """
    parts = msgtype.split('/')
    if len(parts) == 2:
        parts = [parts[0], 'msg', parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ImportError(f'{msgtype!r} is not a ROS 2 message type name (pkg/msg/Name)')
    pkg, kind, name = parts
    try:
        module = importlib.import_module(f'{pkg}.{kind}')
    except ImportError as exc:
        raise ImportError(f'package {pkg}.{kind} is not importable ({exc})') from None
    cls = getattr(module, name, None)
    if cls is None:
        raise ImportError(f'{pkg}.{kind} has no message {name}')
    return cls


def parse_remaps(items: Optional[Sequence[str]]) -> Dict[str, str]:
    """``['a:=b', ...]`` -> ``{'a': 'b'}``; raises ConfigError on a malformed item (the
    launch-argument syntax, `nodeset.parse_remaps`)."""
    from .nodeset import parse_remaps as parse_pairs
    return dict(pair for item in items or () for pair in parse_pairs(item, '--remap'))


def _bare(name: str) -> str:
    """A topic name without its leading slash, for matching ``a`` with ``/a``."""
    return name.lstrip('/')


@dataclasses.dataclass
class TopicInfo:
    """One topic of a bag.

    Attributes:
        name: the topic name as stored in the bag (relative names stay relative).
        msgtype: ``pkg/msg/Name``, or '' when the bag holds several types on the topic.
        serialization: serialization format of the stored messages (``cdr``).
        latched: every recorded publisher offered transient-local durability.
        count: messages the bag's index lists.

    """

    name: str
    msgtype: str
    serialization: str = 'cdr'
    latched: bool = False
    count: int = 0


@dataclasses.dataclass
class PlaybackReport:
    """What one `BagPlayer.play` did.

    Attributes:
        bag: the bag directory.
        published: output topic name -> messages published (every pass of a loop together).
        skipped: bag topic -> why it was not played (type not importable, not CDR, ...).
        read_errors: what could not be read (a truncated or corrupt storage file); the
            messages before the damage were published.
        duration_s: wall time of the playback, seconds.
        bag_duration_s: time span of the played messages in the bag (one pass), seconds.
        passes: complete or partial passes over the bag (more than 1 with ``loop``).
        interrupted: stopped by the stop event before the end of the bag.
        unacknowledged: topics whose last samples a reliable subscriber had not acknowledged
            within `FLUSH_TIMEOUT_S` at the end.

    """

    bag: str
    published: Dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: Dict[str, str] = dataclasses.field(default_factory=dict)
    read_errors: List[str] = dataclasses.field(default_factory=list)
    duration_s: float = 0.0
    bag_duration_s: float = 0.0
    passes: int = 0
    interrupted: bool = False
    unacknowledged: List[str] = dataclasses.field(default_factory=list)

    @property
    def total(self) -> int:
        """Messages published on all topics."""
        return sum(self.published.values())

    def format(self) -> str:
        """The human-readable summary ``hybrid-vla play-bag`` prints."""
        lines = [f'played {self.bag}: {self.total} messages in {self.duration_s:.2f} s '
                 f'(bag span {self.bag_duration_s:.2f} s, {self.passes} pass'
                 f'{"es" if self.passes != 1 else ""})']
        for topic, count in sorted(self.published.items()):
            lines.append(f'  {topic:<40} {count:>8}')
        for topic, reason in sorted(self.skipped.items()):
            lines.append(f'  skipped {topic}: {reason}')
        for error in self.read_errors:
            lines.append(f'  not readable: {error}')
        if self.unacknowledged:
            lines.append('  not acknowledged by every subscriber at the end: '
                         + ', '.join(sorted(self.unacknowledged)))
        if self.interrupted:
            lines.append('  interrupted before the end of the bag')
        return '\n'.join(lines)


# --------------------------------------------------------------------------- reading
class _BagSource:
    """The topics and messages of one bag, read with rosbags. A bag that does not open but
    has one MCAP file is salvaged first (`hybrid_vla_ros.data.salvage`, as ``eval-bag``
    does): its readable messages are copied into a temporary well-formed bag, which is read
    instead and deleted by `close`."""

    def __init__(self, path: Path) -> None:
        from ...data.errors import BagContentError
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f'{self.path}: no such bag directory')
        self.read_path: Optional[Path] = self.path
        self.open_error: Optional[str] = None
        self.salvage_note: Optional[str] = None
        self.topics: Dict[str, TopicInfo] = {}
        self._tmp: Optional[str] = None
        try:
            self._read_topics()
            return
        except BagContentError as exc:
            self.open_error = str(exc)
        self.read_path = None
        self._salvage()

    def _read_topics(self) -> None:
        from ...data.bag import open_bag
        with open_bag(self.read_path) as reader:
            self.topics = {name: _topic_info(name, info.connections, info.msgcount)
                           for name, info in reader.topics.items()}

    def _salvage(self) -> None:
        import tempfile

        from ...data.errors import BagContentError
        from ...data.salvage import salvage_mcap, storage_file
        if storage_file(self.path) is None:  # sqlite3, several files: nothing to walk
            return
        self._tmp = tempfile.mkdtemp(prefix='hybrid_vla_play_')
        copy = Path(self._tmp) / 'salvaged'
        try:
            self.salvage_note = salvage_mcap(self.path, copy).describe()
            self.read_path = copy
            self._read_topics()
        except (ValueError, BagContentError) as exc:
            self.salvage_note = f'salvage found nothing readable: {exc}'
            self.read_path, self.topics = None, {}

    def messages(self, topics: Sequence[str], errors: List[str]) -> Iterator[Tuple[str, int,
                                                                                 bytes]]:
        """Yield (bag topic, log time ns, serialized bytes) of `topics` in time order. A
        read failure ends the iteration and appends its description to `errors`."""
        if self.read_path is None:
            return
        from ...data.bag import open_bag
        from ...data.errors import BagContentError
        try:
            with open_bag(self.read_path) as reader:
                connections = [c for name in topics for c in reader.topics[name].connections]
                try:
                    for connection, ns, data in reader.messages(connections=connections):
                        yield connection.topic, int(ns), bytes(data)
                except Exception as exc:  # a damaged chunk / page mid-bag: keep what we had
                    errors.append(f'reading stopped: {type(exc).__name__}: {exc}')
        except BagContentError as exc:  # the bag changed since it was first opened
            errors.append(str(exc))

    def close(self) -> None:
        """Delete the salvaged copy, if any."""
        if self._tmp is not None:
            import shutil
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _topic_info(name: str, connections, count: int) -> TopicInfo:
    """TopicInfo of a topic from its rosbags connections."""
    from rosbags.interfaces import QosDurability
    types = {c.msgtype for c in connections}
    formats = {getattr(c.ext, 'serialization_format', 'cdr') for c in connections}
    profiles = [q for c in connections for q in getattr(c.ext, 'offered_qos_profiles', [])]
    latched = bool(profiles) and all(q.durability == QosDurability.TRANSIENT_LOCAL
                                     for q in profiles)
    return TopicInfo(name, types.pop() if len(types) == 1 else '',
                     formats.pop() if len(formats) == 1 else '', latched, int(count))


# --------------------------------------------------------------------------- playing
class BagPlayer:
    """Publishes a bag's messages on live topics with the bag's timing.

    Publishers are created here, so subscribers can discover them before `play` starts
    (see `publishers_ready` / `wait_for_subscribers`). `play` publishes from the calling
    thread with sleeps; the node may be spun by another thread meanwhile (publishing needs
    no spinning).

    Args:
        node: the rclpy node that owns the publishers.
        bag_path: a rosbag2 directory (MCAP or sqlite3, compressed or not).
        topics: play only these bag topics (``a`` and ``/a`` are the same); None = all.
            A name the bag lacks is reported in `PlaybackReport.skipped`.
        remap: bag topic -> topic to publish on (``{'joint_states': '/arm/joint_states'}``);
            keys match with or without the leading slash. Unmapped topics keep their bag
            name (a relative name is resolved in the node's namespace).
        rate: playback speed factor: 2.0 plays twice as fast (time gaps / rate).
        loop: start over at the end of the bag until stopped.
        clock: also publish ``/clock`` (rosgraph_msgs/Clock) with each message's log time
            just before the message, so nodes with ``use_sim_time`` run on the bag's clock
            (what ``ros2 bag play --clock`` is for: recorded stamps are not stale to them).
        latched: bag topics to publish transient-local even though the bag does not say
            so (a bag written without QoS information), for subscribers that require it,
            such as the instruction node's ``instruction``.
        on_publish: called as ``on_publish(out_topic, log_time_ns, data)`` right after
            each message is published (replay latency measurement).

    Attributes:
        skipped: bag topic -> why it is not played (also logged as a warning).
        source: the opened bag; ``source.salvage_note`` says what a salvage recovered.

    Raises:
        FileNotFoundError: the bag directory does not exist.
        ConfigError: rate not positive, or a remap target is not a valid topic name.

    """

    def __init__(self, node, bag_path, topics: Optional[Sequence[str]] = None,
                 remap: Optional[Mapping[str, str]] = None, rate: float = 1.0,
                 loop: bool = False, clock: bool = False, latched: Sequence[str] = (),
                 on_publish: Optional[Callable[[str, int, bytes], None]] = None) -> None:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        if not rate > 0:
            raise ConfigError(f'rate must be positive, got {rate}')
        self.node = node
        self.rate = float(rate)
        self.loop = bool(loop)
        self.on_publish = on_publish
        self._clock = self._clock_msg = None
        if clock:
            from rosgraph_msgs.msg import Clock
            self._clock_msg = Clock()
            self._clock = node.create_publisher(Clock, '/clock', QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=PUBLISHER_DEPTH,
                reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE))
        self.source = _BagSource(Path(bag_path))
        self.skipped: Dict[str, str] = {}
        bag_topics = self.source.topics
        by_bare = {_bare(name): name for name in bag_topics}
        if topics:
            chosen = []
            for wanted in topics:
                name = by_bare.get(_bare(wanted))
                if name is None:
                    self.skipped[wanted] = 'not in the bag'
                elif name not in chosen:
                    chosen.append(name)
        else:
            chosen = sorted(bag_topics)
        remap_bare = {_bare(k): v for k, v in (remap or {}).items()}
        latched_bare = {_bare(t) for t in latched}
        for key in remap_bare:
            if key not in by_bare:
                node.get_logger().warning(f'--remap {key}: the bag has no such topic')
        # bag topic -> (output topic, publisher)
        self._publishers: Dict[str, Tuple[str, object]] = {}
        for name in chosen:
            info = bag_topics[name]
            if not info.msgtype:
                self.skipped[name] = 'the bag holds several message types on this topic'
                continue
            if info.serialization != 'cdr':
                self.skipped[name] = (f'serialization {info.serialization!r} is not CDR; only '
                                      f'CDR bytes can be published as they are')
                continue
            try:
                cls = message_class(info.msgtype)
            except ImportError as exc:
                self.skipped[name] = f'message type {info.msgtype} is not importable here: {exc}'
                continue
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=PUBLISHER_DEPTH,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=(DurabilityPolicy.TRANSIENT_LOCAL
                                         if info.latched or _bare(name) in latched_bare
                                         else DurabilityPolicy.VOLATILE))
            out = remap_bare.get(_bare(name), name)
            try:
                publisher = node.create_publisher(cls, out, qos)
            except Exception as exc:  # rclpy raises several types for an invalid name
                self.close()
                raise ConfigError(f'cannot publish {name} as {out!r}: {exc}') from exc
            self._publishers[name] = (publisher.topic_name, publisher)
        for name, reason in sorted(self.skipped.items()):
            node.get_logger().warning(f'skipping {name}: {reason}')

    @property
    def topics(self) -> Dict[str, str]:
        """Bag topic -> fully qualified topic it is published on, for every played topic."""
        return {name: out for name, (out, _) in self._publishers.items()}

    @property
    def open_error(self) -> Optional[str]:
        """Why the bag did not open normally (it was salvaged, or nothing is playable)."""
        return self.source.open_error

    def publishers_ready(self, min_subscribers: int = 1) -> bool:
        """Whether every playback publisher has at least `min_subscribers` subscriptions
        (discovery has happened). True when there is nothing to publish."""
        return all(pub.get_subscription_count() >= min_subscribers
                   for _, pub in self._publishers.values())

    def missing_subscribers(self, min_subscribers: int = 1) -> List[str]:
        """The output topics with fewer than `min_subscribers` subscriptions."""
        return sorted(out for out, pub in self._publishers.values()
                      if pub.get_subscription_count() < min_subscribers)

    def wait_for_subscribers(self, timeout_s: Optional[float] = None,
                             stop_event: Optional[threading.Event] = None,
                             min_subscribers: int = 1, settle_s: float = SETTLE_S) -> bool:
        """Block until `publishers_ready` (then `settle_s` seconds more, see `SETTLE_S`),
        `timeout_s` seconds pass (None = no limit) or `stop_event` is set. Returns whether
        every publisher has its subscribers."""
        stop = stop_event or threading.Event()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.publishers_ready(min_subscribers):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if stop.wait(0.05):
                return False
        stop.wait(settle_s)
        return not stop.is_set()

    def prime(self) -> int:
        """Publish once, now, the messages that share the bag's first log time (with
        /clock when `clock`), and return how many. Repeating this until the graph answers
        proves that discovery is complete end to end before the timed playback starts — a
        subscriber that has not yet matched a new publisher drops its first samples."""
        errors: List[str] = []
        first, sent = None, 0
        for topic, ns, data in self.source.messages(list(self._publishers), errors):
            if first is None:
                first = ns
                if self._clock is not None:
                    self._clock_msg.clock.sec, self._clock_msg.clock.nanosec = divmod(ns, 10**9)
                    self._clock.publish(self._clock_msg)
            if ns != first:
                break
            self._publishers[topic][1].publish(data)
            sent += 1
        return sent

    def play(self, stop_event: Optional[threading.Event] = None) -> PlaybackReport:
        """Publish the bag (every pass, with ``loop``) and return the report. Blocks; stops
        early, between two messages, when `stop_event` is set."""
        stop = stop_event or threading.Event()
        report = PlaybackReport(str(self.source.path), skipped=dict(self.skipped))
        if self.source.open_error:
            # The damage is reported; what salvage recovered (if anything) is played.
            report.read_errors.append(self.source.open_error)
            if self.source.salvage_note:
                report.read_errors.append(self.source.salvage_note)
        report.published = {out: 0 for out, _ in self._publishers.values()}
        start = time.monotonic()
        pass_start = start  # wall time (monotonic s) at which this pass's first message goes
        while self._publishers and not stop.is_set():
            first = last = None
            errors: List[str] = []
            for topic, ns, data in self.source.messages(list(self._publishers), errors):
                if first is None:
                    first = ns
                last = max(ns, last if last is not None else ns)
                # Out-of-order log times (a salvaged file) give a negative delay: publish now.
                delay = pass_start + (ns - first) / 1e9 / self.rate - time.monotonic()
                if (delay > 0 and stop.wait(delay)) or stop.is_set():
                    report.interrupted = True
                    break
                out, publisher = self._publishers[topic]
                if self._clock is not None:
                    self._clock_msg.clock.sec, self._clock_msg.clock.nanosec = divmod(ns, 10**9)
                    self._clock.publish(self._clock_msg)
                publisher.publish(data)
                report.published[out] += 1
                if self.on_publish is not None:
                    self.on_publish(out, ns, data)
            if first is not None:
                report.passes += 1
                report.bag_duration_s = max(report.bag_duration_s, (last - first) / 1e9)
            for error in errors:
                if error not in report.read_errors:
                    report.read_errors.append(error)
            # A damaged or empty bag is not looped: the same error would repeat forever.
            if not self.loop or report.interrupted or errors or first is None:
                break
            # The next pass starts where this one's last message was due.
            pass_start += (last - first) / 1e9 / self.rate
        if not report.interrupted:
            report.unacknowledged = self._flush(FLUSH_TIMEOUT_S)
        report.duration_s = time.monotonic() - start
        return report

    def _flush(self, timeout_s: float) -> List[str]:
        """Wait (at most `timeout_s` in all) for reliable subscribers to acknowledge every
        sample; returns the topics still unacknowledged."""
        from rclpy.duration import Duration
        deadline = time.monotonic() + timeout_s
        pending = []
        for out, publisher in self._publishers.values():
            left = max(0.0, deadline - time.monotonic())
            try:
                if not publisher.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))):
                    pending.append(out)
            except Exception:  # an rmw without acknowledgement support: nothing to wait for
                pass
        return pending

    def close(self) -> None:
        """Destroy the publishers (the node stays) and any salvaged copy of the bag."""
        for _, publisher in self._publishers.values():
            self.node.destroy_publisher(publisher)
        self._publishers.clear()
        if self._clock is not None:
            self.node.destroy_publisher(self._clock)
            self._clock = None
        self.source.close()
