"""The control API's routes for the command's etcd v3 endpoint (``--v3-port``): each
calls the methods the Python face (``etcd_discovery.v3``) uses, so the two cannot drift
apart. :class:`~.control.ControlApp` serves them (it inherits :class:`V3Routes`)."""

from __future__ import annotations

import json
import re
from typing import Any

from werkzeug.wrappers import Request, Response

from .._etcd_rules import peer_url_list
from .control_io import ControlError, _body, _int, _json, _only, _query_int, _str

__all__ = ["V3Routes"]


class V3Routes:
    """The ``/_fake/v3/`` handlers of :class:`~.control.ControlApp`."""

    #: The command's etcd v3 endpoint (``--v3-port``), a ``V3Discovery``, if any.
    v3: Any = None

    def _v3(self) -> Any:
        if self.v3 is None:
            raise ControlError(
                "this fake has no etcd v3 endpoint: start etcd-discovery-fake with --v3-port",
                409,
            )
        return self.v3

    def on_v3_tokens(self, request: Request) -> Response:
        # etcd 3.6's v3 discovery tokens in the command's v3 endpoint (--v3-port).
        # Without one (no --v3-port) there is nothing to list: no endpoints, no tokens.
        if request.method in ("GET", "HEAD"):
            if self.v3 is None:
                return _json({"endpoints": None, "tokens": []})
            tokens = [self.v3.token_data(token) for token in self.v3.tokens()]
            return _json({"endpoints": self.v3.endpoints, "tokens": tokens})
        v3 = self._v3()
        data = _body(request, empty_ok=True)
        _only(data, {"size", "token"}, "v3 token")
        size = _int(data.get("size", 3), "size", 1)
        name = data.get("token")
        if name is not None:
            name = _v3_token_name(_str(name, "token"))
            if name in v3.tokens():
                raise ControlError(f"token {name!r} exists already", 409)
        made = v3.new_token(size, token=name)
        return _json({"endpoints": made.endpoints, **v3.token_data(made.token)}, 201)

    def _v3_known(self, token: str) -> Any:
        v3 = self._v3()
        if token not in v3.tokens():
            raise ControlError(f"no v3 token {token!r}: GET /_fake/v3/tokens lists them", 404)
        return v3

    def on_v3_token(self, request: Request, token: str) -> Response:
        v3 = self._v3_known(token)
        if request.method == "DELETE":
            return _json({"token": token, "deleted": v3.delete_token(token)})
        return _json({"endpoints": v3.endpoints, **v3.token_data(token)})

    def on_v3_members(self, request: Request, token: str) -> Response:
        from .._v3face import V3ClusterFullError, V3DiscoveryError

        v3 = self._v3_known(token)
        data = _body(request)
        _only(data, {"name", "peer_urls", "member_id"}, "v3 member")
        if "name" not in data or "peer_urls" not in data:
            raise ControlError('a member is {"name": ..., "peer_urls": ...}')
        name = _str(data["name"], "name")
        if not name or "=" in name or "," in name:
            raise ControlError(f"name must be non-empty, without '=' or ',': {name!r}")
        urls = data["peer_urls"]
        if isinstance(urls, list):
            urls = [_str(u, "peer_urls[]") for u in urls]
        else:
            urls = _str(urls, "peer_urls")
        if not peer_url_list(urls) or any(not u or "," in u for u in peer_url_list(urls)):
            raise ControlError(f"peer_urls must name one URL or more, got {json.dumps(urls)}")
        member_id = data.get("member_id")
        if member_id is not None and not re.fullmatch(r"[0-9a-f]{1,16}", _str(member_id, "id")):
            raise ControlError(f"member_id is a hex member id, got {json.dumps(member_id)}")
        try:
            member = v3.register(token, name, urls, member_id=member_id)
        except V3ClusterFullError as exc:
            raise ControlError(str(exc), 409) from None
        except V3DiscoveryError as exc:
            raise ControlError(str(exc), 409) from None
        view = {
            "id": member.id,
            "name": member.name,
            "value": member.value,
            "create_revision": member.create_revision,
        }
        return _json({"member": view, **v3.token_data(token)}, 201)

    def on_v3_calls(self, request: Request) -> Response:
        from .._v3face import call_data

        v3 = self._v3()
        _only(request.args, {"since", "limit"}, "query")
        paging = "since" in request.args
        since = _query_int(request, "since", 0) or 0
        limit = _query_int(request, "limit", None)
        following, numbered = v3.numbered_calls(since)
        if limit is not None and len(numbered) > limit:
            if paging:  # as /_fake/calls: the first `limit`, `next` right after them
                numbered = numbered[:limit]
                following = numbered[-1][0] + 1 if numbered else since
            else:
                numbered = numbered[len(numbered) - limit :]
        return _json({"calls": [call_data(n, c) for n, c in numbered], "next": following})

    def on_v3_faults(self, request: Request) -> Response:
        v3 = self._v3()
        faults = v3.faults
        if request.method == "POST":
            return _json(_add_v3_rule(faults, _body(request)).as_dict(), 201)
        if request.method == "DELETE":
            removed = len(faults.rules)
            faults.clear()
            return _json({"removed": removed})
        return _json({"faults": [rule.as_dict() for rule in list(faults.rules)]})

    def on_v3_fault(self, request: Request, v3_rule_id: str) -> Response:
        faults = self._v3().faults
        known = v3_rule_id.isascii() and v3_rule_id.isdigit() and len(v3_rule_id) < 19
        rule = faults.get(int(v3_rule_id)) if known else None
        if rule is None:
            raise ControlError(
                f"no v3 fault rule with id {v3_rule_id!r}: GET /_fake/v3/faults lists them", 404
            )
        if request.method == "DELETE":
            faults.remove(rule)
            return _json({"removed": rule.as_dict()})
        return _json(rule.as_dict())


#: The longest a v3 delay rule may hold a call: an hour (a delay tests a client deadline).
_V3_MAX_DELAY = 3600.0
_V3_ACTIONS = ("fail", "delay", "drop")


def _v3_token_name(name: str) -> str:
    # One path segment of the registry: what etcd's --discovery-token can be in a URL.
    if not re.fullmatch(r"[A-Za-z0-9._~-]{1,200}", name) or name in (".", ".."):
        raise ControlError(f"token must be 1-200 of A-Z a-z 0-9 . _ ~ -, got {name!r}")
    return name


def _add_v3_rule(faults: Any, data: dict[str, Any]) -> Any:
    """Check a v3 fault rule's JSON and add it through :class:`V3Faults`' own methods."""
    import grpc

    from .._v3.messages import SERVICES

    _only(
        data,
        {"action", "code", "message", "seconds", "service", "method", "key_prefix", "times"},
        "v3 fault",
    )
    action = data.get("action")
    if action not in _V3_ACTIONS:
        raise ControlError(f"action must be one of {list(_V3_ACTIONS)}, got {json.dumps(action)}")
    where: dict[str, Any] = {}
    service = data.get("service")
    if service is not None and _str(service, "service") not in SERVICES:
        raise ControlError(f"service must be one of {sorted(SERVICES)}, got {service!r}")
    methods = sorted({m for ms in SERVICES.values() for m in ms})
    method = data.get("method")
    if method is not None and _str(method, "method") not in methods:
        raise ControlError(f"method must be one of {methods}, got {method!r}")
    if "service" in data:
        where["service"] = service
    if "method" in data:
        where["method"] = method
    if data.get("key_prefix") is not None:
        where["key_prefix"] = _str(data["key_prefix"], "key_prefix")
    if "times" in data:
        where["times"] = None if data["times"] is None else _int(data["times"], "times", 1)
    if action != "fail" and ("code" in data or "message" in data):
        raise ControlError(f"code and message belong to a fail rule, not {action}")
    if action != "delay" and "seconds" in data:
        raise ControlError(f"seconds belongs to a delay rule, not {action}")
    if action == "fail":
        code = _str(data.get("code", "UNAVAILABLE"), "code")
        codes = [c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK]
        if code not in codes:
            raise ControlError(f"code must be a gRPC status name, one of {codes}; got {code!r}")
        what: dict[str, Any] = {"code": code}
        if "message" in data:
            what["message"] = _str(data["message"], "message")
        return faults.fail(**what, **where)
    if action == "delay":
        seconds = data.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise ControlError(f"a delay rule needs seconds, a number; got {json.dumps(seconds)}")
        if not 0 <= seconds <= _V3_MAX_DELAY:
            raise ControlError(f"seconds must be 0 to {_V3_MAX_DELAY:g}, got {seconds}")
        return faults.delay(float(seconds), **where)
    return faults.drop(**where)
