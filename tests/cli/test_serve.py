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


def test_serve_a_site_sharing_code_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    from tests.cli.test_routes import SHARED, write

    site = write(tmp_path / "site", SHARED)
    process = start(str(site), "--port", "0")
    try:
        assert process.stdout is not None
        found = READY.match(process.stdout.readline().strip())
        assert found
        answer = httpx.get(f"http://127.0.0.1:{found.group(1)}/api/answer", timeout=10)
        assert answer.json() == {"answer": 42, "word": "shared"}
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            stop(process)
    assert process.returncode == 0, err
    assert "Traceback" not in err


def run_kitpy(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = f"import sys\n{prelude}\nfrom kitpy.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=dict(os.environ, NO_COLOR="1"),
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kitpy: "), result.stderr
    return lines[0]


def test_trio_backend_without_trio_names_the_extra(site: Path) -> None:
    # sys.modules["trio"] = None makes trio not importable, as in a venv without it.
    hide_trio = "sys.modules['trio'] = None"
    result = run_kitpy("serve", str(site), "--backend", "trio", prelude=hide_trio)
    assert "pip install 'kitpy[trio]'" in one_line_error(result)


def test_a_missing_folder_is_named_once(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kitpy", "serve", "./nope", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
    )
    line = one_line_error(result)
    assert line.startswith("kitpy: ./nope: is not a folder"), line
    assert "nope/nope" not in line


def test_a_busy_port_says_how_to_pick_another(site: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(run_kitpy("serve", str(site), "--port", str(port)))
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in line
    assert "--port" in line


def test_a_folder_that_is_no_site_gets_a_warning(tmp_path: Path) -> None:
    process = start(str(tmp_path), "--port", "0")
    try:
        assert process.stdout is not None
        found = READY.match(process.stdout.readline().strip())
        assert found
        assert httpx.get(f"http://127.0.0.1:{found.group(1)}/", timeout=10).status_code == 404
    finally:
        code, err = stop(process)
    assert code == 0
    assert "does not look like a site (no routes/, static/ or kitpy.toml)" in err


def test_env_from_the_environment(tmp_path: Path) -> None:
    from tests.cli.test_routes import write

    site = write(
        tmp_path / "site",
        {
            "kitpy.toml": '[env]\nSECRET = { from_env = "KITPY_TEST_SECRET" }\n',
            "routes/index.py": """
                def get(event):
                    return {"body": {"length": len(event.platform.env.SECRET)}}
            """,
        },
    )
    env = {k: v for k, v in os.environ.items() if k != "KITPY_TEST_SECRET"}
    missing = subprocess.run(
        [sys.executable, "-m", "kitpy", "serve", str(site), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )
    line = one_line_error(missing)
    assert "[env] SECRET: the environment variable KITPY_TEST_SECRET is not set" in line

    process = subprocess.Popen(
        [sys.executable, "-m", "kitpy", "serve", str(site), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env, PYTHONUNBUFFERED="1", KITPY_TEST_SECRET="hunter22"),
    )
    try:
        assert process.stdout is not None
        found = READY.match(process.stdout.readline().strip())
        assert found
        answer = httpx.get(f"http://127.0.0.1:{found.group(1)}/", timeout=10)
        assert answer.json() == {"length": 8}
    finally:
        code, err = stop(process)
    assert code == 0 and "hunter22" not in err


def test_log_level(tmp_path: Path) -> None:
    from tests.cli.test_dev import LOGGING_ROUTE
    from tests.cli.test_routes import write

    site = write(tmp_path / "site", {"routes/logs.py": LOGGING_ROUTE})
    for level, shown, hidden in (("debug", "debug from", None), ("warning", None, "info from")):
        process = start(str(site), "--port", "0", "--log-level", level)
        try:
            assert process.stdout is not None
            found = READY.match(process.stdout.readline().strip())
            assert found
            httpx.get(f"http://127.0.0.1:{found.group(1)}/logs", timeout=10)
        finally:
            code, err = stop(process)
        assert code == 0
        if shown:
            assert f"DEBUG routes.logs: {shown} the route" in err
            assert "INFO routes.logs: info from the route" in err
        if hidden:
            assert hidden not in err
