"""``kitpy routes``: the route table in precedence order, and shadowed-route warnings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from kitpy.runtime.site import Site

__all__ = ("RouteRow", "render_routes", "route_rows", "shadow_warnings")


@dataclass(frozen=True)
class RouteRow:
    """One line of the table: URL pattern, methods, file relative to the site."""

    pattern: str
    methods: str
    file: str


def route_rows(site: Site) -> list[RouteRow]:
    """One row per route, in the order requests try them.

    Methods are the handlers the file defines (HEAD with GET); ``*`` stands for a
    ``fallback`` (any other method) and ``-`` for a file with no handler.
    """
    rows: list[RouteRow] = []
    for route in site.table.routes:
        endpoint = site.endpoints[route.id]
        methods = [
            m for m in endpoint.methods() if m != "OPTIONS" or "options" in endpoint.handlers
        ]
        if "fallback" in endpoint.handlers:
            methods.append("*")
        rows.append(RouteRow(route.pattern, ", ".join(methods) or "-", endpoint.file))
    return rows


def render_routes(site: Site) -> str:
    """The table as text: one route a line, columns aligned, no trailing newline."""
    rows = route_rows(site)
    if not rows:
        return ""
    width_pattern = max(len(row.pattern) for row in rows)
    width_methods = max(len(row.methods) for row in rows)
    return "\n".join(
        f"{row.pattern:<{width_pattern}}  {row.methods:<{width_methods}}  {row.file}".rstrip()
        for row in rows
    )


def shadow_warnings(site: Site) -> list[str]:
    """A line for each static file that answers a URL a route would otherwise get.

    A static file wins over a route at the same path (docs/routes.md, "Static files"), so
    the route never sees that URL.
    """
    warnings: list[str] = []
    for file, url in _static_urls(site.static_dir):
        match = site.table.match(quote(url, safe="/"))
        if match is None:
            continue
        endpoint = site.endpoints[match.route.id]
        shown = f"static/{file.relative_to(site.static_dir).as_posix()}"
        warnings.append(
            f"warning: {shown} shadows route {match.route.pattern} ({endpoint.file}) at {url}"
        )
    return warnings


def _static_urls(static_dir: Path) -> list[tuple[Path, str]]:
    """(file, URL path) for every file static/ serves, in a stable order."""
    if not static_dir.is_dir():
        return []
    found: list[tuple[Path, str]] = []
    for folder, dirs, files in os.walk(static_dir):
        base = Path(folder)
        relative = base.relative_to(static_dir)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") or (d == ".well-known" and relative.parts == ())
        )
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = base / name
            url = "/" + (relative / name).as_posix()
            found.append((path, url))
            if name == "index.html":
                # A folder answers with its index.html (static.py): /docs and /.
                folder_url = "/" + relative.as_posix() if relative.parts else "/"
                found.append((path, folder_url))
    return found
