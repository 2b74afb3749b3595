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


class WorkerDied(RuntimeError):
    """A worker process ended without reporting (killed by a signal, e.g. the out-of-memory
    killer, or crashed inside native code)."""


def run_in_processes(target: Callable, args: tuple, items: Iterable, workers: int,
                     handle: Callable[[tuple], None], name: str,
                     died: Callable[[int, Optional[int], Optional[str]], BaseException],
                     poll: Optional[Callable[[], None]] = None,
                     graceful_stop: float = 0.0) -> None:
    """Run `items` through `workers` spawned processes and pass their events to `handle`.

    Each process runs ``target(*args, jobs, events, stop)``: it takes items from `jobs`
    with `queued_jobs` and posts tuples on `events` — ``('start', pid, what)`` when it takes
    an item (named in the death message), ``('error', exception)`` to fail the run (the
    exception is re-raised here), ``('exit',)`` when its queue is empty, ``('stopped',)``
    when it honoured `stop`, and any other event for `handle`. `poll()` (optional) runs
    twice a second and may raise (a Ctrl-C request) to stop the run.

    When anything raises here (Ctrl-C included): with `graceful_stop` > 0 the workers are
    asked to stop (`stop` set) and get that many seconds, and events they post meanwhile
    still reach `handle` (work finished during the stop is kept); the rest are terminated;
    then the exception propagates. A worker that ends without ``exit`` raises
    ``died(pid, exitcode, what)``.

    Own processes rather than multiprocessing.Pool: a Pool silently replaces a killed
    worker and waits for its task forever. Spawned, not forked: MuJoCo's GL context and
    onnxruntime's threads do not survive a fork.
    """
    import multiprocessing as mp
    import time
    ctx = mp.get_context('spawn')
    jobs, events, stop = job_queue(ctx, items, workers), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=target, name=f'{name}-worker-{i}', daemon=True,
                         args=(*args, jobs, events, stop))
             for i in range(workers)]
    running: dict = {}
    ended = 0

    def dispatch(event) -> None:
        if event[0] == 'start':
            running[event[1]] = event[2]
        elif event[0] == 'error':
            raise event[1]
        elif event[0] not in ('exit', 'stopped'):
            handle(event)

    try:
        for p in procs:
            p.start()
        while ended < workers:
            if poll is not None:
                poll()
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                for p in procs:
                    if p.exitcode not in (None, 0):
                        raise died(p.pid, p.exitcode, running.get(p.pid)) from None
                if all(p.exitcode is not None for p in procs):
                    raise died(procs[0].pid, 0, None) from None
                continue
            if event[0] in ('exit', 'stopped'):
                ended += 1
            dispatch(event)
    except BaseException:
        stop.set()
        if graceful_stop > 0:
            deadline = time.monotonic() + graceful_stop
            for p in procs:
                p.join(timeout=max(0.0, deadline - time.monotonic()))
            while True:  # work that finished while the workers were being stopped
                try:
                    event = events.get(timeout=0.1)
                except queue.Empty:
                    break
                if event[0] not in ('start', 'error', 'exit', 'stopped'):
                    handle(event)
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    finally:
        for p in procs:
            p.join(timeout=10)
