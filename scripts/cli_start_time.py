"""Start-up time of the ``hybrid-vla`` command line, now and at another commit, measured in
one run with the two taking turns (docs/benchmarks.md, "Command-line start").

    .venv/bin/python scripts/cli_start_time.py --before adc9711 --runs 10

Each run is a fresh interpreter running ``hybrid-vla <ARGS>`` (default ``say --help``) from
a checkout of that commit (a temporary git worktree for --before). Writes
bench/results/cli_start.json and prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = """
import sys
sys.path.insert(0, sys.argv[1])
try:
    from hybrid_vla_ros.cli import main
    code = main(sys.argv[2:])
except SystemExit as exc:   # --help exits from argparse
    code = exc.code
sys.stdout.flush()
print('TORCH' if 'torch' in sys.modules else 'NOTORCH', file=sys.stderr)
sys.exit(code)
"""


def time_once(root: Path, args) -> tuple:
    """(wall seconds, whether torch was imported) of one CLI call from checkout `root`."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, '-c', RUN, str(root), *args], capture_output=True,
                       text=True, timeout=120)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f'{root}: hybrid-vla {" ".join(args)} failed:\n{r.stderr[-2000:]}')
    return seconds, r.stderr.strip().splitlines()[-1] == 'TORCH'


def main() -> int:
    """Time both checkouts in turns, write the JSON, print the ratio."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--before', required=True, help='commit to compare with (e.g. adc9711)')
    p.add_argument('--runs', type=int, default=10, help='runs of each (default 10)')
    p.add_argument('--out', default=str(REPO / 'bench' / 'results' / 'cli_start.json'))
    p.add_argument('args', nargs='*', default=['say', '--help'])
    a = p.parse_args()
    args = a.args or ['say', '--help']
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / 'before'
        subprocess.run(['git', '-C', str(REPO), 'worktree', 'add', '--detach', str(before),
                        a.before], check=True, capture_output=True)
        try:
            times = {'before': [], 'after': []}
            torch = {}
            time_once(before, args), time_once(REPO, args)   # warm the file cache
            for _ in range(a.runs):
                for name, root in (('before', before), ('after', REPO)):
                    seconds, imported = time_once(root, args)
                    times[name].append(seconds)
                    torch[name] = imported
        finally:
            subprocess.run(['git', '-C', str(REPO), 'worktree', 'remove', '--force',
                            str(before)], capture_output=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    doc = {'command': f'hybrid-vla {" ".join(args)}', 'before_commit': a.before,
           'after_commit': subprocess.run(['git', '-C', str(REPO), 'rev-parse', '--short',
                                           'HEAD'], capture_output=True,
                                          text=True).stdout.strip(),
           'runs': a.runs, 'seconds': times, 'median_s': med,
           'imports_torch': torch, 'ratio_before_over_after': med['before'] / med['after'],
           'cpus': os.cpu_count(), 'unix_time': int(time.time())}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2), encoding='utf-8')
    print(f'hybrid-vla {" ".join(args)}: before ({a.before}) median {med["before"]:.2f} s '
          f'(torch imported: {torch["before"]}), after {med["after"]:.2f} s (torch imported: '
          f'{torch["after"]}): {doc["ratio_before_over_after"]:.1f}x faster; {a.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
