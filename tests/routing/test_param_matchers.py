from __future__ import annotations

import pytest

from kitpy.routing import BUILTIN_MATCHERS
from kitpy.routing.param_matchers import is_int, is_slug, is_uuid


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("0", True, id="zero"),
        pytest.param("42", True, id="positive"),
        pytest.param("-7", True, id="negative"),
        pytest.param("007", True, id="leading-zeros"),
        pytest.param("12345678901234567890", True, id="big"),
        pytest.param("", False, id="empty"),
        pytest.param("-", False, id="minus-only"),
        pytest.param("+1", False, id="plus"),
        pytest.param("1.5", False, id="decimal"),
        pytest.param("1e3", False, id="exponent"),
        pytest.param(" 1", False, id="space"),
        pytest.param("1\n", False, id="newline"),
        pytest.param("1_000", False, id="underscore"),
        pytest.param("\u0661", False, id="arabic-indic-digit"),
        pytest.param("--1", False, id="double-minus"),
        pytest.param("0x1f", False, id="hex"),
    ],
)
def test_int(value: str, expected: bool) -> None:
    assert is_int(value) is expected
    if expected:
        int(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("550e8400-e29b-41d4-a716-446655440000", True, id="lower"),
        pytest.param("550E8400-E29B-41D4-A716-446655440000", True, id="upper"),
        pytest.param("00000000-0000-0000-0000-000000000000", True, id="nil"),
        pytest.param("550e8400e29b41d4a716446655440000", False, id="no-hyphens"),
        pytest.param("{550e8400-e29b-41d4-a716-446655440000}", False, id="braces"),
        pytest.param("urn:uuid:550e8400-e29b-41d4-a716-446655440000", False, id="urn"),
        pytest.param("550e8400-e29b-41d4-a716-44665544000", False, id="short"),
        pytest.param("550e8400-e29b-41d4-a716-4466554400000", False, id="long"),
        pytest.param("g50e8400-e29b-41d4-a716-446655440000", False, id="non-hex"),
        pytest.param("550e8400-e29b-41d4-a716-446655440000\n", False, id="newline"),
    ],
)
def test_uuid(value: str, expected: bool) -> None:
    assert is_uuid(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("hello", True, id="word"),
        pytest.param("hello-world", True, id="hyphenated"),
        pytest.param("2024", True, id="digits"),
        pytest.param("a", True, id="one-char"),
        pytest.param("a--b", True, id="double-hyphen"),
        pytest.param("", False, id="empty"),
        pytest.param("-a", False, id="leading-hyphen"),
        pytest.param("a-", False, id="trailing-hyphen"),
        pytest.param("-", False, id="hyphen-only"),
        pytest.param("Hello", False, id="uppercase"),
        pytest.param("a_b", False, id="underscore"),
        pytest.param("a b", False, id="space"),
        pytest.param("caf\u00e9", False, id="non-ascii"),
        pytest.param("a\n", False, id="newline"),
    ],
)
def test_slug(value: str, expected: bool) -> None:
    assert is_slug(value) is expected


def test_builtin_names() -> None:
    assert set(BUILTIN_MATCHERS) == {"int", "uuid", "slug"}
    assert BUILTIN_MATCHERS["int"] is is_int
