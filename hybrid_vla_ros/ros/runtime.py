"""Running a node process: init, spin, and a clean stop on Ctrl-C (SIGINT) or SIGTERM.

rclpy's own signal handler shuts the context down at once, after which a node can no
longer publish — too late for a policy to send its last "stop" command. `run_node`
installs its own handlers instead: a signal only sets a flag; the spin loop then returns,
the node's `shutdown()` runs while the context is still up (the policy publishes a zero
velocity there), and only then is the node destroyed and rclpy shut down. A second signal
during that stop is ignored; the process exits 0.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from typing import Callable, List, Optional


def now_seconds(node) -> float:
    """The node clock's current time in seconds (system time unless use_sim_time)."""
    return node.get_clock().now().nanoseconds * 1e-9


def seconds_to_stamp(seconds: float):
    """Seconds -> builtin_interfaces/Time."""
    from builtin_interfaces.msg import Time
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def run_node(factory: Callable[[], object], args: Optional[List[str]] = None) -> int:
    """Create the node with `factory()` after rclpy.init(args) and spin until a signal.

    The node may define ``start()`` (called once it exists: a managed node brings itself
    up there) and ``shutdown()`` (called before it is destroyed). Returns the exit code
    (0 on a signal-initiated stop).
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    rclpy.init(args=sys.argv if args is None else args,
               signal_handler_options=SignalHandlerOptions.NO)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        node = factory()
        if hasattr(node, 'start'):
            node.start()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            try:
                executor.spin_once(timeout_sec=0.1)
            except (KeyboardInterrupt, ExternalShutdownException):
                raise
            except Exception:  # a bug in one callback must not take the robot's node down
                node.get_logger().error('callback failed (the node keeps running):\n'
                                        + traceback.format_exc())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        if node is not None:
            if hasattr(node, 'shutdown'):
                try:
                    node.shutdown()
                except Exception as exc:  # a stop must never turn into a traceback
                    node.get_logger().warning(f'shutdown: {exc}')
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
