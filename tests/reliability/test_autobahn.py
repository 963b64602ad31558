"""The Autobahn TestSuite (through kosoku) against a real ``kitpy serve``: cases 1.x-10.x.

The route is the echo example of docs/endpoints.md, the settings those of the
conformance run in bench/autobahn.py (messages up to 16 MiB, any Origin, no keepalive
ping: Autobahn's client takes an unexpected ping as a failure). Every case must be OK
(INFORMATIONAL allowed: the spec leaves those open) and so must its close; NON-STRICT
is a failure here. The server's log must hold no traceback: a client breaking the
protocol is not a server error. ``python bench/autobahn.py`` runs the whole suite,
12.x and 13.x (compression) included, and writes the report.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import kosoku  # in the test extra
import pytest

from .conftest import module_server
from .helpers import Server


def _conformance_run() -> ModuleType:
    """bench/autobahn.py, whose site (route and settings) this test serves too."""
    path = Path(__file__).resolve().parents[2] / "bench" / "autobahn.py"
    spec = importlib.util.spec_from_file_location("kitpy_bench_autobahn", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


AUTOBAHN = _conformance_run()
#: The documented echo route, and the conformance run's settings.
ECHO_SITE = {"routes/echo.py": AUTOBAHN.ECHO_ROUTE}
CONFORMANCE_CONFIG = AUTOBAHN.KITPY_TOML
#: Cases 1.x to 10.x (the suite has no 8.x); 12.x and 13.x are bench/autobahn.py's.
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
ACCEPTED = {"OK", "INFORMATIONAL"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory, ECHO_SITE, CONFORMANCE_CONFIG)


def run_cases(url: str, cases: list[str]) -> list[object]:
    """kosoku's results for ``cases`` (its FailureError carries them too)."""
    try:
        return list(asyncio.run(kosoku.run_fuzzingclient(url, cases=cases, concurrency=4)))
    except kosoku.FailureError as failure:
        return list(failure.results)


@pytest.mark.timeout(240)
def test_autobahn_cases_1_to_10_are_strictly_ok(server: Server) -> None:
    results = run_cases(f"ws://127.0.0.1:{server.port}/echo", CASES)
    assert len(results) > 290  # the suite ran (301 cases in kosoku 0.1)
    bad = [
        f"{r.case_id}: {r.behavior.value} / close {r.behavior_close.value}"  # type: ignore[attr-defined]
        f" ({r.result}; {r.result_close})"  # type: ignore[attr-defined]
        for r in results
        if r.behavior.value not in ACCEPTED  # type: ignore[attr-defined]
        or r.behavior_close.value not in ACCEPTED  # type: ignore[attr-defined]
    ]
    assert not bad, "\n".join(bad)
    log = server.log()
    assert "Traceback" not in log and "task failed" not in log, log[-4000:]
