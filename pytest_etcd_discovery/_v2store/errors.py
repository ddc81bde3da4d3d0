"""etcd v2 errors: the code, message and HTTP status tables of etcd's ``v2error``.

The fake answers with the same ``{"errorCode", "message", "cause", "index"}`` bodies
and statuses as etcd 3.4's v2 keys API, so clients that branch on ``errorCode``
(etcd's own discovery client does) behave as they would against the real service.
"""

from __future__ import annotations

from typing import Any

from .._errors import Error

KEY_NOT_FOUND = 100
TEST_FAILED = 101
NOT_FILE = 102
NOT_DIR = 104
NODE_EXIST = 105
ROOT_READ_ONLY = 107
DIR_NOT_EMPTY = 108
UNAUTHORIZED = 110
PREV_VALUE_REQUIRED = 201
TTL_NAN = 202
INDEX_NAN = 203
INVALID_FIELD = 209
INVALID_FORM = 210
REFRESH_VALUE = 211
REFRESH_TTL_REQUIRED = 212
RAFT_INTERNAL = 300
LEADER_ELECT = 301
WATCHER_CLEARED = 400
EVENT_INDEX_CLEARED = 401

MESSAGES: dict[int, str] = {
    100: "Key not found",
    101: "Compare failed",
    102: "Not a file",
    103: "Reached the max number of peers in the cluster",
    104: "Not a directory",
    105: "Key already exists",
    106: "The prefix of given key is a keyword in etcd",
    107: "Root is read only",
    108: "Directory not empty",
    109: "Peer address has existed",
    110: "The request requires user authentication",
    200: "Value is Required in POST form",
    201: "PrevValue is Required in POST form",
    202: "The given TTL in POST form is not a number",
    203: "The given index in POST form is not a number",
    204: "Value or TTL is required in POST form",
    205: "The given timeout in POST form is not a number",
    206: "Name is required in POST form",
    207: "Index or value is required",
    208: "Index and value cannot both be specified",
    209: "Invalid field",
    210: "Invalid POST form",
    211: "Value provided on refresh",
    212: "A TTL must be provided on refresh",
    300: "Raft Internal Error",
    301: "During Leader Election",
    400: "watcher is cleared due to etcd recovery",
    401: "The event in requested index is outdated and cleared",
    402: "Standby Internal Error",
    403: "Invalid active size",
    404: "Standby remove delay",
    500: "Client Internal Error",
}

# Every code not listed here answers 400, as in etcd.
STATUSES: dict[int, int] = {
    KEY_NOT_FOUND: 404,
    NOT_FILE: 403,
    DIR_NOT_EMPTY: 403,
    UNAUTHORIZED: 401,
    TEST_FAILED: 412,
    NODE_EXIST: 412,
    RAFT_INTERNAL: 500,
    LEADER_ELECT: 500,
}


class EtcdError(Error):
    """An etcd v2 keys-API error, raised by the store and rendered by the app."""

    def __init__(self, code: int, cause: str = "", index: int = 0) -> None:
        self.code = code
        self.cause = cause
        self.index = index
        super().__init__(f"{self.message} ({cause})")

    @property
    def message(self) -> str:
        return MESSAGES.get(self.code, "")

    @property
    def status(self) -> int:
        return STATUSES.get(self.code, 400)

    def to_json(self) -> dict[str, Any]:
        """The body etcd writes, keys in etcd's order (``cause`` omitted when empty)."""
        body: dict[str, Any] = {"errorCode": self.code, "message": self.message}
        if self.cause:
            body["cause"] = self.cause
        body["index"] = self.index
        return body
