"""The etcd rules written once (``pytest_etcd_discovery._etcd_rules``): member specs, member
keys and values, tokens and the journal's filter keywords, and who uses them."""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

import pytest_etcd_discovery
from pytest_etcd_discovery import _etcd_discovery, _etcd_rules
from pytest_etcd_discovery._etcd_rules import (
    CALL_FILTER_KEYWORDS,
    MAX_MEMBERS,
    TOKEN_RE,
    MemberSpec,
    MemberSpecError,
    default_peer_url,
    etcd_member_id,
    etcd_member_value,
    member_specs,
)
from pytest_etcd_discovery._expectations import CallFilter, CallList
from pytest_etcd_discovery._real import cluster
from pytest_etcd_discovery._service.app import DiscoveryApp
from pytest_etcd_discovery._service.control import ControlApp

PACKAGE = Path(pytest_etcd_discovery.__file__).resolve().parent


def _imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, relative imports resolved to absolute names."""
    package = ".".join(("pytest_etcd_discovery", *path.relative_to(PACKAGE).parent.parts))
    names = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names.append(module)
            # "from . import x" imports the submodule x.
            names.extend(f"{module}.{alias.name}" for alias in node.names if not node.module)
    return names


def test_nothing_in_service_imports_real() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): name
        for path in sorted((PACKAGE / "service").rglob("*.py"))
        for name in _imported_modules(path)
        if name.startswith("pytest_etcd_discovery._real")
    }
    assert offenders == {}


def test_the_rules_module_imports_only_the_standard_library_and_leaf_modules() -> None:
    ours = {n for n in _imported_modules(PACKAGE / "_etcd_rules.py") if n.startswith("pytest_etcd")}
    assert ours <= {"pytest_etcd_discovery._errors", "pytest_etcd_discovery._constants"}
    others = {n.split(".")[0] for n in _imported_modules(PACKAGE / "_etcd_rules.py")} - {
        "pytest_etcd_discovery",
        "__future__",
    }
    assert others <= set(sys.stdlib_module_names), others


def test_member_id_is_one_function_everywhere() -> None:
    assert cluster.etcd_member_id is etcd_member_id
    assert pytest_etcd_discovery.etcd_member_id is etcd_member_id
    assert _etcd_discovery.etcd_member_id is etcd_member_id
    assert _etcd_discovery.etcd_member_value is etcd_member_value
    # etcd sorts the peer URLs before hashing; the value sorts name=url pairs.
    urls = ["http://10.0.0.2:2380", "http://10.0.0.1:2380"]
    assert etcd_member_id(urls, "t") == etcd_member_id(sorted(urls), "t")
    assert etcd_member_value("n", [" http://b:1", "http://a:1"]) == "n=http://a:1,n=http://b:1"


def test_member_specs_read_every_form() -> None:
    specs = member_specs(
        [
            "a",
            ("b", "  http://10.0.0.9:2380 "),
            ["c", ["https://[::1]:2380", "http://h.example:7001"]],
            {"name": "d", "style": "v0.4"},
            {"name": "e", "peer_urls": "http://e:7001", "style": "v0.4"},
        ],
        what="members",
    )
    assert specs == [
        MemberSpec("a", ("http://10.0.0.1:2380",), "v3.4"),
        MemberSpec("b", ("http://10.0.0.9:2380",), "v3.4"),  # trimmed, as etcd does
        MemberSpec("c", ("https://[::1]:2380", "http://h.example:7001"), "v3.4"),
        MemberSpec("d", ("http://10.0.0.4:2380",), "v0.4"),
        MemberSpec("e", ("http://e:7001",), "v0.4"),
    ]
    assert member_specs(None, what="members") == []
    assert member_specs(0, what="members") == []
    assert [s.name for s in member_specs(3, what="members")] == ["member1", "member2", "member3"]


def test_default_peer_urls_stay_addresses_and_distinct_past_255() -> None:
    assert default_peer_url(1) == "http://10.0.0.1:2380"
    assert default_peer_url(256) == "http://10.0.1.0:2380"
    specs = member_specs(MAX_MEMBERS, what="members")  # no two the same key
    assert len({s.peer_urls for s in specs}) == MAX_MEMBERS


BAD_SPECS: list[tuple[Any, str]] = [
    (-1, "a count must be >= 0, got -1"),
    (True, "give a count or a list"),
    ("abc", "give a count or a list"),
    ({"name": "a"}, "give a count or a list"),
    (MAX_MEMBERS + 1, f"at most {MAX_MEMBERS} members per token"),
    ([3], "member 1: cannot read 3"),
    ([("a", "http://h:1", "x")], "member 1: cannot read"),
    ([{"peer_urls": "http://h:2380"}], "member 1 has no name"),
    ([{"name": "a", "colour": "red"}], "member 1: unknown keys ['colour']"),
    ([(1, "http://h:2380")], "member 1: the name must be a string, got 1"),
    ([""], "the name must be non-empty without '/'"),
    (["a/b"], "the name must be non-empty without '/'"),
    (["a,b"], "an etcd 3.4 name holds no ',' or '='"),
    (["a=b"], "an etcd 3.4 name holds no ',' or '='"),
    ([{"name": "_state", "style": "v0.4"}], "cannot be '.', '..' or start with '_'"),
    ([{"name": "..", "style": "v0.4"}], "cannot be '.', '..' or start with '_'"),
    ([{"name": "a", "style": "v2"}], "member 1 ('a'): style must be 'v3.4' or 'v0.4', got 'v2'"),
    ([("a", 3)], "peer_urls must be a URL or a list of URLs, got 3"),
    ([("a", [])], "peer_urls must be a URL or a list of URLs, got []"),
    ([("a", "")], "peer URL '' is not http(s)://host:port"),
    ([("a", "10.0.0.1:2380")], "is not http(s)://host:port"),
    ([("a", "unix://sock:1")], "is not http(s)://host:port"),
    ([("a", "http://h")], "is not http(s)://host:port"),  # etcd: no "host:port" form
    ([("a", "http://h:99999")], "is not http(s)://host:port"),
    ([("a", "http://h:2380/p")], "is not http(s)://host:port"),  # etcd: "must not contain a path"
    ([("a", "http://h:2380?x")], "is not http(s)://host:port"),
    ([("a", "http://u@h:2380")], "is not http(s)://host:port"),
    ([("a", "http://h:1,http://i:1")], "is not http(s)://host:port"),
    (
        [{"name": "a", "style": "v0.4", "peer_urls": ["http://h:1", "http://i:1"]}],
        "an etcd 0.4 member has exactly one peer URL, got 2",
    ),
    (["a", ("b", "http://10.0.0.1:2380")], "member 2 ('b') would register the same key as"),
    ([("a", ["http://x:1", "http://y:1"]), ("b", ["http://y:1", "http://x:1"])], "same key"),
    ([{"name": "a", "style": "v0.4"}, {"name": "a", "style": "v0.4"}], "same key"),
]


@pytest.mark.parametrize(("value", "message"), BAD_SPECS)
def test_bad_member_specs_name_the_member_and_the_rule(value: Any, message: str) -> None:
    with pytest.raises(MemberSpecError) as info:
        member_specs(value, what="members")
    assert str(info.value).startswith("members: ")
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_same_name_in_both_styles_or_same_urls_in_different_styles_is_fine() -> None:
    # Different keys: etcd 3.4 registers under the id, etcd 0.4 under the name.
    specs = member_specs(["a", {"name": "a", "style": "v0.4"}], what="members")
    assert [s.style for s in specs] == ["v3.4", "v0.4"]


@pytest.mark.parametrize(("value", "message"), BAD_SPECS)
def test_the_control_api_refuses_what_the_rules_refuse(value: Any, message: str) -> None:
    if isinstance(value, list) and any(isinstance(e, tuple) for e in value):
        value = [list(e) if isinstance(e, tuple) else e for e in value]  # JSON has lists
    app = DiscoveryApp()
    try:
        reply = Client(ControlApp(app)).post("/_fake/tokens", json={"members": value})
        assert reply.status_code == 400, reply.text
        assert message in reply.get_json()["message"]
        assert app.token_names() == []  # nothing written
    finally:
        app.store.close()


def test_token_names_are_the_routes_tokens_oldest_first() -> None:
    app = DiscoveryApp()
    try:
        first, second = app.new_token(1), app.new_token(2)
        app.store.set("/_etcd/registry/not-a-token/x", "1")  # a directory, not a token
        assert app.token_names() == [first, second]
        assert all(TOKEN_RE.fullmatch(t) for t in (first, second))
        from pytest_etcd_discovery._service.routes import TokenConverter

        assert TokenConverter.regex == TOKEN_RE.pattern
    finally:
        app.store.close()


def test_the_filter_keywords_are_the_filters_fields() -> None:
    assert CALL_FILTER_KEYWORDS == ("method", "route", "path", "token", "status", "transport")
    assert tuple(f.name for f in dataclasses.fields(CallFilter)) == CALL_FILTER_KEYWORDS
    with pytest.raises(TypeError, match="unknown filter keywords \\['verb'\\]"):
        CallList().filter(verb="GET")  # type: ignore[call-arg]
    assert _etcd_rules.CallCriteria.__annotations__.keys() == set(CALL_FILTER_KEYWORDS)
