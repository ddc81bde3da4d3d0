"""Unit tests of :mod:`go_json`: bytes as Go's ``encoding/json`` writes them.

etcd 3.4.23 here is built with go1.19, whose encoder writes ``\\b`` and ``\\f`` as
``\\u0008``/``\\u000c`` (measured: ``PUT value=x<BS>y<FF>z`` answers ``"x\\u0008y\\u000cz"``;
``PUT value=%7f%e2%80%a8%01<`` answers a raw DEL, then ``\\u2028\\u0001\\u003c``).
"""

from __future__ import annotations

import json

import pytest

from pytest_etcd_discovery._service import go_json
from pytest_etcd_discovery._service.forms import query_unescape


def test_compact_with_key_order_kept() -> None:
    body = {
        "action": "get",
        "node": {"key": "/_etcd/registry/T", "dir": True, "modifiedIndex": 7, "createdIndex": 7},
    }
    # The real service's bytes for this reply (spec transcript).
    expected = (
        b'{"action":"get","node":{"key":"/_etcd/registry/T","dir":true,'
        b'"modifiedIndex":7,"createdIndex":7}}\n'
    )
    assert go_json.encode_line(body) == expected
    assert go_json.dumps({"b": 1, "a": 2}) == '{"b":1,"a":2}'


def test_scalars_and_containers() -> None:
    assert go_json.dumps(None) == "null"
    assert go_json.dumps(True) == "true"
    assert go_json.dumps(False) == "false"
    assert go_json.dumps(0) == "0"
    assert go_json.dumps(-12) == "-12"
    assert go_json.dumps(18446744073709551615) == "18446744073709551615"
    assert go_json.dumps([]) == "[]"
    assert go_json.dumps({}) == "{}"
    assert go_json.dumps([1, "a", [True], {"k": None}]) == '[1,"a",[true],{"k":null}]'
    assert go_json.dumps((1, 2)) == "[1,2]"


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes"])
def test_unsupported_types_raise(value: object) -> None:
    with pytest.raises(TypeError):
        go_json.dumps(value)


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("<", r'"\u003c"'),
        (">", r'"\u003e"'),
        ("&", r'"\u0026"'),
        ("\u2028", r'"\u2028"'),
        ("\u2029", r'"\u2029"'),
        ("\x00", r'"\u0000"'),
        ("\x08", r'"\u0008"'),
        ("\x0c", r'"\u000c"'),
        ("\x1f", r'"\u001f"'),
        ("\n", r'"\n"'),
        ("\r", r'"\r"'),
        ("\t", r'"\t"'),
        ('"', r'"\""'),
        ("\\", r'"\\"'),
        ("\x7f", '"\x7f"'),  # DEL is not escaped by Go
        ("/", '"/"'),
        ("é€😀", '"é€😀"'),
        ("http://10.1.0.73:7001", '"http://10.1.0.73:7001"'),
        ("a=b&c=<d>", r'"a=b\u0026c=\u003cd\u003e"'),
    ],
)
def test_go_string_escaping(text: str, encoded: str) -> None:
    assert go_json.dumps(text) == encoded


def test_keys_are_escaped_like_values() -> None:
    assert go_json.dumps({"<k>": "v"}) == r'{"\u003ck\u003e":"v"}'


def test_every_bmp_character_round_trips_and_only_go_escapes_are_used() -> None:
    go_escaped = {"<", ">", "&", "\u2028", "\u2029", '"', "\\"}
    for cp in range(0x3000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        char = chr(cp)
        out = go_json.dumps(char)
        assert json.loads(out) == char, hex(cp)
        if cp < 0x20 or char in go_escaped:
            assert out != f'"{char}"', hex(cp)
        else:
            assert out == f'"{char}"', hex(cp)


def test_encode_line_is_utf8_with_one_trailing_newline() -> None:
    line = go_json.encode_line({"value": "é\n"})
    assert line == b'{"value":"\xc3\xa9\\n"}\n'
    assert line.count(b"\n") == 1


def test_invalid_utf8_bytes_become_escaped_replacement_runes() -> None:
    # Measured on etcd 3.4.23: PUT value=a%ffb%e2%82%ac answers "value":"a\ufffdb€" (the bad
    # byte as a \ufffd escape, the valid euro sign as raw UTF-8); bytes that were not UTF-8
    # travel as surrogate escapes inside the fake.
    assert go_json.dumps(query_unescape("a%ffb%e2%82%ac")) == '"a\\ufffdb€"'
    assert go_json.dumps("a\udcffb") == '"a\\ufffdb"'
    assert go_json.dumps("\ufffd") == '"\ufffd"'  # a real U+FFFD stays raw
