"""kitpy's JSON bodies: the stdlib's output and the stdlib's errors, from a reused encoder."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from kitpy.http.jsoncode import dumps


def _stdlib(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@pytest.mark.parametrize(
    "data",
    [
        {"id": "42", "name": "user 42"},
        [1, 2.5, True, None, "two"],
        {"nested": {"list": [{"a": []}], "é": "café ☕", "quote": 'a"b\\c\n'}},
        {1: "int key", 2.5: "float key", None: "none key", False: "bool key"},
        "a top-level string",
        7,
        (1, 2),
        {},
    ],
)
def test_the_same_text_as_the_stdlib(data: Any) -> None:
    assert dumps(data) == _stdlib(data)
    assert dumps(data) == _stdlib(data)  # the encoder is reused


def _circular() -> dict[str, Any]:
    data: dict[str, Any] = {}
    data["self"] = data
    return data


@pytest.mark.parametrize(
    "data",
    [
        {"x": math.nan},
        [math.inf],
        {"s": {1, 2}},
        {(1, 2): "tuple key"},
        _circular(),
        {"deeper": [[_circular()]]},
    ],
)
def test_the_same_errors_as_the_stdlib(data: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as stdlib_error:
        _stdlib(data)
    with pytest.raises(type(stdlib_error.value)) as ours:
        dumps(data)
    assert str(ours.value) == str(stdlib_error.value)
    assert dumps({"after": "a failure"}) == '{"after":"a failure"}'
