from __future__ import annotations

import re

import pytest

from kitpy.objects import ObjectId, ObjectSystem
from kitpy.objects.ids import id_from_name, id_from_string, new_unique_id

HEX64 = re.compile(r"[0-9a-f]{64}")


def test_id_from_name_is_deterministic_lowercase_hex_and_keeps_the_name() -> None:
    first = id_from_name("rooms", "lobby")
    again = id_from_name("rooms", "lobby")
    assert HEX64.fullmatch(str(first))
    assert first == again and hash(first) == hash(again)
    assert first.name == "lobby" and first.namespace == "rooms"
    assert id_from_name("rooms", "other") != first


def test_id_from_name_is_stable_across_processes() -> None:
    # A fixed vector: changing the derivation would orphan every stored object.
    assert str(id_from_name("rooms", "lobby")) == (
        "87633e9b20d9883727a548b0654af669125e0e20adedf0c75feb8c7ec2b69706"
    )


def test_the_same_name_gives_different_ids_in_different_namespaces() -> None:
    assert str(id_from_name("rooms", "x")) != str(id_from_name("limits", "x"))
    # The namespace is length-prefixed: no ambiguity between ("ab","c") and ("a","bc").
    assert str(id_from_name("ab", "c")) != str(id_from_name("a", "bc"))


def test_unique_ids_are_random_hex() -> None:
    ids = {str(new_unique_id("rooms")) for _ in range(100)}
    assert len(ids) == 100
    assert all(HEX64.fullmatch(i) for i in ids)
    assert new_unique_id("rooms").name is None


def test_id_from_string_round_trips_and_normalises_case() -> None:
    unique = new_unique_id("rooms")
    assert id_from_string("rooms", str(unique)) == unique
    assert id_from_string("rooms", str(unique).upper()) == unique
    assert str(id_from_string("rooms", "AB" * 32)) == "ab" * 32


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * 63, id="too-short"),
        pytest.param("a" * 65, id="too-long"),
        pytest.param("g" * 64, id="not-hex"),
        pytest.param(" " + "a" * 63, id="space"),
        pytest.param("a" * 63 + "\n", id="newline"),
        pytest.param("lobby", id="a-name"),
    ],
)
def test_id_from_string_rejects_anything_but_64_hex_digits(text: str) -> None:
    with pytest.raises(ValueError, match="expected 64 hex digits"):
        id_from_string("rooms", text)


def test_id_from_string_rejects_non_str() -> None:
    with pytest.raises(TypeError, match="takes a str"):
        id_from_string("rooms", 123)  # type: ignore[arg-type]


def test_ids_of_different_namespaces_are_not_equal() -> None:
    text = "ab" * 32
    assert id_from_string("rooms", text) != id_from_string("limits", text)
    assert isinstance(id_from_string("rooms", text), ObjectId)


def test_namespace_methods_and_get_checks() -> None:
    from kitpy import DurableObject
    from kitpy.storage import MemoryBackend

    system = ObjectSystem(MemoryBackend(), {"rooms": DurableObject, "limits": DurableObject}, None)
    rooms, limits = system.namespace("rooms"), system.namespace("limits")
    assert system.namespace("rooms") is rooms
    assert rooms.id_from_name("a") == rooms.id_from_name("a")
    assert rooms.id_from_name("a") != limits.id_from_name("a")
    stub = rooms.get(rooms.id_from_name("a"))
    assert stub.name == "a" and stub.id == rooms.id_from_name("a")
    assert rooms.get_by_name("a").id == stub.id
    with pytest.raises(ValueError, match="belongs to namespace 'limits'"):
        rooms.get(limits.new_unique_id())
    with pytest.raises(TypeError, match="takes an ObjectId"):
        rooms.get("ab" * 32)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no durable object binding named 'nope'"):
        system.namespace("nope")


def test_bindings_must_be_durable_object_classes() -> None:
    from kitpy.storage import MemoryBackend

    with pytest.raises(TypeError, match="binding 'rooms'.*not a subclass of kitpy.DurableObject"):
        ObjectSystem(MemoryBackend(), {"rooms": object}, None)  # type: ignore[dict-item]
