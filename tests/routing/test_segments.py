from __future__ import annotations

import pytest

from kitpy.errors import SiteError
from kitpy.routing.segments import (
    Param,
    ParamKind,
    encode_static,
    is_group_name,
    is_private_name,
    parse_segment,
)

REQ, OPT, REST = ParamKind.REQUIRED, ParamKind.OPTIONAL, ParamKind.REST


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        pytest.param("about", ("about",), id="static"),
        pytest.param("blog.json", ("blog.json",), id="static-with-dot"),
        pytest.param("[id]", ("", Param("id", REQ), ""), id="required"),
        pytest.param("[id=int]", ("", Param("id", REQ, "int"), ""), id="required-matcher"),
        pytest.param("[[page]]", ("", Param("page", OPT), ""), id="optional"),
        pytest.param("[[lang=slug]]", ("", Param("lang", OPT, "slug"), ""), id="optional-matcher"),
        pytest.param("[...rest]", ("", Param("rest", REST), ""), id="rest"),
        pytest.param("[...rest=int]", ("", Param("rest", REST, "int"), ""), id="rest-matcher"),
        pytest.param(
            "[file].[ext]",
            ("", Param("file", REQ), ".", Param("ext", REQ), ""),
            id="two-params-with-dot",
        ),
        pytest.param("foo-[c]", ("foo-", Param("c", REQ), ""), id="prefix-param"),
        pytest.param("[c]-foo", ("", Param("c", REQ), "-foo"), id="param-suffix"),
        pytest.param("static[...rest]", ("static", Param("rest", REST), ""), id="prefix-rest"),
        pytest.param("[...rest].json", ("", Param("rest", REST), ".json"), id="rest-suffix"),
        pytest.param(
            "prefix[[suffix]]", ("prefix", Param("suffix", OPT), ""), id="prefix-optional"
        ),
        pytest.param(
            "a[b]c[d]e", ("a", Param("b", REQ), "c", Param("d", REQ), "e"), id="alternating"
        ),
        pytest.param("[x+5b]id[x+5d]", ("[id]",), id="escaped-brackets"),
        pytest.param("caf[u+00e9]", ("café",), id="unicode-escape"),
        pytest.param(
            "[a][x+2d][b]", ("", Param("a", REQ), "-", Param("b", REQ), ""), id="escape-between"
        ),
        pytest.param("[snake_case1]", ("", Param("snake_case1", REQ), ""), id="underscore-name"),
    ],
)
def test_parse_segment(name: str, parts: tuple[str | Param, ...]) -> None:
    segment = parse_segment(name, "routes/x.py")
    assert segment.parts == parts
    assert segment.raw == name
    assert not segment.is_group


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("[a][b]", "two parameters with nothing between", id="adjacent"),
        pytest.param("[a][[b]]", "two parameters with nothing between", id="adjacent-optional"),
        pytest.param("[[a]][...b]", "two parameters with nothing between", id="optional-rest"),
        pytest.param("x[a][b=int]y", "two parameters with nothing between", id="adjacent-in-text"),
        pytest.param("[a", "unbalanced", id="unclosed"),
        pytest.param("a]", "unbalanced", id="unopened"),
        pytest.param("[[a]", "unbalanced", id="unclosed-optional"),
        pytest.param("[]", "bad parameter", id="empty-name"),
        pytest.param("[a-b]", "bad parameter", id="hyphen-in-name"),
        pytest.param("[a=]", "bad parameter", id="empty-matcher"),
        pytest.param("[a=b=c]", "bad parameter", id="two-matchers"),
        pytest.param("[...]", "bad parameter", id="rest-without-name"),
        pytest.param("[[...a]]", "always optional", id="optional-rest-brackets"),
        pytest.param("[x+5]", "two digits", id="short-hex-escape"),
        pytest.param("[u+12]", "four to six", id="short-unicode-escape"),
    ],
)
def test_parse_segment_rejects(name: str, message: str) -> None:
    with pytest.raises(SiteError, match=message) as info:
        parse_segment(name, "routes/bad/x.py")
    assert info.value.path == "routes/bad/x.py"
    assert str(info.value).startswith("routes/bad/x.py: ")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("(admin)", True, id="group"),
        pytest.param("(a b)", True, id="group-with-space"),
        pytest.param("()", False, id="empty-parens"),
        pytest.param("(a)b", False, id="parens-then-text"),
        pytest.param("admin", False, id="plain"),
    ],
)
def test_is_group_name(name: str, expected: bool) -> None:
    assert is_group_name(name) is expected
    assert parse_segment(name).is_group is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("_helpers.py", True, id="underscore-file"),
        pytest.param("__pycache__", True, id="pycache"),
        pytest.param(".hidden", True, id="dot-folder"),
        pytest.param(".well-known", False, id="well-known"),
        pytest.param(".well-known.py", True, id="well-known-file-is-not-special"),
        pytest.param("about.py", False, id="plain"),
        pytest.param("a_b.py", False, id="inner-underscore"),
    ],
)
def test_is_private_name(name: str, expected: bool) -> None:
    assert is_private_name(name) is expected


def test_segment_properties() -> None:
    assert parse_segment("about").is_static
    assert parse_segment("about").text == "about"
    assert parse_segment("[id]").lone_param == Param("id", REQ)
    assert parse_segment("x[id]").lone_param is None
    assert parse_segment("[a].[b]").params == (Param("a", REQ), Param("b", REQ))


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        pytest.param("plain", "plain", id="plain"),
        pytest.param("100%", "100%25", id="percent"),
        pytest.param("a?b#c", "a%3Fb%23c", id="query-and-hash"),
        pytest.param("a/b", "a%2Fb", id="slash"),
    ],
)
def test_encode_static(text: str, encoded: str) -> None:
    assert encode_static(text) == encoded
