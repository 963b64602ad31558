"""The read side of ordered, multi-valued mappings: Headers, QueryParams, FormData."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Generic, TypeVar, overload

__all__ = ("MultiDict",)

V = TypeVar("V")


class MultiDict(Generic[V]):
    """Ordered ``(name, value)`` pairs in which a name may repeat.

    ``m[name]`` and ``m.get(name)`` give the first value, ``m.get_all(name)`` every
    one in order; iterating gives the distinct names in first-seen order and ``len``
    counts the pairs. With ``ignore_case`` (headers) names are stored in lower case
    and looked up in lower case.
    """

    __slots__ = ("_items",)

    ignore_case: ClassVar[bool] = False

    def __init__(self, items: list[tuple[str, V]] | None = None) -> None:
        self._items: list[tuple[str, V]] = items if items is not None else []

    @overload
    def get(self, name: str) -> V | None: ...
    @overload
    def get(self, name: str, default: V) -> V: ...
    def get(self, name: str, default: V | None = None) -> V | None:
        """The first value of ``name``, or ``default``."""
        key = name.lower() if self.ignore_case else name
        for n, v in self._items:
            if n == key:
                return v
        return default

    def get_all(self, name: str) -> list[V]:
        """Every value of ``name``, in order."""
        key = name.lower() if self.ignore_case else name
        return [v for n, v in self._items if n == key]

    def __getitem__(self, name: str) -> V:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower() if self.ignore_case else name
        return any(n == key for n, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(n for n, _ in self._items))

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        """The distinct names, in first-seen order."""
        return list(self)

    def items(self) -> list[tuple[str, V]]:
        """Every ``(name, value)`` pair, repeats included."""
        return list(self._items)
