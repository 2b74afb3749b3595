"""instruction_node: ``instruction`` (std_msgs/String) -> ``language_features``.

Each instruction is checked (`instruction_check`: empty, too long, not understood ->
refused), tokenized and encoded by the checkpoint's ``language`` part once per distinct text
(an LRU cache), and published with the arrival time as its stamp on ``language_features``
with transient-local durability, so a policy node that starts later still gets the current
instruction. A refused instruction publishes an *empty* tensor (zero tokens): the policy
flushes its queue and holds until the next instruction.

A managed node (`base.ManagedNode`): configure opens the ``language`` part and its
tokenizer, activate starts publishing. An instruction that arrives while the node is not
active is kept (and reported) and handled on activation, so the latest one wins.

The ``instruction`` topic is subscribed twice: transient local (a late-started node gets a
latched instruction) and volatile (so ``ros2 topic pub`` with its default,
volatile QoS is heard too — a transient-local subscription cannot match a volatile
publisher). A message that arrives on both within ``duplicate_window`` is handled once.
"""

from __future__ import annotations

import collections
import time
from typing import Optional, Tuple

import numpy as np
from std_msgs.msg import String

from . import qos, tensor_codec
from .base import ManagedNode
from .diagnostics import ERROR, OK, WARN, LatencyWindow, RateMeter
from .instruction_check import InstructionChecker, preview
from .runtime import now_seconds, run_node


class InstructionNode(ManagedNode):
    """instruction -> language_features (see the module docstring).

    Keyword arguments go to `ManagedNode`: ``context`` and ``parameter_overrides`` let a
    test build the node in its own process.
    """

    NAME = 'instruction'

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cache: collections.OrderedDict[str, Tuple[np.ndarray, np.ndarray]] = (
            collections.OrderedDict())
        self.rate = RateMeter(window=60.0)
        self.latency = LatencyWindow(100)
        self.hits = 0
        self.current: Optional[str] = None
        self.current_time: Optional[float] = None
        self.level, self.message = WARN, 'waiting for an instruction'
        self._last: Tuple[str, float] = ('', -1e9)
        self.waiting: Optional[str] = None   # received while not active
        self.checker: Optional[InstructionChecker] = None
        self.pub = self.create_publisher(tensor_codec.MESSAGE, 'language_features', qos.LATCHED)
        self.create_subscription(String, 'instruction', self._on_instruction, qos.LATCHED)
        self.create_subscription(String, 'instruction', self._on_instruction,
                                 qos.LATCHED_COMPAT)

    # ----------------------------------------------------------------- lifecycle hooks
    def configure_model(self) -> None:
        """Read the checkpoint's tokenizer for the instruction checks."""
        from ..schema import ConfigError
        be, p = self.model.backend, self.params
        try:
            self.checker = InstructionChecker(be.tokenizer_path(), be.spec.max_tokens,
                                              p['max_chars'], p['max_unknown_fraction'])
        except Exception as exc:  # tokenizer.json missing or unreadable
            raise ConfigError(f'cannot read the checkpoint\'s tokenizer: {exc}') from None
        self.get_logger().info(
            f'encoding instructions from {self.resolve_topic_name("instruction")} with '
            f'{self.model.description} ({self.model.model_id})')

    def activated(self) -> Optional[str]:
        """Handle the instruction that arrived while inactive, if any."""
        if self.waiting is not None:
            text, self.waiting = self.waiting, None
            self._handle(text)
        return None

    def released(self) -> None:
        """Forget the tokenizer and the cached encodings."""
        self.checker = None
        self.cache.clear()

    # ----------------------------------------------------------------- instructions
    def _on_instruction(self, msg) -> None:
        now = time.monotonic()
        text, last = self._last
        if msg.data == text and now - last < self.params['duplicate_window']:
            return
        self._last = (msg.data, now)
        if not self.active:
            self.waiting = msg.data
            self.get_logger().warning(f'instruction {preview(msg.data)} received while '
                                      f'{self.lifecycle_state}: handled on activation')
            return
        self._handle(msg.data)

    def _handle(self, text: str) -> None:
        stamp = self.get_clock().now().to_msg()
        verdict = self.checker.check(text)
        t0 = time.perf_counter()
        if verdict.ok:
            try:
                tokens, mask = self._encode(verdict.text)
            except Exception as exc:  # runtime failure of the language part
                verdict.ok, verdict.level = False, ERROR
                verdict.message = f'encoding {preview(verdict.text)} failed: {exc}'
        if not verdict.ok:
            # Zero tokens: "no usable instruction", the policy holds.
            tokens = np.zeros((1, 0, 1), np.float32)
            mask = np.zeros((1, 0), np.float32)
        # rclpy ties one severity to one call site: one call per level.
        if verdict.level >= ERROR:
            self.get_logger().error(verdict.message)
        elif verdict.level == WARN:
            self.get_logger().warning(verdict.message)
        else:
            self.get_logger().info(verdict.message)
        self.pub.publish(tensor_codec.encode({'tokens': tokens, 'mask': mask}, stamp,
                                             self.model.fingerprint))
        self.latency.add(time.perf_counter() - t0)
        self.rate.tick()
        self.current = verdict.text if verdict.ok else None
        self.current_time = now_seconds(self)
        self.level, self.message = verdict.level, verdict.message
        self.diag.update(self.level, self.message)

    def _encode(self, text: str) -> Tuple[np.ndarray, np.ndarray]:
        if text in self.cache:
            self.cache.move_to_end(text)
            self.hits += 1
            return self.cache[text]
        tokens, mask = self.model.backend.encode_instruction(text)
        self.cache[text] = (tokens, mask)
        while len(self.cache) > self.params['cache_size']:
            self.cache.popitem(last=False)
        return tokens, mask

    # ----------------------------------------------------------------- diagnostics
    def report(self):
        """Counts, latency, the current instruction and its age."""
        values = {'instructions': self.rate.count, 'cache_hits': self.hits,
                  'cached': len(self.cache),
                  'current': self.current if self.current is not None else '(none)'}
        for k, v in self.latency.percentiles_ms((50, 99)).items():
            values[f'latency_{k}_ms'] = v
        if self.current_time is not None:
            values['instruction_age_s'] = now_seconds(self) - self.current_time
        if self.lifecycle_state == 'inactive':
            held = f' (holding {preview(self.waiting)})' if self.waiting is not None else ''
            return OK, f'inactive: not encoding{held}', values
        return self.level, self.message, values


def main(args=None) -> int:
    """Console script ``instruction_node``."""
    return run_node(InstructionNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
