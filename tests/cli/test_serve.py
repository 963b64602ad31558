"""``kitpy serve`` in a subprocess against a real loopback socket."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

BASIC = Path(__file__).resolve().parent.parent / "sites" / "basic"
TIMEOUT = 60.0
READY = re.compile(r"^kitpy serving http://127\.0\.0\.1:(\d+)$")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    copy = tmp_path / "basic"
    shutil.copytree(BASIC, copy, ignore=shutil.ignore_patterns("__pycache__", ".kitpy"))
    return copy


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kitpy", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hang is a failure
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"kitpy serve did not stop:\n{err}")
    return process.returncode, err


def test_serve_answers_and_stops_on_sigint(site: Path) -> None:
    process = start(str(site), "--port", "0")
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        found = READY.match(line)
        assert found, line + (process.stderr.read() if process.stderr else "")
        base = f"http://127.0.0.1:{found.group(1)}"
        response = httpx.get(base + "/", cookies={"user": "ada"}, timeout=10)
        assert response.json() == {"seen_by": ["timing", "auth"], "user": "ada"}
        assert httpx.get(base + "/api/counter/a", timeout=10).json()["count"] == 1
        boom = httpx.get(base + "/boom", timeout=10)
        assert boom.status_code == 500 and "Traceback" not in boom.text
        assert httpx.get(base + "/about/", timeout=10).status_code == 308
    finally:
        code, err = stop(process)
    assert code == 0, err
    assert '"GET / HTTP/1.1" 200' in err
    assert "routes/boom.py" in err  # the log names the file
    assert (site / ".kitpy" / "storage.sqlite3").exists()


def test_serve_uses_kitpy_toml_port(site: Path) -> None:
    config = site / "kitpy.toml"
    config.write_text(config.read_text().replace("[server]\n", "[server]\nport = 0\n"))
    process = start(str(site))
    try:
        assert process.stdout is not None
        assert READY.match(process.stdout.readline().strip())
    finally:
        code, err = stop(process)
    assert code == 0, err


def test_serve_a_broken_site_exits_1(tmp_path: Path) -> None:
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "x.py").write_text("def get(:\n")
    process = start(str(tmp_path), "--port", "0")
    _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1
    assert re.search(r"^kitpy: .*routes/x\.py:1: syntax error", err), err
