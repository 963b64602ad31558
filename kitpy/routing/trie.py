"""The compiled segment trie: request path -> (route, params).

Routes are inserted into a trie keyed by their URL segments (groups left out). A
static segment is a dict key, so ``/users/list`` among 10,000 routes costs two dict
look-ups; mixed segments (``file-[name].[ext]``) are indexed by their leading text;
parameters, optionals and rests are edges tried in turn, with backtracking: an edge
whose matcher rejects, or whose subtree does not match the rest of the path, gives
way to the next candidate.

Within one route the search backtracks too: when a matcher rejects the value that a
rest or an optional would take, the route's other ways of cutting up the path are
tried before the next route (``/[...a=int]/[...b]`` takes ``/1/x`` as ``a="1"``).
SvelteKit runs one regex match per route and gives up on the route instead. The two
agree whenever a route can take a path in one way only, and on every path for routes
without matchers (tests/routing/test_trie.py checks the trie against a linear scan
of SvelteKit-style regexes).

Which route wins is decided by rank, its index in the precedence order of
table.py: every node knows the best rank in its subtree, so the search visits the
most promising branch first and drops any branch that cannot beat the best match
found so far. The result is the route that a linear scan of the ordered table would
find first, without the scan.

Decoding follows SvelteKit (docs/routes.md, "Decoding"): the path is percent-decoded except
``%2F``, ``%3F``, ``%23`` and ``%25``, so an encoded slash stays inside one segment;
each parameter value is then fully decoded (``/blog/a%2Fb`` gives ``"a/b"``).
Matchers see decoded values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any
from urllib.parse import unquote

from .discover import RouteSpec
from .segments import Param, ParamKind, Segment, encode_static

__all__ = ("RouteMatch", "RouteTrie", "decode_param", "decode_path", "split_path")

NO_RANK = 1 << 62
#: How many paths :meth:`RouteTrie.match` remembers (see there).
STATIC_CACHE_SIZE = 4096
_KEPT_ESCAPES = re.compile(r"%(2[fF]|3[fF]|23|25)")

Matcher = Callable[[str], bool]


@dataclass(frozen=True)
class RouteMatch:
    """A matched route and its parameters (fully decoded; an optional parameter that
    matched nothing is absent, an empty rest is ``""``)."""

    route: RouteSpec
    params: dict[str, str]


def decode_path(raw_path: str) -> str:
    """Percent-decode a path except ``%2F %3F %23 %25``, which stay (upper-cased)."""
    if "%" not in raw_path:
        return raw_path
    pieces = _KEPT_ESCAPES.split(raw_path)
    # split() with a group alternates: text, kept escape, text, ...
    return "".join(
        "%" + piece.upper() if i % 2 else unquote(piece, errors="replace")
        for i, piece in enumerate(pieces)
    )


def decode_param(value: str) -> str:
    """Fully decode a value taken from a :func:`decode_path` result."""
    return unquote(value, errors="replace") if "%" in value else value


def split_path(raw_path: str) -> list[str]:
    """Decode a raw request path and split it into segments.

    ``/`` is no segment at all; one trailing slash is ignored (``/about/`` is
    ``["about"]``): redirecting it is the runtime's job.
    """
    path = decode_path(raw_path)
    body = path[1:] if path.startswith("/") else path
    if body.endswith("/"):
        body = body[:-1]
    return body.split("/") if body else []


class _EdgeKind(Enum):
    PARAM = auto()  # [p]: one non-empty segment
    OPTIONAL = auto()  # [[p]]: zero or one non-empty segment
    REST = auto()  # [...p]: zero or more segments
    MIXED = auto()  # text and params in one segment: [file].[ext], foo-[c]
    MIXED_REST = auto()  # a mixed segment with a rest: static[...p], [...p].json


@dataclass(eq=False)
class _Node:
    static: dict[str, _Node] = field(default_factory=dict)
    edges: dict[str, _Edge] = field(default_factory=dict)  # by raw segment, while building
    # [p], [[p]] and [...p], best rank first
    dynamic: list[_Edge] = field(default_factory=list)
    # mixed segments by their leading text ("file" for file[n].[e]), best rank first,
    # so a request segment is tried only against those whose text it starts with
    mixed: dict[str, list[_Edge]] = field(default_factory=dict)
    prefix_lengths: tuple[int, ...] = ()
    route: RouteSpec | None = None
    rank: int = NO_RANK
    best: int = NO_RANK  # the best (lowest) rank in this subtree


@dataclass(eq=False)
class _Edge:
    kind: _EdgeKind
    child: _Node
    params: tuple[Param, ...]
    checks: tuple[Matcher | None, ...]
    regex: re.Pattern[str] | None = None
    prefix: str = ""
    # Read per request, so kept as plain fields: the first parameter's name, and
    # whether the edge is a rest or an optional.
    name: str = field(init=False)
    is_rest: bool = field(init=False)
    is_optional: bool = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.params[0].name if self.params else ""
        self.is_rest = self.kind is _EdgeKind.REST
        self.is_optional = self.kind is _EdgeKind.OPTIONAL


class RouteTrie:
    """A trie over routes given in precedence order (the first has rank 0)."""

    def __init__(self, routes: Iterable[RouteSpec], matchers: Mapping[str, Matcher]) -> None:
        self._root = _Node()
        self._matchers = matchers
        #: Routes without parameters, by id, and the paths already matched to one.
        self._static_ids: set[str] = set()
        self._static_hits: dict[str, RouteMatch] = {}
        for rank, route in enumerate(routes):
            self._insert(route, rank)
            if not route.params:
                self._static_ids.add(route.id)
        self._finish(self._root)

    def _insert(self, route: RouteSpec, rank: int) -> None:
        node = self._root
        for segment in route.path_segments:
            node = self._child(node, segment)
        if rank < node.rank:  # table.py rejects duplicates; keep the first anyway
            node.route, node.rank = route, rank

    def _child(self, node: _Node, segment: Segment) -> _Node:
        if segment.is_static:
            return node.static.setdefault(encode_static(segment.text), _Node())
        # Edges are shared by identical segments ([id] in two routes), never by
        # [id] and [slug]: each edge names the parameter it sets.
        edge = node.edges.get(segment.raw)
        if edge is None:
            edge = node.edges[segment.raw] = self._edge_for(segment)
        return edge.child

    def _edge_for(self, segment: Segment) -> _Edge:
        params = segment.params
        checks = tuple(self._matchers[p.matcher] if p.matcher else None for p in params)
        lone = segment.lone_param
        if lone is not None:
            kind = {
                ParamKind.REQUIRED: _EdgeKind.PARAM,
                ParamKind.OPTIONAL: _EdgeKind.OPTIONAL,
                ParamKind.REST: _EdgeKind.REST,
            }[lone.kind]
            return _Edge(kind, _Node(), params, checks)
        # As SvelteKit's parse_route_id: required is lazy and stays in the segment,
        # optional may be empty, a rest inside text is lazy and may span segments.
        pattern = "".join(
            re.escape(encode_static(part))
            if isinstance(part, str)
            else {
                ParamKind.REQUIRED: "([^/]+?)",
                ParamKind.OPTIONAL: "([^/]*)?",
                ParamKind.REST: "(.*?)",
            }[part.kind]
            for part in segment.parts
        )
        has_rest = any(p.kind is ParamKind.REST for p in params)
        kind = _EdgeKind.MIXED_REST if has_rest else _EdgeKind.MIXED
        prefix = encode_static(segment.text)
        return _Edge(kind, _Node(), params, checks, re.compile(pattern, re.DOTALL), prefix)

    def _finish(self, node: _Node) -> int:
        best = node.rank
        for child in node.static.values():
            best = min(best, self._finish(child))
        for edge in node.edges.values():
            best = min(best, self._finish(edge.child))
        by_rank = sorted(node.edges.values(), key=lambda e: e.child.best)
        node.dynamic = [e for e in by_rank if e.regex is None]
        for edge in by_rank:
            if edge.regex is not None:
                node.mixed.setdefault(edge.prefix, []).append(edge)
        node.prefix_lengths = tuple(sorted({len(prefix) for prefix in node.mixed}))
        node.edges = {}  # only needed while building
        node.best = best
        return best

    def match(self, raw_path: str) -> RouteMatch | None:
        """The best-ranked route matching ``raw_path`` (percent-encoded, no query).

        A path that a route without parameters matched is remembered (up to
        :data:`STATIC_CACHE_SIZE` of them), so ``/`` or ``/about`` is one dict look-up.
        That route wins whatever the matchers say: among the routes that match a path, a
        fully static one comes first in the precedence order. The cached match is shared:
        its ``params`` (empty) must not be changed.
        """
        found = self._static_hits.get(raw_path)
        if found is not None:
            return found
        route_params = self.find(raw_path)
        if route_params is None:
            return None
        found = self._static_hits.get(raw_path)
        return found if found is not None else RouteMatch(*route_params)

    def find(self, raw_path: str) -> tuple[RouteSpec, dict[str, str]] | None:
        """What :meth:`match` finds, as ``(route, params)``; ``params`` is a new dict
        the caller may keep and change (the runtime's per-request look-up)."""
        hit = self._static_hits.get(raw_path)
        if hit is not None:
            return hit.route, {}
        segs = split_path(raw_path)
        found: list[Any] = [NO_RANK, None, None]
        _walk(self._root, segs, 0, len(segs), {}, found)
        route: RouteSpec | None = found[1]
        if route is None:
            return None
        params: dict[str, str] = found[2]
        if route.id in self._static_ids and len(self._static_hits) < STATIC_CACHE_SIZE:
            self._static_hits[raw_path] = RouteMatch(route, {})
        return route, params


# The search is plain functions over (node, segments, index): no object per request.
# ``found`` is ``[rank, route, params]``, the best match so far.


def _walk(
    node: _Node, segs: list[str], i: int, n: int, params: dict[str, str], found: list[Any]
) -> None:
    if node.best >= found[0]:
        return
    if i == n:
        if node.rank < found[0]:
            found[0], found[1], found[2] = node.rank, node.route, dict(params)
    else:
        child = node.static.get(segs[i])
        if child is not None:
            if i + 1 == n and not child.dynamic:
                # The last segment, onto a node nothing empty can follow: what the
                # call would do (a better rank implies a better best).
                if child.rank < found[0]:
                    found[0], found[1], found[2] = child.rank, child.route, dict(params)
            else:
                _walk(child, segs, i + 1, n, params, found)
    for edge in node.dynamic:
        if edge.child.best >= found[0]:
            break  # sorted by best rank: nothing further can win
        if edge.is_rest:
            # greedy, as SvelteKit's `(?:/(.*))?`: the longest rest first
            for end in range(n, i - 1, -1):
                _try(edge, segs, end, n, params, found, decode_param("/".join(segs[i:end])))
            continue
        if i < n and segs[i]:
            value = decode_param(segs[i])
            check = edge.checks[0]
            if check is None or check(value):
                name = edge.name
                params[name] = value
                child = edge.child
                if i + 1 == n and not child.dynamic:  # as above
                    if child.rank < found[0]:
                        found[0], found[1], found[2] = child.rank, child.route, dict(params)
                else:
                    _walk(child, segs, i + 1, n, params, found)
                del params[name]
        if edge.is_optional:
            _walk(edge.child, segs, i, n, params, found)  # the optional takes nothing
    if i < n and node.mixed:
        seg = segs[i]
        for length in node.prefix_lengths:
            if length > len(seg):
                break
            for edge in node.mixed.get(seg[:length], ()):
                if edge.child.best >= found[0]:
                    break
                # lazy, as SvelteKit's `(.*?)`: the fewest segments first
                last = n if edge.kind is _EdgeKind.MIXED_REST else i + 1
                for end in range(i + 1, last + 1):
                    _try_mixed(edge, segs, i, end, n, params, found)


def _try(
    edge: _Edge,
    segs: list[str],
    end: int,
    n: int,
    params: dict[str, str],
    found: list[Any],
    value: str,
) -> None:
    check = edge.checks[0]
    if check is not None and not check(value):
        return
    name = edge.name
    params[name] = value
    _walk(edge.child, segs, end, n, params, found)
    del params[name]


def _try_mixed(
    edge: _Edge,
    segs: list[str],
    i: int,
    end: int,
    n: int,
    params: dict[str, str],
    found: list[Any],
) -> None:
    assert edge.regex is not None
    matched = edge.regex.fullmatch("/".join(segs[i:end]))
    if matched is None:
        return
    values: list[tuple[str, str]] = []
    for param, check, raw in zip(edge.params, edge.checks, matched.groups(), strict=True):
        if not raw and param.kind is ParamKind.OPTIONAL:
            continue  # an optional that matched nothing is absent
        value = decode_param(raw or "")
        if check is not None and not check(value):
            return
        values.append((param.name, value))
    params.update(values)
    _walk(edge.child, segs, end, n, params, found)
    for name, _ in values:
        del params[name]
