"""What the nodes trust: how old an input really is, and who published it.

**Age from two clocks.** A message carries its sender's stamp; the node also knows when it
received it. `judge_input` judges an input by both: a stamp ahead of the node's clock by
more than ``clock_skew_tolerance`` is refused as *clock skew* (a driver whose clock runs
ahead would otherwise look fresh for as long as it is ahead, even after it died), and an
input counts as stale when either its stamp or its receive time is older than
``max_age``. Both are read on the node's clock, so the rule is the same under
``use_sim_time`` (stamps and ``now`` from ``/clock``).

**Publisher identity.** `PublisherCheck` accepts a message only from publishers whose node
name (in this node's namespace) is on an allowed list, looked up by the publisher's GID in
the ROS graph (rclpy's ``MessageInfo``). It stops a participant that publishes well-formed
features under another node name; it cannot stop one that names its own node
``perception`` — only DDS security (SROS2 enclaves with permissions, docs/ros.md) can.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

# How long a message from a publisher the ROS graph does not name yet may wait to be judged
# again (seconds, monotonic): discovery of the publisher's node can lag its first messages,
# by seconds on a loaded machine, and a one-shot message (an instruction's features) must
# not be lost to that race. After this it is refused for good.
DISCOVERY_GRACE = 5.0


@dataclasses.dataclass(frozen=True)
class InputVerdict:
    """The judgement of one input at one moment.

    Attributes:
        ok: usable now.
        reason: why not (None when ok).
        skewed: the reason is clock skew (its stamp is ahead of this node's clock).

    """

    ok: bool
    reason: Optional[str] = None
    skewed: bool = False


def stamp_to_seconds(stamp) -> float:
    """builtin_interfaces/Time -> seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def judge_input(name: str, stamp: Optional[float], received: float, now: float,
                max_age: float, skew_tolerance: float) -> InputVerdict:
    """Judge input `name` (seconds on the node's clock): `stamp` its header stamp (None or 0
    when it has none: the receive time alone counts), `received` when it arrived, `now` the
    node's clock. Clock skew: ``stamp - now > skew_tolerance``. Stale: older than
    `max_age` by stamp or by receive time."""
    if stamp:
        ahead = stamp - now
        if ahead > skew_tolerance:
            return InputVerdict(False, f'clock skew: {name} is stamped {ahead:.3f} s ahead of '
                                       f'this node\'s clock (clock_skew_tolerance '
                                       f'{skew_tolerance:g} s); its sender\'s clock is wrong: '
                                       'synchronize the clocks (chrony / PTP)', True)
        if now - stamp > max_age:
            return InputVerdict(False, f'{name} stale: stamped {now - stamp:.3f} s ago, older '
                                       f'than max_age {max_age:g} s')
    if now - received > max_age:
        return InputVerdict(False, f'{name} stale: nothing received for {now - received:.3f} '
                                   f's, longer than max_age {max_age:g} s')
    return InputVerdict(True)


def with_message_info(callback):
    """A subscription callback that receives rclpy's `MessageInfo` as its second argument
    where this rclpy can give it (Iron and later: a two-argument callback), else
    ``callback(msg, None)`` (Humble calls callbacks with the message only)."""
    from rclpy.subscription import Subscription
    if hasattr(Subscription, 'CallbackType'):
        return lambda msg, info: callback(msg, info)
    return lambda msg: callback(msg, None)


class PublisherCheck:
    """Accepts messages on `topic` only from the nodes named in `allowed` (see the module
    docstring).

    Args:
        node: the subscribing rclpy node (its namespace is the allowed publishers').
        topic: the topic name as subscribed (relative names are resolved by the node).
        allowed: node names, without namespace (``perception``); empty = any publisher.

    """

    def __init__(self, node, topic: str, allowed: Sequence[str]):
        self._node = node
        self.topic = topic
        self.allowed = tuple(allowed)
        self._known: Dict[bytes, Tuple[str, str]] = {}
        self.undiscovered = False

    def check(self, info) -> Optional[str]:
        """None when the message described by rclpy `MessageInfo` `info` comes from an
        allowed node, else the reason it does not (naming the publisher). After a refusal,
        `undiscovered` says whether it was only because the ROS graph does not name the
        publisher yet (the same `info` may pass when checked again)."""
        self.undiscovered = False
        if not self.allowed:
            return None
        gid = (info or {}).get('publisher_gid') or {}
        data = bytes(gid.get('data') or b'')
        if not data:
            return f'{self.topic}: the publisher cannot be identified (no GID); refused'
        who = self._known.get(data)
        if who is None:
            self._refresh()
            who = self._known.get(data)
        if who is None:
            # Discovery of the publisher's node can lag its first messages: refuse until
            # the graph names it (asked again on the next message, or by the caller).
            self.undiscovered = True
            return (f'{self.topic}: a publisher the ROS graph does not name (yet) sent it; '
                    f'refused (allowed: {", ".join(self.allowed)})')
        name, namespace = who
        if name not in self.allowed or namespace != self._node.get_namespace():
            full = f'{namespace.rstrip("/")}/{name}'
            return (f'{self.topic}: from node {full}, which is not an allowed publisher '
                    f'({", ".join(self.allowed)} in {self._node.get_namespace()}); refused')
        return None

    def _refresh(self) -> None:
        resolved = self._node.resolve_topic_name(self.topic)
        for info in self._node.get_publishers_info_by_topic(resolved):
            if info.node_name and not info.node_name.startswith('_NODE_NAME_UNKNOWN_'):
                self._known[bytes(info.endpoint_gid)] = (info.node_name, info.node_namespace)
