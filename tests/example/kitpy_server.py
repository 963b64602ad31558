"""Helpers to run ``python -m kitpy ...`` in a subprocess and the example site on a real server."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

EXAMPLE_SITE = Path(__file__).resolve().parents[2] / "example_site"
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")
#: Seconds a server gets to print its URL, and to stop.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class KitpyProcess:
    """``python -m kitpy ARGS`` with its merged output read line by line in a thread."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, NO_COLOR="1", PYTHONUNBUFFERED="1")
        env.pop("FORCE_COLOR", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kitpy", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first output line matching ``pattern`` (fails after ``timeout`` s or at EOF)."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no line matching {pattern.pattern!r} in:\n{''.join(self.output)}")
            if line is None:
                pytest.fail(f"kitpy exited before printing {pattern.pattern!r}:\n{self.text}")
            found = pattern.search(line)
            if found:
                return found

    @property
    def text(self) -> str:
        return "".join(self.output)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        pid = self.process.pid
        if self.process.poll() is None:
            os.kill(pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


class ChatServer:
    """The example site served from a copy, so its ``.kitpy/`` is the test's own."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.process: KitpyProcess | None = None
        self.port = 0

    def start(self) -> None:
        self.process = KitpyProcess("serve", str(self.site), "--port", "0")
        self.port = int(self.process.wait_for(URL).group(1))

    def stop(self) -> int | None:
        process, self.process = self.process, None
        return process.stop() if process is not None else None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def copy_site(target: Path) -> Path:
    shutil.copytree(
        EXAMPLE_SITE,
        target,
        ignore=shutil.ignore_patterns(".kitpy", "__pycache__", ".pytest_cache"),
    )
    return target
