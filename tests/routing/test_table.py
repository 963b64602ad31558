from __future__ import annotations

import random
from pathlib import Path

import pytest

from kitpy.errors import RouteConflictError, SiteError
from kitpy.routing import RouteSpec, RouteTable, build_table, sort_routes

from .conftest import MakeRoutes


def _spec(route_id: str) -> RouteSpec:
    return RouteSpec(id=route_id, file=Path(f"/site/routes{route_id}.py"), pattern="")


def _sorted_ids(ids: list[str], seed: int) -> list[str]:
    shuffled = [_spec(i) for i in ids]
    random.Random(seed).shuffle(shuffled)
    return [r.id for r in sort_routes(shuffled)]


# SvelteKit's own ordering cases (index.spec.js, "sorts routes correctly" and the
# samples it builds), expected lists restated here in precedence order.
SVELTEKIT_ORDERS = [
    pytest.param(
        [
            "/",
            "/a",
            "/b",
            "/b/[required]",
            "/c",
            "/c/bar",
            "/c/b[x].json",
            "/c/b[x]",
            "/c/foo",
            "/d/e",
            "/d/e[...rest]",
            "/e/f",
            "/e/[...rest]/f",
            "/f/static[...rest]",
            "/f/[...rest]static",
            "/g/[[optional]]/static",
            "/g/[required]",
            "/g/[...rest]/[required]",
            "/h/a/b",
            "/h/a/[required]/b",
            "/h/a/[...rest]/b",
            "/x/[...rest]",
            "/[...rest]/x",
            "/[...rest]/x/[...deep_rest]/y",
            "/[...rest]/x/[...deep_rest]",
            "/[required=matcher]",
            "/[required]",
            "/[...rest]",
        ],
        id="sorts-routes-correctly",
    ),
    pytest.param(
        ["/", "/about", "/blog.json", "/blog", "/blog/[slug].json", "/blog/[slug]"],
        id="basic-sample",
    ),
    pytest.param(["/", "/a", "/a/[...rest]", "/b", "/b/[...rest]"], id="rest-sample"),
    pytest.param(["/", "/prefix-[...rest]", "/[...rest].json"], id="rest-prefix-suffix-sample"),
    pytest.param(
        [
            "/",
            "/[[foo]]bar",
            "/nested",
            "/nested/[[optional]]/sub",
            "/nested/[[optional]]",
            "/prefix[[suffix]]",
            "/[[optional]]",
        ],
        id="optional-sample",
    ),
    pytest.param(["/", "/[[a]]/[[b]]", "/[[a]]"], id="nested-optionals-sample"),
    pytest.param(["/foo/bar", "/foo/[bar]", "/foo/[...bar]"], id="static-param-rest"),
    pytest.param(
        ["/foo-abc", "/foo-[c]", "/[[a=x]]", "/[b]", "/[...catchall]"],
        id="docs-sorting-example-as-code-sorts",
    ),
]


@pytest.mark.parametrize("expected", SVELTEKIT_ORDERS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sveltekit_order(expected: list[str], seed: int) -> None:
    assert _sorted_ids(expected, seed) == expected


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("/about", "/[page]", id="static-beats-param"),
        pytest.param("/[id=int]", "/[id]", id="matcher-beats-plain"),
        pytest.param("/[id]", "/[[id]]", id="required-beats-optional"),
        pytest.param("/[[id]]", "/[...id]", id="optional-beats-rest"),
        pytest.param("/[[id=int]]", "/[id]", id="matcher-beats-required"),
        pytest.param("/[...rest]/edit", "/[id]", id="rest-then-text-beats-param"),
        pytest.param("/x/[...rest]/y", "/x/[id]", id="rest-then-deeper-text-beats-param"),
        pytest.param("/x/[id]/y", "/x/[...rest]/y", id="param-then-text-beats-rest-then-text"),
        pytest.param("/g/[id]", "/g/[...rest]/[id]", id="param-beats-rest-then-param"),
        pytest.param("/[...rest]/x", "/[...rest]", id="rest-then-text-beats-rest"),
        pytest.param("/[id]", "/[...rest=int]", id="param-beats-rest-with-matcher"),
        pytest.param("/foo-[c]", "/[c]", id="text-prefix-beats-param"),
        pytest.param("/blog.json", "/blog", id="longer-static-first"),
        pytest.param("/a", "/b", id="alphabetical"),
        pytest.param("/blog", "/blog/[[page]]", id="shallow-beats-optional"),
        pytest.param("/a/b", "/a/[[x]]/b", id="inner-optional-ignored-then-id"),
        pytest.param("/(g)/a", "/b", id="groups-ignored"),
        pytest.param("/[a]/[b]", "/[...rest]", id="two-params-beat-rest"),
        pytest.param("/[a]/x", "/[a]/[b]", id="second-segment-decides"),
    ],
)
def test_pairwise_order(first: str, second: str) -> None:
    assert _sorted_ids([second, first], 0) == [first, second]
    assert _sorted_ids([first, second], 0) == [first, second]


def test_table_routes_are_in_precedence_order(make_routes: MakeRoutes) -> None:
    table = build_table(make_routes(["[...rest].py", "[id].py", "about.py", "index.py"]))
    assert [r.id for r in table.routes] == ["/", "/about", "/[id]", "/[...rest]"]


def test_order_is_deterministic() -> None:
    ids = [f"/{a}/{b}" for a in ("x", "[p]", "[[o]]", "[...r]") for b in ("y", "[q]", "z[w]")]
    ids = [i for i in ids if i != "/[...r]/[[o]]"]
    orders = {tuple(_sorted_ids(ids, seed)) for seed in range(20)}
    assert len(orders) == 1


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param(["[a].py", "[b].py"], "'/\\[\\*\\]'", id="param-names-differ"),
        pytest.param(["[a=int].py", "[b=int].py"], "'/\\[\\*=int\\]'", id="same-matcher"),
        pytest.param(["[[a]].py", "[[b]].py"], None, id="optionals"),
        pytest.param(["[...a].py", "[...b].py"], None, id="rests"),
        pytest.param(["(a)/users.py", "(b)/users.py"], "'/users'", id="same-path-two-groups"),
        pytest.param(["(a)/users.py", "users.py"], "'/users'", id="group-and-plain"),
        pytest.param(["about.py", "about/index.py"], "'/about'", id="file-and-index"),
        pytest.param(["index.py", "(g)/index.py"], "'/'", id="root-in-group"),
        pytest.param(["x/[a]/y.py", "x/[b]/y.py"], None, id="inner-params"),
        pytest.param(["a/[[x]]/b.py", "a/b.py"], "'/a/b'", id="inner-optional-absent"),
        pytest.param(["a/[[x]]/b.py", "a/[y]/b.py"], None, id="inner-optional-present"),
        pytest.param(["[f].[e].py", "[a].[b].py"], None, id="mixed"),
    ],
)
def test_conflicts_name_both_files(
    make_routes: MakeRoutes, files: list[str], message: str | None
) -> None:
    root = make_routes(files)
    with pytest.raises(RouteConflictError, match=message) as info:
        build_table(root)
    text = str(info.value)
    for name in files:
        assert str(root / name) in text


@pytest.mark.parametrize(
    "files",
    [
        pytest.param(["[a=int].py", "[b].py"], id="matcher-and-plain"),
        pytest.param(["[a=int].py", "[b=slug].py"], id="different-matchers"),
        pytest.param(["[a].py", "[[b]].py", "[...c].py"], id="kinds-differ"),
        pytest.param(["blog/index.py", "blog/[[page]].py"], id="trailing-optional-and-index"),
        pytest.param(["index.py", "[[a]]/[[b]].py", "[[a]].py"], id="nested-optionals"),
        pytest.param(["a.py", "A.py"], id="case-differs"),
        pytest.param(["x[a].py", "[a]x.py"], id="text-position"),
    ],
)
def test_no_conflict(make_routes: MakeRoutes, files: list[str]) -> None:
    assert len(build_table(make_routes(files)).routes) == len(files)


def test_unknown_matcher_names_the_file(make_routes: MakeRoutes) -> None:
    root = make_routes(["ok.py", "items/[id=nope].py"])
    with pytest.raises(SiteError, match="matcher 'nope', which does not exist") as info:
        build_table(root)
    assert info.value.path == str(root / "items/[id=nope].py")


def test_user_matcher_makes_name_known(make_routes: MakeRoutes) -> None:
    table = build_table(make_routes(["[id=even].py"]), {"even": lambda v: v.isdigit()})
    assert [r.id for r in table.routes] == ["/[id=even]"]


def test_table_from_route_list() -> None:
    table = RouteTable([_spec("/b"), _spec("/a")])
    assert [r.id for r in table.routes] == ["/a", "/b"]
