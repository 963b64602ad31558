"""The tutorial's chat page (docs/tutorial.md, step 5) in a browser: it reconnects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from site_server import SiteServer

from tests.cli.test_tutorial import build_tutorial_site

pytestmark = pytest.mark.browser

WAIT_MS = 20_000


@pytest.fixture
def tutorial(tmp_path: Path) -> Iterator[SiteServer]:
    server = SiteServer(build_tutorial_site(tmp_path))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def say(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def test_the_chat_page_reconnects_after_a_restart(browser: Browser, tutorial: SiteServer) -> None:
    page = browser.new_page()
    page.goto(tutorial.url + "/chat.html#restarts")
    page.fill("#name", "ann")
    say(page, "before")
    expect(page.locator("#log li")).to_have_text(["ann: before"], timeout=WAIT_MS)

    tutorial.stop()  # the page's socket closes (1001)
    page.wait_for_function("ws.readyState === WebSocket.CLOSED", timeout=WAIT_MS)
    tutorial.start()  # same port, same .kitpy/
    # The page connects again by itself: the history comes back, and talk goes on.
    page.wait_for_function("ws.readyState === WebSocket.OPEN", timeout=WAIT_MS)
    say(page, "after")
    expect(page.locator("#log li")).to_have_text(["ann: before", "ann: after"], timeout=WAIT_MS)
