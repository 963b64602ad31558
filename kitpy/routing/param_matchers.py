"""Built-in parameter matchers: ``[id=int]``, ``[key=uuid]``, ``[name=slug]``.

A matcher is a predicate ``str -> bool`` over the fully decoded parameter value, as a
SvelteKit param matcher is. A site's own matchers (functions in ``matchers.py`` at the
site root) are merged over these, so a site may redefine one.

- ``int``: an optional ``-`` then ASCII digits (``0``, ``42``, ``-7``, ``007``). No
  ``+``, spaces, underscores or non-ASCII digits, all of which Python's ``int()``
  would accept; every accepted value does parse with ``int()``.
- ``uuid``: the canonical 8-4-4-4-12 hexadecimal form, any letter case, no braces
  and no ``urn:uuid:`` prefix.
- ``slug``: ASCII lowercase letters, digits and hyphens, neither starting nor
  ending with a hyphen (``hello-world``, ``2024``, ``a--b``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

__all__ = ("BUILTIN_MATCHERS", "Matcher", "is_int", "is_slug", "is_uuid")

Matcher = Callable[[str], bool]

_INT = re.compile(r"-?[0-9]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def is_int(value: str) -> bool:
    """``-?[0-9]+``: an integer in plain ASCII decimal."""
    return _INT.fullmatch(value) is not None


def is_uuid(value: str) -> bool:
    """A canonical 8-4-4-4-12 hex UUID, case-insensitive."""
    return _UUID.fullmatch(value) is not None


def is_slug(value: str) -> bool:
    """Lowercase ASCII letters, digits and inner hyphens."""
    return _SLUG.fullmatch(value) is not None


BUILTIN_MATCHERS: Mapping[str, Matcher] = MappingProxyType(
    {"int": is_int, "uuid": is_uuid, "slug": is_slug}
)
