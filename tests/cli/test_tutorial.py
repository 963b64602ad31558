"""docs/tutorial.md, followed as written: the files it creates, then the site's tests."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.test_new import kitpy, run_site_tests

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
#: "Create `routes/x.py`:" then a fenced block: the file's whole text.
CREATE = re.compile(r"Create `([^`]+)`:\s*\n\s*```[a-z]*\n(.*?)```", re.S)
#: "add this at the end of `kitpy.toml`:" then a fenced block.
APPEND = re.compile(r"add this at the end of `([^`]+)`:\s*\n\s*```[a-z]*\n(.*?)```", re.S)


def tutorial_files() -> tuple[dict[str, str], dict[str, str]]:
    text = TUTORIAL.read_text()
    return dict(CREATE.findall(text)), dict(APPEND.findall(text))


def build_tutorial_site(root: Path) -> Path:
    """``kitpy new hello`` and every file the tutorial writes into it."""
    result = kitpy("new", "hello", cwd=root)
    assert result.returncode == 0, result.stderr
    site = root / "hello"
    created, appended = tutorial_files()
    for name, body in created.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(body)
    for name, body in appended.items():
        with (site / name).open("a") as file:
            file.write("\n" + body)
    return site


def test_the_tutorial_finds_its_files() -> None:
    created, appended = tutorial_files()
    assert set(created) == {
        "objects/room.py",
        "routes/api/rooms/[name]/websocket.py",
        "static/chat.html",
        "tests/test_room.py",
    }
    assert set(appended) == {"kitpy.toml"}


def test_the_tutorial_site_passes_its_tests(tmp_path: Path) -> None:
    site = build_tutorial_site(tmp_path)
    result = run_site_tests(site)
    assert result.returncode == 0, result.stdout + result.stderr
    tutorial = TUTORIAL.read_text()
    claimed = re.search(r"All (\w+) tests pass", tutorial)
    assert claimed is not None
    words = {"five": 5, "six": 6, "seven": 7, "four": 4}
    assert f"{words[claimed.group(1)]} passed" in result.stdout, result.stdout
