"""``hybrid-vla demo`` (``make demo``): the simulated robot and the three policy nodes as
separate processes, driven the way a user would drive a robot.

For each task of the suite and each episode the driver flushes the policy (``/policy/reset``),
sets the simulator's task and seed (parameters), says the instruction on ``instruction``
(a training phrasing, then a held-out one), waits until the instruction node has encoded
it, and starts the episode (``/sim_robot/reset``); the simulator runs lock-step, so the
result does not depend on how busy the machine is. Camera-to-command latency is measured at
the driver from the command stamps. A time budget keeps the whole run bounded: tasks that no
longer fit are skipped and reported as such.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ...schema import ConfigError


def _sim_settings(checkpoint: str) -> dict:
    """Simulator image size and cameras that match the checkpoint."""
    from ...inference.spec import read_spec
    spec = read_spec(checkpoint)
    cam = spec.cameras[0]
    return {'image_size': int(cam['height']), 'cameras': [c['name'] for c in spec.cameras]}


def start_graph(checkpoint: str, sim: Dict[str, object], policy: Dict[str, object],
                backend: str = 'onnxruntime', log_dir: Optional[str] = None,
                params_file: str = ''):
    """Start the ``sim`` node set with extra parameters; returns the running Supervisor."""
    from .bringup import Supervisor
    from .nodeset import process_specs
    specs = process_specs('sim', {'checkpoint': checkpoint, 'backend': backend,
                                  'params_file': params_file},
                          extra={'sim_robot': sim, 'policy': policy})
    supervisor = Supervisor(specs, log_dir=log_dir)
    supervisor.start()
    return supervisor


def wait_ready(driver, supervisor, timeout: float = 90.0, nodes=('/perception',
               '/instruction', '/policy', '/sim_robot')) -> None:
    """Wait until every node reports on /diagnostics; ConfigError names a node that died or
    reports a fault (a missing or unexported checkpoint, ...)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        driver.spin_for(0.2)
        dead = supervisor.poll()
        if dead:
            raise ConfigError(f'{", ".join(dead)} exited during start-up (see its log)')
        faults = [f'{n}: {driver.values(n)["fault"]}' for n in nodes
                  if driver.values(n).get('fault')]
        if faults:
            raise ConfigError('a node cannot run: ' + '; '.join(faults))
        if all(driver.status(n) is not None for n in nodes):
            return
    missing = [n for n in nodes if driver.status(n) is None]
    raise ConfigError(f'no diagnostics from {", ".join(missing)} after {timeout:.0f} s')


def run_episode(driver, task: str, seed: int, instruction: str, max_steps: int,
                step_timeout: float = 0.5) -> dict:
    """One episode through the topics; returns {task, seed, instruction, success, steps,
    seconds} (success None when no result came in time)."""
    driver.trigger('policy/reset')
    results = driver.set_params('sim_robot', {'task': task, 'seed': seed})
    if not all(r.successful for r in results):
        raise ConfigError(f'sim_robot refused task {task!r}: '
                          + '; '.join(r.reason for r in results))
    if not driver.say(instruction, ack_timeout=10.0):
        raise ConfigError('the instruction node did not answer the instruction')
    before = len(driver.results)
    t0 = time.monotonic()
    response = driver.trigger('sim_robot/reset')
    if response is None or not response.success:
        raise ConfigError(f'sim_robot/reset failed: '
                          f'{response.message if response else "no answer"}')
    done = driver.spin_until(lambda: len(driver.results) > before,
                             10.0 + max_steps * step_timeout)
    row = {'task': task, 'seed': seed, 'instruction': instruction, 'success': None,
           'steps': None, 'seconds': time.monotonic() - t0}
    if done:
        values = {kv.key: kv.value for kv in driver.results[-1].values}
        row.update(success=values.get('success') == 'true', steps=int(values.get('steps', 0)))
    return row


def latency_summary(latencies: Sequence[float]) -> Dict[str, float]:
    """p50 / p90 / p99 / max in ms of a list of seconds."""
    if not latencies:
        return {}
    arr = np.asarray(latencies) * 1e3
    return {'p50_ms': float(np.percentile(arr, 50)), 'p90_ms': float(np.percentile(arr, 90)),
            'p99_ms': float(np.percentile(arr, 99)), 'max_ms': float(arr.max()),
            'samples': int(arr.size)}


def run_demo(checkpoint: str, suite: str = 'metaworld', tasks: Optional[List[str]] = None,
             episodes: int = 2, seed: int = 1000, backend: str = 'onnxruntime',
             budget: float = 240.0, log_dir: Optional[str] = None, log=print) -> dict:
    """Run the demo (see the module docstring); returns the results document."""
    from ...sim.policy_step import sim_parameter_file
    from ...sim.tasks import get_task, select_tasks
    from .driver import GraphDriver
    t_start = time.monotonic()
    names = select_tasks(suite, tasks)
    specs = {n: get_task(suite, n) for n in names}
    sim = {'suite': suite, 'mode': 'lockstep', 'start_paused': True, 'auto_reset': False,
           **_sim_settings(checkpoint)}
    policy = {'autostart': True, 'dry_run': False, 'tick_source': 'features',
              'async_inference': False}
    log(f'starting the simulated robot, perception, instruction and policy nodes '
        f'({checkpoint}, {backend}); node logs in {log_dir}')
    # The suite's parameter file: its safety limits are the ones eval-sim applies too.
    supervisor = start_graph(checkpoint, sim, policy, backend, log_dir,
                             params_file=str(sim_parameter_file(suite)))
    driver = GraphDriver()
    rows: List[dict] = []
    skipped: List[str] = []
    try:
        wait_ready(driver, supervisor)
        log(f'graph ready after {time.monotonic() - t_start:.1f} s; running {len(names)} '
            f'tasks x {episodes} episodes')
        log(f'{"task":<22} {"seed":>5}  {"instruction":<44} {"result":<8} {"steps":>5}')
        driver.clear_measurements()
        for i in range(episodes):
            for name in names:
                task = specs[name]
                expected = (time.monotonic() - t_start) + 10.0
                if expected > budget:
                    skipped.append(f'{name}#{i}')
                    continue
                held_out = i % 2 == 1
                phrasings = task.held_out if held_out else task.instructions
                text = phrasings[(i // 2) % len(phrasings)]
                row = run_episode(driver, name, seed + i, text, task.max_steps)
                row['held_out'] = held_out
                rows.append(row)
                result = {True: 'success', False: 'failure', None: 'timeout'}[row['success']]
                log(f'{name:<22} {seed + i:>5}  {text[:44]:<44} {result:<8} '
                    f'{row["steps"] if row["steps"] is not None else "-":>5}')
        latency = latency_summary(driver.latencies())
        policy_values = driver.values('/policy')
    finally:
        driver.close()
        codes = supervisor.stop()
    done = [r for r in rows if r['success'] is not None]
    successes = sum(bool(r['success']) for r in done)
    doc = {'checkpoint': str(checkpoint), 'suite': suite, 'backend': backend,
           'episodes': rows, 'skipped': skipped, 'successes': successes,
           'completed': len(done), 'success_rate': successes / len(done) if done else 0.0,
           'latency': latency, 'policy_diagnostics': policy_values,
           'seconds': time.monotonic() - t_start, 'exit_codes': codes}
    return doc


def print_summary(doc: dict, log=print) -> None:
    """The demo's closing lines: success rate and latency percentiles."""
    log('')
    log(f'success rate: {doc["successes"]}/{doc["completed"]} = {doc["success_rate"]:.0%} '
        f'({doc["suite"]}, {doc["backend"]})')
    for split, held in (('training phrasings', False), ('held-out phrasings', True)):
        rows = [r for r in doc['episodes'] if r.get('held_out') == held and
                r['success'] is not None]
        if rows:
            log(f'  {split:<20} {sum(r["success"] for r in rows)}/{len(rows)}')
    lat = doc['latency']
    if lat:
        log(f'camera -> command latency over {lat["samples"]} steps: p50 {lat["p50_ms"]:.1f} '
            f'ms, p90 {lat["p90_ms"]:.1f} ms, p99 {lat["p99_ms"]:.1f} ms, max '
            f'{lat["max_ms"]:.1f} ms')
    if doc['skipped']:
        log(f'skipped (time budget): {", ".join(doc["skipped"])}')
    log(f'finished in {doc["seconds"]:.0f} s')


def write_doc(doc: dict, path) -> Path:
    """Write the results JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str), encoding='utf-8')
    return path
