"""Latency of each deployed part and of a whole control step, per backend and thread count.

A control step is what runs every tick: ``vision`` then ``policy_core`` (the language part
runs once per new instruction and is cached). Batch 1, fixed inputs, warm-up first; times
are wall-clock per call with `time.perf_counter`.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Sequence

import numpy as np

from .results import machine_description
from ..inference.backend import BackendUnavailable, load_backend


def percentiles(samples_s: List[float]) -> Dict[str, float]:
    """p50 / p90 / p99 / mean of latencies, in milliseconds."""
    ms = np.asarray(samples_s) * 1e3
    return {'p50_ms': float(np.percentile(ms, 50)), 'p90_ms': float(np.percentile(ms, 90)),
            'p99_ms': float(np.percentile(ms, 99)), 'mean_ms': float(ms.mean()),
            'n': int(len(ms))}


def _time(fn: Callable[[], object], iterations: int, warmup: int) -> Dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return percentiles(samples)


def bench_backend(checkpoint, backend: str, threads: int, iterations: int,
                  warmup: int = 20) -> Dict[str, Dict[str, float]]:
    """Latency of vision, language, policy_core and the control step for one backend."""
    be = load_backend(checkpoint, backend, threads=threads)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(1, *be.spec.image_shape), dtype=np.uint8)
    ids, mask = be.tokenizer(['open the drawer'])
    proprio = np.zeros((1, be.spec.proprio_dim), dtype=np.float32)
    visual = be.encode_vision(images)
    language = be.encode_language(ids, mask)
    return {
        'vision': _time(lambda: be.encode_vision(images), iterations, warmup),
        'language': _time(lambda: be.encode_language(ids, mask), iterations // 2, warmup),
        'policy_core': _time(lambda: be.core(visual, language, mask, proprio), iterations,
                             warmup),
        'control_step': _time(lambda: be.core(be.encode_vision(images), language, mask,
                                              proprio), iterations, warmup),
        'describe': be.describe(),
    }


def run_benchmark(checkpoint, backends: Sequence[str], threads: Sequence[int],
                  iterations: int, log=print) -> dict:
    """Benchmark every (backend, threads) pair; unavailable backends are recorded as
    skipped with the reason. Adds torch/onnxruntime control-step ratios per thread count."""
    results: Dict[str, dict] = {}
    for backend in backends:
        for n in threads:
            key = f'{backend}/threads={n}'
            try:
                results[key] = bench_backend(checkpoint, backend, n, iterations)
            except BackendUnavailable as exc:
                results[key] = {'skipped': str(exc)}
                log(f'{key}: skipped ({exc})')
                continue
            r = results[key]
            log(f'{key:<26} vision {r["vision"]["p50_ms"]:6.2f}  language '
                f'{r["language"]["p50_ms"]:6.2f}  core {r["policy_core"]["p50_ms"]:6.2f}  '
                f'step p50 {r["control_step"]["p50_ms"]:6.2f} p99 '
                f'{r["control_step"]["p99_ms"]:6.2f} ms')
    ratios = {}
    for n in threads:
        t = results.get(f'torch/threads={n}', {}).get('control_step')
        o = results.get(f'onnxruntime/threads={n}', {}).get('control_step')
        if t and o:
            ratios[f'threads={n}'] = t['p50_ms'] / o['p50_ms']
    return {'checkpoint': str(checkpoint), 'machine': machine_description(),
            'batch': 1, 'iterations': iterations, 'unix_time': int(time.time()),
            'results': results, 'torch_over_onnxruntime_step_p50': ratios}
