"""``kitpy new``: scaffold a site in a subprocess, then run the site's own tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kitpy.cli.scaffold import TEMPLATES, ScaffoldError, scaffold

REPO = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = REPO / "kitpy" / "cli" / "templates"
#: Bound on one subprocess (scaffolding, or a site's test run).
TIMEOUT = 120.0
CACHES = {"__pycache__", ".pytest_cache", ".kitpy", ".mypy_cache", ".ruff_cache"}


def kitpy(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kitpy ARGS``; subprocess.run kills it if it outlives TIMEOUT."""
    return subprocess.run(
        [sys.executable, "-m", "kitpy", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        env=dict(os.environ, NO_COLOR="1"),
    )


def run_site_tests(site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=site,
    )


def files_of(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and not CACHES.intersection(path.relative_to(folder).parts)
    }


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_new_site_passes_its_own_tests(tmp_path: Path, template: str) -> None:
    site = tmp_path / "mysite"
    result = kitpy("new", str(site), "--template", template)
    assert result.returncode == 0, result.stderr
    assert f"from the {template} template" in result.stdout

    written = files_of(site)
    for expected in ("kitpy.toml", "hooks.py", ".gitignore", "README.md"):
        assert expected in written
    assert any(name.startswith("routes/") for name in written)
    assert any(name.startswith("static/") for name in written)
    assert any(name.startswith("tests/test_") for name in written)
    assert ".kitpy/" in (site / ".gitignore").read_text().splitlines()
    assert "gitignore" not in written
    assert "{{site_name}}" not in (site / "README.md").read_text()
    assert "# mysite" in (site / "README.md").read_text()
    if template == "chat":
        assert {"objects/chat_room.py", "objects/rate_limiter.py"} <= written

    tests = run_site_tests(site)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout
    assert not (site / ".kitpy").exists()  # TestClient keeps storage elsewhere

    routes = kitpy("routes", str(site))
    assert routes.returncode == 0, routes.stderr


def test_the_default_template_is_minimal(tmp_path: Path) -> None:
    result = kitpy("new", "site", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert files_of(tmp_path / "site") == files_of(TEMPLATES_DIR / "minimal") - {"gitignore"} | {
        ".gitignore"
    }


def test_a_non_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = kitpy("new", str(tmp_path))
    assert result.returncode == 1
    assert "not empty" in result.stderr
    assert "--force" in result.stderr
    assert files_of(tmp_path) == {"notes.txt"}


def test_force_writes_into_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "kitpy.toml").write_text("broken = [")
    result = kitpy("new", str(tmp_path), "--template", "chat", "--force")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert "[objects]" in (tmp_path / "kitpy.toml").read_text()
    assert (tmp_path / "objects" / "chat_room.py").is_file()


def test_an_empty_existing_folder_is_fine(tmp_path: Path) -> None:
    result = kitpy("new", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "routes" / "index.py").is_file()


def test_unknown_templates_and_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="unknown template 'blog'; choose one of: minimal"):
        scaffold(tmp_path / "site", "blog")
    (tmp_path / "file").write_text("")
    with pytest.raises(ScaffoldError, match="is not a folder"):
        scaffold(tmp_path / "file")
    result = kitpy("new", str(tmp_path / "site"), "--template", "blog")
    assert result.returncode != 0
    assert "blog" in result.stderr


def test_the_chat_template_is_the_example_site() -> None:
    """The chat template is a copy of example_site/: keep them in step."""
    example = REPO / "example_site"
    chat = TEMPLATES_DIR / "chat"
    shared = files_of(example) - {"README.md", ".gitignore"}
    assert files_of(chat) - {"README.md", "gitignore"} == shared
    for name in sorted(shared):
        assert (chat / name).read_bytes() == (example / name).read_bytes(), name


def test_templates_hold_no_dot_files() -> None:
    """Dot files are easy to lose in a wheel: templates store ``gitignore`` instead."""
    for template in TEMPLATES:
        folder = TEMPLATES_DIR / template
        assert (folder / "gitignore").is_file()
        hidden = [
            name
            for name in files_of(folder)
            if any(part.startswith(".") for part in name.split("/"))
        ]
        assert hidden == [], template


def test_a_folder_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = kitpy("new", str(tmp_path / "file" / "site"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"kitpy: cannot create {tmp_path / 'file' / 'site'}: a parent of it is a file, not a folder"
    )


def new_in_shell(target: Path, path: str, prelude: str = "") -> str:
    """``kitpy new`` with only ``path`` on PATH, as in a fresh shell; its stdout."""
    code = f"import sys\n{prelude}\nfrom kitpy.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", code, "new", str(target)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={"PATH": path, "HOME": os.environ.get("HOME", "/")},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_next_steps_run_in_a_shell_without_the_venv_on_path(tmp_path: Path) -> None:
    scripts = Path(sys.executable).parent
    if not (scripts / "kitpy").exists():
        pytest.skip("kitpy is not installed as a script beside this Python")
    bare = new_in_shell(tmp_path / "a", f"{scripts}:/usr/bin:/bin")
    assert "\n  kitpy dev " in bare and "\n  python -m pytest " in bare
    spelled = new_in_shell(tmp_path / "b", "/usr/bin:/bin")
    assert f"\n  {scripts / 'kitpy'} dev " in spelled
    assert f"\n  {scripts / 'python'} -m pytest " in spelled


def test_next_steps_say_how_to_get_pytest_when_it_is_missing(tmp_path: Path) -> None:
    out = new_in_shell(tmp_path / "site", "/usr/bin:/bin", prelude="sys.modules['pytest'] = None")
    assert "-m pip install" in out and "[testing]" in out
    assert out.index("[testing]") < out.index("-m pytest ")
