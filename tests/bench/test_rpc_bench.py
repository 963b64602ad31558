"""bench/rpc_bench.py cannot rot: one tiny round gives a positive figure for every row.

Speed is never asserted here; docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROWS = ("rpc, one object", "fetch, one object", "rpc, 20 objects", "fetch, 20 objects")


def test_one_short_round_measures_rpc_and_fetch_side_by_side() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "rpc_bench.py"),
            *("--callers", "4", "--objects", "20", "--seconds", "0.2", "--rounds", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = {}
    for line in done.stdout.splitlines():
        label, _, rest = line.partition(":")
        if label in ROWS:
            figures[label] = float(rest.split()[0])
    assert set(figures) == set(ROWS), done.stdout
    assert all(value > 0 for value in figures.values()), figures
    assert "ratio rpc/fetch, one object:" in done.stdout
