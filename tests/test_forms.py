"""Unit tests of :mod:`forms`: Go's ``url.ParseQuery``, ``r.ParseForm`` and ``strconv``."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_etcd_discovery._service.forms import (
    MAX_FORM_SIZE,
    FormError,
    go_atoi,
    go_parse_bool,
    go_parse_uint64,
    parse_form,
    parse_query,
    query_unescape,
)

URLENCODED = "application/x-www-form-urlencoded"


def parsed(query: str) -> tuple[dict[str, list[str]], str | None]:
    values: dict[str, list[str]] = {}
    error = parse_query(query, values)
    return values, error


# -- url.QueryUnescape / url.ParseQuery ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("plain", "plain"),
        ("a+b", "a b"),
        ("a%2Bb", "a+b"),
        ("%41%62", "Ab"),
        ("%e2%82%AC", "€"),
        ("http%3A%2F%2F10.0.0.1%3A2380", "http://10.0.0.1:2380"),
        ("", ""),
        ("a+%2B+b", "a + b"),
        ("%25%2541", "%%41"),  # an escaped % starts no escape
        ("é%C3%A9", "éé"),
        ("%ff", "\udcff"),  # not UTF-8: the byte kept as a surrogate escape
        ("\udcc3%A9", "é"),  # a body's stray byte and an escape make one character
    ],
)
def test_query_unescape(raw: str, text: str) -> None:
    assert query_unescape(raw) == text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("%zz", 'invalid URL escape "%zz"'),
        ("a%zzb", 'invalid URL escape "%zz"'),
        ("%4", 'invalid URL escape "%4"'),
        ("%", 'invalid URL escape "%"'),
        ("ab%g1cd", 'invalid URL escape "%g1"'),
        ("%41%4", 'invalid URL escape "%4"'),  # the first bad one, after good ones
        ("%%41", 'invalid URL escape "%%4"'),
        ("a+b%é1", 'invalid URL escape "%é"'),  # 3 bytes: the é is 2 of them
    ],
)
def test_query_unescape_errors_use_go_text(raw: str, message: str) -> None:
    with pytest.raises(FormError) as err:
        query_unescape(raw)
    assert str(err.value) == message


def test_parse_query_keeps_every_value_in_order() -> None:
    values, error = parsed("a=1&b=2&a=3&flag&=novalue&&c=x+y")
    assert error is None
    assert values == {"a": ["1", "3"], "b": ["2"], "flag": [""], "": ["novalue"], "c": ["x y"]}


def test_parse_query_keeps_going_after_an_error_and_reports_the_first() -> None:
    values, error = parsed("a=%zz&b=1&c=%q&d=2")
    assert error == 'invalid URL escape "%zz"'
    assert values == {"b": ["1"], "d": ["2"]}


def test_parse_query_semicolons_are_an_error() -> None:
    values, error = parsed("a=1;b=2&c=3")
    assert error == "invalid semicolon separator in query"
    assert values == {"c": ["3"]}


def test_parse_query_bad_key_escape() -> None:
    values, error = parsed("%zz=1&ok=1")
    assert error == 'invalid URL escape "%zz"'
    assert values == {"ok": ["1"]}


# -- r.ParseForm ---------------------------------------------------------------------------------


def test_body_values_come_before_query_values() -> None:
    form = parse_form("PUT", "value=fromquery&ttl=5", URLENCODED, b"value=frombody")
    assert form.values["value"] == ["frombody", "fromquery"]
    assert form.get("value") == "frombody"  # the first value wins
    assert form.get("ttl") == "5"
    assert form.error is None


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_body_counts_for_post_put_patch(method: str) -> None:
    assert parse_form(method, "", URLENCODED, b"value=v").get("value") == "v"


@pytest.mark.parametrize("method", ["GET", "DELETE", "HEAD"])
def test_body_is_ignored_for_other_methods(method: str) -> None:
    form = parse_form(method, "wait=true", URLENCODED, b"value=v")
    assert "value" not in form
    assert form.get("wait") == "true"


def test_content_type_decides_whether_the_body_is_a_form() -> None:
    with_charset = parse_form("PUT", "", "Application/X-WWW-Form-Urlencoded; charset=utf-8", b"v=1")
    assert with_charset.get("v") == "1"
    assert "v" not in parse_form("PUT", "", "text/plain", b"v=1")
    assert "v" not in parse_form("PUT", "", "", b"v=1")


def test_get_default_and_contains() -> None:
    form = parse_form("GET", "empty=", "", b"")
    assert "empty" in form and form.get("empty") == ""
    assert "missing" not in form
    assert form.get("missing", "dflt") == "dflt"


def test_body_error_comes_first_but_query_values_still_parse() -> None:
    form = parse_form("PUT", "a=%q&b=2", URLENCODED, b"value=%zz")
    assert form.error == 'invalid URL escape "%zz"'
    assert form.get("b") == "2"
    query_only = parse_form("GET", "a=%q", "", b"")
    assert query_only.error == 'invalid URL escape "%q"'


def test_too_large_a_body_is_an_error() -> None:
    form = parse_form("PUT", "", URLENCODED, b"v=" + b"x" * MAX_FORM_SIZE)
    assert form.error == "http: POST too large"
    assert "v" not in form


# -- strconv ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true(text: str) -> None:
    assert go_parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_bool_false(text: str) -> None:
    assert go_parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "yes", "no", "tRUE", "on", " true", "2", "-1"])
def test_parse_bool_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        go_parse_bool(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("7", 7), ("007", 7), ("18446744073709551615", 2**64 - 1)],
)
def test_parse_uint64(text: str, value: int) -> None:
    assert go_parse_uint64(text) == value


@pytest.mark.parametrize(
    "text", ["", "+5", "-3", " 5", "5 ", "1_000", "0x10", "1.5", "٣", "18446744073709551616"]
)
def test_parse_uint64_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        go_parse_uint64(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("+5", 5),
        ("-3", -3),
        ("007", 7),
        ("-0", 0),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
    ],
)
def test_atoi(text: str, value: int) -> None:
    assert go_atoi(text) == value


@pytest.mark.parametrize("text", ["", "abc", "+", "-", " 3", "3 ", "1_0", "0x1", "1.0", "٣", "++1"])
def test_atoi_syntax_errors(text: str) -> None:
    with pytest.raises(ValueError) as err:
        go_atoi(text)
    assert str(err.value) == f'strconv.Atoi: parsing "{text}": invalid syntax'


@pytest.mark.parametrize(
    "text", ["9223372036854775808", "-9223372036854775809", "99999999999999999999"]
)
def test_atoi_range_errors(text: str) -> None:
    with pytest.raises(ValueError) as err:
        go_atoi(text)
    assert str(err.value) == f'strconv.Atoi: parsing "{text}": value out of range'


text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(text.filter(bool), text), max_size=6))
def test_parse_query_inverts_url_encoding(pairs: list[tuple[str, str]]) -> None:
    # Whatever a client's form encoder writes, the fake reads back in order.
    values, error = parsed(urlencode(pairs))
    assert error is None
    expected: dict[str, list[str]] = {}
    for key, value in pairs:
        expected.setdefault(key, []).append(value)
    assert values == expected
