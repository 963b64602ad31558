"""``kitpy routes DIR`` in a subprocess: order, format, warnings, and broken sites."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BASIC = Path(__file__).resolve().parent.parent / "sites" / "basic"
TIMEOUT = 60.0


def kitpy(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitpy", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        env=dict(os.environ, NO_COLOR="1"),
    )


def write(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"))
    return root


def test_routes_of_the_sample_site() -> None:
    result = kitpy("routes", str(BASIC))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "/                    GET, HEAD        routes/index.py",
        "/api/counter/[name]  GET, HEAD        routes/api/counter/[name].py",
        "/blog                GET, HEAD        routes/blog/index.py",
        "/blog/[slug=word]    GET, HEAD        routes/blog/[slug=word].py",
        "/blog/[slug]         GET, HEAD        routes/blog/[slug].py",
        "/boom                GET, HEAD        routes/boom.py",
        "/robots.txt          GET, HEAD        routes/robots.txt.py",
        "/users               GET, HEAD, POST  routes/(admin)/users.py",
    ]
    assert result.stderr == (
        "kitpy: warning: static/robots.txt shadows route /robots.txt "
        "(routes/robots.txt.py) at /robots.txt\n"
    )
    assert not (BASIC / ".kitpy").exists()


def test_precedence_order_and_methods(tmp_path: Path) -> None:
    site = write(
        tmp_path,
        {
            "routes/[...rest].py": "async def fallback(event):\n    return {}\n",
            "routes/[[lang]]/help.py": "def get(event):\n    return {}\n",
            "routes/about.py": "def get(event):\n    pass\ndef options(event):\n    pass\n",
            "routes/items/[id=int].py": "def put(event):\n    return {}\n",
            "routes/items/[id].py": "def delete(event):\n    return {}\n",
            "routes/empty.py": "X = 1\n",
            "static/index.html": "<p>home</p>",
            "routes/index.py": "def get(event):\n    return {}\n",
        },
    )
    result = kitpy("routes", ".", cwd=site)
    assert result.returncode == 0, result.stderr
    rows = [re.split(r" {2,}", line) for line in result.stdout.splitlines()]
    assert rows == [
        ["/", "GET, HEAD", "routes/index.py"],
        ["/about", "GET, HEAD, OPTIONS", "routes/about.py"],
        ["/empty", "-", "routes/empty.py"],
        ["/[[lang]]/help", "GET, HEAD", "routes/[[lang]]/help.py"],
        ["/items/[id=int]", "PUT", "routes/items/[id=int].py"],
        ["/items/[id]", "DELETE", "routes/items/[id].py"],
        ["/[...rest]", "*", "routes/[...rest].py"],
    ]
    assert "static/index.html shadows route / (routes/index.py) at /" in result.stderr


def test_no_routes(tmp_path: Path) -> None:
    result = kitpy("routes", str(tmp_path))
    assert result.returncode == 0
    assert result.stdout == ""
    assert "no routes" in result.stderr


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param(
            {"routes/x.py": "def get(event)\n    return {}\n"},
            r"^kitpy: SITE/routes/x\.py:1: syntax error",
            id="syntax-error",
        ),
        pytest.param(
            {"routes/x.py": "import os\nraise RuntimeError('no')\n"},
            r"^kitpy: SITE/routes/x\.py:2: error while importing: RuntimeError: no",
            id="import-error",
        ),
        pytest.param(
            {"routes/[a].py": "", "routes/[b].py": ""},
            r"^kitpy: SITE/routes/\[\w\]\.py: .*'/\[a\]' \(routes/\[a\]\.py\) and "
            r"'/\[b\]' \(routes/\[b\]\.py\)",
            id="conflicting-routes",
        ),
        pytest.param(
            {"kitpy.toml": "[server]\nport = 'eighty'\n"},
            r"^kitpy: SITE/kitpy\.toml:2: \[server\] port: expected an integer",
            id="bad-kitpy-toml",
        ),
        pytest.param(
            {"kitpy.toml": "[server\n"},
            r"^kitpy: SITE/kitpy\.toml:1: invalid TOML",
            id="invalid-toml",
        ),
        pytest.param(
            {
                "kitpy.toml": '[objects]\nrooms = "objects.room:Room"\n',
                "objects/room.py": "class Rom:\n    pass\n",
            },
            r"^kitpy: SITE/kitpy\.toml:2: \[objects\] rooms = \"objects.room:Room\": "
            r"module 'objects.room' has no class 'Room'",
            id="unknown-binding-class",
        ),
        pytest.param(
            {"kitpy.toml": '[objects]\nrooms = "objects.nope:Room"\n'},
            r"^kitpy: SITE/kitpy\.toml:2: .*no module 'objects.nope'",
            id="unknown-binding-module",
        ),
    ],
)
def test_broken_sites_exit_1_with_the_place(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    site = write(tmp_path / "site", files)
    result = kitpy("routes", "site", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert re.search(message.replace("SITE", "site"), result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert site.is_dir()


def test_missing_folder(tmp_path: Path) -> None:
    result = kitpy("routes", str(tmp_path / "nope"))
    assert result.returncode == 1
    assert "is not a folder" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="no-command"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["routes", "a", "b"], id="extra-argument"),
        pytest.param(["serve", "--port", "http"], id="bad-port"),
        pytest.param(["serve", "--port", "70000"], id="port-out-of-range"),
        pytest.param(["serve", "--backend", "curio"], id="bad-backend"),
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = kitpy(*args)
    assert result.returncode == 2
    assert "usage: kitpy" in result.stderr


def test_version() -> None:
    result = kitpy("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("kitpy ")


SHARED = {
    "routes/api/_shared.py": "ANSWER = 41\n",
    "routes/api/answer.py": """
        from routes.api._shared import ANSWER
        from lib.words import word


        def get(event):
            return {"body": {"answer": ANSWER + 1, "word": word()}}
    """,
    "lib/words.py": "def word():\n    return 'shared'\n",
}


def test_code_shared_between_route_files(tmp_path: Path) -> None:
    """A ``_private`` file under routes/ (a namespace package) and a site-root module."""
    site = write(tmp_path / "site", SHARED)
    result = kitpy("routes", str(site))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["/api/answer", "GET,", "HEAD", "routes/api/answer.py"]
    assert result.stderr == ""
