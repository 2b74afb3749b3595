"""``hybrid-vla export``: checkpoint -> ONNX graphs + manifest, parity-checked."""

from __future__ import annotations

from ..command_registry import command
from .defaults import DEFAULT_OPSET, PARITY_TOLERANCE


def _export_args(p) -> None:
    p.add_argument('--checkpoint', required=True, help='checkpoint directory')
    p.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                   help=f'ONNX opset (>= 17, default {DEFAULT_OPSET})')
    p.add_argument('--fp16', action='store_true',
                   help='also write half-precision graphs (*.fp16.onnx) for GPUs')
    p.add_argument('--tolerance', type=float, default=PARITY_TOLERANCE,
                   help='max |onnxruntime - torch| allowed per part '
                        f'(default {PARITY_TOLERANCE:g})')


@command('export', 'export a checkpoint to ONNX (vision, language, policy core) and check '
         'onnxruntime against torch', _export_args)
def export(args) -> int:
    """Run the export; a parity failure exits 1 with the part and the difference."""
    from .onnx_export import ParityError, export_checkpoint
    try:
        manifest = export_checkpoint(args.checkpoint, opset=args.opset, fp16=args.fp16,
                                     tolerance=args.tolerance)
    except ParityError as exc:
        print(f'hybrid-vla export: parity check failed, nothing written: {exc}')
        return 1
    print(f'wrote {args.checkpoint}/onnx/ (config {manifest["config_hash"]}, opset '
          f'{manifest["opset"]})')
    return 0
