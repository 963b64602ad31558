"""Typed user code imports only from ``kitpy``: every kitpy type that a public
signature names (a handler's event, an object's state, what their methods take and
return) is exported by the ``kitpy`` package itself."""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable, Iterator

import kitpy

# Built by kitpy, never by user code: their constructors may name internal types.
FRAMEWORK_BUILT = {
    kitpy.Cookies,
    kitpy.DurableObjectState,
    kitpy.Env,
    kitpy.FormData,
    kitpy.Namespace,
    kitpy.ObjectId,
    kitpy.Platform,
    kitpy.RequestEvent,
    kitpy.Stub,
    kitpy.UploadFile,
}


def _exported_classes() -> list[type]:
    return [value for name in kitpy.__all__ if isinstance(value := getattr(kitpy, name), type)]


def _signatures(cls: type) -> Iterator[tuple[str, Callable[..., object]]]:
    for name, member in inspect.getmembers(cls):
        if name == "__init__" and cls in FRAMEWORK_BUILT:
            continue
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(member, property) and member.fget is not None:
            yield name, member.fget
        elif inspect.isfunction(member):
            yield name, member


def _kitpy_types(hint: object) -> Iterator[type]:
    if isinstance(hint, type) and hint.__module__.split(".")[0] == "kitpy":
        yield hint
    for part in (typing.get_origin(hint), *typing.get_args(hint)):
        if part is not None:
            yield from _kitpy_types(part)


def _names_for(function: Callable[..., object]) -> dict[str, object]:
    # Names imported under TYPE_CHECKING resolve through the package itself.
    return {**vars(kitpy), **vars(sys.modules[function.__module__])}


def test_every_type_in_a_public_signature_is_exported() -> None:
    exported = set(_exported_classes())
    missing: dict[str, list[str]] = {}
    for cls in _exported_classes():
        for name, function in _signatures(cls):
            hints = typing.get_type_hints(function, globalns=_names_for(function))
            for hint in hints.values():
                for found in _kitpy_types(hint):
                    if found not in exported:
                        where = f"{cls.__name__}.{name}"
                        missing.setdefault(f"{found.__module__}.{found.__qualname__}", []).append(
                            where
                        )
    assert not missing, f"kitpy types named by public signatures but not exported: {missing}"


def test_the_documented_annotations_resolve_from_kitpy() -> None:
    # What docs/endpoints.md and docs/objects.md annotate with.
    for name in ("RequestEvent", "DurableObjectState", "Env", "Response", "Request", "WebSocket"):
        assert name in kitpy.__all__
    init = kitpy.DurableObject.__init__
    hints = typing.get_type_hints(init, globalns=_names_for(init))
    assert hints["state"] is kitpy.DurableObjectState
