"""The route table: precedence order, conflict checks, and matching.

Theory of operation
===================

Several routes may match one path: ``/foo-abc`` is matched by ``foo-abc.py``,
``foo-[c].py``, ``[b].py``, ``[[a=x]].py`` and ``[...catchall].py``. The table puts
every route in one deterministic precedence order and a request goes to the first
route in that order that matches, a rejecting matcher letting the next one try.
trie.py finds that route through a trie instead of scanning the list.

The order is SvelteKit's, as its code sorts (packages/kit/src/core/sync/
create_manifest_data/sort.js), not as its docs simplify it. Both routes are cut into
URL segments (groups dropped, and every ``[[optional]]`` that is not at the very end
of the id dropped too), and each segment into parts that alternate static text and
parameters, starting and ending with text (``foo-[c]`` is ``"foo-"``, ``[c]``,
``""``). A missing segment counts as one empty static part. Segments are compared
left to right, parts left to right, and the first difference decides:

1. Static text against static text: equal text goes on. A missing segment beats
   any real one whose first text differs (shallower beats deeper: ``/a`` before
   ``/a/b``). Else the texts compare character by character, except that when one
   is a prefix of the other the longer one wins (``blog.json`` before ``blog``,
   ``bar`` before ``b[x]``, and ``b[x]`` before ``foo``).
2. A parameter against no parameter (the other segment's text ended): the segment
   that has no parameter there wins (``/c/b`` ... ``/b`` before ``/b/[required]``).
3. Rest against rest: when each is followed by static text (the text after it in
   the same segment, else the first text of the next segment), they tie and the
   comparison goes on; when only one is followed by text, it wins
   (``[...rest]/x`` before ``[...rest]``).
4. A rest against a non-rest parameter: the rest wins only when it is followed by
   static text and the other parameter is not (``/[...rest]/x`` before
   ``/[required]``, but ``/g/[required]`` before ``/g/[...rest]/[required]``);
   in every other case the non-rest parameter wins.
5. A parameter with a matcher beats one without (``[id=int]`` before ``[id]``).
6. Required beats optional (``[id]`` before ``[[id]]``).
7. Otherwise (two plain required, or two plain optional) the parameter names are
   not compared and the next part decides.

When no part decides, the route whose id is greater (as a string) comes first; it
cannot happen between two routes with the same pattern, since those are rejected
below. The rules are applied as a comparison function, SvelteKit-style, after the
routes are first put in id order, so the result is the same on every run.

Conflicts: two routes with the same pattern (``[a]`` and ``[b]`` count as the
same, and so does one path in two groups) raise :class:`RouteConflictError` naming
both files. As in SvelteKit, an ``[[optional]]`` inside a route that does not end
in one also stands for both of its forms: ``/a/[[x]]/b`` conflicts with ``/a/b``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cmp_to_key
from itertools import product
from pathlib import Path

from kitpy.errors import RouteConflictError, SiteError

from .discover import RouteSpec, discover_routes
from .param_matchers import BUILTIN_MATCHERS
from .segments import Param, ParamKind, Segment, encode_static
from .trie import RouteMatch, RouteTrie

__all__ = ("RouteTable", "build_table", "sort_routes")

Matcher = Callable[[str], bool]


class RouteTable:
    """Routes in precedence order, and :meth:`match` to find one for a path.

    Args:
        routes: the site's routes, in any order.
        matchers: the site's own matchers, merged over the built-in ``int``,
            ``uuid`` and ``slug``.

    Raises:
        SiteError: a route uses a matcher that does not exist (names the file).
        RouteConflictError: two routes have the same pattern (names both files).
    """

    def __init__(
        self,
        routes: list[RouteSpec],
        matchers: Mapping[str, Matcher] | None = None,
    ) -> None:
        self.matchers: dict[str, Matcher] = {**BUILTIN_MATCHERS, **(matchers or {})}
        for route in routes:
            for param in route.params:
                if param.matcher is not None and param.matcher not in self.matchers:
                    known = ", ".join(sorted(self.matchers))
                    raise SiteError(
                        f"route {route.id!r} uses the matcher {param.matcher!r}, which does "
                        f"not exist (known: {known}); define it in matchers.py at the site root",
                        path=route.file,
                    )
        check_conflicts(routes)
        self.routes: list[RouteSpec] = sort_routes(routes)
        self._trie = RouteTrie(self.routes, self.matchers)
        #: ``find(raw_path)``: the match as ``(route, params)``, params a dict of the
        #: caller's own (see :meth:`RouteTrie.find`); no RouteMatch is made.
        self.find: Callable[[str], tuple[RouteSpec, dict[str, str]] | None] = self._trie.find

    def match(self, raw_path: str) -> RouteMatch | None:
        """The route for ``raw_path`` (as received: percent-encoded, no query string),
        or None."""
        return self._trie.match(raw_path)


def build_table(routes_dir: Path, matchers: Mapping[str, Matcher] | None = None) -> RouteTable:
    """Discover the routes under ``routes_dir`` and build their table."""
    return RouteTable(discover_routes(routes_dir), matchers)


# -- precedence ---------------------------------------------------------------------


class _Kind(Enum):
    STATIC = "static"
    REQUIRED = "required"
    OPTIONAL = "optional"
    REST = "rest"


@dataclass(frozen=True)
class _Part:
    kind: _Kind
    content: str
    matched: bool = False


_EMPTY = _Part(_Kind.STATIC, "")  # stands for a segment one route has and one lacks
_EMPTY_SEGMENT = (_EMPTY,)
_INNER_OPTIONAL = re.compile(r"\[\[[^\]]+\]\](?!\Z)")
_GROUP = re.compile(r"\([^)]+\)")


@dataclass(frozen=True)
class _SortKey:
    id: str
    segments: tuple[tuple[_Part, ...], ...]
    route: RouteSpec


def sort_routes(routes: list[RouteSpec]) -> list[RouteSpec]:
    """``routes`` in precedence order (see the module docstring)."""
    cache: dict[str, tuple[_Part, ...]] = {}
    keys = []
    for route in sorted(routes, key=lambda r: (r.id, str(r.file))):
        # Sort keys come from the id text, exactly as SvelteKit cuts it up.
        names = _INNER_OPTIONAL.sub("", route.id)[1:].split("/")
        segments = []
        for name in names:
            if name and not _GROUP.fullmatch(name):
                if name not in cache:
                    cache[name] = _sort_parts(name)
                segments.append(cache[name])
        keys.append(_SortKey(route.id, tuple(segments), route))
    keys.sort(key=cmp_to_key(_compare))
    return [key.route for key in keys]


def _sort_parts(name: str) -> tuple[_Part, ...]:
    """Cut a segment into text, param, text, ... (always odd in number)."""
    parts: list[_Part] = []
    i = 0
    while True:
        start = name.find("[", i)
        if start < 0:
            parts.append(_Part(_Kind.STATIC, name[i:]))
            return tuple(parts)
        parts.append(_Part(_Kind.STATIC, name[i:start]))
        after = name[start + 1 : start + 2]
        kind = _Kind.OPTIONAL if after == "[" else _Kind.REST if after == "." else _Kind.REQUIRED
        closer = "]]" if kind is _Kind.OPTIONAL else "]"
        end = name.find(closer, start)
        if end < 0:  # parse_segment has rejected this already
            raise SiteError(f"invalid route segment {name!r}: brackets are unbalanced")
        i = end + len(closer)
        content = name[start:i]
        parts.append(_Part(kind, content, "=" in content))


def _compare(key_a: _SortKey, key_b: _SortKey) -> int:
    """Negative when ``key_a`` goes first."""
    segs_a, segs_b = key_a.segments, key_b.segments
    for i in range(max(len(segs_a), len(segs_b))):
        seg_a = segs_a[i] if i < len(segs_a) else _EMPTY_SEGMENT
        seg_b = segs_b[i] if i < len(segs_b) else _EMPTY_SEGMENT
        for j in range(max(len(seg_a), len(seg_b))):
            if j % 2 == 0:  # static text (rule 1)
                a, b = seg_a[j], seg_b[j]  # both exist: odd lengths, see rule 2
                if a.content != b.content:
                    if a is _EMPTY:
                        return -1
                    if b is _EMPTY:
                        return 1
                    return _compare_text(a.content, b.content)
                continue
            if j >= len(seg_a):  # rule 2
                return -1
            if j >= len(seg_b):
                return 1
            a, b = seg_a[j], seg_b[j]
            next_a = _next_text(segs_a, i, seg_a, j)
            next_b = _next_text(segs_b, i, seg_b, j)
            if a.kind is _Kind.REST and b.kind is _Kind.REST:  # rule 3
                if next_a and next_b:
                    continue
                if next_a:
                    return -1
                if next_b:
                    return 1
            if a.kind is _Kind.REST:  # rule 4
                return -1 if next_a and not next_b else 1
            if b.kind is _Kind.REST:
                return 1 if next_b and not next_a else -1
            if a.matched != b.matched:  # rule 5
                return -1 if a.matched else 1
            if a.kind is not b.kind:  # rule 6
                if a.kind is _Kind.REQUIRED:
                    return -1
                if b.kind is _Kind.REQUIRED:
                    return 1
    return 1 if key_a.id < key_b.id else -1


def _next_text(
    segments: tuple[tuple[_Part, ...], ...], i: int, segment: tuple[_Part, ...], j: int
) -> str:
    """The static text after the parameter at ``segment[j]``: in the same segment, or
    else the first text of the next segment."""
    text = segment[j + 1].content
    if not text and i + 1 < len(segments):
        text = segments[i + 1][0].content
    return text


def _compare_text(a: str, b: str) -> int:
    """Character by character, except that a text goes after the texts it starts."""
    for char_a, char_b in zip(a, b, strict=False):
        if char_a != char_b:
            return -1 if char_a < char_b else 1
    return -1 if len(a) > len(b) else 1


# -- conflicts ----------------------------------------------------------------------

_PartKey = tuple[str, ...]
_SegmentKey = tuple[_PartKey, ...]


def check_conflicts(routes: list[RouteSpec]) -> None:
    """Raise :class:`RouteConflictError` when two routes have the same pattern."""
    seen: dict[tuple[_SegmentKey, ...], RouteSpec] = {}
    for route in sorted(routes, key=lambda r: (r.id, str(r.file))):
        for key in _conflict_keys(route.path_segments):
            other = seen.get(key)
            if other is None:
                seen[key] = route
                continue
            if other is route:
                continue
            pattern = "/" + "/".join("".join("".join(part) for part in seg) for seg in key)
            raise RouteConflictError(
                f"routes {other.id!r} ({other.file}) and {route.id!r} ({route.file}) "
                f"have the same pattern {pattern!r} (parameter names do not count, nor groups); "
                "rename or remove one of the two files",
                path=route.file,
            )


def _conflict_keys(segments: tuple[Segment, ...]) -> set[tuple[_SegmentKey, ...]]:
    """The pattern of a route with parameter names left out, once per form its inner
    optionals can take."""
    ends_optional = bool(segments) and _is_lone(segments[-1], ParamKind.OPTIONAL)
    choices: list[list[_SegmentKey | None]] = []
    for segment in segments:
        param = segment.lone_param
        if not ends_optional and param is not None and param.kind is ParamKind.OPTIONAL:
            required = Param(param.name, ParamKind.REQUIRED, param.matcher)
            choices.append([None, (("",), _param_key(required), ("",))])
        else:
            choices.append([tuple(_part_key(part) for part in segment.parts)])
    return {tuple(seg for seg in combo if seg is not None) for combo in product(*choices)}


def _is_lone(segment: Segment, kind: ParamKind) -> bool:
    param = segment.lone_param
    return param is not None and param.kind is kind


def _part_key(part: str | Param) -> _PartKey:
    return (encode_static(part),) if isinstance(part, str) else _param_key(part)


def _param_key(param: Param) -> _PartKey:
    prefix = {ParamKind.REQUIRED: "[", ParamKind.OPTIONAL: "[[", ParamKind.REST: "[..."}
    suffix = "]]" if param.kind is ParamKind.OPTIONAL else "]"
    matcher = f"={param.matcher}" if param.matcher else ""
    return (prefix[param.kind], "*" + matcher, suffix)
