"""``hybrid-vla bench-ros`` (part of ``make bench``): end-to-end camera-to-command latency of
the running graph at a fixed rate, the three nodes and the simulated robot as separate
processes.

The simulated robot runs in real time at `rate` Hz (one observation per tick, stamped when
rendered); the perception, instruction and policy nodes run with the demo's parameters. A
driver process says one instruction, lets the graph warm up, then records for `duration`
seconds: for every observation stamp, the receive time of the command carrying that stamp.
Reported: latency p50 / p90 / p99 / max (ms) and the fraction of missed control ticks
(observations whose command did not arrive within one period), beside what the nodes
report about themselves on /diagnostics (vision encode, policy core, simulator step, and the
simulator's own missed-tick count).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Optional

from .demo import _sim_settings, latency_summary, start_graph, wait_ready


def _untrained_checkpoint(config: str, directory: str) -> str:
    """An exported untrained checkpoint of `config` (latency does not depend on weights)."""
    from ...export.onnx_export import export_checkpoint
    from ...model import build_policy, load_model_config, save_checkpoint
    path = Path(directory) / Path(config).stem
    save_checkpoint(build_policy(load_model_config(config)), path)
    export_checkpoint(path, log=lambda *a: None)
    return str(path)


def run_bench(checkpoint: Optional[str] = None, config: Optional[str] = None,
              duration: float = 60.0, rate: float = 20.0, warmup: float = 5.0,
              backend: str = 'onnxruntime', async_inference: bool = False,
              task: str = 'drawer-open', log_dir: Optional[str] = None, log=print) -> dict:
    """Run the benchmark; returns the results document (see the module docstring)."""
    from ...inference.manifest import MANIFEST_FILE, ONNX_DIR
    from .driver import GraphDriver
    with tempfile.TemporaryDirectory() as tmp:
        if checkpoint is None:
            log(f'building an untrained checkpoint of {config} (latency does not depend on '
                'the weights)')
            checkpoint = _untrained_checkpoint(config, tmp)
        elif not (Path(checkpoint) / ONNX_DIR / MANIFEST_FILE).is_file():
            from ...export.onnx_export import export_checkpoint
            export_checkpoint(checkpoint)
        sim = {'mode': 'realtime', 'rate': float(rate), 'auto_reset': True, 'task': task,
               'start_paused': False, **_sim_settings(checkpoint)}
        policy = {'autostart': True, 'tick_source': 'features',
                  'async_inference': bool(async_inference), 'control_rate': float(rate)}
        load_before = os.getloadavg()
        supervisor = start_graph(checkpoint, sim, policy, backend,
                                 log_dir=log_dir or str(Path(tmp) / 'logs'))
        driver = GraphDriver()
        try:
            wait_ready(driver, supervisor)
            driver.say('open the drawer', ack_timeout=10.0)
            driver.spin_for(warmup)
            driver.clear_measurements()
            sim_missed_before = int(driver.values('/sim_robot').get('missed_ticks', 0))
            t0 = time.monotonic()
            driver.spin_for(duration)
            elapsed = time.monotonic() - t0
            latencies = driver.latencies()
            missed, judged = driver.missed(deadline=1.0 / rate)
            nodes = {n: driver.values(f'/{n}') for n in ('perception', 'policy', 'sim_robot')}
            sim_missed = int(nodes['sim_robot'].get('missed_ticks', 0)) - sim_missed_before
        finally:
            driver.close()
            supervisor.stop()
        load_after = os.getloadavg()
    summary = latency_summary(latencies)
    return {
        'benchmark': 'camera -> command latency, three nodes + simulated robot as separate '
                     'processes',
        'checkpoint': checkpoint if config is None else f'untrained {config}',
        'backend': backend, 'rate_hz': rate, 'duration_s': elapsed, 'warmup_s': warmup,
        'scheduler': 'replan every 4 (config/ros/sim_demo.yaml)',
        'async_inference': bool(async_inference), 'task': task,
        'latency_ms': summary, 'observations': judged, 'missed_ticks': missed,
        'missed_fraction': missed / judged if judged else None,
        'targets': {'p50_ms': 15.0, 'p99_ms': 40.0, 'missed_fraction': 0.01},
        'definitions': {
            'latency': 'command receive time at the driver - the stamp of the camera image '
                       'it answers (the command header carries that stamp)',
            'missed_ticks': 'observations whose command did not arrive within one period '
                            '(1 / rate) of the image stamp',
            'sim_missed_ticks_in_window': 'ticks at which the simulated robot had not yet '
                                          'received the answer to its previous observation '
                                          '(also counts the robot\'s own timer jitter)'},
        'node_diagnostics': {
            'perception_encode_p50_ms': nodes['perception'].get('encode_p50_ms'),
            'policy_inference_p50_ms': nodes['policy'].get('inference_p50_ms'),
            'policy_latency_p50_ms': nodes['policy'].get('latency_p50_ms'),
            'sim_step_p50_ms': nodes['sim_robot'].get('step_p50_ms'),
            'sim_missed_ticks_in_window': sim_missed},
        'host': {'machine': platform.machine(), 'cpus': os.cpu_count(),
                 'loadavg_before': load_before, 'loadavg_after': load_after},
    }
