"""File-based routing: discover ``routes/``, order by precedence, match paths.

Pure functions of a file tree and a path string; see docs/routes.md.
"""

from __future__ import annotations

from .discover import RouteSpec as RouteSpec
from .discover import discover_routes as discover_routes
from .param_matchers import BUILTIN_MATCHERS as BUILTIN_MATCHERS
from .segments import Param as Param
from .segments import ParamKind as ParamKind
from .segments import Segment as Segment
from .segments import parse_segment as parse_segment
from .table import RouteTable as RouteTable
from .table import build_table as build_table
from .table import sort_routes as sort_routes
from .trie import RouteMatch as RouteMatch

__all__ = (
    "BUILTIN_MATCHERS",
    "Param",
    "ParamKind",
    "RouteMatch",
    "RouteSpec",
    "RouteTable",
    "Segment",
    "build_table",
    "discover_routes",
    "parse_segment",
    "sort_routes",
)
