"""``hybrid-vla bringup | say | demo | bench-ros | replay-check``: the ROS 2 sub-commands.

Nothing here imports rclpy at module level (the CLI imports every command module to build
its help); the command bodies do.
"""

from __future__ import annotations

import sys

from ...command_registry import command
from ...schema import ConfigError


def _bringup_args(p) -> None:
    from .nodeset import ARGUMENTS, NODE_SETS
    p.add_argument('set', choices=list(NODE_SETS),
                   help='robot: perception, instruction, policy; sim: the same plus the '
                        'simulated robot')
    for arg in ARGUMENTS:
        p.add_argument(f'--{arg.name.replace("_", "-")}', dest=arg.name, default='',
                       metavar='VALUE', help=arg.description + (
                           f' ({", ".join(arg.sets)} only)' if arg.sets else ''))
    p.add_argument('--set', dest='overrides', action='append', default=[],
                   metavar='NODE.PARAM=VALUE',
                   help='set any parameter of one node, e.g. policy.max_age=0.5 (repeatable)')
    p.add_argument('--log-dir', help='write each node\'s output to LOG_DIR/<node>.log '
                                     '(default: prefixed lines on stdout)')
    p.add_argument('--stop-timeout', type=float, default=10.0,
                   help='seconds each node gets to stop after SIGINT (default 10)')
    p.add_argument('--max-restarts', type=int, default=3,
                   help='times a node that dies is started again (default 3; 0: never); '
                        'deaths and restarts are reported on /diagnostics as /bringup')
    p.add_argument('--respawn-delay', type=float, default=2.0,
                   help='seconds between a death and the restart (default 2)')
    p.add_argument('--print', action='store_true',
                   help='print the node command lines and exit')


@command('bringup', 'start a node set (the launch files\' nodes) as separate processes; '
         'Ctrl-C stops them cleanly', _bringup_args)
def bringup(args) -> int:
    """Run the node set until SIGINT / SIGTERM."""
    from .bringup import Supervisor, run_until_signal
    from .nodeset import arguments, parse_sets, process_specs
    values = {a.name: getattr(args, a.name) for a in arguments(args.set)}
    other = [a for a in ('task', 'sim_mode') if getattr(args, a, '') and a not in values]
    if other:
        raise ConfigError(f'--{other[0].replace("_", "-")} applies to the sim set only')
    specs = process_specs(args.set, values, parse_sets(args.overrides))
    if args.print:
        import shlex
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            for spec in specs:
                env = ' '.join(f'{k}={v}' for k, v in spec.environment().items())
                print((env + ' ' if env else '') + shlex.join(spec.command(tmp)))
                if spec.overrides:
                    print('  # ' + spec.overrides_yaml().strip().replace('\n', '\n  # '))
        return 0
    if args.max_restarts < 0 or args.respawn_delay < 0:
        raise ConfigError('--max-restarts and --respawn-delay must be >= 0')
    supervisor = Supervisor(specs, log_dir=args.log_dir, max_restarts=args.max_restarts,
                            respawn_delay=args.respawn_delay)
    return run_until_signal(supervisor, args.stop_timeout, diagnostics=True,
                            namespace=values.get('namespace', ''))


def _say_args(p) -> None:
    p.add_argument('text', help='the instruction, e.g. "open the drawer" ("" = stop)')
    p.add_argument('--topic', default='instruction', help='topic (default instruction)')
    p.add_argument('--namespace', default='', help='namespace of the robot\'s nodes')
    p.add_argument('--wait', type=float, default=5.0,
                   help='seconds to wait for a subscriber (default 5)')


@command('say', 'publish an instruction (std_msgs/String) on the instruction topic, as '
         '`ros2 topic pub --once` would', _say_args)
def say(args) -> int:
    """Publish, wait for the acknowledgement, report."""
    from .driver import say_once
    if '\x00' in args.text:
        # ROS strings end at a NUL: the nodes would get only the part before it.
        raise ConfigError('the instruction contains a NUL character; a ROS string ends at '
                          f'the first NUL, so only {args.text.split(chr(0))[0]!r} would '
                          'arrive. Remove it.')
    delivered, topic, count = say_once(args.text, args.topic, args.namespace, args.wait)
    if not count:
        print(f'hybrid-vla say: nobody subscribes to {topic} (is the instruction node '
              f'running in this ROS_DOMAIN_ID?); not delivered', file=sys.stderr)
        return 1
    state = 'delivered' if delivered else 'published (not acknowledged)'
    print(f'{state}: {args.text!r} on {topic}')
    return 0 if delivered else 1


def _heartbeat_args(p) -> None:
    p.add_argument('--rate', type=float, default=10.0,
                   help='messages per second (default 10; keep it well above '
                        '1 / estop_timeout of the policy)')
    p.add_argument('--topic', default='estop', help='topic (default estop)')
    p.add_argument('--namespace', default='', help='namespace of the robot\'s nodes')


@command('estop-heartbeat', 'hold the e-stop released: publish estop false at a fixed rate '
         'until Ctrl-C, then estop true (for a policy in estop_mode heartbeat)',
         _heartbeat_args)
def estop_heartbeat(args) -> int:
    """Publish the heartbeat until a signal; the last message engages the e-stop."""
    from .driver import run_estop_heartbeat
    if not 0.5 <= args.rate <= 1000.0:
        raise ConfigError(f'--rate: {args.rate} is outside 0.5..1000 messages per second')
    topic, sent = run_estop_heartbeat(args.rate, args.topic, args.namespace)
    print(f'sent {sent} heartbeats on {topic}; estop true sent last')
    return 0


def _security_args(p) -> None:
    p.add_argument('--out', required=True, help='directory for policy.xml, governance.xml '
                                                'and permissions/<node>.xml')
    p.add_argument('--domain', type=int, default=None,
                   help='ROS_DOMAIN_ID the permissions allow (default: this shell\'s, or 0)')
    p.add_argument('--namespace', default='/', help='namespace of the nodes (default /)')


@command('security-policy', 'write the SROS2 policy and the DDS Security governance and '
         'permissions of the perception, instruction and policy enclaves', _security_args)
def security_policy(args) -> int:
    """Write the artifacts and say how to sign them on a distribution."""
    import os

    from .security import write_artifacts
    domain = args.domain if args.domain is not None else int(
        os.environ.get('ROS_DOMAIN_ID', '0') or 0)
    if not 0 <= domain <= 232:
        raise ConfigError(f'--domain: {domain} is not a ROS domain id (0..232)')
    for path in write_artifacts(args.out, domain, args.namespace):
        print(f'wrote {path}')
    print(f'sign on a ROS 2 distribution: ros2 security create_keystore KEYSTORE; for each '
          f'node: ros2 security create_enclave KEYSTORE /hybrid_vla/<node>; ros2 security '
          f'create_permission KEYSTORE /hybrid_vla/<node> {args.out}/policy.xml '
          '(docs/ros.md, "Security")')
    return 0


def _demo_args(p) -> None:
    p.add_argument('--checkpoint', default=None,
                   help='exported checkpoint (default: the shipped models/default)')
    p.add_argument('--suite', default='metaworld', choices=('metaworld', 'mt50', 'arm'),
                   help='built-in suite (default metaworld; its config/ros/ parameter file: '
                        'sim_demo.yaml, sim_mt50.yaml, sim_arm.yaml)')
    p.add_argument('--tasks', nargs='+', help='only these tasks (default: the whole suite; '
                   'mt50 also takes tiers: easy, medium, hard, very-hard)')
    p.add_argument('--episodes', type=int, default=2,
                   help='episodes per task; odd ones use a held-out phrasing (default 2)')
    p.add_argument('--seed', type=int, default=1000, help='first episode seed (default 1000)')
    p.add_argument('--backend', default='onnxruntime', help='inference backend')
    p.add_argument('--budget', type=float, default=240.0,
                   help='seconds after which no new episode starts (default 240)')
    p.add_argument('--out', default='runs/demo/demo.json', help='results JSON')
    p.add_argument('--log-dir', default='runs/demo/logs', help='node logs')


@command('demo', 'bring up the simulated robot and the three nodes, say instructions, run '
         'episodes across the suite; print success rate and latency', _demo_args)
def demo(args) -> int:
    """Run the demo."""
    from pathlib import Path

    from ...inference.manifest import MANIFEST_FILE, ONNX_DIR
    from .demo import print_summary, run_demo, write_doc
    from .nodeset import default_checkpoint
    checkpoint = args.checkpoint or default_checkpoint()
    if not (Path(checkpoint) / 'config.yaml').is_file():
        raise ConfigError(f'{checkpoint} is not a checkpoint (the trained default policy '
                          'ships as models/default); pass --checkpoint DIR')
    if not (Path(checkpoint) / ONNX_DIR / MANIFEST_FILE).is_file():
        raise ConfigError(f'{checkpoint} has no onnx/ yet; run `hybrid-vla export '
                          f'--checkpoint {checkpoint}` (make demo does)')
    doc = run_demo(checkpoint, args.suite, args.tasks, args.episodes, args.seed,
                   args.backend, args.budget, args.log_dir)
    print_summary(doc)
    print(f'wrote {write_doc(doc, args.out)}')
    return 0 if doc['completed'] else 1


def _bench_args(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--checkpoint', help='exported checkpoint')
    src.add_argument('--config', help='model YAML: an untrained model of that architecture')
    p.add_argument('--duration', type=float, default=60.0, help='seconds measured (default 60)')
    p.add_argument('--warmup', type=float, default=5.0, help='seconds before measuring')
    p.add_argument('--rate', type=float, default=20.0, help='camera / control rate, Hz')
    p.add_argument('--backend', default='onnxruntime', help='inference backend')
    p.add_argument('--async', dest='async_inference', action='store_true',
                   help='asynchronous chunk inference in the policy node')
    p.add_argument('--out', default='bench/results/ros_latency.json', help='results JSON')
    p.add_argument('--log-dir', help='keep the node logs here (default: discarded)')


@command('bench-ros', 'end-to-end camera -> command latency and missed control ticks of the '
         'running graph (separate processes, simulated robot in real time)', _bench_args)
def bench_ros(args) -> int:
    """Run the benchmark, write JSON, print the numbers."""
    from .bench import run_bench
    from .demo import write_doc
    doc = run_bench(args.checkpoint, args.config, args.duration, args.rate, args.warmup,
                    args.backend, args.async_inference, log_dir=args.log_dir)
    lat = doc['latency_ms']
    if not lat:
        print('bench-ros: no commands were measured (see the node logs)', file=sys.stderr)
        return 1
    print(f'camera -> command latency at {args.rate:g} Hz over {lat["samples"]} ticks: p50 '
          f'{lat["p50_ms"]:.1f} ms, p90 {lat["p90_ms"]:.1f} ms, p99 {lat["p99_ms"]:.1f} ms; '
          f'missed ticks {doc["missed_ticks"]}/{doc["observations"]} = '
          f'{doc["missed_fraction"]:.2%}')
    print(f'wrote {write_doc(doc, args.out)}')
    return 0


def _replay_check_args(p) -> None:
    p.add_argument('--checkpoint', required=True, help='exported checkpoint directory')
    p.add_argument('--bag', required=True, help='one rosbag2 episode directory')
    p.add_argument('--out', required=True, help='directory for replay_check.json, the '
                   'offline report, the recorded commands and the node logs')
    p.add_argument('--rate', type=float, default=0.25,
                   help='playback speed factor (default 0.25: a quarter of real time)')
    p.add_argument('--tolerance', type=float, default=1e-4,
                   help='largest accepted |online - offline| per action entry (default 1e-4)')
    p.add_argument('--topic-map', help='topic map of the bag (default: the checkpoint\'s)')
    p.add_argument('--backend', default='onnxruntime', help='backend of nodes and scorer')


@command('replay-check', 'replay a bag through the running nodes, record their commands and '
         'compare them with eval-bag on the same bag (docs/evaluation.md)', _replay_check_args)
def replay_check(args) -> int:
    """Run the check; exit 0 when online and offline agree, 1 otherwise."""
    from .replay_check import replay_check as run
    result = run(args.checkpoint, args.bag, args.out, rate=args.rate,
                 tolerance=args.tolerance, topic_map=args.topic_map, backend=args.backend)
    print(result.summary())
    print(f'wrote {args.out}/replay_check.json')
    return 0 if result.ok else 1
