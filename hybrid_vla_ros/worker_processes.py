"""Small helpers shared by the commands that run work in spawned worker processes
(``hybrid-vla collect --workers``, ``hybrid-vla eval-sim --workers``)."""

from __future__ import annotations

import os
import pickle
import queue
import signal
from typing import Callable, Iterable, Iterator, Optional


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


def job_queue(ctx, items: Iterable, workers: int):
    """A `ctx` queue holding `items`, then one None sentinel per worker (parent side)."""
    jobs = ctx.Queue()
    for item in items:
        jobs.put(item)
    for _ in range(workers):
        jobs.put(None)
    jobs.cancel_join_thread()  # never block the exit on jobs nobody will take
    return jobs


def watch_parent() -> Callable[[], bool]:
    """Set up a spawned worker: ignore Ctrl-C (it reaches the whole process group; the
    parent decides and stops the workers, rather than each printing a traceback) and return
    ``orphaned()``, true once the parent has gone. A parent ended by SIGTERM or SIGKILL
    cannot stop its workers; without this check they would go on working for nobody,
    holding the cores."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    return lambda: os.getppid() != parent


def queued_jobs(jobs, idle: Callable[[], None]) -> Iterator:
    """The items of `jobs` (worker side) until its None sentinel; `idle()` is called after
    every second without one (to check for an orphaned worker: it may raise or exit)."""
    while True:
        try:
            item = jobs.get(timeout=1.0)
        except queue.Empty:
            idle()
            continue
        if item is None:
            return
        yield item
