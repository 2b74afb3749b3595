"""``hybrid-vla train``: train a policy on rosbag2 episodes."""

from __future__ import annotations

from ..command_registry import command


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


def _average_args(p) -> None:
    p.add_argument('checkpoints', nargs='+', metavar='CHECKPOINT',
                   help='two or more checkpoint directories of one model (identical model: '
                        'sections, e.g. fine-tuned from one parent)')
    p.add_argument('--out', required=True, help='output checkpoint directory')
    p.add_argument('--weights', nargs='+', type=float, metavar='W',
                   help='one positive mixing weight per checkpoint (default: equal); '
                        'normalized to sum to 1')


@command('average-weights', 'write one checkpoint whose weights are the (weighted) mean of '
         'several checkpoints of one model (a "model soup")', _average_args)
def average_weights(args) -> int:
    """Average the checkpoints' weights into ``--out`` (bad inputs: `ConfigError`, which
    the CLI reports with exit code 2)."""
    from .checkpoint_average import average_checkpoints, describe
    out = average_checkpoints(args.checkpoints, args.out, args.weights)
    print(f'wrote {out} from:')
    print('\n'.join(describe(out)))
    print(f'next: hybrid-vla export --checkpoint {out}')
    return 0
