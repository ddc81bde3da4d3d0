"""``GET /_fake/openapi.json`` against the control API it describes: every route is
described, every described operation answers on the live server, and the example
requests and the answers validate against the description's schemas.

The validator below covers the JSON Schema keywords the description uses and fails on
any other, so a schema it cannot check is an error, never a silent pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from pytest_etcd_discovery._service.control import CONTROL_MAP
from pytest_etcd_discovery._stack import FakeStack

WAIT = 10.0
_KNOWN = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "anyOf",
    "$ref",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "pattern",
    "description",
}
_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def problems(
    value: Any, schema: dict[str, Any], doc: dict[str, Any], where: str = "$"
) -> list[str]:
    """Why ``value`` does not fit ``schema`` (empty: it fits)."""
    unknown = set(schema) - _KNOWN
    assert not unknown, f"{where}: the validator does not know {sorted(unknown)}"
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return problems(value, doc["components"]["schemas"][name], doc, where)
    if "anyOf" in schema:
        options = [problems(value, option, doc, where) for option in schema["anyOf"]]
        if all(options):
            return [f"{where}: fits no option: {options}"]
        return []
    kind = schema.get("type")
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: {value!r} is not an integer"]
    elif kind == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return [f"{where}: {value!r} is not a number"]
    elif kind is not None and not isinstance(value, _TYPES[kind]):
        return [f"{where}: {value!r} is not {kind}"]
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        found.append(f"{where}: {value!r} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        found.append(f"{where}: {value!r} > {schema['maximum']}")
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        found.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 1 << 30):
            found.append(f"{where}: {len(value)} items")
        for n, item in enumerate(value):
            found.extend(problems(item, schema.get("items", {}), doc, f"{where}[{n}]"))
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{where}: {name!r} missing")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                found.extend(problems(item, properties[name], doc, f"{where}.{name}"))
            elif extra is False:
                found.append(f"{where}: {name!r} is not described")
            elif isinstance(extra, dict):
                found.extend(problems(item, extra, doc, f"{where}.{name}"))
    return found


def test_the_validator_refuses_what_does_not_fit() -> None:
    doc = {"components": {"schemas": {"N": {"type": "integer", "minimum": 1}}}}
    schema = {
        "type": "object",
        "properties": {"n": {"$ref": "#/components/schemas/N"}, "s": {"anyOf": [{"type": "null"}]}},
        "required": ["n"],
        "additionalProperties": False,
    }
    assert problems({"n": 1, "s": None}, schema, doc) == []
    assert problems({"n": 0}, schema, doc) == ["$.n: 0 < 1"]
    assert problems({"n": True}, schema, doc) == ["$.n: True is not an integer"]
    assert problems({"s": "x", "z": 1}, schema, doc)[0] == "$: 'n' missing"
    assert len(problems({"n": 1, "s": "x", "z": 1}, schema, doc)) == 2
    with pytest.raises(AssertionError, match="does not know"):
        problems(1, {"oneOf": []}, doc)


@pytest.fixture
def api() -> Iterator[tuple[str, requests.Session]]:
    # The command's parts, with its etcd v3 endpoint (--v3-port): every route answers.
    pytest.importorskip("grpc")
    from pytest_etcd_discovery._v3face import V3Discovery

    stack = FakeStack().start()
    v3 = V3Discovery(stack.clock)
    stack.control.v3 = v3
    session = requests.Session()
    try:
        yield stack.url, session
    finally:
        session.close()
        v3.close()
        stack.close()


def _document(url: str, session: requests.Session) -> dict[str, Any]:
    reply = session.get(f"{url}/_fake/openapi.json", timeout=WAIT)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/json"
    doc: dict[str, Any] = reply.json()
    return doc


def test_every_route_is_described_and_every_described_route_exists(
    api: tuple[str, requests.Session],
) -> None:
    doc = _document(*api)
    assert doc["openapi"].startswith("3.")
    assert doc["servers"] == [{"url": api[0]}]
    routed = set()
    for rule in CONTROL_MAP.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z0-9_]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):  # werkzeug adds them
                routed.add((path, method.lower()))
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert described == routed
    # Every reference resolves, every operation has its answers.
    text = json.dumps(doc)
    for name in re.findall(r'"#/components/schemas/([A-Za-z0-9]+)"', text):
        assert name in doc["components"]["schemas"], name
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"] and op["summary"], (path, method)
            for parameter in op.get("parameters", []):
                if parameter["in"] == "path":
                    assert f"{{{parameter['name']}}}" in path


def _setup(url: str, session: requests.Session) -> dict[str, str]:
    """A fresh fake with one token, one fault rule and a few calls: what the examples
    need, and the values of the path parameters."""
    session.post(f"{url}/_fake/reset", timeout=WAIT).raise_for_status()
    token = session.post(f"{url}/_fake/tokens", json={"members": 1}, timeout=WAIT).json()["url"]
    rule = session.post(
        f"{url}/_fake/faults", json={"status": 503, "route": "health"}, timeout=WAIT
    )
    session.get(f"{url}/health", timeout=WAIT)
    session.put(f"{token}/m2", data={"value": "m2=http://10.0.0.2:2380"}, timeout=WAIT)
    v3 = f"{url}/_fake/v3"
    session.post(f"{v3}/tokens", json={"size": 3, "token": "t3"}, timeout=WAIT).raise_for_status()
    session.post(
        f"{v3}/tokens/t3/members",
        json={"name": "m1", "peer_urls": ["http://127.0.0.1:12381"]},
        timeout=WAIT,
    ).raise_for_status()
    v3_rule = session.post(f"{v3}/faults", json={"action": "drop"}, timeout=WAIT)
    return {
        "rule_id": str(rule.json()["id"]),
        "name": "dashboard.js",
        "token": "t3",
        "v3_rule_id": str(v3_rule.json()["id"]),
    }


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_every_operation_answers_as_described(api: tuple[str, requests.Session]) -> None:
    url, session = api
    doc = _document(url, session)
    checked = 0
    for path, method, op in _operations(doc):
        params = _setup(url, session)
        target = url + path.format(**params)
        body = None
        if "requestBody" in op:
            content = op["requestBody"]["content"]["application/json"]
            example = content.get("example")
            if example is not None:
                assert problems(example, content["schema"], doc) == [], (path, method)
                body = json.dumps(example)
        reply = session.request(method.upper(), target, data=body, timeout=WAIT)
        status = str(reply.status_code)
        assert status in op["responses"], (path, method, status, reply.text)
        assert status.startswith("2"), (path, method, reply.text)
        content = op["responses"][status]["content"]
        media = reply.headers["Content-Type"].split(";")[0]
        assert media in content, (path, method, media)
        schema = content[media].get("schema")
        if schema is not None:
            assert problems(reply.json(), schema, doc) == [], (path, method)
        checked += 1
    assert checked == len(_operations(doc)) >= 20


def test_error_answers_fit_the_error_schema(api: tuple[str, requests.Session]) -> None:
    url, session = api
    doc = _document(url, session)
    bad = [
        ("post", "/_fake/calls/count", {"status": "5xx"}, "400"),
        ("get", "/_fake/faults/77777777", None, "404"),
        ("delete", "/_fake/faults/x", None, "404"),
        ("post", "/_fake/faults", {"action": "nope"}, "400"),
        ("put", "/_fake/state", {"store": 1}, "400"),
        ("post", "/_fake/clock/advance", {"seconds": -1}, "400"),
    ]
    for method, path, body, status in bad:
        reply = session.request(
            method.upper(),
            url + path,
            data=None if body is None else json.dumps(body),
            timeout=WAIT,
        )
        assert str(reply.status_code) == status, (path, reply.text)
        op = doc["paths"].get(path) or doc["paths"]["/_fake/faults/{rule_id}"]
        schema = op[method]["responses"][status]["content"]["application/json"]["schema"]
        assert problems(reply.json(), schema, doc) == []
        # The schema of the request refuses what the server refused.
        example = op[method].get("requestBody", {}).get("content", {}).get("application/json", {})
        if body is not None and "schema" in example:
            assert problems(body, example["schema"], doc) != [], path
