"""RPC on stubs: the bytes a call and its outcome travel as.

``await stub.increment(by=2)`` is encoded here into one *call* payload, handed to
:meth:`kitpy.objects.registry.ObjectSystem.call` (on this process, or on the node that
owns the object in a cluster), and answered with one *outcome* payload that
:func:`decode_outcome` turns back into the value or the raised exception. A call made
on one process goes through exactly these bytes, so the object always gets copies of
the arguments, never the caller's objects, and whatever works on one process works
across nodes.

Wire format (version 1). Both payloads are UTF-8 JSON objects, without NaN or
Infinity:

- call: ``{"v": 1, "m": METHOD, "a": [ARG, ...], "k": {NAME: ARG, ...}}``
- outcome, success: ``{"v": 1, "r": VALUE}``
- outcome, failure: ``{"v": 1, "e": ERROR}``, where ERROR is one of

  - ``{"kind": "http", "status": 404, "message": "...", "headers": {"name": "value"}}``
    (an :class:`~kitpy.HTTPError`, raised again as one);
  - ``{"kind": "builtin", "type": "KeyError", "args": [VALUE, ...]}`` (an exception
    class of Python's ``builtins`` module, raised again as ``KeyError(*args)``: same
    type, same message; args that are not VALUEs travel as ``[str(error)]``, and a
    class that cannot be rebuilt from its args arrives as a DurableObjectError);
  - ``{"kind": "object", "type": "module.Class", "message": "..."}`` (anything else,
    raised again as :class:`~kitpy.errors.DurableObjectError` naming the type).

A VALUE is JSON (null, booleans, numbers, strings, arrays, objects with string keys)
plus two tags, each an object with exactly one key that starts with ``$``:

- ``{"$bytes": "<base64>"}`` is a ``bytes`` value;
- ``{"$object": {...}}`` is a dict whose keys are taken literally (its values are
  VALUEs): a user's dict that itself has exactly one key starting with ``$``
  travels wrapped this way, so a dict that happens to look like a tag round-trips
  unchanged. Every other object is a plain dict.

On the way in, lists and tuples become lists (a tuple arrives as a list), ``bytes``,
``bytearray`` and ``memoryview`` become ``bytes``; anything else -- a set, a
dataclass, a datetime, NaN or Infinity, a dict with a non-str key -- is a
:class:`TypeError` naming the method and the argument (or ``result``) and where in it
the bad value sits.
"""

from __future__ import annotations

import base64
import builtins
import inspect
import json as _json
import math
from collections.abc import Callable
from typing import Any, NoReturn

from kitpy.errors import DurableObjectError, HTTPError

__all__ = (
    "NOT_CALLABLE",
    "VERSION",
    "CallError",
    "check_method",
    "rpc_method",
    "decode_call",
    "decode_outcome",
    "encode_call",
    "encode_error",
    "encode_result",
)

VERSION = 1
#: Handler names a stub never calls: they are the object's events, not its API.
NOT_CALLABLE = frozenset({"fetch", "alarm"})

_BYTES = "$bytes"
_OBJECT = "$object"
_ENCODER = _json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_decode_json = _json.JSONDecoder().decode


class CallError(ValueError):
    """A payload is not a call or outcome of this wire format."""


# -- values ---------------------------------------------------------------------------


class _Unsupported(Exception):
    def __init__(self, where: str, value: Any, why: str) -> None:
        self.where = where
        self.value = value
        self.why = why


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON-ready data with the tags applied; raises _Unsupported."""
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str or kind is int:
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        raise _Unsupported(where, value, "NaN and Infinity are not JSON")
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _Unsupported(
                    f"{where}[{key!r}]", key, "dict keys must be str (JSON object keys)"
                )
            out[key] = _plain(item, f"{where}[{key!r}]")
        if len(out) == 1 and next(iter(out)).startswith("$"):
            return {_OBJECT: out}
        return out
    if kind is list or kind is tuple:
        return [_plain(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if kind is bytes or kind is bytearray or kind is memoryview:
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    # Subclasses of the plain types (an IntEnum, a str subclass) cross as the base type.
    for base in (bool, int, str):
        if isinstance(value, base):
            return base(value)
    if isinstance(value, float):
        return _plain(float(value), where)
    raise _Unsupported(where, value, "")


def _unplain(data: Any) -> Any:
    """The value a JSON-decoded ``data`` stands for (tags undone)."""
    kind = type(data)
    if kind is list:
        return [_unplain(item) for item in data]
    if kind is not dict:
        return data
    if len(data) == 1:
        key = next(iter(data))
        if key.startswith("$"):
            inner = data[key]
            if key == _BYTES and type(inner) is str:
                try:
                    return base64.b64decode(inner.encode("ascii"), validate=True)
                except ValueError:
                    raise CallError("a $bytes tag holds invalid base64") from None
            if key == _OBJECT and type(inner) is dict:
                return {name: _unplain(item) for name, item in inner.items()}
            raise CallError(f"unknown tag {key!r} in an RPC payload")
    return {name: _unplain(item) for name, item in data.items()}


def _unsupported_error(problem: _Unsupported, what: str, where: str) -> TypeError:
    """``what: where[path] is a set ({1, 2}); why``; problem.where is the path inside."""
    kind = type(problem.value).__name__
    why = problem.why or (
        "values cross to and from a durable object as JSON-compatible data "
        "(dict with str keys, list, tuple, str, int, float, bool, None) or bytes"
    )
    shown = repr(problem.value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return TypeError(f"{what}: {where}{problem.where} is {_article(kind)} {kind} ({shown}); {why}")


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _load(data: bytes) -> Any:
    try:
        return _decode_json(data.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise CallError(f"not an RPC payload: {exc}") from None


# -- calls ----------------------------------------------------------------------------


def encode_call(
    method: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any], cls: type | None = None
) -> bytes:
    """A call of ``method(*args, **kwargs)`` as bytes.

    Raises TypeError naming the method (of ``cls``, when given) and the argument that
    cannot cross.
    """
    plain_args = []
    for index, arg in enumerate(args):
        try:
            plain_args.append(_plain(arg, ""))
        except _Unsupported as problem:
            name = _parameter_name(cls, method, index)
            where = f"argument {index + 1}" + (f" ({name!r})" if name else "")
            raise _unsupported_error(problem, _label(cls, method), where) from None
    plain_kwargs = {}
    for name, arg in kwargs.items():
        try:
            plain_kwargs[name] = _plain(arg, "")
        except _Unsupported as problem:
            raise _unsupported_error(problem, _label(cls, method), f"argument {name!r}") from None
    return _ENCODER.encode({"v": VERSION, "m": method, "a": plain_args, "k": plain_kwargs}).encode()


def _label(cls: type | None, method: str) -> str:
    return f"{cls.__qualname__}.{method}()" if cls is not None else f"{method}()"


def _parameter_name(cls: type | None, method: str, index: int) -> str | None:
    try:
        parameters = list(inspect.signature(getattr(cls, method)).parameters)
    except (AttributeError, TypeError, ValueError):
        return None
    if parameters and parameters[0] == "self":
        parameters = parameters[1:]
    return parameters[index] if index < len(parameters) else None


def decode_call(payload: bytes) -> tuple[str, list[Any], dict[str, Any]]:
    """``(method, args, kwargs)`` of a call payload; :class:`CallError` if malformed."""
    data = _load(payload)
    if (
        type(data) is not dict
        or data.get("v") != VERSION
        or type(data.get("m")) is not str
        or type(data.get("a")) is not list
        or type(data.get("k")) is not dict
    ):
        raise CallError("not an RPC call payload of version 1")
    args = [_unplain(item) for item in data["a"]]
    kwargs = {name: _unplain(item) for name, item in data["k"].items()}
    return data["m"], args, kwargs


def check_method(cls: type, name: str) -> Callable[..., Any]:
    """The function ``name`` of ``cls`` that a stub may call; AttributeError otherwise.

    Callable: public (no leading ``_``), not ``fetch``, ``alarm`` or a
    ``websocket_*`` handler, and a method (or other callable) of the class.
    """
    return rpc_method(cls, name)[0]


_METHODS: dict[tuple[type, str], tuple[Callable[..., Any], bool]] = {}


def rpc_method(cls: type, name: str) -> tuple[Callable[..., Any], bool]:
    """:func:`check_method`, and whether the function is a coroutine function (cached:
    the two are asked on every call)."""
    key = (cls, name)
    known = _METHODS.get(key)
    if known is None:
        found = _find_method(cls, name)
        if len(_METHODS) >= 4096:
            _METHODS.clear()
        known = _METHODS[key] = (found, inspect.iscoroutinefunction(found))
    return known


def _find_method(cls: type, name: str) -> Callable[..., Any]:
    where = f"{cls.__qualname__}.{name}"
    if name.startswith("_"):
        raise AttributeError(f"{where} is private: a stub calls only public methods")
    if name in NOT_CALLABLE or name.startswith("websocket_"):
        raise AttributeError(
            f"{where} is an event handler, not an RPC method; "
            + ("use stub.fetch(...)" if name == "fetch" else "the object system calls it")
        )
    found = getattr(cls, name, None)
    if found is None or not callable(found):
        raise AttributeError(
            f"{cls.__qualname__} has no method {name!r} that a stub can call"
            + (" (it is not a method)" if found is not None else "")
        )
    return found  # type: ignore[no-any-return]


# -- outcomes -------------------------------------------------------------------------


def encode_result(value: Any, label: str = "the method") -> bytes:
    """A successful outcome; TypeError naming ``label`` and ``result`` if it cannot cross."""
    try:
        plain = _plain(value, "")
    except _Unsupported as problem:
        raise _unsupported_error(problem, label, "result") from None
    return _ENCODER.encode({"v": VERSION, "r": plain}).encode()


def encode_error(error: BaseException) -> bytes:
    """A failed outcome: the error as :func:`decode_outcome` will raise it again."""
    described: dict[str, Any]
    if isinstance(error, HTTPError):
        described = {
            "kind": "http",
            "status": error.status,
            "message": error.message,
            "headers": {str(k): str(v) for k, v in error.headers.items()},
        }
    elif isinstance(error, DurableObjectError):
        described = {"kind": "object", "type": error.type_name, "message": error.remote_message}
    elif _is_builtin(type(error)):
        try:
            args = _plain(list(error.args), "")
        except _Unsupported:
            args = [str(error)]
        described = {"kind": "builtin", "type": type(error).__name__, "args": args}
    else:
        cls = type(error)
        name = (
            cls.__qualname__
            if cls.__module__ in ("builtins", "__main__")
            else (f"{cls.__module__}.{cls.__qualname__}")
        )
        described = {"kind": "object", "type": name, "message": str(error)}
    return _ENCODER.encode({"v": VERSION, "e": described}).encode()


def _is_builtin(cls: type[BaseException]) -> bool:
    return (
        cls.__module__ == "builtins"
        and getattr(builtins, cls.__name__, None) is cls
        and issubclass(cls, Exception)
    )


def decode_outcome(payload: bytes) -> Any:
    """The value of a successful outcome; for a failure, raises the error it carries."""
    data = _load(payload)
    if type(data) is dict and data.get("v") == VERSION:
        if "r" in data:
            return _unplain(data["r"])
        error = data.get("e")
        if type(error) is dict:
            _raise(error)
    raise CallError("not an RPC outcome payload of version 1")


def _raise(error: dict[str, Any]) -> NoReturn:
    kind = error.get("kind")
    if kind == "http":
        raise HTTPError(
            int(error["status"]), str(error.get("message", "")), dict(error.get("headers") or {})
        )
    if kind == "builtin":
        cls = getattr(builtins, str(error.get("type")), None)
        args = _unplain(error.get("args") or [])
        if isinstance(cls, type) and _is_builtin(cls):
            try:
                built = cls(*args)
            except Exception:  # a built-in whose constructor wants other arguments
                pass
            else:
                raise built
        message = str(args[0]) if len(args) == 1 else ", ".join(map(str, args))
        raise DurableObjectError(str(error.get("type")), message)
    if kind == "object":
        raise DurableObjectError(str(error.get("type")), str(error.get("message", "")))
    raise CallError(f"unknown error kind {kind!r} in an RPC outcome")
