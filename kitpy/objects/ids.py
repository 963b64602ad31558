"""ObjectId: which durable object of a namespace a stub or state refers to.

An id is 64 lowercase hex characters (256 bits), scoped to one namespace
(docs/objects.md, "Namespaces, ids and stubs"):

- ``id_from_name(name)`` is a SHA-256 of the namespace and the name, so the same name
  gives the same id across restarts and machines, and a different id in another
  namespace;
- ``new_unique_id()`` is 256 random bits from :mod:`secrets`;
- ``id_from_string(text)`` parses what ``str(id)`` printed: exactly 64 hex digits,
  either case, normalised to lowercase; anything else is a ``ValueError``.
"""

from __future__ import annotations

import hashlib
import re
import secrets

__all__ = ("ObjectId", "id_from_name", "id_from_string", "new_unique_id")

#: Hex digits in an id (256 bits).
ID_LENGTH = 64
_HEX_ID = re.compile(r"[0-9a-fA-F]{64}")
# A domain tag, so these hashes never coincide with any other use of SHA-256 of a name.
_NAME_TAG = b"kitpy.objects.id_from_name\x00"


class ObjectId:
    """The id of one durable object within one namespace.

    ``str(id)`` is its 64-hex form; ``name`` is the name it was made from, or None.
    Two ids are equal when they have the same namespace and hex.
    """

    __slots__ = ("_hex", "name", "namespace")

    def __init__(self, namespace: str, hex_id: str, name: str | None = None) -> None:
        self.namespace = namespace
        self._hex = hex_id
        self.name = name

    def __str__(self) -> str:
        return self._hex

    def __repr__(self) -> str:
        named = f" name={self.name!r}" if self.name is not None else ""
        return f"<ObjectId {self.namespace}/{self._hex}{named}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ObjectId):
            return NotImplemented
        return self._hex == other._hex and self.namespace == other.namespace

    def __hash__(self) -> int:
        return hash((self.namespace, self._hex))


def id_from_name(namespace: str, name: str) -> ObjectId:
    """The deterministic id of ``name`` in ``namespace``."""
    if not isinstance(name, str):
        raise TypeError(f"id_from_name() takes a str, got {type(name).__name__}: {name!r}")
    ns = namespace.encode("utf-8", "surrogatepass")
    data = name.encode("utf-8", "surrogatepass")
    # Length-prefix the namespace, so ("ab", "c") and ("a", "bc") hash differently.
    digest = hashlib.sha256(_NAME_TAG + len(ns).to_bytes(4, "big") + ns + data).hexdigest()
    return ObjectId(namespace, digest, name)


def new_unique_id(namespace: str) -> ObjectId:
    """A fresh random id in ``namespace``."""
    return ObjectId(namespace, secrets.token_hex(ID_LENGTH // 2))


def id_from_string(namespace: str, text: str) -> ObjectId:
    """Parse ``str(id)``: 64 hex digits (either case); ValueError otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"id_from_string() takes a str, got {type(text).__name__}: {text!r}")
    if _HEX_ID.fullmatch(text) is None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ValueError(
            f"invalid object id {shown!r}: expected {ID_LENGTH} hex digits "
            f"(got {len(text)} characters); use str(id) of an id from this namespace, "
            "or id_from_name() for a name"
        )
    return ObjectId(namespace, text.lower())
