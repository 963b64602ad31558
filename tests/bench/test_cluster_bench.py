"""bench/cluster_bench.py cannot rot: one smoke round with real engines and nodes.

Speed is never asserted (the figures are in docs/benchmarks.md); this checks that
every measurement ran and gave a usable number.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_cluster_bench_smoke_gives_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "cluster_bench.py"),
            "--smoke",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=230,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "cluster-smoke.json").read_text())
    assert (tmp_path / "cluster-smoke.md").read_text().startswith("# kitpy cluster benchmarks")
    for key in ("rpc_local", "rpc_remote", "fetch_local", "fetch_remote"):
        row = result["latency"][key]
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["calls"] > 0, (key, row)
    writes = result["writes"]
    for key in (
        "engine_100_writers",
        "objects_64_writers",
        "objects_1_writer",
        "bare_psycopg_commit_per_write",
    ):
        assert writes[key]["median"] > 0, (key, writes[key])
    broadcast = result["broadcast"]
    assert broadcast["three_nodes"]["median"] > 0 and broadcast["one_process"]["median"] > 0
    failover = result["failover"]["seconds"]
    assert failover["min"] > 0  # an answer came back from the survivor
    workers = result["workers"]
    assert workers["workers_1"]["median"] > 0 and workers["workers_2"]["median"] > 0
