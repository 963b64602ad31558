"""``kitpy serve`` lists static/ at start-up: routes skip the disk, files stay fresh.

A path that names no file goes straight to the routes; a file changed or removed is
seen at once, and one added while the server runs is served within about a second
(docs/server.md, "Static files").
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from .kit import serve_site

FILES = {
    "routes/api/items/[id].py": """
        async def get(event):
            return {"body": {"id": event.params["id"]}}
    """,
    "routes/later.py": """
        async def get(event):
            return {"body": "the route"}
    """,
    "static/app.js": "console.log('app');\n",
    "static/docs/index.html": "<p>docs</p>\n",
}

site, server, client = serve_site(FILES)


def test_routes_and_files_both_answer(client: httpx.Client) -> None:
    assert client.get("/api/items/7").json() == {"id": "7"}
    assert client.get("/app.js").text == "console.log('app');\n"
    assert client.get("/docs").text == "<p>docs</p>\n"
    assert client.get("/missing.js").status_code == 404


def test_a_changed_file_is_served_fresh_and_a_removed_one_is_gone(
    client: httpx.Client, site: Path
) -> None:
    root = site
    (root / "static" / "app.js").write_text("console.log('changed');\n")
    assert client.get("/app.js").text == "console.log('changed');\n"
    (root / "static" / "docs" / "index.html").unlink()
    assert client.get("/docs").status_code == 404


def test_a_file_added_while_serving_is_served_within_seconds(
    client: httpx.Client, site: Path
) -> None:
    assert client.get("/later").text == "the route"
    (site / "static" / "later").write_text("a file added later\n")
    (site / "static" / "assets").mkdir()
    (site / "static" / "assets" / "app-3f2a.js").write_text("// rebuilt\n")
    deadline = time.monotonic() + 10
    while client.get("/assets/app-3f2a.js").status_code == 404:
        assert time.monotonic() < deadline, "the new file was never served"
        time.sleep(0.1)
    assert client.get("/assets/app-3f2a.js").text == "// rebuilt\n"
    assert client.get("/later").text == "a file added later\n"
