"""The example chat on a cluster: two browsers on two nodes, the room on a third.

Real PostgreSQL and NATS (tests/cluster/engines.py), three ``kitpy serve`` nodes of
one copy of example_site/, headless Chromium. The pages see each other, the roster and
the history across nodes; after kill -9 of the room's owner both pages reconnect
(their sockets were closed with 1012), the room is rebuilt on a live node from
PostgreSQL, and the chat goes on with its history.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from engines import NatsEngine, Nodes
from playwright.sync_api import Browser, expect
from site_server import EXAMPLE_SITE
from test_chat_browser import WAIT_MS, expect_online, open_chat, pick_name
from websockets.sync.client import connect

pytestmark = pytest.mark.browser

ROOM = "cluster-room"

#: Records every text the page's status line shows from now on. A page whose socket got
#: 1012 reconnects within 0.3 s, quicker than polling the status line could see.
WATCH_STATUS = """() => {
  const status = document.querySelector("#status");
  window.kitpyStatuses = [];
  new MutationObserver(() => window.kitpyStatuses.push(status.textContent)).observe(
    status, { childList: true, characterData: true, subtree: true });
}"""
SEEN_OFFLINE = "() => window.kitpyStatuses.some((text) => text !== 'online')"


def touch_room(ws_url: str) -> None:
    """Build the room on the node at ``ws_url``: a socket accepted by it, no name given
    (so it is in no roster and spends no rate-limit budget)."""
    with connect(f"{ws_url}/api/room/{ROOM}/websocket", open_timeout=30):
        pass


def test_two_browsers_on_two_nodes_and_the_owner_killed(
    browser: Browser, tmp_path: Path, cluster_db: str, nats_server: NatsEngine
) -> None:
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE_SITE, site, ignore=shutil.ignore_patterns(".kitpy", "__pycache__"))
    nodes = Nodes(cluster_db, nats_server.url)
    try:
        starting = [nodes.start(site, name, lease_ttl=2.0, wait=False) for name in "abc"]
        front_a, front_b, owner = (node.started() for node in starting)
        touch_room(owner.ws_url)  # the room lives on c

        ann = open_chat(browser, f"{front_a.url}/#{ROOM}")
        pick_name(ann, "ann")
        expect_online(ann)
        bob = open_chat(browser, f"{front_b.url}/#{ROOM}")
        pick_name(bob, "bob")
        expect_online(bob)
        expect(ann.locator("#roster")).to_contain_text("bob", timeout=WAIT_MS)
        expect(bob.locator("#roster")).to_contain_text("ann", timeout=WAIT_MS)

        ann.fill("#chat-input", "before the crash")
        ann.press("#chat-input", "Enter")
        expect(bob.locator("#chatlog .message")).to_have_text(
            [re.compile(r"ann\s*before the crash")], timeout=WAIT_MS
        )

        for page in (ann, bob):
            page.evaluate(WATCH_STATUS)
        owner.kill()  # kill -9 of the room's owner: the pages' sockets get 1012
        for page in (ann, bob):  # offline for a moment: the page reconnects within 0.3 s
            page.wait_for_function(SEEN_OFFLINE, timeout=WAIT_MS)
        expect_online(ann)
        expect_online(bob)
        expect(ann.locator("#roster")).to_contain_text("bob", timeout=WAIT_MS)
        expect(bob.locator("#roster")).to_contain_text("ann", timeout=WAIT_MS)

        bob.fill("#chat-input", "after the crash")
        bob.press("#chat-input", "Enter")
        for page in (ann, bob):  # the history survived, and is not shown twice
            expect(page.locator("#chatlog .message")).to_have_text(
                [re.compile("before the crash"), re.compile(r"bob\s*after the crash")],
                timeout=WAIT_MS,
            )
    finally:
        nodes.stop_all()
