"""An endpoint's return value -> :class:`~kitpy.Response`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitpy.errors import KitpyError
from kitpy.http.headers import Headers
from kitpy.http.jsoncode import dumps
from kitpy.http.response import BYTES_TYPE, JSON_TYPE, TEXT_TYPE, Response, checked_response

__all__ = ("ResultError", "to_response")

_DICT_KEYS = frozenset({"status", "headers", "body"})
_ABSENT = object()


class ResultError(KitpyError):
    """A handler returned something that is not a response; answered as a 500.

    The message names the route file and the problem, e.g.
    ``routes/x.py: get() returned a dict with unknown key 'code'; ...``.
    """

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


def to_response(result: Any, where: str) -> Response:
    """Turn what a handler returned into a :class:`Response`.

    ``where`` names the handler for error messages (``routes/x.py: get()``).

    The return value may be:

    ``Response``
        Used as it is: any status from 100 to 599, 101 with a WebSocket included, any
        headers, a body of str, bytes or an (async) iterator of bytes (streamed). This is
        also what a durable object's ``stub.fetch()`` gives, so it passes straight
        through.

    ``dict``
        Shaped like a response, every key optional: ``{"status": 201, "headers": {...},
        "body": ...}``.

        - ``status``: an int from 100 to 599; 200 when absent.
        - ``headers``: a mapping of str to str (or to a list of str, for a repeated
          header such as Set-Cookie), a list of (name, value) pairs, or
          :class:`~kitpy.Headers`; a Content-Type given here wins.
        - ``body``:

          ============  ==========================================
          ``str``       text/plain; charset=utf-8
          ``bytes``     application/octet-stream
          dict, list    JSON (application/json); NaN and Infinity are refused
          ``None``      empty
          ============  ==========================================

    Anything else (another key in the dict, a body of another type, a str, None or any
    other object returned) raises :class:`ResultError`, which the app answers with a
    500 and logs with the route file and the problem.
    """
    if type(result) is dict:  # the common case first; a dict is never a Response
        return _from_dict(result, where)
    if isinstance(result, Response):
        return result
    if isinstance(result, dict):
        return _from_dict(result, where)
    hint = ""
    if result is None:
        hint = " (did you forget to return?)"
    elif isinstance(result, str | bytes | list):
        hint = ' (return {"body": ...} or a Response)'
    raise ResultError(
        where,
        f"returned {_describe(result)}{hint}; a handler returns a Response or a dict "
        f'with keys "status", "headers", "body"',
    )


def _from_dict(result: dict[Any, Any], where: str) -> Response:
    if len(result) == 1:
        # {"body": ...} alone: no status or headers to check.
        body = result.get("body", _ABSENT)
        kind = type(body)
        if kind is str:
            return checked_response(body.encode(), 200, TEXT_TYPE)
        if kind is dict or kind is list:
            return checked_response(_json_body(body, where), 200, JSON_TYPE)
        if kind is bytes:
            return checked_response(body, 200, BYTES_TYPE)
    if not _DICT_KEYS.issuperset(result):
        unknown = [key for key in result if key not in _DICT_KEYS]
        keys = ", ".join(repr(k) for k in unknown)
        noun = "key" if len(unknown) == 1 else "keys"
        raise ResultError(
            where,
            f'returned a dict with unknown {noun} {keys}; allowed keys are "status", '
            f'"headers", "body" (put data under "body")',
        )
    status = result.get("status", 200)
    if type(status) is not int and (isinstance(status, bool) or not isinstance(status, int)):
        raise ResultError(where, f'"status" must be an int from 100 to 599, got {status!r}')
    if not 100 <= status <= 599:
        raise ResultError(where, f'"status" must be an int from 100 to 599, got {status!r}')
    raw_headers = result.get("headers")
    body = result.get("body")
    if raw_headers is None:
        # The common case ({"body": ...}): nothing left to check, no Headers to merge.
        if type(body) is str:
            return checked_response(body.encode(), status, TEXT_TYPE)
        if type(body) is bytes:
            return checked_response(body, status, BYTES_TYPE)
        if type(body) is dict or type(body) is list:
            return checked_response(_json_body(body, where), status, JSON_TYPE)
        if body is None:
            return checked_response(b"", status, None)
    try:
        headers = None if raw_headers is None else _headers(raw_headers)
    except (TypeError, ValueError) as exc:
        raise ResultError(where, f'bad "headers": {exc}') from None
    if body is None or isinstance(body, str | bytes):
        return Response(body, status, headers)
    if isinstance(body, dict | list):
        data = _json_body(body, where)
        if headers is None:
            headers = Headers()
        if "content-type" not in headers:
            headers.add("content-type", JSON_TYPE)
        return Response(data, status, headers)
    raise ResultError(
        where,
        f'"body" must be str, bytes, dict, list or None, got {_describe(body)} '
        f"(return a Response to stream)",
    )


def _json_body(body: dict[Any, Any] | list[Any], where: str) -> bytes:
    try:
        return dumps(body).encode()
    except (TypeError, ValueError) as exc:
        raise ResultError(where, f'"body" is not JSON-serializable: {exc}') from None


def _headers(value: Any) -> Headers:
    if value is None:
        return Headers()
    if isinstance(value, Headers):
        return value.copy()
    if isinstance(value, Mapping):
        headers = Headers()
        for name, item in value.items():
            # A list gives a repeated header: {"set-cookie": ["a=1", "b=2"]}.
            items = item if isinstance(item, list | tuple) else [item]
            for one in items:
                if not isinstance(name, str) or not isinstance(one, str | int):
                    raise TypeError(f"header {name!r} must map to a str, got {_describe(one)}")
                headers.add(name, str(one))
        return headers
    if isinstance(value, list | tuple):
        pairs: list[tuple[str, str]] = []
        for pair in value:
            if (
                not isinstance(pair, list | tuple)
                or len(pair) != 2
                or not all(isinstance(p, str) for p in pair)
            ):
                raise TypeError(f"expected (name, value) pairs of str, got {pair!r}")
            pairs.append((pair[0], pair[1]))
        return Headers(pairs)
    raise TypeError(f"expected a dict or a list of pairs, got {_describe(value)}")


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"
