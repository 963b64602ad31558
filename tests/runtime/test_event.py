"""Every field of the request event."""

from __future__ import annotations

import pytest

from .conftest import ClientFactory

ECHO = """
async def get(event):
    return {
        "body": {
            "method": event.request.method,
            "path": event.url.path,
            "raw_path": event.url.raw_path,
            "query": event.url.query.get_all("a"),
            "host": event.url.host,
            "port": event.url.port,
            "scheme": event.url.scheme,
            "url": str(event.url),
            "params": event.params,
            "route": event.route,
            "client": list(event.client) if event.client else None,
            "env": {k: event.platform.env[k] for k in event.platform.env},
            "attr": event.platform.env.GREETING,
            "cookie": event.cookies.get("session"),
            "header": event.request.headers.get("x-test"),
            "locals": event.locals,
        }
    }

async def post(event):
    data = await event.request.json()
    return {"body": {"json": data, "text": await event.request.text()}}
"""


def test_every_field(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "kitpy.toml": '[env]\nGREETING = "hello"\nCOUNT = 2\n',
            "routes/(shop)/items/[id]/[[page]]/[...rest].py": ECHO,
        }
    )
    response = client.get(
        "/items/a%20b/2/x/y?a=1&a=2",
        headers={"x-test": "yes", "cookie": "session=abc"},
    )
    assert response.json() == {
        "method": "GET",
        "path": "/items/a b/2/x/y",
        "raw_path": "/items/a%20b/2/x/y",
        "query": ["1", "2"],
        "host": "testserver",
        "port": 80,
        "scheme": "http",
        "url": "http://testserver/items/a%20b/2/x/y?a=1&a=2",
        "params": {"id": "a b", "page": "2", "rest": "x/y"},
        "route": "/(shop)/items/[id]/[[page]]/[...rest]",
        "client": ["testclient", 50000],
        "env": {"GREETING": "hello", "COUNT": 2},
        "attr": "hello",
        "cookie": "abc",
        "header": "yes",
        "locals": {},
    }


def test_optional_absent_and_empty_rest(client_for: ClientFactory) -> None:
    client = client_for({"routes/items/[id]/[[page]]/[...rest].py": ECHO, "kitpy.toml": _ENV})
    assert client.get("/items/7").json()["params"] == {"id": "7", "rest": ""}


def test_encoded_slash_stays_in_param(client_for: ClientFactory) -> None:
    client = client_for({"routes/blog/[slug].py": ECHO, "kitpy.toml": _ENV})
    assert client.get("/blog/a%2Fb").json()["params"] == {"slug": "a/b"}


_ENV = '[env]\nGREETING = "hi"\n'


def test_request_body(client_for: ClientFactory) -> None:
    client = client_for({"routes/echo.py": ECHO, "kitpy.toml": _ENV})
    response = client.post("/echo", json={"a": 1})
    assert response.json() == {"json": {"a": 1}, "text": '{"a":1}'}


def test_bad_json_body_is_400(client_for: ClientFactory) -> None:
    client = client_for({"routes/echo.py": ECHO, "kitpy.toml": _ENV})
    response = client.post("/echo", content=b"{nope", headers={"accept": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("request body is not valid JSON")


def test_form_body(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/form.py": """
            async def post(event):
                form = await event.request.form()
                return {"body": {"a": form.get_all("a"), "b": form.get("b")}}
            """
        }
    )
    response = client.post("/form", data={"a": ["1", "2"], "b": "x y"})
    assert response.json() == {"a": ["1", "2"], "b": "x y"}


def test_unknown_env_name_is_a_clear_error(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "routes/x.py": """
            async def get(event):
                try:
                    event.platform.env.MISSING
                except AttributeError as exc:
                    return {"body": str(exc)}
            """
        }
    )
    assert "no binding or env value 'MISSING'" in client.get("/x").text


TRUST = """
async def get(event):
    return {"body": {"client": list(event.client), "scheme": event.url.scheme,
                     "port": event.url.port}}
"""


@pytest.mark.parametrize(
    ("trusted", "peer", "headers", "client", "scheme"),
    [
        pytest.param(
            "[]",
            "10.0.0.1",
            {"x-forwarded-for": "1.2.3.4", "x-forwarded-proto": "https"},
            ["10.0.0.1", 50000],
            "http",
            id="untrusted-peer-ignored",
        ),
        pytest.param(
            '["10.0.0.1"]',
            "10.0.0.1",
            {"x-forwarded-for": "1.2.3.4", "x-forwarded-proto": "https"},
            ["1.2.3.4", 0],
            "https",
            id="trusted-peer",
        ),
        pytest.param(
            '["10.0.0.0/8"]',
            "10.0.0.1",
            {"x-forwarded-for": "6.6.6.6, 1.2.3.4, 10.0.0.2"},
            ["1.2.3.4", 0],
            "http",
            id="right-most-untrusted",
        ),
        pytest.param(
            '["10.0.0.1"]',
            "9.9.9.9",
            {"x-forwarded-for": "1.2.3.4"},
            ["9.9.9.9", 50000],
            "http",
            id="peer-not-in-list",
        ),
        pytest.param(
            '["10.0.0.1"]',
            "10.0.0.1",
            {"x-forwarded-for": "1.2.3.4:5678"},
            ["1.2.3.4", 0],
            "http",
            id="address-with-port",
        ),
        pytest.param(
            '["10.0.0.0/8"]',
            "10.0.0.1",
            {"x-forwarded-for": "1.2.3.4, unknown, 10.0.0.2"},
            ["10.0.0.2", 0],
            "http",
            id="garbage-entry-stops-the-walk",
        ),
    ],
)
def test_trusted_proxies(
    client_for: ClientFactory,
    trusted: str,
    peer: str,
    headers: dict[str, str],
    client: list[object],
    scheme: str,
) -> None:
    test_client = client_for(
        {"kitpy.toml": f"[server]\ntrusted_proxies = {trusted}\n", "routes/ip.py": TRUST},
        client=(peer, 50000),
    )
    body = test_client.get("/ip", headers=headers).json()
    assert body["client"] == client
    assert body["scheme"] == scheme
    assert body["port"] == (443 if scheme == "https" else 80)
