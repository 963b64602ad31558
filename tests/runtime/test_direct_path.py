"""SiteApp answers the common configuration (no handle(), no static/, no compression,
no trusted proxies, no handler_timeout) in one frame; every answer and log line must
be what the general path gives. The same site runs three ways and is compared."""

from __future__ import annotations

import logging

import pytest

from tests.runtime.conftest import ClientFactory

ROUTES = {
    "routes/index.py": """
    async def get(event):
        return {"body": "hello"}
    """,
    "routes/users/[id].py": """
    async def get(event):
        return {"body": {"id": event.params["id"], "route": event.route}}
    """,
    "routes/mutate.py": """
    async def get(event):
        event.params["x"] = "changed"
        return {"body": sorted(event.params.items())}
    """,
    "routes/boom.py": """
    async def get(event):
        raise RuntimeError("boom")
    """,
    "routes/bad.py": """
    async def get(event):
        return "not a response"
    """,
    "routes/teapot.py": """
    from kitpy import error

    async def get(event):
        error(418, "short and stout")
    """,
    "routes/timeout.py": """
    async def get(event):
        raise TimeoutError
    """,
    "routes/cookie.py": """
    async def get(event):
        event.cookies.set("a", "1")
        return {"status": 201, "headers": {"x-one": "1"}, "body": b"raw"}
    """,
    "routes/thread.py": """
    def get(event):
        return {"body": "from a thread"}
    """,
    "routes/loop.py": """
    from kitpy import on_loop

    async def _later():
        return {"body": "awaited"}

    @on_loop
    def get(event):
        return _later()
    """,
    "routes/any.py": """
    async def fallback(event):
        return {"body": event.request.method}
    """,
}

REQUESTS = [
    ("GET", "/"),
    ("HEAD", "/"),
    ("POST", "/"),
    ("OPTIONS", "/"),
    ("GET", "/users/7"),
    ("GET", "/users/a%20b"),
    ("GET", "/users/7/"),
    ("GET", "/users/"),
    ("GET", "/nope"),
    ("GET", "/mutate"),
    ("GET", "/mutate"),
    ("GET", "/boom"),
    ("GET", "/bad"),
    ("GET", "/teapot"),
    ("GET", "/timeout"),
    ("GET", "/cookie"),
    ("HEAD", "/cookie"),
    ("GET", "/thread"),
    ("GET", "/loop"),
    ("DELETE", "/any"),
]

PASS_THROUGH = {
    "hooks.py": """
    async def handle(event, resolve):
        return await resolve(event)
    """
}
TIMEOUT = {"kitpy.toml": "[server]\nhandler_timeout = 30\n"}


def _answers(
    client_for: ClientFactory, extra: dict[str, str], caplog: pytest.LogCaptureFixture
) -> list[object]:
    client = client_for({**ROUTES, **extra})
    answers: list[object] = []
    for method, path in REQUESTS:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="kitpy"):
            response = client.request(method, path)
        logged = [(r.levelname, r.getMessage()) for r in caplog.records]
        answers.append(
            (method, path, response.status_code, response.headers.items(), response.content, logged)
        )
    return answers


def test_direct_path_is_used(client_for: ClientFactory) -> None:
    assert client_for(ROUTES).app._direct
    assert not client_for({**ROUTES, **TIMEOUT}).app._direct


@pytest.mark.parametrize("extra", [PASS_THROUGH, TIMEOUT], ids=["handle", "handler_timeout"])
def test_direct_path_answers_as_the_general_one(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture, extra: dict[str, str]
) -> None:
    direct = _answers(client_for, {}, caplog)
    general = _answers(client_for, extra, caplog)
    for one, other in zip(direct, general, strict=True):
        if extra is TIMEOUT and one[1] == "/timeout":
            continue  # the log names the limit: (Nones) against (30s)
        assert one == other


def test_direct_path_answers(client_for: ClientFactory, caplog: pytest.LogCaptureFixture) -> None:
    answers = {(a[0], a[1]): a for a in _answers(client_for, {}, caplog)}  # type: ignore[index]
    assert answers["GET", "/users/a%20b"][4] == b'{"id":"a b","route":"/users/[id]"}'
    assert answers["GET", "/mutate"][4] == b'[["x","changed"]]'  # params are the event's own
    assert answers["POST", "/"][2] == 405
    assert answers["HEAD", "/"][4] == b""
    assert ("content-length", "5") in answers["HEAD", "/"][3]  # type: ignore[operator]
    assert answers["GET", "/timeout"][2] == 503
    assert answers["GET", "/boom"][5] == [("ERROR", "routes/boom.py: GET raised")]
