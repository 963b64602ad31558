"""Tests for this site, run in process: `python -m pytest` (pytest: kitpy[testing])."""

from pathlib import Path

from kitpy.testing import TestClient

SITE = Path(__file__).resolve().parent.parent


def test_home_page():
    with TestClient(SITE) as client:
        response = client.get("/")
        assert response.status_code == 200
        assert "Hello, world!" in response.text
        assert response.headers["x-content-type-options"] == "nosniff"


def test_hello_api():
    with TestClient(SITE) as client:
        assert client.get("/api/hello/ann").json() == {"hello": "ann"}
        response = client.post("/api/hello/ann", json={"greeting": "Hi"})
        assert response.status_code == 201
        assert response.json() == {"message": "Hi, ann!"}
        assert client.post("/api/hello/ann", json=[]).status_code == 400


def test_static_files():
    with TestClient(SITE) as client:
        response = client.get("/style.css")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/css")
