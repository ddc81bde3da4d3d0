"""The OpenAPI 3.1 description of the control API (``GET /_fake/openapi.json``).

Written by hand next to :mod:`.control` and checked against it by
``tests/test_control_openapi.py``: every route of ``CONTROL_MAP`` is described, every
described operation answers, and what it answers validates against the schemas here.
The enumerations (routes, actions, methods, filter keys) come from the code that checks
them, so the description cannot drift from what the API takes.
"""

from __future__ import annotations

from typing import Any

from .._expectations import DATA_FILTER_KEYS
from .faults import ACTIONS, MAX_DELAY, METHODS, ROUTES

__all__ = ["OPENAPI_PATH", "openapi"]

#: Where the control API serves this description.
OPENAPI_PATH = "/_fake/openapi.json"

_NULL = {"type": "null"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, _NULL]}


def _object(
    properties: dict[str, Any], required: list[str] | None = None, *, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    if closed:
        schema["additionalProperties"] = False
    return schema


_STRINGS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_STATUS_ITEM = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 999},
        {"type": "string", "pattern": "^[0-9]{1,3}-[0-9]{1,3}$"},
    ]
}

_FILTER_PROPERTIES: dict[str, Any] = {
    "method": _STRINGS,
    "route": {"type": "string", "enum": list(ROUTES)},
    "path": {"type": "string", "description": "the request path: exact or a glob"},
    "path_regex": {"type": "string", "description": "a regex searched in the request path"},
    "token": {"type": "string", "description": "a token or a token URL"},
    "status": {"anyOf": [_STATUS_ITEM, {"type": "array", "items": _STATUS_ITEM}]},
    "transport": _STRINGS,
}
assert set(_FILTER_PROPERTIES) == set(DATA_FILTER_KEYS)

_MEMBER: dict[str, Any] = {
    "key": {"type": "string"},
    "name": {"type": "string"},
    "value": {"type": "string"},
    "peer_urls": {"type": "array", "items": {"type": "string"}},
    "ttl": _nullable({"type": "integer"}),
    "expiration": _nullable({"type": "string"}),
    "expires": _nullable({"type": "number", "description": "the expiry in fake clock seconds"}),
    "createdIndex": {"type": "integer"},
}

_V3_MEMBER: dict[str, Any] = {
    "id": {"type": "string"},
    "name": {"type": "string"},
    "value": {"type": "string"},
    "create_revision": {"type": "integer", "minimum": 1},
}
_V3_TOKEN: dict[str, Any] = {
    "token": {"type": "string"},
    "size": _nullable({"type": "integer", "minimum": 1}),
    "size_raw": _nullable({"type": "string"}),
    "full": {"type": "boolean"},
    "initial_cluster": {"type": "string"},
    "members": {"type": "array", "items": _object(_V3_MEMBER)},
}

_CALL: dict[str, Any] = {
    "number": {"type": "integer", "minimum": 0},
    "method": {"type": "string"},
    "path": {"type": "string"},
    "query": {"type": "string"},
    "status": _nullable({"type": "integer"}),
    "transport": {"type": "string"},
    "form": {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
    },
    "time": {"type": "number"},
    "fault": _nullable({"type": "string"}),
    "route": _nullable({"type": "string"}),
    "watch": {"type": "boolean"},
    "headers": {
        "type": "array",
        "items": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 2,
            "maxItems": 2,
        },
    },
    "body": {"type": "string"},
    "body_size": {"type": "integer", "minimum": 0},
    "truncated": {"type": "boolean"},
    "created_url": _nullable({"type": "string"}),
}

_SCHEMAS: dict[str, Any] = {
    "Error": _object({"message": {"type": "string"}}),
    "Index": _object({"index": {"type": "integer", "minimum": 0}}),
    "State": _object(
        {
            "store": _object(
                {
                    "index": {"type": "integer", "minimum": 0},
                    "root": {"type": "object"},
                    "history": {"type": "array", "items": {"type": "object"}},
                },
                ["index", "root"],
            )
        }
    ),
    "TokenInput": _object(
        {
            "size": {"type": "integer"},
            "members": {
                "description": "a count, names, [name, peer_urls] pairs or "
                "{name, peer_urls, style} objects, as the marker takes them",
                "anyOf": [{"type": "integer", "minimum": 0}, {"type": "array"}, _NULL],
            },
            "state": _nullable({"type": "string"}),
        },
        [],
    ),
    "TokenCreated": _object({"token": {"type": "string"}, "url": {"type": "string"}}),
    "Member": _object(_MEMBER),
    "ExpiredMember": _object({**_MEMBER, "expiredIndex": {"type": "integer", "minimum": 0}}),
    "Token": _object(
        {
            "token": {"type": "string"},
            "url": {"type": "string"},
            "size": _nullable({"type": "integer"}),
            "size_value": _nullable({"type": "string"}),
            "state": _nullable({"type": "string"}),
            "members": {"type": "array", "items": _ref("Member")},
            "expired": {
                "type": "array",
                "description": "members whose key expired (the store's last 1000 events)",
                "items": _ref("ExpiredMember"),
            },
            "createdIndex": {"type": "integer"},
        }
    ),
    "Tokens": _object(
        {
            "tokens": {"type": "array", "items": _ref("Token")},
            "index": {"type": "integer", "minimum": 0},
        }
    ),
    "Clock": _object(
        {
            "now": {"type": "number"},
            "time": {"type": "string"},
            "frozen": {"type": "boolean"},
            "controllable": {"type": "boolean"},
        }
    ),
    "Advance": _object({"seconds": {"type": "number", "minimum": 0}}),
    "FaultInput": _object(
        {
            # A callback needs Python code: not over HTTP.
            "action": {"type": "string", "enum": [a for a in ACTIONS if a != "callback"]},
            "status": {"type": "integer", "minimum": 100, "maximum": 599},
            "route": _nullable({"type": "string", "enum": list(ROUTES)}),
            "path": _nullable({"type": "string"}),
            "path_regex": _nullable({"type": "string"}),
            "method": _nullable(
                {
                    "anyOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    ]
                }
            ),
            "nth": _nullable({"type": "integer", "minimum": 1}),
            "times": _nullable({"type": "integer", "minimum": 1}),
            "delay": {"type": "number", "minimum": 0, "maximum": MAX_DELAY},
            "body": _nullable({"type": "string"}),
            "error_code": _nullable({"type": "integer", "minimum": 1}),
            "name": _nullable({"type": "string"}),
        },
        [],
    ),
    "Fault": _object(
        {
            "id": {"type": "integer", "minimum": 1},
            "description": {"type": "string"},
            "action": {"type": "string", "enum": list(ACTIONS)},
            "status": _nullable({"type": "integer"}),
            "route": _nullable({"type": "string"}),
            "path": _nullable({"type": "string"}),
            "path_regex": _nullable({"type": "string"}),
            "method": _nullable(
                {"type": "array", "items": {"type": "string", "enum": list(METHODS)}}
            ),
            "nth": _nullable({"type": "integer"}),
            "times": _nullable({"type": "integer"}),
            "delay": {"type": "number"},
            "body": _nullable({"type": "string"}),
            "error_code": _nullable({"type": "integer"}),
            "name": _nullable({"type": "string"}),
            "seen": {"type": "integer", "minimum": 0},
            "fired": {"type": "integer", "minimum": 0},
            "exhausted": {"type": "boolean"},
        }
    ),
    "Faults": _object({"faults": {"type": "array", "items": _ref("Fault")}}),
    "FaultsRemoved": _object({"removed": {"type": "integer", "minimum": 0}}),
    "FaultRemoved": _object({"removed": _ref("Fault")}),
    "Call": _object(_CALL),
    "Calls": _object(
        {
            "calls": {"type": "array", "items": _ref("Call")},
            "next": {"type": "integer", "minimum": 0},
        }
    ),
    "CountInput": _object(
        {
            **_FILTER_PROPERTIES,
            "since": {"type": "integer", "minimum": 0},
            "times": {"type": "integer", "minimum": 0},
        },
        [],
    ),
    "Count": _object(
        {
            "count": {"type": "integer", "minimum": 0},
            "filter": {"type": "string"},
            "matched": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "closest": {
                "type": "array",
                "items": _object(
                    {
                        "call": _ref("Call"),
                        "missed": {"type": "array", "items": {"type": "string"}},
                    }
                ),
            },
            "unmatched": {"type": "integer", "minimum": 0},
            "message": _nullable({"type": "string"}),
            "next": {"type": "integer", "minimum": 0},
        }
    ),
    "Changes": _object(
        {
            "clock": _ref("Clock"),
            "index": {"type": "integer", "minimum": 0},
            "cursor": {"type": "string", "description": "send it back as since="},
            "tokens": _object(
                {
                    "full": {"type": "boolean"},
                    "tokens": {"type": "array", "items": _ref("Token")},
                    "removed": {"type": "array", "items": {"type": "string"}},
                }
            ),
            "faults": {"type": "array", "items": _ref("Fault")},
            "calls": _object(
                {
                    "full": {"type": "boolean"},
                    "calls": {
                        "type": "array",
                        "items": _object(
                            {
                                name: _CALL[name]
                                for name in (
                                    "number",
                                    "method",
                                    "path",
                                    "query",
                                    "status",
                                    "transport",
                                    "time",
                                    "fault",
                                )
                            }
                        ),
                    },
                    "next": {"type": "integer", "minimum": 0},
                }
            ),
        },
        ["clock", "index", "cursor"],
    ),
    "V3Tokens": _object(
        {
            "endpoints": _nullable({"type": "string"}),
            "tokens": {
                "type": "array",
                "items": _object(_V3_TOKEN),
            },
        }
    ),
    "V3TokenInput": _object(
        {
            "size": {"type": "integer", "minimum": 1, "description": "default 3"},
            "token": {
                "type": "string",
                "pattern": "^[A-Za-z0-9._~-]{1,200}$",
                "description": "its name (default: a new random one)",
            },
        },
        [],
    ),
    "V3Token": _object({"endpoints": {"type": "string"}, **_V3_TOKEN}),
    "V3TokenDeleted": _object(
        {"token": {"type": "string"}, "deleted": {"type": "integer", "minimum": 1}}
    ),
    "V3MemberInput": _object(
        {
            "name": {"type": "string"},
            "peer_urls": _STRINGS,
            "member_id": {"type": "string", "pattern": "^[0-9a-f]{1,16}$"},
        },
        ["name", "peer_urls"],
    ),
    "V3MemberCreated": _object({"member": _object(_V3_MEMBER), **_V3_TOKEN}),
    "V3Calls": _object(
        {
            "calls": {
                "type": "array",
                "items": _object(
                    {
                        "number": {"type": "integer", "minimum": 0},
                        "service": {"type": "string"},
                        "method": {"type": "string"},
                        "key": _nullable({"type": "string"}),
                        "stream": {"type": "boolean"},
                        "code": {"type": "string", "description": "a gRPC status name"},
                        "message": {"type": "string"},
                        "fault": _nullable({"type": "string"}),
                        "peer": {"type": "string"},
                        "started": {"type": "number"},
                        "finished": _nullable({"type": "number"}),
                    }
                ),
            },
            "next": {"type": "integer", "minimum": 0},
        }
    ),
    "V3FaultInput": _object(
        {
            "action": {"type": "string", "enum": ["fail", "delay", "drop"]},
            "code": {"type": "string", "description": "a gRPC status name (fail)"},
            "message": {"type": "string"},
            "seconds": {"type": "number", "minimum": 0, "maximum": 3600},
            "service": _nullable({"type": "string"}),
            "method": _nullable({"type": "string"}),
            "key_prefix": _nullable({"type": "string"}),
            "times": _nullable({"type": "integer", "minimum": 1}),
        },
        ["action"],
    ),
    "V3Fault": _object(
        {
            "id": {"type": "integer", "minimum": 1},
            "action": {"type": "string", "enum": ["fail", "delay", "drop"]},
            "code": _nullable({"type": "string"}),
            "message": {"type": "string"},
            "seconds": {"type": "number", "minimum": 0},
            "service": _nullable({"type": "string"}),
            "method": _nullable({"type": "string"}),
            "key_prefix": _nullable({"type": "string"}),
            "times": _nullable({"type": "integer", "minimum": 1}),
            "fired": {"type": "integer", "minimum": 0},
            "description": {"type": "string"},
        }
    ),
    "V3Faults": _object({"faults": {"type": "array", "items": _ref("V3Fault")}}),
    "V3FaultRemoved": _object({"removed": _ref("V3Fault")}),
    "Health": _object(
        {
            "status": {"type": "string", "enum": ["ok"]},
            "version": {"type": "string"},
            "profile": {"type": "string"},
            "index": {"type": "integer", "minimum": 0},
            "calls": {"type": "integer", "minimum": 0},
            "faults": {"type": "integer", "minimum": 0},
        }
    ),
}


def _answer(description: str, schema: str | None = None, media: str = "application/json") -> Any:
    if schema is None:
        return {"description": description, "content": {media: {}}}
    return {"description": description, "content": {media: {"schema": _ref(schema)}}}


_ERROR = _answer("bad input or refused (Host, Origin, token): a JSON message", "Error")


def _op(
    summary: str,
    answers: dict[str, Any],
    *,
    body: str | None = None,
    example: Any = None,
    optional_body: bool = False,
    parameters: list[dict[str, Any]] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**answers}}
    if not public:
        operation["responses"].setdefault("401", _answer("--control-token set, none sent", "Error"))
    operation["responses"].setdefault("403", _ERROR)
    if body is not None:
        content: dict[str, Any] = {"schema": _ref(body)}
        if example is not None:
            content["example"] = example
        operation["requestBody"] = {
            "required": not optional_body,
            "content": {"application/json": content},
        }
    if parameters:
        operation["parameters"] = parameters
    if public:
        operation["security"] = []  # the dashboard's files need no token
    return operation


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_CALL_QUERY = [
    _query("since", {"type": "integer", "minimum": 0}, "calls from this number on; pages"),
    _query("limit", {"type": "integer", "minimum": 0}, "at most this many calls"),
    _query("method", {"type": "string"}, "a method, or several comma-separated"),
    _query("route", {"type": "string", "enum": list(ROUTES)}, "a route name"),
    _query("path", {"type": "string"}, "the request path: exact or a glob"),
    _query("path_regex", {"type": "string"}, "a regex searched in the request path"),
    _query("token", {"type": "string"}, "a token or a token URL"),
    _query("status", {"type": "string"}, "statuses or ranges, comma-separated: 200,500-599"),
    _query("transport", {"type": "string"}, "live, inprocess, ..., comma-separated"),
]

_RULE_ID = {
    "name": "rule_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
    "description": "the id POST /_fake/faults answered",
}

_BAD = {"400": _ERROR}
_V3_ERROR = _answer("the fake runs without --v3-port: no etcd v3 endpoint", "Error")
_V3_TOKEN_PARAM = {
    "name": "token",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "a v3 discovery token (--discovery-token)",
}
_V3_RULE_ID = {
    "name": "v3_rule_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
    "description": "the id POST /_fake/v3/faults answered",
}


def openapi(server_url: str | None = None) -> dict[str, Any]:
    """The description, with ``server_url`` as its server when given."""
    from .. import __version__

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "etcd-discovery-fake control API",
            "version": __version__,
            "description": "The fake's test powers over HTTP under /_fake/: seed tokens, "
            "read and restore the state, move the clock, inject faults, read and count the "
            "journal. Errors are JSON ({message}); bad input answers 4xx and changes nothing.",
        },
        "paths": {
            "/_fake/": {
                "get": _op(
                    "the dashboard (HTML)",
                    {"200": _answer("the page", media="text/html")},
                    public=True,
                )
            },
            "/_fake/static/{name}": {
                "get": _op(
                    "the dashboard's script and style",
                    {"200": _answer("the file", media="text/javascript"), "404": _ERROR},
                    parameters=[
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": ["dashboard.js", "dashboard.css"]},
                        }
                    ],
                    public=True,
                )
            },
            "/_fake/openapi.json": {
                "get": _op("this description", {"200": _answer("OpenAPI 3.1")})
            },
            "/_fake/v3/tokens": {
                "get": _op(
                    "etcd 3.6 v3 discovery tokens of the command's etcd v3 API (--v3-port)",
                    {"200": _answer("the tokens (none without --v3-port)", "V3Tokens")},
                ),
                "post": _op(
                    "make a v3 discovery token (its size key), as etcd_discovery.v3.new_token",
                    {"201": _answer("the token", "V3Token"), **_BAD, "409": _V3_ERROR},
                    body="V3TokenInput",
                    example={"size": 3},
                    optional_body=True,
                ),
            },
            "/_fake/v3/tokens/{token}": {
                "get": _op(
                    "one v3 token as etcd's discovery reads it",
                    {"200": _answer("the token", "V3Token"), "404": _ERROR, "409": _V3_ERROR},
                    parameters=[_V3_TOKEN_PARAM],
                ),
                "delete": _op(
                    "delete every key of a v3 token",
                    {
                        "200": _answer("how many keys", "V3TokenDeleted"),
                        "404": _ERROR,
                        "409": _V3_ERROR,
                    },
                    parameters=[_V3_TOKEN_PARAM],
                ),
            },
            "/_fake/v3/tokens/{token}/members": {
                "post": _op(
                    "register a member as etcd 3.6 does (409: cluster is full, size key "
                    "not found or bad)",
                    {
                        "201": _answer("the member", "V3MemberCreated"),
                        **_BAD,
                        "404": _ERROR,
                        "409": _V3_ERROR,
                    },
                    body="V3MemberInput",
                    example={"name": "m0", "peer_urls": "http://127.0.0.1:12380"},
                    parameters=[_V3_TOKEN_PARAM],
                ),
            },
            "/_fake/v3/calls": {
                "get": _op(
                    "the v3 endpoint's journal (gRPC calls), paged as /_fake/calls",
                    {
                        "200": _answer("calls and the next number", "V3Calls"),
                        **_BAD,
                        "409": _V3_ERROR,
                    },
                    parameters=_CALL_QUERY[:2],
                )
            },
            "/_fake/v3/faults": {
                "get": _op(
                    "the v3 fault rules, in order, with fired counts",
                    {"200": _answer("the rules", "V3Faults"), "409": _V3_ERROR},
                ),
                "post": _op(
                    "add a v3 fault rule (fail with a gRPC status, delay, drop a stream)",
                    {"201": _answer("the rule, with its id", "V3Fault"), **_BAD, "409": _V3_ERROR},
                    body="V3FaultInput",
                    example={
                        "action": "fail",
                        "code": "UNAVAILABLE",
                        "method": "Range",
                        "times": 1,
                    },
                ),
                "delete": _op(
                    "remove every v3 rule",
                    {"200": _answer("how many", "FaultsRemoved"), "409": _V3_ERROR},
                ),
            },
            "/_fake/v3/faults/{v3_rule_id}": {
                "get": _op(
                    "one v3 rule",
                    {"200": _answer("the rule", "V3Fault"), "404": _ERROR, "409": _V3_ERROR},
                    parameters=[_V3_RULE_ID],
                ),
                "delete": _op(
                    "remove one v3 rule",
                    {
                        "200": _answer("the rule removed", "V3FaultRemoved"),
                        "404": _ERROR,
                        "409": _V3_ERROR,
                    },
                    parameters=[_V3_RULE_ID],
                ),
            },
            "/_fake/health": {
                "get": _op(
                    "the fake is up: version, profile, counts", {"200": _answer("up", "Health")}
                )
            },
            "/_fake/state": {
                "get": _op("the whole state", {"200": _answer("the state", "State")}),
                "put": _op(
                    "restore a state",
                    {"200": _answer("the new index", "Index"), **_BAD},
                    body="State",
                    example={
                        "store": {
                            "index": 0,
                            "root": {
                                "path": "/",
                                "createdIndex": 0,
                                "modifiedIndex": 0,
                                "children": [],
                            },
                            "history": [],
                        }
                    },
                ),
            },
            "/_fake/reset": {
                "post": _op(
                    "empty store, real clock, no faults, empty journal (the v3 endpoint's "
                    "keys, leases, faults and journal too)",
                    {"200": _answer("index 0", "Index"), **_BAD},
                )
            },
            "/_fake/tokens": {
                "get": _op("every token, oldest first", {"200": _answer("the tokens", "Tokens")}),
                "post": _op(
                    "seed a token as the marker does",
                    {"201": _answer("the token", "TokenCreated"), **_BAD, "409": _ERROR},
                    body="TokenInput",
                    example={"size": 3, "members": ["infra0"], "state": "started"},
                    optional_body=True,
                ),
            },
            "/_fake/clock": {"get": _op("the clock", {"200": _answer("the clock", "Clock")})},
            "/_fake/clock/advance": {
                "post": _op(
                    "move the clock forward",
                    {"200": _answer("the clock", "Clock"), **_BAD, "409": _ERROR},
                    body="Advance",
                    example={"seconds": 60},
                )
            },
            "/_fake/clock/freeze": {
                "post": _op(
                    "stop the clock", {"200": _answer("the clock", "Clock"), **_BAD, "409": _ERROR}
                )
            },
            "/_fake/clock/unfreeze": {
                "post": _op(
                    "let the clock run",
                    {"200": _answer("the clock", "Clock"), **_BAD, "409": _ERROR},
                )
            },
            "/_fake/faults": {
                "get": _op("the fault rules, in order", {"200": _answer("the rules", "Faults")}),
                "post": _op(
                    "add a fault rule",
                    {"201": _answer("the rule, with its id", "Fault"), **_BAD},
                    body="FaultInput",
                    example={"status": 503, "route": "new", "times": 1},
                ),
                "delete": _op("remove every rule", {"200": _answer("how many", "FaultsRemoved")}),
            },
            "/_fake/faults/{rule_id}": {
                "get": _op(
                    "one rule",
                    {"200": _answer("the rule", "Fault"), "404": _ERROR},
                    parameters=[_RULE_ID],
                ),
                "delete": _op(
                    "remove one rule (releases requests waiting in its delay)",
                    {"200": _answer("the rule removed", "FaultRemoved"), "404": _ERROR},
                    parameters=[_RULE_ID],
                ),
            },
            "/_fake/calls": {
                "get": _op(
                    "the journal, filtered and paged",
                    {"200": _answer("calls and the next number", "Calls"), **_BAD},
                    parameters=_CALL_QUERY,
                )
            },
            "/_fake/changes": {
                "get": _op(
                    "what changed since a cursor (the dashboard's poll)",
                    {"200": _answer("the changes and the next cursor", "Changes"), **_BAD},
                    parameters=[
                        _query("since", {"type": "string"}, "the cursor of an earlier answer"),
                        _query(
                            "calls",
                            {"type": "integer", "minimum": 1, "maximum": 1000},
                            "calls to send when all are sent (default 200)",
                        ),
                    ],
                )
            },
            "/_fake/calls/count": {
                "post": _op(
                    "count the calls matching a filter, with the closest misses",
                    {"200": _answer("the count", "Count"), **_BAD},
                    body="CountInput",
                    example={"method": "PUT", "route": "machine", "status": "200-299", "times": 1},
                    optional_body=True,
                )
            },
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "controlToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "only when the fake runs with --control-token",
                }
            },
        },
        "security": [{}, {"controlToken": []}],
    }
    if server_url is not None:
        document["servers"] = [{"url": server_url}]
    return document
