"""Issue #7, part 4 over a real server: cookies, proxy headers, logs.

- ``event.cookies.set`` defaults: ``Path=/; HttpOnly; SameSite=Lax`` and ``Secure``
  unless the request's host is localhost, 127.0.0.1 or ::1 (docs/endpoints.md, "The request event");
- X-Forwarded-For / X-Forwarded-Proto are believed only from ``trusted_proxies``; the
  client is the right-most address that is not a trusted proxy (a value that is not an
  IP address should never become the client: test_found_bugs.py);
- the log never holds a request's Authorization or Cookie values, its body, or
  [env] values (the exception text a handler raises is the handler's business).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .conftest import RunningSite, module_server
from .helpers import HOST, Server, exchange, get
from .sites import FAULTY, FAULTY_CONFIG, SECRET

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory, FAULTY, FAULTY_CONFIG)


def _cookies(server: Server, host: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    lines = ["GET /cookie HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    got = exchange(server.port, ("\r\n".join(lines) + "\r\n\r\n").encode())
    response = got.responses()[0]
    assert response.status == 200, response
    found = {}
    for value in response.header_all("set-cookie"):
        found[value.split("=", 1)[0]] = value
    return found


def _attrs(set_cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}


@pytest.mark.parametrize(
    ("host", "secure"),
    [
        ("127.0.0.1:{port}", False),
        ("localhost:{port}", False),
        ("localhost", False),
        ("[::1]:{port}", False),
        ("example.com", True),
        ("app.example.com:8443", True),
        ("127.0.0.2", True),
        ("localhost.evil.example", True),
    ],
)
def test_cookie_defaults(server: Server, host: str, secure: bool) -> None:
    cookies = _cookies(server, host.format(port=server.port))
    sid = cookies["sid"]
    assert sid.startswith("sid=abc123;"), sid
    attrs = _attrs(sid)
    assert {"path", "httponly", "samesite"} <= attrs, sid
    assert "samesite=lax" in sid.lower().replace(" ", ""), sid
    assert "path=/" in sid.lower().replace(" ", ""), sid
    assert ("secure" in attrs) is secure, (host, sid)
    theme = cookies["theme"]
    assert "httponly" not in _attrs(theme), theme  # an explicit httponly=False is kept


# -- proxy headers ---------------------------------------------------------------------------


def _whoami(server: Server, headers: dict[str, str], host: str | None = None) -> dict[str, str]:
    response = get(server.port, "/whoami", {**headers, **({"Host": host} if host else {})})
    assert response.status == 200, response
    return json.loads(response.body)


def test_proxy_headers_ignored_from_untrusted_peers(server: Server) -> None:
    me = _whoami(server, {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"})
    assert me["client"] == HOST and me["scheme"] == "http", me


@pytest.mark.parametrize(
    ("trusted", "xff", "client"),
    [
        ('["127.0.0.1"]', "1.2.3.4", "1.2.3.4"),
        ('["127.0.0.0/8"]', "1.2.3.4", "1.2.3.4"),
        ('["127.0.0.1"]', "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # left of the proxy's: forged
        ('["127.0.0.1", "10.0.0.0/8"]', "1.2.3.4, 10.1.1.1", "1.2.3.4"),
        ('["127.0.0.1"]', "2001:db8::1", "2001:db8::1"),
        ('["10.0.0.1"]', "1.2.3.4", HOST),  # the peer is not the trusted proxy
    ],
)
def test_proxy_headers_from_trusted_proxies(
    running_site: RunningSite, trusted: str, xff: str, client: str
) -> None:
    server = running_site(FAULTY, FAULTY_CONFIG + f"\n    trusted_proxies = {trusted}\n")
    me = _whoami(server, {"X-Forwarded-For": xff, "X-Forwarded-Proto": "https"})
    assert me["client"] == client, me
    assert me["scheme"] == ("https" if client != HOST else "http"), me


@pytest.mark.parametrize("xff", ["", " , "])
def test_empty_forwarded_for_is_not_a_client(running_site: RunningSite, xff: str) -> None:
    server = running_site(FAULTY, FAULTY_CONFIG + '\n    trusted_proxies = ["127.0.0.1"]\n')
    me = _whoami(server, {"X-Forwarded-For": xff})
    assert me["client"] == HOST, me


def test_forwarded_https_makes_cookies_secure(running_site: RunningSite) -> None:
    server = running_site(FAULTY, FAULTY_CONFIG + '\n    trusted_proxies = ["127.0.0.1"]\n')
    cookies = _cookies(server, "example.com", {"X-Forwarded-Proto": "https"})
    assert "secure" in _attrs(cookies["sid"])


# -- logs ------------------------------------------------------------------------------------


def test_logs_hold_no_secrets(running_site: RunningSite) -> None:
    server = running_site(FAULTY, FAULTY_CONFIG + f'\n    [env]\n    API_KEY = "{SECRET}"\n')
    headers = {
        "Authorization": f"Bearer {SECRET}",
        "Cookie": f"sid={SECRET}",
        "X-Api-Key": SECRET,
    }
    get(server.port, "/ping", headers)
    get(server.port, "/cookie", headers)
    get(server.port, "/fault/garbage/int", headers)
    body = f"password={SECRET}".encode()
    raw = (
        f"POST /secret HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n"
        f"Authorization: Basic {SECRET}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    exchange(server.port, raw)
    exchange(server.port, b"GET /ping HTTP/1.1\r\nX-Bad: " + SECRET.encode() + b"\x00\r\n\r\n")
    server.stop()
    log = server.log()
    assert '"GET /ping HTTP/1.1" 200' in log, log[-1000:]  # the access log is on
    assert SECRET not in log, [line for line in log.splitlines() if SECRET in line]
