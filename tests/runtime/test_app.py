"""The app around the routes: trailing slash, cookies, static files, wait_until."""

from __future__ import annotations

import logging

import pytest

from .conftest import ClientFactory

INDEX = {
    "routes/index.py": "async def get(event):\n    return {'body': 'home'}\n",
    "routes/about.py": "async def get(event):\n    return {'body': 'about'}\n",
}


@pytest.mark.parametrize(
    ("path", "location"),
    [
        pytest.param("/about/", "/about", id="simple"),
        pytest.param("/about/?a=1&b=2", "/about?a=1&b=2", id="query-kept"),
        pytest.param("/a%20b/c/", "/a%20b/c", id="encoding-kept"),
        pytest.param("//evil.example/", "/evil.example", id="no-protocol-relative"),
        pytest.param("/about//", "/about", id="many-slashes"),
    ],
)
def test_trailing_slash_redirects(client_for: ClientFactory, path: str, location: str) -> None:
    client = client_for(INDEX)
    response = client.get(path)
    assert response.status_code == 308
    assert response.headers["location"] == location


def test_root_stays_and_redirect_can_be_followed(client_for: ClientFactory) -> None:
    client = client_for(INDEX)
    assert client.get("/").text == "home"
    assert client.get("/about/", follow_redirects=True).text == "about"


COOKIES = """
async def get(event):
    return {"body": event.cookies.get("n") or "none"}

async def post(event):
    event.cookies.set("n", event.url.query.get("v", "1"))
    event.cookies.set("theme", "dark", max_age=3600, httponly=False, samesite="strict")
    return {"status": 204}

async def delete(event):
    event.cookies.delete("n")
    return {"status": 204}
"""


def test_cookie_defaults_secure_off_localhost(client_for: ClientFactory) -> None:
    client = client_for({"routes/c.py": COOKIES})
    headers = client.post("/c", headers={"host": "example.com"}).headers.get_all("set-cookie")
    assert headers == [
        "n=1; Path=/; HttpOnly; SameSite=Lax; Secure",
        "theme=dark; Path=/; SameSite=Strict; Secure; Max-Age=3600",
    ]


@pytest.mark.parametrize("host", ["localhost", "localhost:5173", "127.0.0.1:8000", "[::1]:80"])
def test_cookie_not_secure_on_localhost(client_for: ClientFactory, host: str) -> None:
    client = client_for({"routes/c.py": COOKIES})
    first = client.post("/c", headers={"host": host}).headers.get_all("set-cookie")[0]
    assert first == "n=1; Path=/; HttpOnly; SameSite=Lax"


def test_cookies_persist_like_a_browser(client_for: ClientFactory) -> None:
    client = client_for({"routes/c.py": COOKIES})
    assert client.get("/c").text == "none"
    client.post("/c?v=a%20b")
    assert client.cookies["n"] == "a b"
    assert client.get("/c").text == "a b"
    assert client.get("/c", cookies={"n": "override"}).text == "override"
    client.delete("/c")
    assert "n" not in client.cookies
    assert client.get("/c").text == "none"


def test_cookies_set_in_a_hook_reach_the_response(client_for: ClientFactory) -> None:
    client = client_for(
        {
            **INDEX,
            "hooks.py": """
            async def handle(event, resolve):
                event.cookies.set("seen", "1")
                return await resolve(event)
            """,
        }
    )
    assert client.get("/missing").headers["set-cookie"].startswith("seen=1;")


def test_static_file_wins_over_route(client_for: ClientFactory) -> None:
    client = client_for({**INDEX, "static/about": "static about"})
    assert client.get("/about").text == "static about"
    assert client.post("/about").status_code == 405  # static serves GET/HEAD only
    assert client.get("/").text == "home"


def test_static_head_and_304(client_for: ClientFactory) -> None:
    client = client_for({"static/app.js": "let a = 1;\n"})
    response = client.get("/app.js")
    assert response.text == "let a = 1;\n"
    assert response.headers["content-type"].startswith("text/javascript")
    etag = response.headers["etag"]
    assert client.get("/app.js", headers={"if-none-match": etag}).status_code == 304
    head = client.head("/app.js")
    assert head.content == b"" and head.headers["content-length"] == "11"


def test_wait_until_runs_after_the_response(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/job.py": """
            import anyio

            STATE = {"event": None, "done": False}

            async def later(event):
                await event.wait()
                STATE["done"] = True

            async def post(event):
                STATE["event"] = anyio.Event()
                event.platform.wait_until(later(STATE["event"]))
                return {"status": 202}

            async def get(event):
                was = STATE["done"]
                STATE["event"].set()
                for _ in range(100):
                    if STATE["done"]:
                        break
                    await anyio.sleep(0.01)
                return {"body": {"before": was, "after": STATE["done"]}}
            """
        }
    )
    assert client.post("/job").status_code == 202
    assert client.get("/job").json() == {"before": False, "after": True}


def test_wait_until_rejects_non_awaitables(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/x.py": """
            async def get(event):
                try:
                    event.platform.wait_until(42)
                except TypeError as exc:
                    return {"body": str(exc)}
            """
        }
    )
    assert client.get("/x").text == "wait_until() takes a coroutine or awaitable, got int"


def test_failing_wait_until_task_is_logged(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(
        {
            "routes/x.py": """
            import anyio

            async def fail():
                await anyio.sleep(0)
                raise RuntimeError("task failed")

            async def get(event):
                event.platform.wait_until(fail())
                return {"body": "ok"}
            """
        }
    )
    with caplog.at_level(logging.ERROR, logger="kitpy"):
        assert client.get("/x").text == "ok"
        client.close()  # the lifespan waits for its tasks
    assert any("wait_until() task failed" in r.getMessage() for r in caplog.records)
