"""Fixtures for the headless-browser tests: Debian's chromium, driven by Playwright.

Playwright's own browser download is never used: the tests launch the system's
``/usr/bin/chromium`` (``apt-get install chromium``). Without it they are skipped,
except under CI (``CI`` set), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright
from site_server import EXAMPLE_SITE, SiteServer

CHROMIUM = os.environ.get("KITPY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def chat_site(tmp_path: Path) -> Iterator[SiteServer]:
    """The example chat on a server of its own (the rate limiter is per address)."""
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE_SITE, site, ignore=shutil.ignore_patterns(".kitpy", "__pycache__"))
    server = SiteServer(site)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} not found: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()
