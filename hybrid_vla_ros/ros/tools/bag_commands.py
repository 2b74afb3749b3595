"""``hybrid-vla play-bag`` and ``hybrid-vla record``: replay a rosbag2 on live topics and
record live topics into a rosbag2, as ``ros2 bag play`` / ``ros2 bag record`` do, without a
ROS 2 install beyond rclpy (`bag_player`, `bag_recorder` hold the logic).

Both stop cleanly on Ctrl-C (SIGINT) or SIGTERM: the signal only sets an event, so the
recorder always closes its bag (metadata.yaml written) and the player prints its summary.
Nothing here imports rclpy at module level (the CLI imports every command module to build
its help); the command bodies do.

Exit codes: 0 done (also when stopped by a signal); 1 play-bag could not read all of the
bag or could play no topic, record never saw a requested topic (the bag is still written);
2 bad arguments (an existing non-empty --out, a missing bag).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterator, Tuple

from ...command_registry import command
from ...schema import ConfigError


@contextlib.contextmanager
def _ros_node(name: str) -> Iterator[Tuple[object, threading.Event, Callable[[], None]]]:
    """rclpy up with a node spun by a background thread, an event set by SIGINT / SIGTERM,
    and a function that stops the spinning (and waits for it); everything shut down on exit.

    rclpy's own signal handler would shut the context down at once (a recorder could then
    not finish its bag); here a signal only sets the event and the command ends itself.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set())
                for s in (signal.SIGINT, signal.SIGTERM)}
    context = rclpy.Context()
    # args=[]: rcl would otherwise read sys.argv, where `--remap a:=b` looks like a rule.
    rclpy.init(args=[], context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = executor = thread = None
    spinning = threading.Event()
    try:
        node = rclpy.create_node(f'{name}_{os.getpid()}', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)

        def spin() -> None:
            while not spinning.is_set() and context.ok():
                try:
                    executor.spin_once(timeout_sec=0.1)
                except ExternalShutdownException:
                    return
                except Exception as exc:  # one failed callback must not stop the recording
                    node.get_logger().error(f'callback failed: {type(exc).__name__}: {exc}')

        def halt() -> None:
            spinning.set()
            if thread is not None:
                thread.join(timeout=5)

        thread = threading.Thread(target=spin, name=f'{name}_spin', daemon=True)
        thread.start()
        yield node, stop, halt
    finally:
        spinning.set()
        if thread is not None:
            thread.join(timeout=5)
        if executor is not None:
            executor.shutdown(timeout_sec=1)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _play_args(p) -> None:
    p.add_argument('bag', help='rosbag2 directory (MCAP or sqlite3, compressed or not)')
    p.add_argument('--rate', type=float, default=1.0,
                   help='speed factor: 2 plays twice as fast (default 1)')
    p.add_argument('--loop', action='store_true', help='start over at the end until Ctrl-C')
    p.add_argument('--topics', nargs='+', metavar='TOPIC',
                   help='play only these topics (default: every topic of the bag)')
    p.add_argument('--remap', nargs='+', default=[], metavar='FROM:=TO',
                   help='publish bag topic FROM on TO, e.g. joint_states:=/arm/joint_states')
    p.add_argument('--start-delay', type=float, default=0.0, metavar='S',
                   help='seconds to wait before the first message (after '
                        '--wait-for-subscribers)')
    p.add_argument('--wait-for-subscribers', action='store_true',
                   help='start only once every played topic has a subscriber (Ctrl-C '
                        'gives up)')
    p.add_argument('--clock', action='store_true',
                   help='also publish /clock with the bag\'s time, for nodes run with '
                        'use_sim_time:=true (recorded stamps are then not stale to them)')
    p.add_argument('--latched', nargs='+', default=[], metavar='TOPIC',
                   help='publish these bag topics transient-local (e.g. instruction, which '
                        'the instruction node subscribes to that way)')


@command('play-bag', 'publish a rosbag2\'s messages on live topics with their original '
         'timing, as `ros2 bag play` does', _play_args)
def play_bag(args) -> int:
    """Play the bag; print the per-topic summary."""
    from pathlib import Path

    from .bag_player import BagPlayer, parse_remaps
    remap = parse_remaps(args.remap)
    if not args.rate > 0:
        raise ConfigError(f'--rate must be positive, got {args.rate}')
    if args.start_delay < 0:
        raise ConfigError(f'--start-delay must not be negative, got {args.start_delay}')
    if not Path(args.bag).is_dir():
        raise FileNotFoundError(f'{args.bag}: no such bag directory')
    with _ros_node('hybrid_vla_bag_player') as (node, stop, _):
        player = BagPlayer(node, args.bag, topics=args.topics, remap=remap, rate=args.rate,
                           loop=args.loop, clock=args.clock, latched=args.latched)
        if player.open_error:
            print(f'hybrid-vla play-bag: warning: {player.open_error}', file=sys.stderr)
            if player.source.salvage_note:
                print(f'hybrid-vla play-bag: warning: {player.source.salvage_note}',
                      file=sys.stderr)
        try:
            if player.topics and args.wait_for_subscribers:
                print('waiting for subscribers on ' + ', '.join(player.missing_subscribers()),
                      flush=True)
                player.wait_for_subscribers(stop_event=stop)
            if args.start_delay > 0:
                stop.wait(args.start_delay)
            if player.topics and not stop.is_set():
                print(f'playing {len(player.topics)} topics of {args.bag} at rate {args.rate:g}'
                      + (', looping until Ctrl-C' if args.loop else ''), flush=True)
            report = player.play(stop)
        finally:
            player.close()
    print(report.format(), flush=True)
    if not player.topics and not report.total:
        print('hybrid-vla play-bag: nothing could be played', file=sys.stderr)
        return 1
    return 1 if report.read_errors else 0


def _record_args(p) -> None:
    from .bag_recorder import STORAGES
    p.add_argument('--topics', nargs='+', required=True, metavar='TOPIC',
                   help='topics to record; each is subscribed once a publisher appears')
    p.add_argument('--out', required=True, help='bag directory to create (must not exist '
                                                'or be empty)')
    p.add_argument('--storage', choices=STORAGES, default='mcap',
                   help='storage plugin (default mcap)')
    p.add_argument('--bag-version', type=int, default=8, choices=(8, 9),
                   help='rosbag2 metadata version: 8 (default; Humble, Jazzy and Kilted read '
                        'it) or 9 (Jazzy and later)')
    p.add_argument('--duration', type=float, default=None, metavar='S',
                   help='stop after S seconds (default: until Ctrl-C)')
    p.add_argument('--max-messages', type=int, default=None, metavar='N',
                   help='stop after N messages on all topics together')


@command('record', 'record live topics into a new rosbag2 (serialized, byte-identical), as '
         '`ros2 bag record` does', _record_args)
def record(args) -> int:
    """Record until Ctrl-C / SIGTERM / --duration / --max-messages; print the counts."""
    from .bag_recorder import BagRecorder, check_output_dir
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f'--duration must be positive, got {args.duration}')
    check_output_dir(args.out)  # refuse before starting ROS
    with _ros_node('hybrid_vla_recorder') as (node, stop, halt):
        recorder = BagRecorder(node, args.topics, args.out, storage=args.storage,
                               max_messages=args.max_messages, bag_version=args.bag_version)
        try:
            missing = recorder.start(timeout_s=0.0)
            print(f'recording {", ".join(recorder.topics)} to {args.out}'
                  + (f'; waiting for a publisher on {", ".join(missing)}' if missing else ''),
                  flush=True)
            deadline = (time.monotonic() + args.duration) if args.duration else None
            while not (stop.is_set() or recorder.done.is_set()):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                stop.wait(0.1)
                if recorder.pending:
                    recorder.poll()
        finally:
            # Always: the bag is finished (metadata.yaml) with everything received; the
            # executor stops first so that close() takes what is still queued.
            halt()
            report = recorder.close()
    print(report.format(), flush=True)
    return 1 if report.missing or report.errors else 0
