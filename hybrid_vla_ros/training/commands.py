"""``hybrid-vla train``: train a policy on rosbag2 episodes."""

from __future__ import annotations

from ..cli import command


def _train_args(p) -> None:
    p.add_argument('--config', required=True, help='training YAML (config/train/*.yaml)')
    p.add_argument('--data', nargs='+', required=True,
                   help='rosbag2 episode directories, or folders searched for them')
    p.add_argument('--out', required=True, help='output directory (checkpoints, metrics)')
    p.add_argument('--resume', action='store_true',
                   help='continue the run in --out from its last checkpoint')
    p.add_argument('--init-from', metavar='CHECKPOINT',
                   help='start from this checkpoint\'s weights and normalization '
                        '(fine-tuning); overrides optim.init_from of the YAML')


@command('train', 'train a policy (e2e, staged or hybrid strategy) on rosbag2 episodes; '
         'works under torchrun for DDP', _train_args)
def train(args) -> int:
    """Run training; a non-finite loss ends with exit code 3 and the step named."""
    import sys

    from .trainer import TrainingError, train
    try:
        trainer = train(args.config, args.data, args.out, resume=args.resume,
                        init_from=args.init_from)
    except TrainingError as exc:
        print(f'hybrid-vla train: stopped: {exc}', file=sys.stderr)
        return 3
    if trainer.dist.is_main:
        out = trainer.out
        print(f'done: checkpoints in {out}/last and {out}/best, metrics in '
              f'{out}/metrics.jsonl')
    return 0


def _bench_train_args(p) -> None:
    p.add_argument('--config', default='config/train/default.yaml',
                   help='training YAML whose model, batch size and augmentation are timed '
                        '(default: %(default)s)')
    p.add_argument('--data', nargs='+', required=True,
                   help='rosbag2 episode directories, or folders searched for them (a few '
                        'episodes are enough: only their batches are used)')
    p.add_argument('--steps', type=int, default=20,
                   help='timed steps per variant and round (default: %(default)s)')
    p.add_argument('--rounds', type=int, default=3,
                   help='rounds; the variants take turns in each (default: %(default)s)')
    p.add_argument('--warmup', type=int, default=3,
                   help='untimed steps per variant first (default: %(default)s)')
    p.add_argument('--threads', type=int, default=2,
                   help='torch threads, as in training (default: %(default)s)')
    p.add_argument('--out', default='bench/results/train_step.json',
                   help='JSON result file (default: %(default)s)')


@command('bench-train', 'training-step throughput (samples/s) of a training config: torch '
         'vs the package\'s dropout, multi-tensor vs fused AdamW, same weights and batches',
         _bench_train_args)
def bench_train(args) -> int:
    """Time the training step variants and write the JSON; prints a Markdown table."""
    from ..inference.benchmark import write_results
    from .benchmark import bench_training_step, format_table
    result = bench_training_step(args.config, args.data, steps=args.steps,
                                 rounds=args.rounds, warmup=args.warmup,
                                 threads=args.threads)
    path = write_results(result, args.out)
    print(format_table(result))
    print(f'{result["control_steps"]} control steps, batch {result["batch_size"]}, '
          f'{args.threads} threads; written to {path}')
    return 0
