"""Helpers to run ``python -m kitpy ...`` in a subprocess and the example site on a real server."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from acceptance.kit import KitpyProcess

EXAMPLE_SITE = Path(__file__).resolve().parents[2] / "example_site"
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")
#: Seconds a server gets to print its URL, and to stop.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


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
