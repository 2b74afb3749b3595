"""The ``hybrid-vla collect`` sub-command: record scripted-expert demonstrations as rosbag2.

    hybrid-vla collect --episodes 20 --seed 0 --out data/demos --workers 2
    hybrid-vla collect --suite arm --episodes 5 --seed 100 --out data/arm --tasks reach-red
    hybrid-vla collect --episodes 20 --seed 200 --policy models/default --out data/dagger

Heavy imports (mujoco, Meta-World) happen when the command runs, not when the parser is built.
"""

from __future__ import annotations

import argparse

from ..command_registry import command
from ..schema import ConfigError
from .tasks import (DEFAULT_EXPERT, DEFAULT_SUITE, EXPERT_CHOICES, MT50_TIERS, SUITES, TaskError,
                    check_expert_choice, check_start_jitter)


def _collect_args(p: argparse.ArgumentParser) -> None:
    listing = '; '.join(f'{suite}: {", ".join(tasks)}' for suite, tasks in SUITES.items()
                        if suite != 'mt50')
    p.add_argument('--suite', default=DEFAULT_SUITE, choices=list(SUITES),
                   help=f'task suite (default {DEFAULT_SUITE})')
    p.add_argument('--episodes', type=int, required=True, help='episodes per task')
    p.add_argument('--seed', type=int, default=0,
                   help="seed of each task's first episode; episode i uses seed + i (default 0)")
    p.add_argument('--out', required=True, help='output directory; one <task>_<seed>/ bag '
                   'per episode (existing episodes are kept and skipped)')
    p.add_argument('--tasks', nargs='+', metavar='TASK',
                   help=f'tasks to record (default: every task of the suite). {listing}; '
                   f'mt50: its 50 Meta-World task names or a tier ({", ".join(MT50_TIERS)})')
    p.add_argument('--image-size',
                   help="camera image size, N or HxW (default 128, or the --policy's)")
    p.add_argument('--bag-version', type=int, default=8, choices=(8, 9),
                   help='rosbag2 metadata version: 8 (default; Humble, Jazzy and Kilted read '
                        'it) or 9 (Jazzy and later)')
    p.add_argument('--cameras', nargs='+', metavar='CAMERA',
                   help="cameras to record (default: front; mt50: corner2). metaworld: front, "
                        "corner, corner2, corner3, corner4, topview, wrist; mt50: corner2, "
                        "corner, corner3, corner4, topview, wrist; arm: front, top")
    p.add_argument('--no-compress', action='store_true',
                   help='write uncompressed MCAP (default: zstd chunk compression)')
    p.add_argument('--action-noise', type=float, default=0.0, metavar='SIGMA',
                   help='std of correlated noise added to the executed expert action, action '
                        'units (the recorded command stays clean: DART-style demonstrations '
                        'of recovering from drift; default 0 = clean)')
    p.add_argument('--noise-correlation', type=float, default=0.8, metavar='RHO',
                   help='step-to-step correlation of that noise, 0 <= RHO < 1 (default 0.8)')
    p.add_argument('--start-jitter', type=float, default=0.0, metavar='METRES',
                   help='metaworld: each episode starts the hand up to this far from its home '
                        'pose on each axis (uniform, drawn from the episode seed; at most '
                        '0.1). Breaks the cue a fixed start gives: without it the hand\'s '
                        'position alone says where the episode is going (default 0)')
    p.add_argument('--policy', metavar='CHECKPOINT',
                   help='exported checkpoint that drives the robot while the expert labels '
                        '(DAgger): the bags hold the states the policy reaches and the '
                        "expert's action in each. Records the policy's cameras at its image "
                        'size unless --cameras / --image-size say otherwise')
    p.add_argument('--policy-share', type=float, default=1.0, metavar='P',
                   help="with --policy: probability that a step executes the policy's action "
                        "rather than the expert's, 0 < P <= 1 (default 1)")
    p.add_argument('--expert', default=DEFAULT_EXPERT, choices=EXPERT_CHOICES,
                   help='scripted expert that labels every step (and drives without --policy): '
                        "protocol (the suite's own; default) or, mt50 only, revised: "
                        "Meta-World's experts with this package's label fixes (disassemble "
                        'keeps lifting once the handle is held, plate-slide-back keeps '
                        'dragging the plate; docs/sim.md). Training '
                        'labels only: evaluations always score against the protocol expert')
    p.add_argument('--workers', type=int, default=1,
                   help='episodes recorded at once, each worker in its own process on one '
                        'core (default 1; up to one per CPU core); the bags do not change')
    p.add_argument('--quiet', action='store_true', help='no progress bar')


def check_start_jitter_argument(suite: str, jitter: float) -> None:
    """`tasks.check_start_jitter` before anything runs, as a `ConfigError` naming
    ``--start-jitter``."""
    try:
        check_start_jitter(suite, jitter)
    except TaskError as exc:
        raise ConfigError(f'--start-jitter: {exc}') from None


@command('collect', 'run the scripted experts of a simulated task suite and record one '
         'rosbag2 (MCAP) per episode', _collect_args)
def collect_command(args) -> int:
    """Record the episodes, print the summary; 130 when interrupted with Ctrl-C."""
    from .collect import collect
    from .rendering import parse_image_size
    if args.episodes < 1:
        raise ConfigError(f'--episodes: must be at least 1, got {args.episodes}')
    if args.workers < 1:
        raise ConfigError(f'--workers: must be at least 1, got {args.workers}')
    if args.action_noise < 0:
        raise ConfigError(f'--action-noise: must be >= 0, got {args.action_noise}')
    if not 0.0 <= args.noise_correlation < 1.0:
        raise ConfigError(f'--noise-correlation: must be in [0, 1), got '
                          f'{args.noise_correlation}')
    check_start_jitter_argument(args.suite, args.start_jitter)
    try:
        check_expert_choice(args.suite, args.expert)
    except TaskError as exc:
        raise ConfigError(f'--expert: {exc}') from None
    if not 0.0 < args.policy_share <= 1.0:
        raise ConfigError(f'--policy-share: must be in (0, 1], got {args.policy_share}')
    if args.policy_share != 1.0 and args.policy is None:
        raise ConfigError('--policy-share: only meaningful with --policy CHECKPOINT')
    try:
        image_size = None if args.image_size is None else parse_image_size(args.image_size)
    except ValueError as exc:
        raise ConfigError(f'--image-size: {exc}') from None
    try:
        summary = collect(args.out, suite=args.suite, tasks=args.tasks,
                          episodes=args.episodes, seed=args.seed, image_size=image_size,
                          cameras=args.cameras, compress=not args.no_compress,
                          progress=not args.quiet, action_noise=args.action_noise,
                          noise_correlation=args.noise_correlation,
                          start_jitter=args.start_jitter, policy=args.policy,
                          policy_share=args.policy_share, workers=args.workers,
                          bag_version=args.bag_version, expert=args.expert)
    except FileExistsError as exc:  # a directory in the way that is not a finished bag
        raise ConfigError(f'--out: {exc}') from None
    print(summary.format())
    if summary.failed:
        return 1
    return 130 if summary.interrupted else 0
