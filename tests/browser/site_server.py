"""``python -m kitpy serve`` of a copy of the example site, for the browser tests."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

EXAMPLE_SITE = Path(__file__).resolve().parents[2] / "example_site"
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class SiteServer:
    """``python -m kitpy serve SITE --port PORT`` (0 at first, then the same port)."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ, NO_COLOR="1", PYTHONUNBUFFERED="1")
        process = self.process = subprocess.Popen(
            [sys.executable, "-m", "kitpy", "serve", str(self.site), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        while True:
            try:
                line = lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                line = None
            if line is None:
                pytest.fail("kitpy serve did not print its URL:\n" + "".join(self.output))
            if found := URL.search(line):
                self.port = int(found.group(1))
                return

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
        if self.reader is not None:
            self.reader.join(STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()
