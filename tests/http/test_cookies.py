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


SECRET = "a-test-secret-of-32-characters!!"


def test_a_signed_cookie_reads_back_and_cannot_be_forged() -> None:
    from kitpy.http.cookies import Cookies, sign_value

    outgoing = Cookies(None, "localhost", SECRET)
    outgoing.set("user", "ann", signed=True)
    header = outgoing.set_cookie_headers()[0]
    value = header.split(";")[0].split("=", 1)[1]
    assert value.startswith("ann.") and len(value) == len("ann.") + 43

    def read(cookie: str, secret: str = SECRET) -> str | None:
        return Cookies(cookie, "localhost", secret).get("user", signed=True)

    assert read(f"user={value}") == "ann"
    assert read(f"user={value.replace('ann', 'bob')}") is None  # edited value
    assert read("user=ann") is None  # never signed
    assert read(f"user={sign_value(SECRET, 'other', 'ann')}") is None  # another cookie's
    assert read(f"user={value}", "another-secret-of-enough-length") is None
    assert Cookies(f"user={value}", "localhost", SECRET).get("user") == value  # unsigned read


def test_signed_cookies_without_a_secret_say_where_to_set_it() -> None:
    from kitpy.http.cookies import Cookies

    with pytest.raises(RuntimeError, match=r"cookie_secret in \[server\] of kitpy.toml"):
        Cookies(None, "localhost").set("user", "ann", signed=True)
