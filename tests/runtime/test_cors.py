"""``kitpy.cors``: preflights answered, headers added, refusals named."""

from __future__ import annotations

import pytest

from kitpy import cors

from .conftest import ClientFactory

ROUTE = """
from kitpy import error

def get(event):
    return {"body": {"ok": True}, "headers": {"x-total": "3"}}

def post(event):
    error(409, "taken")
"""


def site(hooks: str) -> dict[str, str]:
    return {"routes/api/items.py": ROUTE, "hooks.py": hooks}


CREDENTIALS = """
from kitpy import cors

handle = cors(
    ["https://app.example"],
    allow_headers=["authorization", "x-request-id"],
    allow_credentials=True,
    expose_headers=["x-total"],
    max_age=60,
)
"""


def test_a_preflight_is_answered_without_the_route(client_for: ClientFactory) -> None:
    client = client_for(site(CREDENTIALS))
    response = client.options(
        "/api/items",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code == 204
    headers = response.headers
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert headers["access-control-allow-methods"] == "GET, HEAD, POST, PUT, PATCH, DELETE"
    assert headers["access-control-allow-headers"] == "authorization, content-type"
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["access-control-max-age"] == "60"
    assert headers["vary"] == "Origin"


@pytest.mark.parametrize(
    ("origin", "method", "asked", "refused"),
    [
        ("https://evil.example", "GET", "", "origin https://evil.example"),
        ("https://app.example", "TRACE", "", "method TRACE"),
        ("https://app.example", "GET", "x-secret", "header x-secret"),
    ],
)
def test_a_preflight_that_asks_too_much_is_a_400(
    client_for: ClientFactory, origin: str, method: str, asked: str, refused: str
) -> None:
    client = client_for(site(CREDENTIALS))
    headers = {"origin": origin, "access-control-request-method": method}
    if asked:
        headers["access-control-request-headers"] = asked
    response = client.options("/api/items", headers=headers)
    assert response.status_code == 400
    assert response.text == f"CORS preflight refused: {refused} not allowed"
    assert "access-control-allow-origin" not in response.headers


def test_responses_to_an_allowed_origin_get_the_headers(client_for: ClientFactory) -> None:
    client = client_for(site(CREDENTIALS))
    ok = client.get("/api/items", headers={"origin": "https://app.example"})
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert ok.headers["access-control-expose-headers"] == "x-total"
    assert ok.headers["vary"] == "Origin"
    failed = client.post("/api/items", headers={"origin": "https://app.example"})
    assert failed.status_code == 409  # errors carry the headers too, or JS cannot read them
    assert failed.headers["access-control-allow-origin"] == "https://app.example"
    other = client.get("/api/items", headers={"origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    plain = client.get("/api/items")
    assert "access-control-allow-origin" not in plain.headers and "vary" not in plain.headers


def test_any_origin(client_for: ClientFactory) -> None:
    client = client_for(site("from kitpy import cors\nhandle = cors()\n"))
    response = client.get("/api/items", headers={"origin": "https://x.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "vary" not in response.headers  # the answer is the same for every origin
    preflight = client.options(
        "/api/items", headers={"origin": "null", "access-control-request-method": "GET"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"


def test_origins_by_regex(client_for: ClientFactory) -> None:
    hooks = (
        "from kitpy import cors\nhandle = cors([], allow_origin_regex=r'https://.*\\.example')\n"
    )
    client = client_for(site(hooks))
    ok = client.get("/api/items", headers={"origin": "https://x.example"})
    assert ok.headers["access-control-allow-origin"] == "https://x.example"
    other = client.get("/api/items", headers={"origin": "https://x.example.evil"})
    assert "access-control-allow-origin" not in other.headers


def test_bad_options_fail_at_import() -> None:
    with pytest.raises(ValueError, match="max_age"):
        cors(max_age=-1)
