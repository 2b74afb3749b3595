"""The sub-command registry of ``hybrid-vla``: a leaf module every layer may import.

Each layer's ``commands`` module registers its sub-commands here with `command`; `cli`
imports those modules explicitly (a plain import statement each, so the import contract in
``.importlinter`` sees every edge) and builds the parser from `COMMANDS`. A commands module
imports only argparse-level code at load time: the work (and torch, onnxruntime, rclpy) is
imported inside the command function, so ``hybrid-vla --help`` and the robot's commands
start without torch.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Callable, List


@dataclasses.dataclass(frozen=True)
class Command:
    """One sub-command.

    Attributes:
        name: the sub-command (``collect``).
        help_text: one line for ``hybrid-vla --help``.
        arguments: adds the sub-command's options to its parser.
        run: runs it with the parsed arguments; returns the exit code.

    """

    name: str
    help_text: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: List[Command] = []


def command(name: str, help_text: str, arguments: Callable[[argparse.ArgumentParser], None]):
    """Register a sub-command: `arguments` adds its options, the decorated function runs it."""
    def decorate(fn):
        if any(c.name == name for c in COMMANDS):
            raise ValueError(f'sub-command {name!r} is registered twice')
        COMMANDS.append(Command(name, help_text, arguments, fn))
        return fn
    return decorate
