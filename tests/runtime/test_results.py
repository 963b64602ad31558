"""Every accepted return shape, and bad ones as a 500 whose log names the route file."""

from __future__ import annotations

import logging
import re

import pytest

from .conftest import ClientFactory

SHAPES = """
from http import HTTPStatus

from kitpy import Response, json, text, html, redirect, error

async def get(event):
    kind = event.url.query.get("kind")
    if kind == "empty":
        return {}
    if kind == "str":
        return {"body": "hello"}
    if kind == "bytes":
        return {"body": b"\\x00\\x01"}
    if kind == "dict":
        return {"status": 201, "body": {"a": [1, 2]}}
    if kind == "list":
        return {"body": [1, "two"]}
    if kind == "none":
        return {"status": 204, "body": None}
    if kind == "enum-status":
        return {"status": HTTPStatus.CREATED, "body": "made"}
    if kind == "headers":
        return {"headers": {"x-one": "1", "content-type": "text/csv"}, "body": "a,b"}
    if kind == "header-pairs":
        return {"headers": [("x-a", "1"), ("x-a", "2")], "body": ""}
    if kind == "header-list":
        return {"headers": {"set-cookie": ["a=1", "b=2"]}, "body": ""}
    if kind == "json":
        return json({"ok": True}, status=202)
    if kind == "text":
        return text("plain", 418)
    if kind == "html":
        return html("<p>hi</p>")
    if kind == "redirect":
        return redirect("/elsewhere")
    if kind == "custom":
        return Response(b"raw", 599, {"x-custom": "yes"})
    if kind == "early":
        return Response(None, 103, {"link": "</a.css>; rel=preload"})
    if kind == "error":
        error(404, "no such thing")
"""


@pytest.mark.parametrize(
    ("kind", "status", "content_type", "content"),
    [
        pytest.param("empty", 200, None, b"", id="empty-dict"),
        pytest.param("str", 200, "text/plain; charset=utf-8", b"hello", id="str-body"),
        pytest.param("bytes", 200, "application/octet-stream", b"\x00\x01", id="bytes-body"),
        pytest.param("dict", 201, "application/json", b'{"a":[1,2]}', id="dict-body"),
        pytest.param("list", 200, "application/json", b'[1,"two"]', id="list-body"),
        pytest.param("none", 204, None, b"", id="none-body"),
        pytest.param(
            "enum-status", 201, "text/plain; charset=utf-8", b"made", id="int-enum-status"
        ),
        pytest.param("headers", 200, "text/csv", b"a,b", id="headers-win"),
        pytest.param("json", 202, "application/json", b'{"ok":true}', id="json-helper"),
        pytest.param("text", 418, "text/plain; charset=utf-8", b"plain", id="text-helper"),
        pytest.param("html", 200, "text/html; charset=utf-8", b"<p>hi</p>", id="html-helper"),
        pytest.param("redirect", 303, None, b"", id="redirect-helper"),
        pytest.param("custom", 599, "application/octet-stream", b"raw", id="status-599"),
        pytest.param("early", 103, None, b"", id="status-103"),
        pytest.param("error", 404, "text/plain; charset=utf-8", b"no such thing", id="error"),
    ],
)
def test_return_shapes(
    client_for: ClientFactory, kind: str, status: int, content_type: str | None, content: bytes
) -> None:
    client = client_for({"routes/shape.py": SHAPES})
    response = client.get("/shape", params={"kind": kind})
    assert response.status_code == status
    assert response.headers.get("content-type") == content_type
    assert response.content == content


def test_header_details(client_for: ClientFactory) -> None:
    client = client_for({"routes/shape.py": SHAPES})
    assert client.get("/shape?kind=headers").headers["x-one"] == "1"
    assert client.get("/shape?kind=header-pairs").headers.get_all("x-a") == ["1", "2"]
    repeated = client.get("/shape?kind=header-list").headers.get_all("set-cookie")
    assert repeated == ["a=1", "b=2"]
    assert client.get("/shape?kind=redirect").headers["location"] == "/elsewhere"
    assert client.get("/shape?kind=custom").headers["x-custom"] == "yes"


def test_streamed_bodies(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/stream.py": """
            from kitpy import Response

            async def agen():
                for i in range(3):
                    yield f"{i};".encode()

            def gen():
                yield b"x"
                yield b"y"

            async def get(event):
                if event.url.query.get("sync"):
                    return Response(gen(), headers={"content-type": "text/plain"})
                return Response(agen(), headers={"content-type": "text/plain"})
            """
        }
    )
    assert client.get("/stream").content == b"0;1;2;"
    assert client.get("/stream?sync=1").content == b"xy"


BAD = """
async def get(event):
    kind = event.url.query.get("kind")
    if kind == "key":
        return {"status": 200, "data": 1}
    if kind == "none":
        return None
    if kind == "str":
        return "hello"
    if kind == "status":
        return {"status": "200"}
    if kind == "status-range":
        return {"status": 700}
    if kind == "body":
        return {"body": 3.5}
    if kind == "headers":
        return {"headers": "x"}
    if kind == "object":
        return object()
    if kind == "nan":
        return {"body": {"x": float("nan")}}
    if kind == "unjson":
        return {"body": {"x": {1, 2}}}
"""


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        pytest.param("key", r"unknown key 'data'", id="unknown-key"),
        pytest.param("none", r"returned None \(did you forget to return\?\)", id="none"),
        pytest.param("str", r"returned a str", id="str"),
        pytest.param("status", r'"status" must be an int from 100 to 599', id="status-type"),
        pytest.param("status-range", r'"status" must be an int', id="status-range"),
        pytest.param("body", r'"body" must be str, bytes, dict, list or None', id="body-type"),
        pytest.param("headers", r'bad "headers"', id="headers-type"),
        pytest.param("object", r"returned an object", id="object"),
        pytest.param("nan", r'"body" is not JSON-serializable: Out of range float', id="nan"),
        pytest.param("unjson", r'"body" is not JSON-serializable', id="set-in-body"),
    ],
)
def test_bad_return_is_500_logged_with_route_file(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture, kind: str, problem: str
) -> None:
    client = client_for({"routes/api/bad.py": BAD})
    with caplog.at_level(logging.ERROR, logger="kitpy"):
        response = client.get("/api/bad", params={"kind": kind})
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert "routes/api/bad.py" not in response.text
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith("routes/api/bad.py: get()") and re.search(problem, m) for m in messages
    ), messages
