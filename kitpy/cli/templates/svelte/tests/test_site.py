"""Tests for this site, run in process: `python -m pytest` (pytest: kitpy[testing])."""

from pathlib import Path

from kitpy.testing import TestClient

SITE = Path(__file__).resolve().parent.parent
HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_hello_api():
    with TestClient(SITE) as client:
        assert client.get("/api/hello/ann").json() == {"hello": "ann"}
        response = client.post("/api/hello/ann", json={"greeting": "Hi"})
        assert response.status_code == 201
        assert response.json() == {"message": "Hi, ann!"}


def test_pages_of_the_app_get_its_index_html():
    index = (SITE / "static" / "index.html").read_text()
    with TestClient(SITE) as client:
        for path in ("/", "/settings", "/users/42"):
            response = client.get(path, headers=HTML)
            assert response.status_code == 200
            assert response.text == index
        # The API and missing files keep their 404s.
        assert client.get("/api/nothing", headers={"accept": "application/json"}).status_code == 404
        assert client.get("/missing.js").status_code == 404


def test_built_assets_are_cached_for_good():
    assets = sorted((SITE / "static" / "assets").glob("*"))
    with TestClient(SITE) as client:
        for asset in assets:  # present once the front end is built
            response = client.get(f"/assets/{asset.name}")
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        index = client.get("/", headers=HTML)
        assert index.headers["cache-control"] == "max-age=0, must-revalidate"
