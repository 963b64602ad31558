"""Cookie helpers: which Secure cookies a browser drops."""

from __future__ import annotations

import pytest

from kitpy.http.cookies import secure_cookies_dropped

SET = ["session=abc; Path=/; HttpOnly; Secure", "theme=dark; Path=/", "id=1; secure"]


@pytest.mark.parametrize(
    ("scheme", "host", "dropped"),
    [
        ("http", "devbox.example", ["session", "id"]),
        ("http", "192.168.1.5", ["session", "id"]),
        ("https", "devbox.example", []),
        ("http", "localhost", []),
        ("http", "127.0.0.1", []),
        ("http", "::1", []),
    ],
)
def test_secure_cookies_dropped(scheme: str, host: str, dropped: list[str]) -> None:
    assert secure_cookies_dropped(SET, scheme, host) == dropped
