"""instruction_node: ``instruction`` (std_msgs/String) -> ``language_features``.

Each instruction is checked (`instruction_check`: empty, too long, not understood ->
refused), tokenized and encoded by the checkpoint's ``language`` part once per distinct text
(an LRU cache), and published with the arrival time as its stamp on ``language_features``
with transient-local durability, so a policy node that starts later still gets the current
instruction. A refused instruction publishes an *empty* tensor (zero tokens): the policy
flushes its queue and holds until the next instruction.

The ``instruction`` topic is subscribed twice: transient local (DESIGN.md; a late-started
node gets a latched instruction) and volatile (so ``ros2 topic pub`` with its default,
volatile QoS is heard too — a transient-local subscription cannot match a volatile
publisher). A message that arrives on both within ``duplicate_window`` is handled once.
"""

from __future__ import annotations

import collections
import time
from typing import Optional, Tuple

import numpy as np

from .diagnostics import ERROR, WARN, LatencyWindow, RateMeter
from .params import ParamSpec
from .perception_node import COMMON_PARAMS

PARAMS = COMMON_PARAMS + (
    ParamSpec('max_chars', 500, 'longest accepted instruction, characters; longer ones are '
                                'refused (the robot holds)', range=(1, 100000)),
    ParamSpec('max_unknown_fraction', 0.5, 'largest share of word pieces unknown to the '
                                           'tokenizer before an instruction is refused',
              range=(0.0, 1.0)),
    ParamSpec('cache_size', 64, 'distinct instructions whose encodings are kept',
              range=(1, 100000)),
    ParamSpec('duplicate_window', 0.5, 'seconds within which the same text arriving again '
                                       '(on the second subscription) is ignored',
              range=(0.0, 60.0)),
)


def make_node():
    """Build the instruction node (imports rclpy)."""
    from rclpy.node import Node
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import String

    from . import qos, tensor_codec
    from .diagnostics import DiagnosticsReporter
    from .instruction_check import InstructionChecker, preview
    from .model_ref import open_model
    from .params import declare
    from .runtime import now_seconds

    class _InstructionNode(Node):
        """instruction -> language_features (see the module docstring)."""

        def __init__(self):
            super().__init__('instruction')
            self.params, problems = declare(self, PARAMS)
            p = self.params
            self.diag = DiagnosticsReporter(self, period=p['diagnostics_period'],
                                            refresh=self._report)
            self.model = open_model(p['checkpoint'], p['backend'], parts=('language',),
                                    threads=p['threads'], providers=p['providers'])
            self.cache: collections.OrderedDict[str, Tuple[np.ndarray, np.ndarray]] = (
                collections.OrderedDict())
            self.rate = RateMeter(window=60.0)
            self.latency = LatencyWindow(100)
            self.hits = 0
            self.current: Optional[str] = None
            self.current_time: Optional[float] = None
            self.level, self.message = WARN, 'waiting for an instruction'
            self.fault: Optional[str] = None
            self._last: Tuple[str, float] = ('', -1e9)
            self.checker = None
            for problem in problems:
                self.get_logger().error(problem)
            if self.model.error:
                self.fault = self.model.error
            else:
                try:
                    be = self.model.backend
                    self.checker = InstructionChecker(be.tokenizer_path(), be.spec.max_tokens,
                                                      p['max_chars'],
                                                      p['max_unknown_fraction'])
                except Exception as exc:  # tokenizer.json missing or unreadable
                    self.fault = f'cannot read the checkpoint\'s tokenizer: {exc}'
            if self.fault:
                self.get_logger().error(self.fault)
            else:
                self.diag.hardware_id = self.model.model_id
                self.get_logger().info(
                    f'encoding instructions from {self.resolve_topic_name("instruction")} '
                    f'with {self.model.description} ({self.model.model_id})')
            self.pub = self.create_publisher(PointCloud2, 'language_features', qos.LATCHED)
            self.create_subscription(String, 'instruction', self._on_instruction, qos.LATCHED)
            self.create_subscription(String, 'instruction', self._on_instruction,
                                     qos.LATCHED_COMPAT)
            self._preview = preview
            self._report()

        def _on_instruction(self, msg) -> None:
            now = time.monotonic()
            text, last = self._last
            if msg.data == text and now - last < self.params['duplicate_window']:
                return
            self._last = (msg.data, now)
            stamp = self.get_clock().now().to_msg()
            if self.fault:
                self.get_logger().error(f'instruction {self._preview(msg.data)} ignored: '
                                        f'{self.fault}')
                return
            verdict = self.checker.check(msg.data)
            t0 = time.perf_counter()
            if verdict.ok:
                try:
                    tokens, mask = self._encode(verdict.text)
                except Exception as exc:  # runtime failure of the language part
                    verdict.ok, verdict.level = False, ERROR
                    verdict.message = f'encoding {self._preview(verdict.text)} failed: {exc}'
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

        def _report(self) -> None:
            values = {'instructions': self.rate.count, 'cache_hits': self.hits,
                      'cached': len(self.cache), 'backend': self.model.description,
                      'fault': self.fault or '',
                      'model_id': self.model.model_id, 'fingerprint': self.model.fingerprint,
                      'current': self.current if self.current is not None else '(none)'}
            for k, v in self.latency.percentiles_ms((50, 99)).items():
                values[f'latency_{k}_ms'] = v
            if self.current_time is not None:
                values['instruction_age_s'] = now_seconds(self) - self.current_time
            if self.fault:
                self.diag.update(ERROR, self.fault, **values)
            else:
                self.diag.update(self.level, self.message, **values)

    return _InstructionNode()


def main(args=None) -> int:
    """Console script ``instruction_node``."""
    from .runtime import run_node
    return run_node(make_node, args)


if __name__ == '__main__':
    raise SystemExit(main())
