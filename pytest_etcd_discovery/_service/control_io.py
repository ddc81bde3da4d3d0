"""The control API's JSON in and out: one error type, the answer builders, and the
checks every route's input goes through (shared by :mod:`.control` and
:mod:`.control_v3`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

from .._errors import Error

__all__ = ["MAX_BODY", "ControlError"]


class ControlError(Error):
    """Bad control input: answered with ``status`` and ``{"message": ...}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


#: The biggest body the control API reads (a snapshot of a big store is tens of MiB).
MAX_BODY = 64 * 1024 * 1024


class _ControlRequest(Request):
    max_content_length = MAX_BODY


def _json(data: Any, status: int = 200) -> Response:
    resp = Response(json.dumps(data) + "\n", status=status, mimetype="application/json")
    # The dashboard polls: a cached answer would freeze it.
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _error(message: str, status: int) -> Response:
    return _json({"message": message}, status)


def _reject_constant(name: str) -> Any:
    raise ControlError(f"invalid JSON: {name} is not a number JSON allows")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        # Python reads 1e400 as inf: say what is wrong with the number the client sent.
        raise ControlError(f"number out of range: {text} is beyond a 64-bit float")
    return value


def _body(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is ``{}`` when ``empty_ok``."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if empty_ok:
            return {}
        raise ControlError("a JSON object body is required")
    try:
        data = json.loads(raw, parse_constant=_reject_constant, parse_float=_float)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ControlError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ControlError("invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ControlError(f"the body must be a JSON object, got {type(data).__name__}")
    return data


def _only(data: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
    known = sorted(allowed)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ControlError(f"unknown {what} fields {unknown}; known: {known}")


def _int(value: Any, name: str, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ControlError(f"{name} must be an integer, got {json.dumps(value)}")
    if minimum is not None and value < minimum:
        raise ControlError(f"{name} must be >= {minimum}, got {value}")
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ControlError(f"{name} must be a string, got {json.dumps(value)}")
    return value


def _query_int(request: Request, name: str, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise ControlError(f"{name} must be a whole number >= 0, got {raw!r}")
    return int(raw)
