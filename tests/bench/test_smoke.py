"""The benchmark suite cannot rot: one short smoke round of ``bench/run.py``.

Speed is never asserted here (see docs/benchmarks.md for the figures); this only checks
that every server of the smoke set answers every scenario with a usable number. The
smoke round needs nothing beyond the test dependencies: it runs kitpy and the bare
anyio+h11+wsproto loop, and falls back to a Python HTTP load loop when wrk is missing.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FULL = ("hello", "json", "ws_echo", "broadcast", "idle_memory", "startup")
ROUTES = ("hello", "json", "startup")


def kitpy_serves() -> bool:
    """Whether ``kitpy serve`` exists yet (the server lands after this suite)."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("kitpy.cli.main", "kitpy.server.serve")
    )


def test_smoke_round_gives_a_number_for_every_server_and_scenario(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=55,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "smoke.json").read_text())
    assert (tmp_path / "smoke.md").read_text().startswith("# kitpy benchmarks")

    expected = [(scenario, "bare") for scenario in FULL]
    if kitpy_serves():
        expected += [(scenario, "kitpy") for scenario in FULL]
        expected += [(s, server) for server in ("kitpy-r1000",) for s in ROUTES]
    rows = {(row["scenario"], row["server"]): row for row in result["rows"]}
    for key in expected:
        assert key in rows, f"no row for {key}"
        row = rows[key]
        assert "error" not in row, f"{key}: {row['error']}"
        if key[0] == "idle_memory":
            # 50 sockets in a smoke round: their RSS growth is within what the allocator
            # hands back meanwhile, so the sign means nothing here (every socket did
            # connect, or the run raised). tests/reliability/test_idle_memory.py bounds
            # the cost of an idle socket with tracemalloc.
            assert math.isfinite(row["value"]), row
        else:
            assert row["value"] > 0, row
    if result["meta"]["load_tool"] != "wrk":
        assert any("wrk is not installed" in note for note in result["meta"]["notes"])
