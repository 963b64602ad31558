"""Import a site's Python files: routes, hooks.py, matchers.py and object bindings.

The site folder is put first on ``sys.path`` so it is a package root: route files may
``import routes._helpers`` and bindings name ``objects.room:Room`` (docs/routes.md,
"Helpers"). Route files are imported by path under a module name derived from their
place (``routes/about.py`` is ``routes.about``, the module ``import routes.about``
gives); names with brackets are mangled, so relative imports work only from folders
whose names are identifiers.

Loading a site again in the same process (a reload, or another site with the same
top-level names, as tests do) first purges every module that came from that site, or
from another site folder under the same name, so no stale ``routes`` or ``objects``
package shadows the new one.

Any failure is a :class:`SiteError` naming the file and line: a syntax error where the
parser stopped, any other exception at the deepest line of the site's own code.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from kitpy.errors import ConfigError, SiteError
from kitpy.runtime.config import CONFIG_NAME, SiteConfig

__all__ = (
    "activate_site",
    "deactivate_site",
    "display_path",
    "import_binding",
    "import_file",
    "load_matchers",
    "purge_site_modules",
    "route_module_name",
)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_active: dict[str, int] = {}
# Folders of a site that hold no site modules: files, caches, and the site's own tests
# (whose modules are running while a TestClient loads the site, so never purged).
_NOT_PACKAGES = frozenset({"static", "__pycache__", "tests"})
# Never purged, whatever a site calls its files.
_NEVER_PURGED = frozenset({"kitpy", "anyio", "sys", "builtins", *sys.stdlib_module_names})


def display_path(site_dir: Path, path: Path | str) -> str:
    """``path`` relative to the site (``routes/x.py``) when it is inside it."""
    try:
        return Path(path).resolve().relative_to(site_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def activate_site(site_dir: Path) -> None:
    """Make ``site_dir`` importable as a package root, purging stale modules first."""
    root = str(site_dir.resolve())
    purge_site_modules(site_dir)
    importlib.invalidate_caches()
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)
    _active[root] = _active.get(root, 0) + 1


def deactivate_site(site_dir: Path) -> None:
    """Undo one :func:`activate_site`; the last one removes the path and the modules."""
    root = str(site_dir.resolve())
    count = _active.get(root, 0) - 1
    if count > 0:
        _active[root] = count
        return
    _active.pop(root, None)
    if root in sys.path:
        sys.path.remove(root)
    purge_site_modules(site_dir)


def purge_site_modules(site_dir: Path) -> None:
    """Forget every imported module from ``site_dir`` or shadowing one of its names."""
    root = site_dir.resolve()
    top_names = {p.stem if p.suffix == ".py" else p.name for p in _children(root)}
    # Decide for every module before forgetting any: a namespace package's __path__
    # (``routes.api`` without __init__.py) is recomputed from its parent's, which must
    # still be in sys.modules while it is read.
    doomed = [
        name
        for name, module in list(sys.modules.items())
        if (top := name.partition(".")[0]) not in _NEVER_PURGED
        # The site's own module, or another module under a name the site provides
        # (another site's ``routes``, a test package called ``objects``): the site
        # folder comes first on sys.path, so its module must be the one imported.
        and (top in top_names or any(_is_under(loc, root) for loc in _locations(module)))
    ]
    for name in doomed:
        sys.modules.pop(name, None)


def _children(root: Path) -> list[Path]:
    """The site's top-level Python modules and packages (not static/, not .kitpy/)."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    return [
        p
        for p in entries
        if _IDENT.match(p.stem if p.suffix == ".py" else p.name)
        and p.name not in _NOT_PACKAGES
        and (p.suffix == ".py" if p.is_file() else p.is_dir())
    ]


def _locations(module: ModuleType) -> list[Path]:
    found: list[Path] = []
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        found.append(Path(file))
    path = getattr(module, "__path__", None)
    if path is not None:
        try:
            found.extend(Path(p) for p in list(path))
        except (TypeError, KeyError):  # a namespace path whose parent is gone
            pass
    return found


def _is_under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except (ValueError, OSError):
        return False
    return True


def route_module_name(routes_dir: Path, file: Path) -> str:
    """``routes/api/[id].py`` -> a module name under ``routes``."""
    parts = list(file.relative_to(routes_dir).with_suffix("").parts)
    safe = [p if _IDENT.match(p) else "_k_" + _UNSAFE.sub(_escape, p) for p in parts]
    return ".".join(["routes", *safe])


def _escape(match: re.Match[str]) -> str:
    return f"_{ord(match.group(0)):x}_"


def import_file(site_dir: Path, file: Path, module_name: str) -> ModuleType:
    """Import ``file`` as ``module_name`` (replacing any module of that name).

    Raises:
        SiteError: the file has a syntax error or raised while importing; the message
            names the file and line.
    """
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise SiteError("cannot be imported as a Python module", display_path(site_dir, file))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise import_error(site_dir, file, exc) from exc
    return module


def import_error(site_dir: Path, file: Path, exc: BaseException) -> SiteError:
    """A SiteError pointing at the line of the site's code that failed."""
    if isinstance(exc, SiteError):
        return exc
    if isinstance(exc, SyntaxError) and exc.filename:
        where = display_path(site_dir, exc.filename)
        return SiteError(f"syntax error: {exc.msg}", where, exc.lineno)
    path: str | Path = file
    line: int | None = None
    root = site_dir.resolve()
    for frame in traceback.extract_tb(exc.__traceback__):
        if _is_under(Path(frame.filename), root):
            path, line = frame.filename, frame.lineno
    detail = f"{type(exc).__name__}: {exc}"
    return SiteError(f"error while importing: {detail}", display_path(site_dir, path), line)


def load_matchers(site_dir: Path) -> dict[str, Callable[[str], bool]]:
    """The public functions of ``matchers.py`` at the site root (none if absent)."""
    file = site_dir / "matchers.py"
    if not file.is_file():
        return {}
    module = import_file(site_dir, file, "matchers")
    matchers: dict[str, Callable[[str], bool]] = {}
    for name, value in vars(module).items():
        if name.startswith("_") or not callable(value) or isinstance(value, type):
            continue
        if getattr(value, "__module__", None) != module.__name__:
            continue  # imported helpers, not matchers defined here
        matchers[name] = value
    return matchers


def import_binding(site_dir: Path, config: SiteConfig, name: str) -> type[Any]:
    """Import the class of ``[objects] name = "module:Class"``.

    Raises:
        ConfigError: the module or class is missing, or the class is not a DurableObject.
        SiteError: the module itself fails to import (names its file and line).
    """
    target = config.objects[name]
    module_name, _, class_name = target.partition(":")
    line = config.binding_line(name)

    def fail(message: str) -> ConfigError:
        return ConfigError(f'[objects] {name} = "{target}": {message}', CONFIG_NAME, line)

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            raise fail(f"no module {module_name!r} in the site folder") from None
        raise import_error(site_dir, site_dir / CONFIG_NAME, exc) from exc
    except Exception as exc:
        raise import_error(site_dir, site_dir / CONFIG_NAME, exc) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise fail(f"module {module_name!r} has no class {class_name!r}")
    base = _durable_object_base()
    if not isinstance(cls, type) or (base is not None and not issubclass(cls, base)):
        raise fail(f"{class_name} is not a subclass of kitpy.DurableObject")
    return cls


def _durable_object_base() -> type[Any] | None:
    try:
        from kitpy.objects import DurableObject
    except ImportError:  # pragma: no cover - only while kitpy.objects is being written
        return None
    return DurableObject
