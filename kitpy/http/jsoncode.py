"""JSON bodies as kitpy writes them: compact, UTF-8 as is, NaN and infinities refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ("dumps",)

_CHECKED = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _fast_encoder() -> Callable[[Any, int], Any] | None:
    # ``JSONEncoder.encode`` builds a new C encoder on every call; this one is built
    # once. It has no circular-reference check (that needs state per call): a cycle
    # overflows the recursion limit instead, and ``dumps`` then asks the checking
    # encoder, so every failure raises exactly what the stdlib raises.
    try:
        from _json import encode_basestring, make_encoder
    except ImportError:  # pragma: no cover - a Python without the C accelerator
        return None
    # markers, default, encoder, indent, separators, sort_keys, skipkeys, allow_nan
    return make_encoder(
        None, _CHECKED.default, encode_basestring, None, ":", ",", False, False, False
    )


_FAST = _fast_encoder()


def dumps(data: Any) -> str:
    """``data`` as JSON text.

    Raises:
        TypeError: a value JSON cannot hold (a set, an object), or a bad key.
        ValueError: NaN or an infinity, or a circular reference.
    """
    if _FAST is not None:
        try:
            return "".join(_FAST(data, 0))
        except Exception:
            pass  # encoded again below, for the stdlib's own error
    return _CHECKED.encode(data)
