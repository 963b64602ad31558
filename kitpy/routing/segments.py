"""Parse one file or folder name under ``routes/`` into a :class:`Segment`.

A name is static text with parameters in square brackets (docs/routes.md, "Segments"):

=====================  ==========================================================
``about``              static text
``[id]``               required: one non-empty segment
``[id=int]``           required, accepted only when the matcher ``int`` says so
``[[page]]``           optional: zero or one segment
``[...rest]``          rest: zero or more segments, joined by ``/``
``[file].[ext]``       text and parameters mixed in one segment
``(admin)``            a group: adds nothing to the URL
``[x+2f]``/``[u+00e9]``  an escaped character, taken as static text (as SvelteKit)
=====================  ==========================================================

Two parameters with nothing between them (``[a][b]``) cannot be told apart and are
an error naming the file, as are unbalanced brackets and bad parameter names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from kitpy.errors import SiteError

__all__ = (
    "Param",
    "ParamKind",
    "Segment",
    "encode_static",
    "is_group_name",
    "is_private_name",
    "parse_segment",
)

_NAME = re.compile(r"([A-Za-z0-9_]+)(?:=([A-Za-z0-9_]+))?")
_GROUP = re.compile(r"\([^)]+\)")
_ESCAPE = re.compile(r"([xu])\+([0-9a-f]+)")
# Characters that stay percent-encoded in a decoded request path (see trie.py), so
# static text from a file name is encoded the same way before it is compared.
_ENCODE_STATIC = str.maketrans({"%": "%25", "/": "%2F", "?": "%3F", "#": "%23"})


class ParamKind(Enum):
    """How many path segments a parameter takes."""

    REQUIRED = "required"
    OPTIONAL = "optional"
    REST = "rest"


@dataclass(frozen=True)
class Param:
    """One ``[name]``, ``[name=matcher]``, ``[[name]]`` or ``[...name]``."""

    name: str
    kind: ParamKind
    matcher: str | None = None


@dataclass(frozen=True)
class Segment:
    """One parsed name.

    ``parts`` alternates static text and :class:`Param`, beginning and ending with
    static text (possibly empty): ``foo-[c]`` is ``("foo-", Param("c"), "")``.
    A group has no parts.
    """

    raw: str
    parts: tuple[str | Param, ...]
    is_group: bool = False

    @property
    def is_static(self) -> bool:
        """True for plain text (no parameter, not a group)."""
        return len(self.parts) == 1

    @property
    def params(self) -> tuple[Param, ...]:
        """The parameters, left to right."""
        return tuple(p for p in self.parts if isinstance(p, Param))

    @property
    def lone_param(self) -> Param | None:
        """The parameter when it is the whole segment (``[id]``, not ``x[id]``)."""
        if len(self.parts) == 3 and self.parts[0] == "" and self.parts[2] == "":
            param = self.parts[1]
            assert isinstance(param, Param)  # parts alternate text / Param
            return param
        return None

    @property
    def text(self) -> str:
        """The leading static text: all of it for a static segment, "" before a param."""
        first = self.parts[0] if self.parts else ""
        assert isinstance(first, str)
        return first


def is_group_name(name: str) -> bool:
    """True for ``(name)``: a group folder, not part of the URL."""
    return _GROUP.fullmatch(name) is not None


def is_private_name(name: str) -> bool:
    """True for names that are never routes: leading ``_`` or ``.`` (but ``.well-known``)."""
    return (name.startswith("_") or name.startswith(".")) and name != ".well-known"


def encode_static(text: str) -> str:
    """Encode static route text the way :func:`kitpy.routing.trie.decode_path` leaves
    a request path: ``%``, ``/``, ``?`` and ``#`` stay percent-encoded."""
    return text.translate(_ENCODE_STATIC)


def parse_segment(name: str, file: str | Path | None = None) -> Segment:
    """Parse one file or folder name (without ``.py``).

    Raises:
        SiteError: unbalanced brackets, a bad parameter name, ``[[...rest]]``, or two
            parameters with nothing between them; the error names ``file``.
    """
    if is_group_name(name):
        return Segment(raw=name, parts=(), is_group=True)

    def fail(problem: str) -> SiteError:
        return SiteError(f"invalid route name {name!r}: {problem}", path=file)

    parts: list[str | Param] = []
    text: list[str] = []
    last_was_param = False
    i = 0
    while i < len(name):
        char = name[i]
        if char == "]":
            raise fail("brackets are unbalanced")
        if char != "[":
            text.append(char)
            i += 1
            continue
        if name.startswith("[[", i):
            end = name.find("]]", i + 2)
            if end < 0:
                raise fail("brackets are unbalanced")
            inner, kind, i = name[i + 2 : end], ParamKind.OPTIONAL, end + 2
            if inner.startswith("..."):
                raise fail("a rest parameter is always optional; write [...name], not [[...name]]")
        else:
            end = name.find("]", i + 1)
            if end < 0:
                raise fail("brackets are unbalanced")
            inner, kind, i = name[i + 1 : end], ParamKind.REQUIRED, end + 1
            escape = _ESCAPE.fullmatch(inner)
            if escape is not None:
                text.append(_unescape(escape.group(1), escape.group(2), fail))
                continue
            if inner.startswith("..."):
                inner, kind = inner[3:], ParamKind.REST
        match = _NAME.fullmatch(inner)
        if match is None:
            raise fail(
                f"bad parameter [{inner}]: names and matchers take letters, digits and "
                "underscores only"
            )
        if last_was_param and not text:
            raise fail(
                "two parameters with nothing between them cannot be told apart; "
                "put static text between them or use separate folders"
            )
        parts.append("".join(text))
        text = []
        parts.append(Param(name=match.group(1), kind=kind, matcher=match.group(2)))
        last_was_param = True
    parts.append("".join(text))
    return Segment(raw=name, parts=tuple(parts))


def _unescape(kind: str, digits: str, fail: Callable[[str], SiteError]) -> str:
    if kind == "x" and len(digits) != 2:
        raise fail("a hexadecimal escape [x+HH] takes exactly two digits")
    if kind == "u" and not 4 <= len(digits) <= 6:
        raise fail("a unicode escape [u+HHHH] takes four to six digits")
    try:
        return chr(int(digits, 16))
    except (ValueError, OverflowError):
        raise fail(f"bad character escape [{kind}+{digits}]") from None
