"""``kitpy new DIR [--template minimal|chat|svelte] [--force]``: write a working site.

A template is a folder of plain files under ``kitpy/cli/templates/<name>/``, copied as
they are, with two exceptions:

- a file named ``gitignore`` becomes ``.gitignore`` (dot files are easy to lose when
  packaging, so none is stored);
- ``{{site_name}}`` in a ``README.md`` becomes the name of the new folder.

Caches a template folder may have picked up (``__pycache__``, ``.pytest_cache``,
``.kitpy``) are never copied.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from kitpy.errors import KitpyError

__all__ = (
    "DEFAULT_TEMPLATE",
    "TEMPLATES",
    "ScaffoldError",
    "Scaffolded",
    "new_command",
    "scaffold",
)

#: The templates ``kitpy new`` knows, in the order ``--help`` shows them.
TEMPLATES = ("minimal", "chat", "svelte")
DEFAULT_TEMPLATE = "minimal"

#: Stored name -> written name, for files that must not be dot files in the package.
_RENAMES = {"gitignore": ".gitignore"}
#: Never copied out of a template folder.
_SKIP = frozenset(
    {"__pycache__", ".pytest_cache", ".kitpy", ".mypy_cache", ".ruff_cache", "node_modules"}
)
_SITE_NAME = "{{site_name}}"


class ScaffoldError(KitpyError):
    """``kitpy new`` cannot write the site (a non-empty folder, an unknown template)."""


@dataclass(frozen=True)
class Scaffolded:
    """What :func:`scaffold` wrote."""

    target: Path
    template: str
    files: tuple[Path, ...]


def _template_root(template: str) -> Traversable:
    if template not in TEMPLATES:
        known = ", ".join(TEMPLATES)
        raise ScaffoldError(f"unknown template {template!r}; choose one of: {known}")
    return resources.files("kitpy.cli").joinpath("templates").joinpath(template)


def _walk(folder: Traversable, relative: Path) -> list[tuple[Path, Traversable]]:
    found: list[tuple[Path, Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name in _SKIP or entry.name.endswith(".pyc"):
            continue
        if entry.is_dir():
            found.extend(_walk(entry, relative / entry.name))
        else:
            found.append((relative / _RENAMES.get(entry.name, entry.name), entry))
    return found


def scaffold(target: Path, template: str = DEFAULT_TEMPLATE, *, force: bool = False) -> Scaffolded:
    """Copy ``template`` into ``target`` (created if missing) and return what was written.

    Raises:
        ScaffoldError: unknown template; ``target`` is a file; or ``target`` is a folder
            with something in it and ``force`` is false. With ``force``, files of the
            template overwrite files of the same name; other files are left alone.
    """
    root = _template_root(template)
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ScaffoldError(
            f"{target} is not empty; choose a new folder, or pass --force to write the "
            f"{template} template into it (files with the same names are overwritten)"
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScaffoldError(f"cannot create {target}: {_reason(exc)}") from None
    site_name = target.resolve().name
    written: list[Path] = []
    for relative, source in _walk(root, Path()):
        data = source.read_bytes()
        if relative.name == "README.md":
            data = data.replace(_SITE_NAME.encode(), site_name.encode())
        destination = target / relative
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
        except OSError as exc:
            raise ScaffoldError(f"cannot write {destination}: {_reason(exc)}") from None
        written.append(relative)
    return Scaffolded(target=target, template=template, files=tuple(written))


def _reason(exc: OSError) -> str:
    """An OSError as a few words (``a parent is a file``, ``permission denied``)."""
    if isinstance(exc, NotADirectoryError):
        return "a parent of it is a file, not a folder"
    if isinstance(exc, FileNotFoundError):
        return "a parent of it does not exist and cannot be created"
    return (exc.strerror or str(exc)).lower()


def new_command(directory: str, template: str = DEFAULT_TEMPLATE, *, force: bool = False) -> int:
    """Run ``kitpy new``: scaffold, then say what to do next. Returns the exit code.

    Errors are raised as :class:`ScaffoldError` for the CLI to print.
    """
    result = scaffold(Path(directory), template, force=force)
    shown = directory.rstrip("/\\") or "."
    kitpy, python = _commands()
    lines = [f"Created {shown}/ from the {template} template ({len(result.files)} files).", ""]
    lines.append("Next:")
    if Path(directory).resolve() != Path.cwd():
        lines.append(f"  cd {shlex.quote(shown)}")
    steps = [(f"{kitpy} dev", "http://127.0.0.1:5173, reloads on change")]
    if importlib.util.find_spec("pytest") is None:
        steps.append((f"{python} -m pip install {_testing_requirement()}", "pytest, once"))
    steps.append((f"{python} -m pytest", "the site's own tests"))
    width = max(len(command) for command, _ in steps)
    lines += [f"  {command:<{width}}  # {comment}" for command, comment in steps]
    lines.append("")
    sys.stdout.write("\n".join(lines))
    sys.stdout.flush()
    return 0


def _commands() -> tuple[str, str]:
    """How to spell ``kitpy`` and ``python`` so that they run this installation.

    The bare names when they are on PATH and are ours (an activated virtual
    environment), else the full paths, e.g. ``.venv/bin/kitpy``.
    """
    scripts = Path(sys.executable).parent
    names: list[str] = []
    for name in ("kitpy", "python"):
        found = shutil.which(name)
        ours = scripts / name
        if found is not None and Path(found).parent == scripts:
            names.append(name)
        elif ours.exists():  # absolute: the next step is a cd
            names.append(shlex.quote(str(ours)))
        else:
            names.append(shlex.quote(sys.executable) if name == "python" else "python3 -m kitpy")
    return names[0], names[1]


def _testing_requirement() -> str:
    """``'kitpy[testing]'``, or the editable clone it was installed from."""
    source = Path(__file__).resolve().parents[2]
    if (source / "pyproject.toml").is_file() and (source / "kitpy" / "cli").is_dir():
        return "-e " + shlex.quote(f"{source}[testing]")
    return "'kitpy[testing]'"
