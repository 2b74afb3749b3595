"""``hybrid-vla bringup``: start a node set as separate processes, stop them cleanly.

The stand-in for ``ros2 launch`` where `launch` is not installable. The processes come from
`nodeset.process_specs` (the launch files' declaration); each runs ``python -m <module>
--ros-args ...`` in its own session, so a terminal Ctrl-C reaches only the supervisor, which
then stops the nodes in order: SIGINT to each (the nodes stop cleanly, the policy sending a
last zero twist), SIGTERM after `stop_timeout`, SIGKILL as a last resort. On Linux every
node also gets SIGTERM should the supervisor itself die (PR_SET_PDEATHSIG), so no node
outlives it. Output lines are prefixed with the node name, or written to one log file per
node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .nodeset import ProcessSpec


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the supervisor dies (Linux only)."""
    try:
        import ctypes
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except Exception:  # not Linux: the supervisor's own handlers still stop the nodes
        pass


class Supervisor:
    """Runs `specs` as child processes.

    Args:
        specs: the processes (`nodeset.process_specs`).
        env: environment of the children (default: this one, unbuffered output).
        log_dir: write each node's output to ``<log_dir>/<name>.log`` instead of prefixing
            it onto this process's stdout.
        out: where prefixed lines and supervisor messages go.

    """

    def __init__(self, specs: List[ProcessSpec], env: Optional[Dict[str, str]] = None,
                 log_dir: Optional[str] = None, out: Callable[[str], None] = None):
        self.specs = specs
        self.env = dict(os.environ if env is None else env, PYTHONUNBUFFERED='1')
        self.log_dir = Path(log_dir) if log_dir else None
        self._out = out or self._print
        self._lock = threading.Lock()
        self.procs: Dict[str, subprocess.Popen] = {}
        self.exited: Dict[str, int] = {}
        self._threads: List[threading.Thread] = []
        self._files = []
        self._tmp = tempfile.TemporaryDirectory(prefix='hybrid_vla_bringup_')

    def _print(self, line: str) -> None:
        with self._lock:
            sys.stdout.write(line + '\n')
            sys.stdout.flush()

    def start(self) -> None:
        """Start every process (in declaration order)."""
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.specs:
            cmd = spec.command(self._tmp.name)
            if self.log_dir is not None:
                f = open(self.log_dir / f'{spec.name}.log', 'w', encoding='utf-8')
                self._files.append(f)
                stdout = f
            else:
                stdout = subprocess.PIPE
            proc = subprocess.Popen(cmd, env=self.env, stdout=stdout,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True,
                                    preexec_fn=_die_with_parent if sys.platform == 'linux'
                                    else None)
            self.procs[spec.name] = proc
            self._out(f'[bringup] started {spec.name} (pid {proc.pid})')
            if stdout is subprocess.PIPE:
                t = threading.Thread(target=self._pump, args=(spec.name, proc), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stdout.readline, b''):
            self._out(f'[{name}] {raw.decode("utf-8", "replace").rstrip()}')

    def poll(self) -> Dict[str, int]:
        """Processes that exited since the last call: name -> exit code."""
        new = {}
        for name, proc in self.procs.items():
            if name not in self.exited and proc.poll() is not None:
                self.exited[name] = proc.returncode
                new[name] = proc.returncode
                self._out(f'[bringup] {name} exited with code {proc.returncode}')
        return new

    @property
    def running(self) -> List[str]:
        """Names of the processes still running."""
        return [n for n, p in self.procs.items() if p.poll() is None]

    def stop(self, timeout: float = 10.0) -> Dict[str, int]:
        """Stop every process (SIGINT, then SIGTERM, then SIGKILL); name -> exit code."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [(n, p) for n, p in self.procs.items() if p.poll() is None]
            if not alive:
                break
            if sig != signal.SIGINT:
                self._out(f'[bringup] {", ".join(n for n, _ in alive)} still running: '
                          f'sending {sig.name}')
            for _, proc in reversed(alive):   # the policy first: it stops the robot
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + (timeout if sig != signal.SIGKILL else 5.0)
            while time.monotonic() < deadline and any(p.poll() is None for _, p in alive):
                time.sleep(0.05)
        for t in self._threads:
            t.join(timeout=2.0)
        for f in self._files:
            f.close()
        self._tmp.cleanup()
        self.poll()
        return {n: p.returncode for n, p in self.procs.items()}


def run_until_signal(supervisor: Supervisor, stop_timeout: float = 10.0) -> int:
    """Start, wait for SIGINT / SIGTERM (or for every node to exit), stop; exit code 0 when
    every node stopped cleanly (exit 0)."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *a: stop.set())
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        supervisor.start()
        while not stop.is_set():
            supervisor.poll()
            if not supervisor.running:
                supervisor._out('[bringup] every node has exited')
                break
            stop.wait(0.2)
        if stop.is_set():
            supervisor._out('[bringup] stopping')
        codes = supervisor.stop(stop_timeout)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    bad = {n: c for n, c in codes.items() if c != 0}
    if bad:
        supervisor._out('[bringup] not clean: ' + ', '.join(f'{n} exit {c}'
                                                            for n, c in bad.items()))
        return 1
    supervisor._out('[bringup] every node stopped cleanly')
    return 0
