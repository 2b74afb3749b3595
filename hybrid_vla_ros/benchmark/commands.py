"""``hybrid-vla bench-model`` (latency of each deployed part and of a control step, per
backend and thread count) and ``hybrid-vla bench-train`` (training-step throughput)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..command_registry import command


def _bench_args(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--checkpoint', help='checkpoint directory (exported if needed)')
    src.add_argument('--config', help='model YAML: benchmark an untrained model of that '
                                      'architecture (latency does not depend on weights)')
    p.add_argument('--backends', nargs='+', default=['torch', 'onnxruntime'],
                   help='backends to measure (torch, onnxruntime, tensorrt)')
    p.add_argument('--threads', nargs='+', type=int, default=[1, 2],
                   help='intra-op thread counts to measure (default 1 2)')
    p.add_argument('--iterations', type=int, default=200, help='timed calls per part')
    p.add_argument('--out', default='bench/results/model_latency.json',
                   help='results JSON (default bench/results/model_latency.json)')


@command('bench-model', 'measure latency p50/p90/p99 of each part and of a control step per '
         'backend and thread count', _bench_args)
def bench_model(args) -> int:
    """Export when needed, run the benchmark, write JSON, print the ratio."""
    from ..inference.manifest import MANIFEST_FILE, ONNX_DIR
    from .model_latency import run_benchmark
    from .results import write_results
    with tempfile.TemporaryDirectory() as tmp:
        if args.config:
            from ..model import build_policy, load_model_config, save_checkpoint
            checkpoint = Path(tmp) / Path(args.config).stem
            save_checkpoint(build_policy(load_model_config(args.config)), checkpoint)
        else:
            checkpoint = Path(args.checkpoint)
        if not (checkpoint / ONNX_DIR / MANIFEST_FILE).is_file():
            from ..export.onnx_export import export_checkpoint
            export_checkpoint(checkpoint)
        doc = run_benchmark(checkpoint, args.backends, args.threads, args.iterations)
        doc['source'] = args.config or args.checkpoint
    path = write_results(doc, args.out)
    for k, v in doc['torch_over_onnxruntime_step_p50'].items():
        print(f'torch eager / onnxruntime control step p50 ({k}): {v:.2f}x')
    print(f'wrote {path}')
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
    from .results import write_results
    from .training_step import bench_training_step, format_table
    result = bench_training_step(args.config, args.data, steps=args.steps,
                                 rounds=args.rounds, warmup=args.warmup,
                                 threads=args.threads)
    path = write_results(result, args.out)
    print(format_table(result))
    print(f'{result["control_steps"]} control steps, batch {result["batch_size"]}, '
          f'{args.threads} threads; written to {path}')
    return 0
