"""Walk ``routes/`` into :class:`RouteSpec` values (docs/routes.md).

- A route file's URL is its path under ``routes/`` without ``.py``; ``index.py``
  stands for its folder. Only ``*.py`` files are routes.
- Files and folders whose names start with ``_`` or ``.`` are skipped, except the
  ``.well-known`` folder.
- ``(name)`` group folders stay in the route id but add nothing to the URL.

The only I/O here is reading directory listings; the files are not opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kitpy.errors import SiteError

from .segments import Param, ParamKind, Segment, is_private_name, parse_segment

__all__ = ("RouteSpec", "discover_routes", "parse_route_id")

ROUTE_SUFFIX = ".py"
INDEX_STEM = "index"


@dataclass(frozen=True)
class RouteSpec:
    """One route file.

    ``id`` is the route id as written, groups included (``/(admin)/users``);
    ``pattern`` is the URL pattern without groups, for display (``/users``).
    ``segments`` holds the parsed names of ``id``, groups included; it is parsed from
    ``id`` when not given.
    """

    id: str
    file: Path
    pattern: str
    segments: tuple[Segment, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.segments and self.id != "/":
            object.__setattr__(self, "segments", parse_route_id(self.id, self.file))

    @property
    def path_segments(self) -> tuple[Segment, ...]:
        """The segments that are part of the URL (groups left out)."""
        return tuple(s for s in self.segments if not s.is_group)

    @property
    def params(self) -> tuple[Param, ...]:
        """Every parameter of the route, left to right."""
        return tuple(p for s in self.segments for p in s.params)


def parse_route_id(route_id: str, file: str | Path | None = None) -> tuple[Segment, ...]:
    """Parse a route id (``/blog/[slug]``) into segments and check the whole route.

    Raises:
        SiteError: a bad name (see :func:`parse_segment`), a parameter name used twice,
            or ``[[optional]]`` right after ``[...rest]``; the error names ``file``.
    """
    if route_id == "/":
        return ()
    if not route_id.startswith("/"):
        raise SiteError(f"a route id starts with '/', got {route_id!r}", path=file)
    segments = tuple(parse_segment(name, file) for name in route_id[1:].split("/"))
    seen: set[str] = set()
    previous: Param | None = None
    for segment in segments:
        if segment.is_group:
            continue
        for param in segment.params:
            if param.name in seen:
                raise SiteError(
                    f"route {route_id!r} uses the parameter name {param.name!r} twice; "
                    "give each parameter its own name",
                    path=file,
                )
            seen.add(param.name)
        lone = segment.lone_param
        if (
            previous is not None
            and previous.kind is ParamKind.REST
            and lone is not None
            and lone.kind is ParamKind.OPTIONAL
        ):
            raise SiteError(
                f"route {route_id!r}: an [[optional]] segment cannot follow a [...rest] "
                "segment (the rest already takes every segment)",
                path=file,
            )
        previous = lone
    return segments


def discover_routes(routes_dir: Path) -> list[RouteSpec]:
    """Every route file under ``routes_dir``, ordered by route id.

    A missing folder has no routes. The order here is only for determinism;
    :class:`kitpy.routing.RouteTable` puts routes in precedence order.

    Raises:
        SiteError: a file or folder name that is not a valid route name; the message
            names the route file.
    """
    root = Path(routes_dir).absolute()
    routes: list[RouteSpec] = []
    if root.is_dir():
        _walk(root, [], routes, {os.path.realpath(root)})
    routes.sort(key=lambda r: (r.id, str(r.file)))
    return routes


def _walk(folder: Path, names: list[str], out: list[RouteSpec], seen: set[str]) -> None:
    with os.scandir(folder) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if is_private_name(entry.name):
            continue
        path = folder / entry.name
        if entry.is_dir():
            real = os.path.realpath(path)
            if real in seen:  # a symlink loop
                continue
            _walk(path, [*names, entry.name], out, seen | {real})
        elif entry.name.endswith(ROUTE_SUFFIX) and entry.is_file():
            stem = entry.name[: -len(ROUTE_SUFFIX)]
            out.append(_route_for(path, names if stem == INDEX_STEM else [*names, stem]))


def _route_for(file: Path, names: list[str]) -> RouteSpec:
    route_id = "/" + "/".join(names)
    segments = parse_route_id(route_id, file)
    if names and segments[-1].is_group and names[-1] != "" and file.stem != INDEX_STEM:
        raise SiteError(
            f"a route file cannot be named like a group ({file.name}); "
            f"use {file.stem}/index.py for a group's own route",
            path=file,
        )
    pattern = "/" + "/".join(s.raw for s in segments if not s.is_group)
    return RouteSpec(id=route_id, file=file, pattern=pattern, segments=segments)
