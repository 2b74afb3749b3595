"""What every benchmark writes beside its numbers: the machine it ran on, and the results
file written atomically. A leaf module (standard library only), shared by the model,
training and ROS benchmarks of every layer."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def machine_description() -> str:
    """CPU model and core count, for the results file."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return f'{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}'


def write_results(doc: dict, out) -> Path:
    """Write a benchmark's JSON to `out` (parents created); an interrupted write leaves the
    previous file, not half of a new one."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps(doc, indent=2), encoding='utf-8')
    tmp.replace(path)
    return path
