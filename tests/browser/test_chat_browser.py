"""The chat page in headless Chromium: two people in one room, history, reconnects."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect
from site_server import SiteServer

pytestmark = pytest.mark.browser

#: Milliseconds any one expectation may take to come true (a bound, not a goal).
WAIT_MS = 30_000


def open_chat(browser: Browser, url: str) -> Page:
    """A page in a browser context of its own: its own localStorage, as another person."""
    page = browser.new_context().new_page()
    page.goto(url)
    return page


def pick_name(page: Page, name: str) -> None:
    page.fill("#name-input", name)
    page.press("#name-input", "Enter")


def expect_online(page: Page) -> None:
    expect(page.locator("#status")).to_have_text("online", timeout=WAIT_MS)


def test_two_people_chat_and_a_reload_shows_the_history(
    browser: Browser, chat_site: SiteServer
) -> None:
    ann = open_chat(browser, chat_site.url + "/")
    pick_name(ann, "ann")
    ann.fill("#room-name", "Browser_Room")
    ann.click("#go-public")
    expect_online(ann)
    # The name is normalised as the original client does it, and kept in the URL.
    assert ann.url.endswith("#browser-room")
    expect(ann.locator("#room-title")).to_have_text("#browser-room")

    bob = open_chat(browser, chat_site.url + "/#browser-room")
    pick_name(bob, "bob")
    expect_online(bob)
    expect(ann.locator("#roster")).to_contain_text("bob", timeout=WAIT_MS)
    expect(bob.locator("#roster")).to_contain_text("ann", timeout=WAIT_MS)

    ann.fill("#chat-input", "hello from ann")
    ann.press("#chat-input", "Enter")
    expect(bob.locator("#chatlog .message")).to_have_text(
        [re.compile(r"ann\s*hello from ann")], timeout=WAIT_MS
    )
    expect(ann.locator("#chat-input")).to_have_value("")

    bob.reload()  # the name is remembered, the room is in the URL: straight back in
    expect_online(bob)
    expect(bob.locator("#chatlog .message")).to_have_text(
        [re.compile(r"ann\s*hello from ann")], timeout=WAIT_MS
    )


def test_a_private_room_is_created_and_shared_by_its_url(
    browser: Browser, chat_site: SiteServer
) -> None:
    ann = open_chat(browser, chat_site.url + "/")
    pick_name(ann, "ann")
    ann.click("#go-private")
    expect_online(ann)
    expect(ann.locator("#room-title")).to_have_text("Private room")
    room_url = ann.url
    assert re.search(r"#[0-9a-f]{64}$", room_url)

    bob = open_chat(browser, room_url)
    pick_name(bob, "bob")
    expect_online(bob)
    bob.fill("#chat-input", "found it")
    bob.press("#chat-input", "Enter")
    expect(ann.locator("#chatlog .message")).to_have_text([re.compile("found it")], timeout=WAIT_MS)


def test_the_page_reconnects_after_the_server_restarts(
    browser: Browser, chat_site: SiteServer
) -> None:
    ann = open_chat(browser, chat_site.url + "/#restarts")
    pick_name(ann, "ann")
    expect_online(ann)
    ann.fill("#chat-input", "before")
    ann.press("#chat-input", "Enter")
    expect(ann.locator("#chatlog .message")).to_have_count(1, timeout=WAIT_MS)

    chat_site.stop()
    expect(ann.locator("#status")).not_to_have_text("online", timeout=WAIT_MS)
    chat_site.start()  # same port, same .kitpy/
    expect_online(ann)

    ann.fill("#chat-input", "after")
    ann.press("#chat-input", "Enter")
    # The history sent again on reconnect is not shown twice.
    expect(ann.locator("#chatlog .message")).to_have_text(
        [re.compile("before"), re.compile("after")], timeout=WAIT_MS
    )
