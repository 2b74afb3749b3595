"""Small helpers shared by the commands that run work in spawned worker processes
(``hybrid-vla collect --workers``, ``hybrid-vla eval-sim --workers``)."""

from __future__ import annotations

import pickle
import signal
from typing import Optional


def describe_exit(code: Optional[int]) -> str:
    """A worker's `multiprocessing.Process.exitcode` in words (``killed by SIGKILL; on
    Linux usually the out-of-memory killer``, ``exit code 1``)."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f'signal {-code}'
        hint = ('; on Linux usually the out-of-memory killer' if -code == signal.SIGKILL
                else '')
        return f'killed by {name}{hint}'
    return f'exit code {code}'


def picklable(exc: BaseException) -> BaseException:
    """`exc` itself when it survives pickling (to be re-raised in the parent), else a
    RuntimeError carrying its type name and text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 -- any unpicklable exception becomes its text
        return RuntimeError(f'{type(exc).__name__}: {exc}')
