"""Signed cookies through a site: set, read back, refuse a forgery."""

from __future__ import annotations

from .conftest import ClientFactory

SESSION = {
    "kitpy.toml": '[server]\ncookie_secret = "a-test-secret-of-32-characters!!"\n',
    "routes/login.py": """
        def post(event):
            event.cookies.set("user", "ann", signed=True)
            return {"status": 204}
    """,
    "routes/me.py": """
        def get(event):
            return {"body": {"user": event.cookies.get("user", signed=True)}}
    """,
}


def test_signed_cookies_through_the_site(client_for: ClientFactory) -> None:
    client = client_for(SESSION)
    login = client.post("/login")
    cookie = login.headers["set-cookie"].split(";")[0]
    assert cookie.startswith("user=ann.")
    assert client.get("/me", headers={"cookie": cookie}).json() == {"user": "ann"}
    forged = client.get("/me", headers={"cookie": "user=admin.AAAA"})
    assert forged.json() == {"user": None}
