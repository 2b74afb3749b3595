"""The ``hybrid-vla`` command line: one entry point, one sub-command per job.

Each sub-command is a function registered with `command_registry.command`; it gets the
parsed arguments and returns an exit code. Configuration and input errors (`ConfigError`,
`FileNotFoundError`) are printed as one clear line, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .command_registry import COMMANDS, command
from .schema import ConfigError

# Each layer's commands module registers its sub-commands on import (`command_registry`);
# listed here, in the order `hybrid-vla --help` shows them. Their module-level imports are
# light: torch, onnxruntime and rclpy load inside the command that needs them.
from .export import commands as _export_commands  # noqa: E402,F401
from .benchmark import commands as _benchmark_commands  # noqa: E402,F401
from .training import commands as _training_commands  # noqa: E402,F401
from .evaluation import commands as _evaluation_commands  # noqa: E402,F401
from .data import commands as _data_commands  # noqa: E402,F401
from .sim import commands as _sim_commands  # noqa: E402,F401
from .ros.tools import commands as _ros_commands  # noqa: E402,F401
from .ros.tools import bag_commands as _bag_commands  # noqa: E402,F401


def _model_info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--config', required=True,
                   help='model YAML (config/models/*.yaml) or a checkpoint directory')


@command('model-info', 'validate a model config or checkpoint and print its parts, token '
         'layout and parameter counts', _model_info_args)
def model_info(args) -> int:
    """Print what a model configuration builds."""
    from pathlib import Path

    from .model import build_policy, load_checkpoint, load_model_config
    path = Path(args.config)
    policy = load_checkpoint(path) if path.is_dir() else build_policy(load_model_config(path))
    cfg = policy.cfg
    print(f'model {path}  (architecture hash {cfg.architecture_hash()})')
    cams = ', '.join(f'{c.name} {c.height}x{c.width}' for c in cfg.observation.cameras)
    print(f'  cameras        {cams}')
    print(f'  proprio        {cfg.observation.proprio_dim}')
    print(f'  action chunk   K={cfg.action.chunk} x A={cfg.action.dim}')
    print(f'  vision         {cfg.vision.type}: {policy.vision.num_tokens} tokens x '
          f'{policy.vision.out_dim}')
    print(f'  language       {cfg.language.type}: {cfg.instruction_max_tokens} tokens x '
          f'{policy.language.out_dim}')
    print(f'  fusion         {cfg.fusion.type}: width {policy.fusion.dim}, '
          f'{policy.fusion.num_readouts} readouts')
    print(f'  decoder        {cfg.decoder.type}')
    print('  parameters     part        total   trainable')
    total = trainable = 0
    for part, c in policy.parameter_counts().items():
        print(f'                 {part:<9}{c["total"]:>10,}{c["trainable"]:>12,}')
        total += c['total']
        trainable += c['trainable']
    print(f'                 {"all":<9}{total:>10,}{trainable:>12,}')
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog='hybrid-vla', description='Hybrid vision-language-action policies for ROS 2.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help_text, description=cmd.help_text)
        cmd.arguments(p)
        p.set_defaults(run=cmd.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``hybrid-vla`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ConfigError, FileNotFoundError) as exc:
        print(f'hybrid-vla {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'hybrid-vla {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    # `python -m hybrid_vla_ros.cli` (e.g. under torchrun).
    sys.exit(main())
