"""Case-insensitive, multi-valued HTTP headers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Union

from kitpy.http.multidict import MultiDict

__all__ = ("Headers", "HeadersInit")

HeadersInit = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]], None]

_BAD_NAME = re.compile(r"[\r\n\x00: ]")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def _check(name: str, value: str) -> None:
    # A CR or LF in a header would let user data split the response (RFC 9110 5.5).
    if not name or _BAD_NAME.search(name) is not None:
        raise ValueError(f"invalid header name {name!r}")
    if _BAD_VALUE.search(value) is not None:
        raise ValueError(f"header {name!r} has a CR, LF or NUL in its value: {value!r}")


class Headers(MultiDict[str]):
    """Ordered headers; names compare case-insensitively; a name may repeat.

    ``headers["a"]`` and ``get("a")`` give the first value, ``get_all("a")`` every one.
    Names are kept in lower case. Setting a value with CR, LF or NUL raises
    ``ValueError``.
    """

    __slots__ = ()

    ignore_case = True

    def __init__(self, init: HeadersInit = None) -> None:
        self._items = []
        if init is None:
            return
        if isinstance(init, Headers):
            self._items = list(init._items)
            return
        pairs = init.items() if isinstance(init, Mapping) else init
        for name, value in pairs:
            self.add(name, value)

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Build from trusted, already-validated wire pairs (as h11 gives them)."""
        headers = cls()
        headers._items = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in raw]
        return headers

    def raw(self) -> list[tuple[bytes, bytes]]:
        """The pairs encoded for the wire."""
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self._items]

    def add(self, name: str, value: str) -> None:
        """Append a value, keeping the ones already there."""
        value = str(value)
        _check(name, value)
        self._items.append((name.lower(), value))

    append = add

    def setdefault(self, name: str, value: str) -> str:
        """Set ``name`` unless present; return its (first) value."""
        found = self.get(name)
        if found is None:
            self.add(name, value)
            return value
        return found

    def __setitem__(self, name: str, value: str) -> None:
        value = str(value)
        _check(name, value)
        key = name.lower()
        self._items = [(n, v) for n, v in self._items if n != key]
        self._items.append((key, value))

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        self._items = [(n, v) for n, v in self._items if n != key]

    def pop(self, name: str, default: str | None = None) -> str | None:
        """Remove every value of ``name``; return the first."""
        value = self.get(name, default) if default is not None else self.get(name)
        del self[name]
        return value

    def update(self, other: HeadersInit) -> None:
        """Replace each name given in ``other`` by its values there."""
        incoming = Headers(other)
        for name in incoming:
            del self[name]
        self._items.extend(incoming._items)

    def copy(self) -> Headers:
        return Headers(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._items) == sorted(other._items)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"
