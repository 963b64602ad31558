"""The layer rules of docs/architecture.md, checked on the source: what a layer may import."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import kitpy

PACKAGE = Path(kitpy.__file__).parent

# layer -> the kitpy layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "types": {"http"},  # type-only imports, under TYPE_CHECKING
    "http": {"errors"},
    "protocol": {"errors", "types"},
    "routing": {"errors"},
    "storage": {"errors"},
    "objects": {"storage", "http", "errors", "types"},
    "runtime": {"routing", "objects", "storage", "http", "errors", "types"},
    "server": {"protocol", "http", "types", "errors"},
    "cluster": {"objects", "storage", "http", "errors", "types"},
    "cli": {
        "cluster",
        "server",
        "runtime",
        "routing",
        "objects",
        "storage",
        "http",
        "protocol",
        "errors",
        "types",
        "testing",
    },
    "testing": {"runtime", "routing", "objects", "storage", "http", "errors", "types"},
}
# third-party packages a layer must not touch
FORBIDDEN_EXTERNAL: dict[str, set[str]] = {
    "protocol": {"anyio", "trio", "asyncio", "socket"},
    "routing": {"anyio", "trio", "asyncio", "socket"},
    "http": {"socket", "h11", "wsproto", "httptools"},
}


def _layer_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


SOURCES = sorted(
    p for p in PACKAGE.rglob("*.py") if "templates" not in p.parts and p.name != "__main__.py"
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_respects_its_layer(path: Path) -> None:
    layer = _layer_of(path)
    if layer == "__init__":
        return  # the facade re-exports user-facing names
    allowed = ALLOWED[layer] | {layer}
    problems = []
    for name, line in _imports(ast.parse(path.read_text())):
        top, _, rest = name.partition(".")
        if top == "kitpy":
            target = rest.split(".")[0] or "__init__"
            if target not in allowed:
                problems.append(f"{path.name}:{line}: {layer} imports kitpy.{target}")
        elif top in FORBIDDEN_EXTERNAL.get(layer, set()):
            problems.append(f"{path.name}:{line}: {layer} imports {top}")
    assert not problems, "\n".join(problems)


def test_every_public_module_declares_all_as_a_tuple() -> None:
    missing = []
    for info in pkgutil.walk_packages(kitpy.__path__, "kitpy."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        if ".templates" in info.name:
            continue
        module = importlib.import_module(info.name)
        if not isinstance(getattr(module, "__all__", None), tuple):
            missing.append(info.name)
    assert not missing, f"modules without an __all__ tuple: {missing}"
