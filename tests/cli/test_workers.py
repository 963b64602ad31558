"""``kitpy serve --workers N``: real processes sharing one port, stopped by signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TIMEOUT = 60.0
READY = re.compile(r"^kitpy serving http://127\.0\.0\.1:(\d+)$")
PIDS = re.compile(r"kitpy: (\d+) workers \(pids ([\d, ]+)\)")

HELLO = 'import os\n\nasync def get(event):\n    return {"body": {"pid": os.getpid()}}\n'
COUNTER = """
from kitpy import DurableObject

class Counter(DurableObject):
    async def fetch(self, request):
        return "x"
"""


def make_site(root: Path, *, objects: bool = False) -> Path:
    (root / "routes").mkdir(parents=True)
    (root / "routes" / "index.py").write_text(HELLO)
    if objects:
        (root / "objects").mkdir()
        (root / "objects" / "counter.py").write_text(COUNTER)
        (root / "kitpy.toml").write_text('[objects]\ncounters = "objects.counter:Counter"\n')
    return root


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITPY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def kitpy_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kitpy", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or clean_env(),
    )


class Served:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline().strip()
        found = READY.match(line)
        if not found:
            process.kill()
            pytest.fail(f"no ready line: {line!r}\n{process.communicate()[1]}")
        self.base = f"http://127.0.0.1:{found.group(1)}"
        pids = PIDS.search(process.stderr.readline())
        assert pids, "the parent names its workers"
        self.workers = [int(pid) for pid in pids.group(2).split(", ")]

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            _, err = self.process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is a failure
            self.process.kill()
            pytest.fail("kitpy serve --workers did not stop")
        return self.process.returncode, err


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    process = kitpy_serve(str(make_site(tmp_path / "site")), "--port", "0", "--workers", "2")
    served = Served(process)
    yield served
    if process.poll() is None:
        process.kill()
        process.wait()
    for pid in served.workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def pids_answering(base: str, want: int, tries: int = 200) -> set[int]:
    seen: set[int] = set()
    for _ in range(tries):  # a new connection each time: the kernel spreads them
        seen.add(httpx.get(base + "/", timeout=10).json()["pid"])
        if len(seen) == want:
            break
    return seen


def gone(pid: int) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_two_workers_share_one_port_and_stop_on_sigterm(served: Served) -> None:
    assert pids_answering(served.base, 2) == set(served.workers)
    status, err = served.stop(signal.SIGTERM)
    assert status == 0, err
    assert all(gone(pid) for pid in served.workers)
    assert "Traceback" not in err


def test_a_dead_worker_is_reported_and_the_other_serves(served: Served) -> None:
    dead, alive = served.workers
    os.kill(dead, signal.SIGKILL)
    assert gone(dead)
    for _ in range(5):
        assert httpx.get(served.base + "/", timeout=10).json()["pid"] == alive
    status, err = served.stop(signal.SIGINT)
    assert f"worker 0 (pid {dead}) was killed by SIGKILL" in err
    assert status == 0, err
    assert gone(alive)


def test_objects_without_a_cluster_refuse_several_workers(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site", objects=True)
    process = kitpy_serve(str(site), "--port", "0", "--workers", "2")
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "--workers 2: kitpy.toml [objects] binds durable objects (counters)" in err
    assert "KITPY_POSTGRES and KITPY_NATS" in err and out == ""


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        (
            {"KITPY_POSTGRES": "postgresql://127.0.0.1:1/x", "KITPY_NATS": "nats://127.0.0.1:1"},
            ("--backend", "trio"),
            "kitpy: --backend trio: a cluster node runs on asyncio only",
        ),
        (
            {"KITPY_POSTGRES": "postgresql://127.0.0.1:1/x", "KITPY_NATS": "nats://x:1"},
            (),
            "kitpy: KITPY_POSTGRES: cannot reach postgresql://127.0.0.1:1/x: Connection refused",
        ),
        (
            {"KITPY_POSTGRES": "http://db/x", "KITPY_NATS": "nats://x:1"},
            ("--workers", "2"),
            "kitpy: KITPY_POSTGRES: not a postgresql:// URL: 'http://db/x'",
        ),
        (
            {
                "KITPY_POSTGRES": "postgresql://db/x",
                "KITPY_NATS": "nats://x:1",
                "KITPY_LEASE_TTL": "0",
            },
            (),
            "kitpy: KITPY_LEASE_TTL: expected a positive number of seconds, got '0'",
        ),
    ],
)
def test_cluster_settings_errors_are_one_line(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    site = make_site(tmp_path / "site", objects=True)
    process = kitpy_serve(str(site), "--port", "0", *args, env={**clean_env(), **env})
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == (1 if "cannot reach" in message else 2), err
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""


def test_a_bad_cluster_key_in_kitpy_toml_names_file_and_line(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site", objects=True)
    toml = site / "kitpy.toml"
    toml.write_text(toml.read_text() + '[cluster]\npostgres = "mysql://db"\nnats = "nats://x:1"\n')
    process = kitpy_serve(str(site), "--port", "0", env=clean_env())
    _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 2
    assert (
        err
        == f"kitpy: {site}/kitpy.toml:4: [cluster] postgres: not a postgresql:// URL: 'mysql://db'\n"
    )
