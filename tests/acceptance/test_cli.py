"""The command line: broken sites, ``kitpy routes``, ``kitpy new``; TestClient
(docs/cli.md, docs/testing.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from .kit import ECHO_ROUTE, Server, kitpy_env, run_kitpy, write_site

GOOD_ROUTE = 'def get(event):\n    return {"body": "ok"}\n'


def check_broken(site: Path, *needles: str) -> None:
    """Both ``kitpy routes`` and ``kitpy serve`` refuse the site, naming what and where."""
    for args in (["routes", str(site)], ["serve", str(site), "--host", "127.0.0.1", "--port", "0"]):
        result = run_kitpy(*args, timeout=20)
        assert result.returncode != 0, (args, result.stdout, result.stderr)
        message = result.stderr + result.stdout
        assert "Traceback" not in message, message
        for needle in needles:
            assert needle in message, (args, needle, message)


def test_syntax_error_in_route_names_file_and_line(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {
            "routes/index.py": GOOD_ROUTE,
            "routes/api/[id].py": "import os\n\n\ndef get(event)\n    return {}\n",
        },
    )
    check_broken(site, "routes/api/[id].py", ":4")


def test_conflicting_routes_name_both_files(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site", {"routes/x/[a].py": GOOD_ROUTE, "routes/x/[b].py": GOOD_ROUTE}
    )
    check_broken(site, "routes/x/[a].py", "routes/x/[b].py")


def test_same_path_in_two_groups_conflicts(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {"routes/(one)/page.py": GOOD_ROUTE, "routes/(two)/page.py": GOOD_ROUTE},
    )
    check_broken(site, "routes/(one)/page.py", "routes/(two)/page.py")


def test_index_and_file_conflict(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site", {"routes/about.py": GOOD_ROUTE, "routes/about/index.py": GOOD_ROUTE}
    )
    check_broken(site, "routes/about.py", "routes/about/index.py")


def test_adjacent_parameters_are_an_error(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site", {"routes/[a][b].py": GOOD_ROUTE})
    check_broken(site, "routes/[a][b].py")


def test_unknown_matcher_is_an_error(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site", {"routes/x/[n=nosuchmatcher].py": GOOD_ROUTE})
    check_broken(site, "nosuchmatcher")


def test_bad_kitpy_toml_names_file_and_line(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {"routes/index.py": GOOD_ROUTE, "kitpy.toml": '[server]\nport = 8000\nhost = "a\n'},
    )
    check_broken(site, "kitpy.toml:3")


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[server]\nport = "x"\n', "port"),
        ("[server]\nnosuchkey = 1\n", "nosuchkey"),
        ('[objects]\nrooms = "nocolon"\n', "rooms"),
    ],
)
def test_invalid_kitpy_toml_values(tmp_path: Path, toml: str, needle: str) -> None:
    site = write_site(tmp_path / "site", {"routes/index.py": GOOD_ROUTE, "kitpy.toml": toml})
    check_broken(site, "kitpy.toml:2", needle)


def test_unknown_binding_class(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {
            "routes/index.py": GOOD_ROUTE,
            "kitpy.toml": '[objects]\nrooms = "objects.room:Nope"\n',
            "objects/__init__.py": "",
            "objects/room.py": """
                from kitpy import DurableObject

                class Room(DurableObject):
                    pass
            """,
        },
    )
    check_broken(site, "Nope", "rooms")


def test_unknown_binding_module(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {
            "routes/index.py": GOOD_ROUTE,
            "kitpy.toml": '[objects]\nrooms = "objects.nothere:Room"\n',
        },
    )
    check_broken(site, "objects.nothere")


def test_wrong_arguments_exit_non_zero(tmp_path: Path) -> None:
    for args in (
        ["frobnicate"],
        ["serve", "--port", "notanumber"],
        ["routes", str(tmp_path / "nope")],
    ):
        result = run_kitpy(*args, timeout=20)
        assert result.returncode != 0, args
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip(), args


def test_routes_flags_a_route_shadowed_by_a_static_file(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {
            "routes/robots.txt.py": GOOD_ROUTE,
            "routes/index.py": GOOD_ROUTE,
            "static/robots.txt": "User-agent: *\n",
        },
    )
    result = run_kitpy("routes", str(site))
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    flagged = [
        line for line in output.splitlines() if "robots.txt" in line and "shadow" in line.lower()
    ]
    assert flagged, output


def test_routes_methods_column(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {
            "routes/a.py": "def get(event): ...\ndef post(event): ...\n",
            "routes/b.py": "async def post(event): ...\nasync def delete(event): ...\n",
        },
    )
    result = run_kitpy("routes", str(site))
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "GET" in lines["/a"] and "HEAD" in lines["/a"] and "POST" in lines["/a"]
    assert "routes/a.py" in lines["/a"]
    assert "POST" in lines["/b"] and "DELETE" in lines["/b"]
    assert "GET" not in lines["/b"] and "HEAD" not in lines["/b"]


def test_routes_defaults_to_current_folder(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site", {"routes/hello.py": GOOD_ROUTE})
    result = run_kitpy("routes", cwd=site)
    assert result.returncode == 0, result.stderr
    assert "/hello" in result.stdout and "routes/hello.py" in result.stdout


# -- kitpy new ------------------------------------------------------------------------


def test_new_scaffolds_a_site_whose_tests_pass(tmp_path: Path) -> None:
    target = tmp_path / "mysite"
    result = run_kitpy("new", str(target))
    assert result.returncode == 0, result.stderr
    assert (target / "routes").is_dir()
    assert list(target.glob("tests/test_*.py")), "the scaffold has its own tests"
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=target,
        capture_output=True,
        text=True,
        timeout=45,
        env=kitpy_env(),
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert not (target / ".kitpy").exists(), "TestClient must not use the site's .kitpy/"
    # and it serves
    srv = Server(target)
    try:
        srv.start()
        assert httpx.get(srv.url + "/", timeout=10).status_code == 200
    finally:
        srv.stop()


def test_new_chat_template_tests_pass(tmp_path: Path) -> None:
    target = tmp_path / "chat"
    result = run_kitpy("new", str(target), "--template", "chat")
    assert result.returncode == 0, result.stderr
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=target,
        capture_output=True,
        text=True,
        timeout=50,
        env=kitpy_env(),
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert not (target / ".kitpy").exists()


def test_new_refuses_non_empty_folder(tmp_path: Path) -> None:
    target = tmp_path / "full"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = run_kitpy("new", str(target))
    assert result.returncode != 0
    assert (target / "keep.txt").read_text() == "mine"


# -- TestClient -----------------------------------------------------------------------

SITE_FOR_TESTCLIENT: dict[str, str] = {
    "kitpy.toml": '[objects]\nrooms = "objects.room:Room"\n\n[env]\nGREETING = "hi"\n',
    "routes/index.py": """
        def get(event):
            return {"body": {"greeting": event.platform.env.GREETING}}

        async def post(event):
            return {"status": 201, "body": {"got": await event.request.json()}}
    """,
    "routes/count.py": """
        async def post(event):
            rooms = event.platform.env.rooms
            stub = rooms.get(rooms.id_from_name("counter"))
            return await stub.fetch("/count", event.request)
    """,
    "routes/api/rooms/[id]/[...rest].py": """
        async def get(event):
            rooms = event.platform.env.rooms
            room = rooms.get(rooms.id_from_name(event.params["id"]))
            return await room.fetch(event.params["rest"], event.request)
    """,
    "objects/__init__.py": "",
    "objects/room.py": """
        from kitpy import DurableObject, Response, WebSocketPair, json


        class Room(DurableObject):
            async def fetch(self, request):
                if request.url.path == "/count":
                    n = (await self.state.storage.get("n") or 0) + 1
                    await self.state.storage.put("n", n)
                    return json({"n": n})
                client, server = WebSocketPair()
                self.state.accept_websocket(server, tags=["chat"])
                return Response(status=101, websocket=client)

            async def websocket_message(self, ws, message):
                for peer in self.state.get_websockets("chat"):
                    await peer.send(message)
    """,
}


def test_testclient_without_with(tmp_path: Path) -> None:
    from kitpy.testing import TestClient

    site = write_site(tmp_path / "site", SITE_FOR_TESTCLIENT)
    client = TestClient(site)
    try:
        response = client.get("/")
        assert response.status_code == 200
        assert response.json() == {"greeting": "hi"}
        posted = client.post("/", json={"a": 1})
        assert (posted.status_code, posted.json()) == (201, {"got": {"a": 1}})
        assert client.post("/count").json() == {"n": 1}
        assert client.post("/count").json() == {"n": 2}
    finally:
        client.close()
    assert not (site / ".kitpy").exists()


def test_testclient_with_websockets(tmp_path: Path) -> None:
    from kitpy.testing import TestClient

    site = write_site(tmp_path / "site", SITE_FOR_TESTCLIENT)
    with (
        TestClient(str(site)) as client,
        client.websocket("/api/rooms/lobby/websocket") as a,
        client.websocket("/api/rooms/lobby/websocket") as b,
    ):
        a.send_text("hello")
        assert a.receive_text() == "hello"
        assert b.receive_text() == "hello"
    assert not (site / ".kitpy").exists()


def test_testclient_storage_is_fresh_each_time(tmp_path: Path) -> None:
    from kitpy.testing import TestClient

    site = write_site(tmp_path / "site", SITE_FOR_TESTCLIENT)
    with TestClient(site) as client:
        assert client.post("/count").json() == {"n": 1}
    with TestClient(site) as client:
        assert client.post("/count").json() == {"n": 1}


# -- Trio -----------------------------------------------------------------------------


def test_trio_backend_serves_http_and_self_upgrade(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {
            "routes/index.py": GOOD_ROUTE,
            "routes/ws.py": ECHO_ROUTE,
        },
    )
    srv = Server(site, "--backend", "trio")
    try:
        srv.start()
        assert httpx.get(srv.url + "/", timeout=10).text == "ok"
        with connect(srv.ws_url + "/ws", open_timeout=5, close_timeout=5) as ws:
            ws.send("trio")
            assert ws.recv(timeout=5) == "trio"
        assert srv.stop() == 0
    finally:
        srv.kill()


def test_serve_default_port_is_8000_in_help() -> None:
    result = run_kitpy("serve", "--help")
    assert result.returncode == 0
    assert "8000" in result.stdout


@pytest.mark.skipif(os.name != "posix", reason="posix only")
def test_python_m_kitpy_and_entry_point_agree(tmp_path: Path) -> None:
    site = write_site(tmp_path / "site", {"routes/hello.py": GOOD_ROUTE})
    via_module = run_kitpy("routes", str(site))
    assert via_module.returncode == 0
    assert "/hello" in via_module.stdout
