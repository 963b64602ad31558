"""``kitpy dev`` in a real browser: open pages reload themselves when the site changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.cli.test_dev import INDEX, DevServer

pytestmark = pytest.mark.browser

#: Milliseconds a reload may take in the browser (a worker restart included).
RELOAD_MS = 30_000


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "routes").mkdir(parents=True)
    (root / "routes" / "index.py").write_text(INDEX.format(text="version 1"))
    (root / "static").mkdir()
    (root / "static" / "page.html").write_text("<html><body><h1>one</h1></body></html>")
    return root


@pytest.fixture
def dev(site: Path) -> Iterator[DevServer]:
    server = DevServer(site)
    try:
        yield server
    finally:
        server.stop()


def open_page(browser: Browser, url: str) -> Page:
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("document.querySelector('[data-kitpy-dev-reload]') !== null")
    page.evaluate("window.kitpyMarker = 1")  # gone once the page has reloaded
    return page


def test_a_static_edit_reloads_the_page(browser: Browser, dev: DevServer, site: Path) -> None:
    page = open_page(browser, dev.url + "/page.html")
    page.wait_for_timeout(300)  # let the reload socket open
    (site / "static" / "page.html").write_text("<html><body><h1>two</h1></body></html>")
    page.wait_for_function("document.querySelector('h1').textContent === 'two'", timeout=RELOAD_MS)
    assert page.evaluate("window.kitpyMarker") is None


def test_a_restart_reloads_the_page_once_the_new_worker_answers(
    browser: Browser, dev: DevServer, site: Path
) -> None:
    page = open_page(browser, dev.url + "/page.html")
    page.wait_for_timeout(300)
    (site / "routes" / "index.py").write_text(INDEX.format(text="version 2"))
    page.wait_for_function("window.kitpyMarker === undefined", timeout=RELOAD_MS)
    page.wait_for_function("document.querySelector('h1') !== null", timeout=RELOAD_MS)
    assert page.text_content("h1") == "one"
