"""``hybrid-vla bench-model``: per-part and per-step latency, per backend."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..cli import command


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
    from .benchmark import run_benchmark, write_results
    from .manifest import MANIFEST_FILE, ONNX_DIR
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
