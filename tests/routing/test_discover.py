from __future__ import annotations

from pathlib import Path

import pytest

from kitpy.errors import SiteError
from kitpy.routing import RouteSpec, discover_routes

from .conftest import DOCS_ROUTES, MakeRoutes


def _ids(routes: list[RouteSpec]) -> dict[str, str]:
    return {r.id: r.pattern for r in routes}


def test_design_site(make_routes: MakeRoutes) -> None:
    routes = discover_routes(make_routes(DOCS_ROUTES))
    assert _ids(routes) == {
        "/": "/",
        "/about": "/about",
        "/api/rooms": "/api/rooms",
        "/api/rooms/[id]/[...rest]": "/api/rooms/[id]/[...rest]",
        "/blog/[[page]]": "/blog/[[page]]",
        "/(admin)/users": "/users",
    }


def test_files_are_absolute(make_routes: MakeRoutes) -> None:
    root = make_routes(["a/b.py"])
    (route,) = discover_routes(root)
    assert route.file.is_absolute()
    assert route.file == (root / "a" / "b.py").absolute()


def test_relative_routes_dir_gives_absolute_files(
    make_routes: MakeRoutes, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_routes(["x.py"])
    monkeypatch.chdir(root.parent)
    (route,) = discover_routes(Path("routes"))
    assert route.file == root.absolute() / "x.py"


@pytest.mark.parametrize(
    ("files", "ids"),
    [
        pytest.param(["index.py"], ["/"], id="root-index"),
        pytest.param(["a/index.py", "a/b/index.py"], ["/a", "/a/b"], id="nested-index"),
        pytest.param(["_private.py", "a/_b.py", "_dir/c.py"], [], id="underscore-skipped"),
        pytest.param(["__init__.py", "__pycache__/x.py"], [], id="dunder-skipped"),
        pytest.param([".hidden.py", ".dir/x.py"], [], id="dot-skipped"),
        pytest.param(
            [".well-known/security.txt.py", ".well-known/_x.py"],
            ["/.well-known/security.txt"],
            id="well-known-kept",
        ),
        pytest.param(["a.txt", "b.pyc", "c.py.bak", "d.pyi", "README.md"], [], id="non-py-ignored"),
        pytest.param(["(g)/index.py"], ["/(g)"], id="group-index"),
        pytest.param(["(a)/(b)/x.py"], ["/(a)/(b)/x"], id="nested-groups"),
        pytest.param(["[id]/edit.py"], ["/[id]/edit"], id="param-folder"),
        pytest.param(["files/[...path]/edit.py"], ["/files/[...path]/edit"], id="rest-in-middle"),
        pytest.param(["[file].[ext].py"], ["/[file].[ext]"], id="mixed-file-name"),
        pytest.param(["index/index.py", "index.py"], ["/", "/index"], id="index-folder"),
        pytest.param(["a b.py"], ["/a b"], id="space-in-name"),
        pytest.param(["empty/"], [], id="empty-folder"),
    ],
)
def test_discover_ids(make_routes: MakeRoutes, files: list[str], ids: list[str]) -> None:
    root = make_routes([f for f in files if not f.endswith("/")])
    for folder in (f for f in files if f.endswith("/")):
        (root / folder).mkdir(parents=True)
    assert [r.id for r in discover_routes(root)] == ids


@pytest.mark.parametrize(
    ("route_id", "raws"),
    [
        pytest.param("/(admin)/users", ["users"], id="group-dropped"),
        pytest.param("/(admin)", [], id="group-only"),
        pytest.param("/a/(b)/[c]/(d)", ["a", "[c]"], id="groups-anywhere"),
    ],
)
def test_path_segments_leave_out_groups(route_id: str, raws: list[str]) -> None:
    spec = RouteSpec(id=route_id, file=Path("/x.py"), pattern="")
    assert [s.raw for s in spec.path_segments] == raws


def test_discovered_pattern_leaves_out_groups(make_routes: MakeRoutes) -> None:
    routes = discover_routes(make_routes(["a/(b)/[c]/(d)/index.py"]))
    assert [(r.id, r.pattern) for r in routes] == [("/a/(b)/[c]/(d)", "/a/[c]")]


def test_missing_routes_dir(tmp_path: Path) -> None:
    assert discover_routes(tmp_path / "nope") == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        pytest.param("[a][b].py", "two parameters with nothing between", id="adjacent-file"),
        pytest.param(
            "[a][b]/index.py", "two parameters with nothing between", id="adjacent-folder"
        ),
        pytest.param("x/[a]-[b][c].py", "two parameters with nothing between", id="adjacent-deep"),
        pytest.param("[oops.py", "unbalanced", id="unbalanced"),
        pytest.param("[a]/[a].py", "parameter name 'a' twice", id="duplicate-name"),
        pytest.param("[...a]/[[b]].py", "cannot follow a \\[...rest\\]", id="optional-after-rest"),
        pytest.param("(g).py", "cannot be named like a group", id="group-file"),
    ],
)
def test_bad_names_name_the_file(make_routes: MakeRoutes, bad: str, message: str) -> None:
    root = make_routes(["ok.py", bad])
    with pytest.raises(SiteError, match=message) as info:
        discover_routes(root)
    assert info.value.path == str(root / bad)
    assert str(root / bad) in str(info.value)


def test_bad_folder_without_route_files_is_ignored(make_routes: MakeRoutes) -> None:
    root = make_routes(["ok.py"])
    (root / "[a][b]").mkdir()
    assert [r.id for r in discover_routes(root)] == ["/ok"]


def test_symlink_loop_is_not_followed(make_routes: MakeRoutes) -> None:
    root = make_routes(["a/x.py"])
    (root / "a" / "loop").symlink_to(root / "a", target_is_directory=True)
    assert [r.id for r in discover_routes(root)] == ["/a/x"]


def test_route_spec_parses_its_id() -> None:
    spec = RouteSpec(id="/(g)/blog/[slug=slug]", file=Path("/site/routes/x.py"), pattern="/blog/x")
    assert [s.raw for s in spec.segments] == ["(g)", "blog", "[slug=slug]"]
    assert [s.raw for s in spec.path_segments] == ["blog", "[slug=slug]"]
    assert [p.name for p in spec.params] == ["slug"]
    assert RouteSpec(id="/", file=Path("/x.py"), pattern="/").segments == ()


def test_route_spec_bad_id_names_the_file() -> None:
    with pytest.raises(SiteError, match=r"^/site/x\.py: .*two parameters"):
        RouteSpec(id="/[a][b]", file=Path("/site/x.py"), pattern="/")
