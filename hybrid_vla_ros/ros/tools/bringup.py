"""``hybrid-vla bringup``: start a node set as separate processes, stop them cleanly.

The stand-in for ``ros2 launch`` where `launch` is not installable. The processes come from
`nodeset.process_specs` (the launch files' declaration); each runs ``python -m <module>
--ros-args ...`` in its own session. A node that dies is started again after
`respawn_delay`, at most `max_restarts` times (launch's ``respawn``); every death and
restart is said on stdout and, with `SupervisorDiagnostics`, on ``/diagnostics`` as
``/bringup``. A terminal Ctrl-C reaches only the supervisor, which then stops the nodes in
order: SIGINT to each (the nodes stop cleanly, the policy sending a
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

from ...worker_processes import describe_exit
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
        max_restarts: how many times a node that dies is started again (0: never).
        respawn_delay: seconds between a death and the restart.

    """

    def __init__(self, specs: List[ProcessSpec], env: Optional[Dict[str, str]] = None,
                 log_dir: Optional[str] = None, out: Callable[[str], None] = None,
                 max_restarts: int = 0, respawn_delay: float = 2.0):
        self.specs = specs
        self.max_restarts = int(max_restarts)
        self.respawn_delay = float(respawn_delay)
        self.restarts: Dict[str, int] = {s.name: 0 for s in specs}
        self.deaths: Dict[str, List[tuple]] = {s.name: [] for s in specs}
        self._pending: Dict[str, float] = {}   # name -> monotonic time of the restart
        self._stopping = False
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
            self._launch(spec)

    def _launch(self, spec: ProcessSpec) -> None:
        cmd = spec.command(self._tmp.name)
        if self.log_dir is not None:
            # A restart appends to the log of the process it replaces.
            mode = 'a' if spec.name in self.procs else 'w'
            f = open(self.log_dir / f'{spec.name}.log', mode, encoding='utf-8')
            self._files.append(f)
            stdout = f
        else:
            stdout = subprocess.PIPE
        proc = subprocess.Popen(cmd, env=dict(self.env, **spec.environment()), stdout=stdout,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == 'linux'
                                else None)
        self.procs[spec.name] = proc
        self.exited.pop(spec.name, None)
        self._out(f'[bringup] started {spec.name} (pid {proc.pid})')
        if stdout is subprocess.PIPE:
            t = threading.Thread(target=self._pump, args=(spec.name, proc), daemon=True)
            t.start()
            self._threads.append(t)

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stdout.readline, b''):
            self._out(f'[{name}] {raw.decode("utf-8", "replace").rstrip()}')

    def poll(self) -> Dict[str, int]:
        """Processes that exited since the last call: name -> exit code. A dead node is
        restarted after `respawn_delay` while it has restarts left."""
        new = {}
        now = time.monotonic()
        for name, proc in self.procs.items():
            if name not in self.exited and proc.poll() is not None:
                self.exited[name] = proc.returncode
                new[name] = proc.returncode
                if self._stopping:
                    self._out(f'[bringup] {name} exited with code {proc.returncode}')
                    continue
                self.deaths[name].append((time.time(), proc.returncode))
                left = self.max_restarts - self.restarts[name]
                if left > 0:
                    self._pending[name] = now + self.respawn_delay
                    self._out(f'[bringup] {name} died ({describe_exit(proc.returncode)}); '
                              f'restarting in {self.respawn_delay:g} s (restart '
                              f'{self.restarts[name] + 1} of {self.max_restarts})')
                else:
                    self._out(f'[bringup] {name} exited with code {proc.returncode}'
                              + ('; no restarts left' if self.max_restarts else ''))
        for name, when in list(self._pending.items()):
            if now >= when and not self._stopping:
                del self._pending[name]
                self.restarts[name] += 1
                self._launch(next(s for s in self.specs if s.name == name))
        return new

    def status(self) -> Dict[str, dict]:
        """name -> {'state': running | restarting | dead, 'restarts', 'deaths', 'last_exit'}."""
        out = {}
        for spec in self.specs:
            name = spec.name
            proc = self.procs.get(name)
            alive = proc is not None and proc.poll() is None
            state = ('running' if alive else 'restarting' if name in self._pending
                     else 'dead')
            deaths = self.deaths[name]
            out[name] = {'state': state, 'restarts': self.restarts[name],
                         'deaths': len(deaths),
                         'last_exit': describe_exit(deaths[-1][1]) if deaths else ''}
        return out

    @property
    def running(self) -> List[str]:
        """Names of the processes still running."""
        return [n for n, p in self.procs.items() if p.poll() is None]

    def stop(self, timeout: float = 10.0) -> Dict[str, int]:
        """Stop every process (SIGINT, then SIGTERM, then SIGKILL); name -> exit code."""
        self._stopping = True
        self._pending.clear()
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


class SupervisorDiagnostics:
    """Publishes the supervisor's view of its nodes on ``/diagnostics`` as ``/bringup``:
    one status per node (OK running; ERROR dead or restarting, with the exit and the
    restart count), so a supervisor-level failure shows beside the nodes' own."""

    def __init__(self, supervisor: Supervisor, namespace: str = ''):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray

        from .. import qos
        self._supervisor = supervisor
        self._context = rclpy.Context()
        rclpy.init(context=self._context)
        self._node = rclpy.create_node('bringup', namespace=namespace or None,
                                       context=self._context)
        self._pub = self._node.create_publisher(DiagnosticArray, '/diagnostics',
                                                qos.DIAGNOSTICS)

    def publish(self) -> None:
        """One DiagnosticArray with a status per node."""
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        for name, st in self._supervisor.status().items():
            if st['state'] == 'running':
                level, message = 0, (f'running (restarted {st["restarts"]} times)'
                                     if st['restarts'] else 'running')
            elif st['state'] == 'restarting':
                level, message = 2, (f'died ({st["last_exit"]}); restarting '
                                     f'({st["restarts"] + 1} of '
                                     f'{self._supervisor.max_restarts})')
            else:
                level, message = 2, (f'dead ({st["last_exit"] or "exited"}); not restarted'
                                     + (' (no restarts left)'
                                        if self._supervisor.max_restarts else ''))
            status = DiagnosticStatus(level=bytes([level]), message=message,
                                      name=f'{self._node.get_fully_qualified_name()}: {name}',
                                      hardware_id=name)
            status.values = [KeyValue(key=k, value=str(v)) for k, v in st.items()]
            array.status.append(status)
        try:
            self._pub.publish(array)
        except Exception:  # the context is shutting down
            pass

    def close(self) -> None:
        """Destroy the node and its context."""
        import rclpy
        self._node.destroy_node()
        rclpy.try_shutdown(context=self._context)


def run_until_signal(supervisor: Supervisor, stop_timeout: float = 10.0,
                     diagnostics: bool = False, namespace: str = '') -> int:
    """Start, wait for SIGINT / SIGTERM (or for every node to exit for good), stop; exit
    code 0 when every node stopped cleanly (exit 0). With `diagnostics`, the supervisor's
    node status goes to ``/diagnostics`` once a second and at every change."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *a: stop.set())
                for s in (signal.SIGINT, signal.SIGTERM)}
    reporter = SupervisorDiagnostics(supervisor, namespace) if diagnostics else None
    try:
        supervisor.start()
        last_report = 0.0
        while not stop.is_set():
            changed = supervisor.poll()
            if reporter is not None and (changed or time.monotonic() - last_report > 1.0):
                reporter.publish()
                last_report = time.monotonic()
            if not supervisor.running and not supervisor._pending:
                supervisor._out('[bringup] every node has exited')
                break
            stop.wait(0.2)
        if stop.is_set():
            supervisor._out('[bringup] stopping')
        codes = supervisor.stop(stop_timeout)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if reporter is not None:
            reporter.close()
    bad = {n: c for n, c in codes.items() if c != 0}
    if bad:
        supervisor._out('[bringup] not clean: ' + ', '.join(f'{n} exit {c}'
                                                            for n, c in bad.items()))
        return 1
    supervisor._out('[bringup] every node stopped cleanly')
    return 0
