from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from kitpy.routing import RouteMatch, RouteSpec, RouteTable, build_table, trie
from kitpy.routing.segments import Param, ParamKind, encode_static
from kitpy.routing.trie import decode_path, split_path

from .conftest import DOCS_ROUTES, MakeRoutes

Matchers = Mapping[str, Callable[[str], bool]]

SITE = [*DOCS_ROUTES, "files/[...path]/edit.py"]


def _match(table: RouteTable, path: str) -> tuple[str, dict[str, str]] | None:
    found = table.match(path)
    return None if found is None else (found.route.id, found.params)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/", ("/", {}), id="root"),
        pytest.param("/about", ("/about", {}), id="static"),
        pytest.param("/about/", ("/about", {}), id="trailing-slash-no-crash"),
        pytest.param("/api/rooms", ("/api/rooms", {}), id="folder-index"),
        pytest.param("/api/rooms/", ("/api/rooms", {}), id="folder-index-slash"),
        pytest.param(
            "/api/rooms/r1",
            ("/api/rooms/[id]/[...rest]", {"id": "r1", "rest": ""}),
            id="empty-rest",
        ),
        pytest.param(
            "/api/rooms/r1/websocket",
            ("/api/rooms/[id]/[...rest]", {"id": "r1", "rest": "websocket"}),
            id="one-segment-rest",
        ),
        pytest.param(
            "/api/rooms/r1/a/b/c",
            ("/api/rooms/[id]/[...rest]", {"id": "r1", "rest": "a/b/c"}),
            id="deep-rest",
        ),
        pytest.param("/blog", ("/blog/[[page]]", {}), id="optional-absent"),
        pytest.param("/blog/2", ("/blog/[[page]]", {"page": "2"}), id="optional-present"),
        pytest.param("/blog/2/3", None, id="optional-takes-one"),
        pytest.param("/users", ("/(admin)/users", {}), id="group"),
        pytest.param("/admin/users", None, id="group-not-in-url"),
        pytest.param("/(admin)/users", None, id="group-literal-not-in-url"),
        pytest.param("/_helpers", None, id="private"),
        pytest.param(
            "/files/edit", ("/files/[...path]/edit", {"path": ""}), id="middle-rest-empty"
        ),
        pytest.param(
            "/files/a/b/edit", ("/files/[...path]/edit", {"path": "a/b"}), id="middle-rest-deep"
        ),
        pytest.param(
            "/files/a%2Fb/edit",
            ("/files/[...path]/edit", {"path": "a/b"}),
            id="middle-rest-encoded",
        ),
        pytest.param("/files/a/b", None, id="middle-rest-needs-tail"),
        pytest.param("/nope", None, id="no-route"),
        pytest.param("/api", None, id="no-index-for-api"),
        pytest.param("/about//", None, id="double-trailing-slash"),
    ],
)
def test_design_site(make_routes: MakeRoutes, path: str, expected: object) -> None:
    assert _match(build_table(make_routes(SITE)), path) == expected


# (files, path, route id or None, params)
CASES = [
    # mixed segments
    pytest.param(["[file].[ext].py"], "/a.b", "/[file].[ext]", {"file": "a", "ext": "b"}, id="f.e"),
    pytest.param(
        ["[file].[ext].py"], "/a.tar.gz", "/[file].[ext]", {"file": "a", "ext": "tar.gz"}, id="lazy"
    ),
    pytest.param(["[file].[ext].py"], "/noext", None, {}, id="mixed-needs-text"),
    pytest.param(["[file].[ext].py"], "/.b", None, {}, id="mixed-required-nonempty"),
    pytest.param(["foo-[c].py"], "/foo-bar", "/foo-[c]", {"c": "bar"}, id="prefix-param"),
    pytest.param(["foo-[c].py"], "/foo-", None, {}, id="prefix-param-empty"),
    pytest.param(["foo-[c].py"], "/bar-foo", None, {}, id="prefix-param-other"),
    pytest.param(["static[...rest].py"], "/static", "/static[...rest]", {"rest": ""}, id="sr-0"),
    pytest.param(["static[...rest].py"], "/staticx", "/static[...rest]", {"rest": "x"}, id="sr-1"),
    pytest.param(
        ["static[...rest].py"], "/staticx/y", "/static[...rest]", {"rest": "x/y"}, id="sr-span"
    ),
    pytest.param(["[...rest].json.py"], "/a/b.json", "/[...rest].json", {"rest": "a/b"}, id="rs"),
    pytest.param(["[...rest].json.py"], "/a/b.txt", None, {}, id="rest-suffix-miss"),
    pytest.param(["prefix[[s]].py"], "/prefix", "/prefix[[s]]", {}, id="mixed-optional-absent"),
    pytest.param(["prefix[[s]].py"], "/prefixab", "/prefix[[s]]", {"s": "ab"}, id="mixed-opt"),
    pytest.param(["[a]-[b].py"], "/1-2-3", "/[a]-[b]", {"a": "1", "b": "2-3"}, id="lazy-first"),
    # decoding
    pytest.param(
        ["blog/[slug].py"], "/blog/a%2Fb", "/blog/[slug]", {"slug": "a/b"}, id="enc-slash"
    ),
    pytest.param(["blog/[slug].py"], "/blog/a%2fb", "/blog/[slug]", {"slug": "a/b"}, id="lower-2f"),
    pytest.param(
        ["blog/[slug].py"], "/blog/caf%C3%A9", "/blog/[slug]", {"slug": "café"}, id="utf8"
    ),
    pytest.param(["blog/[slug].py"], "/blog/a%20b", "/blog/[slug]", {"slug": "a b"}, id="space"),
    pytest.param(["blog/[slug].py"], "/blog/100%25", "/blog/[slug]", {"slug": "100%"}, id="pct"),
    pytest.param(["blog/[slug].py"], "/blog/%3F%23", "/blog/[slug]", {"slug": "?#"}, id="q-hash"),
    pytest.param(["blog/[slug].py"], "/blog/a%252F", "/blog/[slug]", {"slug": "a%2F"}, id="once"),
    pytest.param(["blog/[slug].py"], "/blog/a+b", "/blog/[slug]", {"slug": "a+b"}, id="plus-kept"),
    pytest.param(["blog/[slug].py"], "/blog/a%2Fb/c", None, {}, id="enc-slash-then-segment"),
    pytest.param(["café.py"], "/caf%C3%A9", "/café", {}, id="static-utf8"),
    pytest.param(["a b.py"], "/a%20b", "/a b", {}, id="static-space"),
    pytest.param(["100%.py"], "/100%25", "/100%", {}, id="static-percent"),
    pytest.param(["what?.py"], "/what%3F", "/what?", {}, id="static-question-mark"),
    pytest.param(["a/b.py"], "/a%2Fb", None, {}, id="encoded-slash-is-not-a-separator"),
    pytest.param(["a/b.py"], "/%61/b", "/a/b", {}, id="encoded-letter"),
    pytest.param(["[x].py"], "/%E0%A4%A", "/[x]", {"x": "\ufffd%A"}, id="bad-escape-no-crash"),
    # matchers falling through
    pytest.param(
        ["items/[id=int].py", "items/[slug].py"],
        "/items/42",
        "/items/[id=int]",
        {"id": "42"},
        id="i",
    ),
    pytest.param(
        ["items/[id=int].py", "items/[slug].py"],
        "/items/abc",
        "/items/[slug]",
        {"slug": "abc"},
        id="int-rejects-falls-through",
    ),
    pytest.param(
        ["items/[id=int].py", "items/[slug].py"],
        "/items/-3",
        "/items/[id=int]",
        {"id": "-3"},
        id="-",
    ),
    pytest.param(
        ["k/[k=uuid].py", "k/[other].py"],
        "/k/550E8400-e29b-41d4-a716-446655440000",
        "/k/[k=uuid]",
        {"k": "550E8400-e29b-41d4-a716-446655440000"},
        id="uuid",
    ),
    pytest.param(["k/[k=uuid].py"], "/k/550e8400", None, {}, id="uuid-rejects-no-fallback"),
    pytest.param(
        ["a/[x=int]/b.py", "a/[y]/[z].py"], "/a/q/b", "/a/[y]/[z]", {"y": "q", "z": "b"}, id="deep"
    ),
    pytest.param(
        ["a/[x=int]/b.py", "a/[y]/[z].py"], "/a/1/b", "/a/[x=int]/b", {"x": "1"}, id="deep-accepts"
    ),
    pytest.param(
        ["[[lang=slug]]/about.py"], "/about", "/[[lang=slug]]/about", {}, id="opt-m-absent"
    ),
    pytest.param(
        ["[[lang=slug]]/about.py"], "/en/about", "/[[lang=slug]]/about", {"lang": "en"}, id="opt-m"
    ),
    pytest.param(["[[lang=slug]]/about.py"], "/EN/about", None, {}, id="optional-matcher-rejects"),
    pytest.param(
        ["[[n=int]]/[...rest].py"],
        "/docs/x",
        "/[[n=int]]/[...rest]",
        {"rest": "docs/x"},
        id="rejected-optional-leaves-segment-to-rest",
    ),
    pytest.param(["[...n=int].py"], "/5", "/[...n=int]", {"n": "5"}, id="rest-matcher"),
    pytest.param(["[...n=int].py"], "/a", None, {}, id="rest-matcher-rejects"),
    pytest.param(["[...n=int].py"], "/1/2", None, {}, id="rest-matcher-sees-joined"),
    pytest.param(["x/[...n=slug]/y.py"], "/x/a-b/y", "/x/[...n=slug]/y", {"n": "a-b"}, id="rm-mid"),
    pytest.param(
        ["[v=slug].[e=int].py"], "/ab.1", "/[v=slug].[e=int]", {"v": "ab", "e": "1"}, id="mm"
    ),
    pytest.param(["[v=slug].[e=int].py"], "/ab.x", None, {}, id="mixed-matcher-rejects"),
    # precedence while matching
    pytest.param(
        ["foo-abc.py", "foo-[c].py", "[b].py", "[...catchall].py"],
        "/foo-abc",
        "/foo-abc",
        {},
        id="p1",
    ),
    pytest.param(
        ["foo-abc.py", "foo-[c].py", "[b].py", "[...catchall].py"],
        "/foo-xyz",
        "/foo-[c]",
        {"c": "xyz"},
        id="p2",
    ),
    pytest.param(
        ["foo-abc.py", "foo-[c].py", "[b].py", "[...catchall].py"],
        "/bar",
        "/[b]",
        {"b": "bar"},
        id="p3",
    ),
    pytest.param(
        ["foo-abc.py", "foo-[c].py", "[b].py", "[...catchall].py"],
        "/a/b",
        "/[...catchall]",
        {"catchall": "a/b"},
        id="p4",
    ),
    pytest.param(
        ["foo-abc.py", "foo-[c].py", "[b].py", "[...catchall].py"],
        "/",
        "/[...catchall]",
        {"catchall": ""},
        id="catchall-root",
    ),
    pytest.param(
        ["[...rest]/edit.py", "[id].py"],
        "/edit",
        "/[...rest]/edit",
        {"rest": ""},
        id="rest-text-first",
    ),
    pytest.param(["[...rest]/edit.py", "[id].py"], "/x", "/[id]", {"id": "x"}, id="rest-text-miss"),
    pytest.param(
        ["[[a]]/[[b]].py", "[[a]].py"], "/x", "/[[a]]/[[b]]", {"a": "x"}, id="nested-optionals"
    ),
    pytest.param(
        ["[[a]]/[[b]].py"], "/x/y", "/[[a]]/[[b]]", {"a": "x", "b": "y"}, id="two-optionals"
    ),
    pytest.param(["[[a]]/[[b]].py"], "/", "/[[a]]/[[b]]", {}, id="optionals-at-root"),
    pytest.param(["a/[[x]]/b.py"], "/a/b", "/a/[[x]]/b", {}, id="inner-optional-absent"),
    pytest.param(["a/[[x]]/b.py"], "/a/q/b", "/a/[[x]]/b", {"x": "q"}, id="inner-optional"),
    pytest.param(["a/[[x]]/b.py"], "/a/b/b", "/a/[[x]]/b", {"x": "b"}, id="inner-optional-greedy"),
    pytest.param(["a/[x]/b.py"], "/a//b", None, {}, id="empty-segment"),
    pytest.param(
        ["[...a]/x/[...b].py"],
        "/x/x/x",
        "/[...a]/x/[...b]",
        {"a": "x/x", "b": ""},
        id="greedy-rest",
    ),
    pytest.param(["blog/index.py", "blog/[[page]].py"], "/blog", "/blog", {}, id="index-over-opt"),
    pytest.param(
        [".well-known/security.txt.py"],
        "/.well-known/security.txt",
        "/.well-known/security.txt",
        {},
        id="well-known",
    ),
    pytest.param(["(a)/x.py", "(b)/y.py"], "/y", "/(b)/y", {}, id="second-group"),
    pytest.param(["(a)/(b)/[id].py"], "/7", "/(a)/(b)/[id]", {"id": "7"}, id="nested-groups"),
    pytest.param(["about.py"], "", None, {}, id="empty-path-no-crash"),
    pytest.param(["index.py"], "//", "/", {}, id="double-slash-root"),
]


@pytest.mark.parametrize(("files", "path", "route_id", "params"), CASES)
def test_match(
    make_routes: MakeRoutes,
    files: list[str],
    path: str,
    route_id: str | None,
    params: dict[str, str],
) -> None:
    found = build_table(make_routes(files)).match(path)
    if route_id is None:
        assert found is None
    else:
        assert found is not None
        assert (found.route.id, found.params) == (route_id, params)


def test_match_result_shape(make_routes: MakeRoutes) -> None:
    root = make_routes(["[id].py"])
    found = build_table(root).match("/a")
    assert isinstance(found, RouteMatch)
    assert found.params == {"id": "a"}
    assert found.route.file == root.absolute() / "[id].py"


def _even(value: str) -> bool:
    return int(value) % 2 == 0


@pytest.mark.parametrize(
    ("files", "matchers", "path", "route_id"),
    [
        pytest.param(
            ["n/[x=even].py", "n/[x].py"], {"even": _even}, "/n/4", "/n/[x=even]", id="user-accepts"
        ),
        pytest.param(
            ["n/[x=even].py", "n/[x].py"], {"even": _even}, "/n/3", "/n/[x]", id="user-rejects"
        ),
        pytest.param(
            ["i/[x=int].py"], {"int": lambda v: v == "7"}, "/i/7", "/i/[x=int]", id="override-int"
        ),
        pytest.param(
            ["i/[x=int].py"], {"int": lambda v: v == "7"}, "/i/8", None, id="override-int-rejects"
        ),
        pytest.param(
            ["s/[x=has_slash].py"],
            {"has_slash": lambda v: "/" in v},
            "/s/a%2Fb",
            "/s/[x=has_slash]",
            id="sees-decoded-value",
        ),
        pytest.param(
            ["s/[x=has_slash].py"],
            {"has_slash": lambda v: "/" in v},
            "/s/ab",
            None,
            id="decoded-rejects",
        ),
        pytest.param(
            ["[[v=even]]/[...rest].py"],
            {"even": _even},
            "/4/x",
            "/[[v=even]]/[...rest]",
            id="user-optional",
        ),
    ],
)
def test_user_matchers(
    make_routes: MakeRoutes, files: list[str], matchers: Matchers, path: str, route_id: str | None
) -> None:
    found = build_table(make_routes(files), matchers).match(path)
    assert (found.route.id if found else None) == route_id


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        pytest.param("/a%2Fb%2fc", "/a%2Fb%2Fc", id="slash-kept-upper"),
        pytest.param("/a%3f%23%25", "/a%3F%23%25", id="others-kept"),
        pytest.param("/%41%42", "/AB", id="letters"),
        pytest.param("/%E2%82%AC", "/\u20ac", id="utf8"),
        pytest.param("/plain", "/plain", id="fast-path"),
    ],
)
def test_decode_path(raw: str, decoded: str) -> None:
    assert decode_path(raw) == decoded


@pytest.mark.parametrize(
    ("raw", "segments"),
    [
        pytest.param("/", [], id="root"),
        pytest.param("/a/b", ["a", "b"], id="two"),
        pytest.param("/a/b/", ["a", "b"], id="trailing"),
        pytest.param("/a//b", ["a", "", "b"], id="empty-inside"),
        pytest.param("/a%2Fb", ["a%2Fb"], id="encoded-slash"),
    ],
)
def test_split_path(raw: str, segments: list[str]) -> None:
    assert split_path(raw) == segments


# -- a large table ------------------------------------------------------------------


def _spec(route_id: str) -> RouteSpec:
    return RouteSpec(id=route_id, file=Path(f"/site/routes{route_id}.py"), pattern="")


def _big_site(n: int) -> list[RouteSpec]:
    ids: list[str] = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            ids.append(f"/s{i % 97}/page{i}")
        elif kind == 1:
            ids.append(f"/api/v{i % 7}/res{i}/[id]")
        elif kind == 2:
            ids.append(f"/u{i}/[id=int]/posts/[...rest]")
        elif kind == 3:
            ids.append(f"/d{i % 50}/file{i}-[name].[ext]")
        else:
            ids.append(f"/g{i}/[[page]]")
    return [_spec(i) for i in ids]


def test_ten_thousand_routes() -> None:
    table = RouteTable([*_big_site(10_000), _spec("/[...catchall]")])
    assert len(table.routes) == 10_001
    for i in range(0, 10_000, 37):
        kind = i % 5
        want: tuple[str, dict[str, str]]
        if kind == 0:
            path, want = f"/s{i % 97}/page{i}", (f"/s{i % 97}/page{i}", {})
        elif kind == 1:
            path, want = (
                f"/api/v{i % 7}/res{i}/x{i}",
                (f"/api/v{i % 7}/res{i}/[id]", {"id": f"x{i}"}),
            )
        elif kind == 2:
            path = f"/u{i}/{i}/posts/a/b"
            want = (f"/u{i}/[id=int]/posts/[...rest]", {"id": str(i), "rest": "a/b"})
        elif kind == 3:
            path = f"/d{i % 50}/file{i}-n.tar.gz"
            want = (f"/d{i % 50}/file{i}-[name].[ext]", {"name": "n", "ext": "tar.gz"})
        else:
            path, want = f"/g{i}", (f"/g{i}/[[page]]", {})
        assert _match(table, path) == want, path
    # an int matcher that rejects falls through to the catch-all
    assert _match(table, "/u2/abc/posts") == ("/[...catchall]", {"catchall": "u2/abc/posts"})
    assert _match(table, "/s1/page2") == ("/[...catchall]", {"catchall": "s1/page2"})


# -- against a linear scan of SvelteKit-style regexes -------------------------------


def _reference_regex(route: RouteSpec) -> tuple[re.Pattern[str], list[Param]]:
    """One regex per route, built the way SvelteKit's parse_route_id builds it."""
    params: list[Param] = []
    if not route.path_segments:
        return re.compile(r"/"), params
    out = []
    for segment in route.path_segments:
        lone = segment.lone_param
        if lone is not None and lone.kind is not ParamKind.REQUIRED:
            params.append(lone)
            out.append("(?:/(.*))?" if lone.kind is ParamKind.REST else "(?:/([^/]+))?")
            continue
        text = "/"
        for part in segment.parts:
            if isinstance(part, str):
                text += re.escape(encode_static(part))
            else:
                params.append(part)
                text += {"required": "([^/]+?)", "optional": "([^/]*)?", "rest": "(.*?)"}[
                    part.kind.value
                ]
        out.append(text)
    return re.compile("".join(out) + "/?", re.DOTALL), params


def _reference_match(table: RouteTable, path: str) -> tuple[str, dict[str, str]] | None:
    decoded = decode_path(path)
    for route in table.routes:
        regex, params = _reference_regex(route)
        found = regex.fullmatch(decoded)
        if found is None:
            continue
        values: dict[str, str] = {}
        for param, value in zip(params, found.groups(), strict=True):
            if value is None or (value == "" and param.kind is ParamKind.OPTIONAL):
                if param.kind is ParamKind.REST:
                    values[param.name] = ""
                continue
            values[param.name] = re.sub("%(2F|3F|23|25)", lambda m: chr(int(m.group(1), 16)), value)
        return route.id, values
    return None


SEGMENT_CHOICES = ["a", "b", "ab", "x", "foo-bar", "b.json", "(g)", "[P]", "[[P]]", "[...P]"]
SEGMENT_CHOICES += ["foo-[P]", "[P].json", "x[...P]", "[P]-[P]", "b[P]", "[...P]x", "[[P]]b"]
PATH_TOKENS = ["a", "b", "x", "foo", "foo-bar", "1", "b.json", "x1", "abc", "bx", "ab", "1-2", "xx"]


def _random_table(rng: random.Random) -> RouteTable:
    routes: list[RouteSpec] = []
    while len(routes) < rng.randint(3, 30):
        names, k = [], 0
        for _ in range(rng.randint(0, 4)):
            name = rng.choice(SEGMENT_CHOICES)
            while "P" in name:
                k += 1
                name = name.replace("P", f"p{k}", 1)
            names.append(name)
        route_id = "/" + "/".join(names)
        try:
            candidate = _spec(route_id)
            RouteTable([*routes, candidate])
        except Exception:  # a bad name or a conflict: draw again
            continue
        routes.append(candidate)
    return RouteTable(routes)


@pytest.mark.parametrize("seed", range(30))
def test_trie_agrees_with_linear_scan(seed: int) -> None:
    rng = random.Random(seed)
    table = _random_table(rng)
    for _ in range(60):
        tokens = [rng.choice(PATH_TOKENS) for _ in range(rng.randint(0, 5))]
        path = "/" + "/".join(tokens)
        want = _reference_match(table, path)
        assert _match(table, path) == want, path
        assert _match(table, path) == want, f"{path} (again: a remembered match)"


def test_static_matches_are_remembered_whatever_the_matchers_say() -> None:
    calls: list[str] = []

    def picky(value: str) -> bool:
        calls.append(value)
        return value == "yes"

    table = RouteTable(
        [_spec("/[x=picky]"), _spec("/no"), _spec("/a/[id]"), _spec("/[...rest]")],
        {"picky": picky},
    )
    first = table.match("/no")
    assert first is not None and first.route.id == "/no"
    assert table.match("/no") is first  # the second look-up is the dict's
    assert _match(table, "/yes") == ("/[x=picky]", {"x": "yes"})
    assert _match(table, "/maybe") == ("/[...rest]", {"rest": "maybe"})
    assert _match(table, "/maybe") == ("/[...rest]", {"rest": "maybe"})
    assert calls.count("maybe") == 2  # a match with parameters is never remembered
    one, two = table.match("/a/1"), table.match("/a/2")
    assert one is not None and two is not None and one.params == {"id": "1"}
    assert two.params == {"id": "2"}


def test_the_remembered_matches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trie, "STATIC_CACHE_SIZE", 3)
    table = RouteTable([_spec("/about")])
    # Every spelling of /about is remembered apart; only the first three are kept.
    spellings = ["/about", "/%61bout", "/a%62out", "/ab%6Fut", "/abo%75t"]
    for path in spellings:
        assert _match(table, path) == ("/about", {}), path
    assert len(table._trie._static_hits) == 3
    for path in spellings:
        assert _match(table, path) == ("/about", {}), path


def test_find_gives_params_of_the_callers_own() -> None:
    table = RouteTable([_spec("/about"), _spec("/a/[id]")])
    found = table.find("/about")
    assert found is not None and found[0].id == "/about" and found[1] == {}
    found[1]["x"] = "1"
    again = table.find("/about")  # now from the remembered match
    assert again is not None and again[1] == {}
    match = table.match("/about")
    assert match is not None and match.params == {}
    one = table.find("/a/1")
    assert one is not None and one[1] == {"id": "1"}
    one[1]["id"] = "changed"
    two = table.find("/a/1")
    assert two is not None and two[1] == {"id": "1"}
    assert table.find("/b") is None and table.match("/b") is None
