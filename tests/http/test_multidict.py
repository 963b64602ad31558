"""Headers, QueryParams and FormData share one multi-valued read side (MultiDict)."""

from __future__ import annotations

import pytest

from kitpy import FormData, Headers, QueryParams, UploadFile
from kitpy.http.multidict import MultiDict

PAIRS = [("a", "1"), ("b", "2"), ("a", "3")]


@pytest.mark.parametrize(
    "made",
    [Headers(PAIRS), QueryParams("a=1&b=2&a=3"), FormData(list(PAIRS))],
    ids=["headers", "query", "form"],
)
def test_the_shared_read_side(made: MultiDict[str]) -> None:
    assert isinstance(made, MultiDict)
    assert made["a"] == "1" and made.get("a") == "1"
    assert made.get_all("a") == ["1", "3"]
    assert made.get("zz") is None and made.get("zz", "d") == "d"
    assert "b" in made and "zz" not in made and 1 not in made
    assert list(made) == ["a", "b"] and made.keys() == ["a", "b"]
    assert len(made) == 3
    assert made.items() == PAIRS
    with pytest.raises(KeyError):
        made["zz"]


def test_only_headers_ignore_case() -> None:
    headers = Headers([("Content-Type", "text/plain")])
    assert headers["content-type"] == headers.get("CONTENT-TYPE") == "text/plain"
    assert "Content-type" in headers
    assert headers.items() == [("content-type", "text/plain")]
    query = QueryParams("Name=x")
    assert query.get("name") is None and "name" not in query
    assert query["Name"] == "x"


def test_form_values_may_be_files() -> None:
    upload = UploadFile("a.txt", "text/plain", b"hi")
    form = FormData([("f", upload), ("f", "text")])
    assert form["f"] is upload
    assert form.get_all("f") == [upload, "text"]
