"""Routes: every segment kind, precedence, decoding, trailing slashes (docs/routes.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from .kit import Server, raw_exchange, run_kitpy, serve_site

ECHO = """
def get(event):
    return {"body": {"route": event.route, "params": event.params}}
"""

ASYNC_ECHO = """
async def get(event):
    return {"body": {"route": event.route, "params": event.params}}
"""

FILES: dict[str, str] = {
    "matchers.py": """
        def even(value: str) -> bool:
            return value.isdigit() and int(value) % 2 == 0
    """,
    "routes/index.py": ECHO,
    "routes/about.py": ECHO,
    "routes/blog/[slug].py": ECHO,
    "routes/items/new.py": ECHO,
    "routes/items/[id=int].py": ECHO,
    "routes/items/[id].py": ECHO,
    "routes/num/[n=even].py": ECHO,
    "routes/num/[n].py": ECHO,
    "routes/u/[id=uuid].py": ECHO,
    "routes/s/[x=slug].py": ECHO,
    "routes/opt/[[page]].py": ECHO,
    "routes/opt/fixed.py": ECHO,
    "routes/req/[a].py": ECHO,
    "routes/req/[[b]].py": ECHO,
    "routes/docs/[...rest].py": ECHO,
    "routes/files/[...path]/edit.py": ECHO,
    "routes/p/[...rest]/edit.py": ECHO,
    "routes/p/[id].py": ECHO,
    "routes/q/[...rest]/edit.py": ECHO,
    "routes/q/[id]/edit.py": ECHO,
    "routes/f/[file].[ext].py": ECHO,
    "routes/m/foo-[c].py": ECHO,
    "routes/f2/[x].json.py": ECHO,
    "routes/f2/[y].py": ECHO,
    "routes/g/[a]-[b].py": ECHO,
    "routes/st/static[...rest].py": ECHO,
    "routes/(admin)/users.py": ASYNC_ECHO,
    "routes/(admin)/settings/index.py": ECHO,
    "routes/_helpers.py": """
        SECRET = "helper-module"
        def get(event):
            return {"body": "private file answered"}
    """,
    "routes/_private/secret.py": 'def get(event):\n    return {"body": "private folder"}\n',
    "routes/.hidden/x.py": 'def get(event):\n    return {"body": "dot folder"}\n',
    "routes/.well-known/security.txt.py": """
        def get(event):
            return {"body": "Contact: mailto:sec@example.com"}
    """,
    "routes/uses_helper.py": """
        from routes._helpers import SECRET

        def get(event):
            return {"body": SECRET}
    """,
    "routes/boom.py": """
        def get(event):
            raise ValueError("internal-secret-xyz")
    """,
}


site, server, client = serve_site(FILES)


def hit(client: httpx.Client, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("path", "route", "params"),
    [
        ("/", "/", {}),
        ("/about", "/about", {}),
        ("/blog/hello", "/blog/[slug]", {"slug": "hello"}),
        # static beats dynamic, a matcher beats no matcher
        ("/items/new", "/items/new", {}),
        ("/items/42", "/items/[id=int]", {"id": "42"}),
        ("/items/abc", "/items/[id]", {"id": "abc"}),
        # a user matcher from matchers.py; a matcher that rejects moves on
        ("/num/4", "/num/[n=even]", {"n": "4"}),
        ("/num/3", "/num/[n]", {"n": "3"}),
        (
            "/u/123e4567-e89b-12d3-a456-426614174000",
            "/u/[id=uuid]",
            {"id": "123e4567-e89b-12d3-a456-426614174000"},
        ),
        ("/s/hello-world", "/s/[x=slug]", {"x": "hello-world"}),
        # optional: absent from params when it matched nothing
        ("/opt", "/opt/[[page]]", {}),
        ("/opt/2", "/opt/[[page]]", {"page": "2"}),
        ("/opt/fixed", "/opt/fixed", {}),
        # required beats optional
        ("/req/x", "/req/[a]", {"a": "x"}),
        ("/req", "/req/[[b]]", {}),
        # rest: zero or more segments joined by "/"
        ("/docs", "/docs/[...rest]", {"rest": ""}),
        ("/docs/a", "/docs/[...rest]", {"rest": "a"}),
        ("/docs/a/b/c", "/docs/[...rest]", {"rest": "a/b/c"}),
        # rest in the middle
        ("/files/edit", "/files/[...path]/edit", {"path": ""}),
        ("/files/a/b/edit", "/files/[...path]/edit", {"path": "a/b"}),
        # a rest followed by static text beats a plain parameter ...
        ("/p/edit", "/p/[...rest]/edit", {"rest": ""}),
        ("/p/x", "/p/[id]", {"id": "x"}),
        # ... but not `[required]/static`
        ("/q/abc/edit", "/q/[id]/edit", {"id": "abc"}),
        ("/q/a/b/edit", "/q/[...rest]/edit", {"rest": "a/b"}),
        # text and parameters sharing a segment
        ("/f/report.pdf", "/f/[file].[ext]", {"file": "report", "ext": "pdf"}),
        ("/m/foo-bar", "/m/foo-[c]", {"c": "bar"}),
        # static text after a parameter outranks a bare parameter
        ("/f2/data.json", "/f2/[x].json", {"x": "data"}),
        ("/f2/data", "/f2/[y]", {"y": "data"}),
        # SvelteKit's parameters are lazy: the first takes as little as it can
        ("/g/a-b-c", "/g/[a]-[b]", {"a": "a", "b": "b-c"}),
        ("/st/staticfoo/bar", "/st/static[...rest]", {"rest": "foo/bar"}),
        # groups add nothing to the URL, but are part of the route id
        ("/users", "/(admin)/users", {}),
        ("/settings", "/(admin)/settings", {}),
    ],
)
def test_route_matches(client: httpx.Client, path: str, route: str, params: dict[str, str]) -> None:
    assert hit(client, path) == {"route": route, "params": params}


@pytest.mark.parametrize(
    "path",
    [
        "/u/not-a-uuid",
        "/s/a%20b",
        "/m/bar",
        "/nothing/here",
        "/_helpers",
        "/_private/secret",
        "/.hidden/x",
        "/items",
        "/blog/a/b",
    ],
)
def test_unmatched_paths_are_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, (path, response.text)
    assert "private" not in response.text and "dot folder" not in response.text


def test_well_known_is_a_route(client: httpx.Client) -> None:
    response = client.get("/.well-known/security.txt")
    assert response.status_code == 200
    assert response.text == "Contact: mailto:sec@example.com"


def test_routes_private_module_is_importable(client: httpx.Client) -> None:
    assert client.get("/uses_helper").text == "helper-module"


@pytest.mark.parametrize(
    ("raw", "slug"),
    [
        ("a%2Fb", "a/b"),
        ("caf%C3%A9", "café"),
        ("a%20b", "a b"),
        ("100%25", "100%"),
        ("a%3Fb", "a?b"),
        ("a%23b", "a#b"),
        ("%2525", "%25"),
    ],
)
def test_params_are_decoded(server: Server, raw: str, slug: str) -> None:
    # raw socket: no client-side normalisation of the path
    data = raw_exchange(
        server.port,
        f"GET /blog/{raw} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    assert httpx.Response(200, content=body).json()["params"] == {"slug": slug}


def test_encoded_chars_in_static_segment_decoded(client: httpx.Client) -> None:
    # %61 is "a": the path is decoded before matching (except %2F %3F %23 %25)
    assert hit(client, "/%61bout")["route"] == "/about"


def test_trailing_slash_redirects_308_relative_with_query(client: httpx.Client) -> None:
    response = client.get("/about/?x=1&y=2")
    assert response.status_code == 308
    assert response.headers["location"] == "/about?x=1&y=2"
    plain = client.get("/about/")
    assert plain.status_code == 308 and plain.headers["location"] == "/about"


def test_trailing_slash_on_dynamic_route(client: httpx.Client) -> None:
    response = client.get("/blog/hello/")
    assert response.status_code == 308
    assert response.headers["location"] == "/blog/hello"


def test_root_stays(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200


def test_serve_500_never_leaks_internals(server: Server, client: httpx.Client) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    for leak in ("Traceback", "internal-secret-xyz", "ValueError", 'File "', "boom.py"):
        assert leak not in response.text, leak
    log = server.wait_log(lambda text: "boom.py" in text)
    assert "routes/boom.py" in log  # the traceback goes to the server's log


def test_kitpy_routes_precedence_order(site: Path) -> None:
    result = run_kitpy("routes", str(site))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    patterns = [line.split()[0] for line in lines]

    def before(a: str, b: str) -> None:
        assert patterns.index(a) < patterns.index(b), (a, b, patterns)

    before("/items/new", "/items/[id=int]")
    before("/items/[id=int]", "/items/[id]")
    before("/num/[n=even]", "/num/[n]")
    before("/opt/fixed", "/opt/[[page]]")
    before("/req/[a]", "/req/[[b]]")
    before("/p/[...rest]/edit", "/p/[id]")
    before("/q/[id]/edit", "/q/[...rest]/edit")
    # private and dot files are absent; .well-known and groups are present
    joined = "\n".join(lines)
    assert "_helpers" not in joined and "_private" not in joined and ".hidden" not in joined
    assert "/.well-known/security.txt" in patterns
    # one route a line: pattern, methods, file relative to the site
    users = next(line for line in lines if "users.py" in line)
    assert users.split()[0] in ("/users", "/(admin)/users")
    assert "GET" in users and "HEAD" in users
    assert "routes/(admin)/users.py" in users
    assert str(site) not in users
    edit = next(line for line in lines if line.split()[0] == "/files/[...path]/edit")
    assert "routes/files/[...path]/edit.py" in edit


def test_kitpy_routes_is_deterministic(site: Path) -> None:
    first = run_kitpy("routes", str(site))
    second = run_kitpy("routes", str(site))
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
