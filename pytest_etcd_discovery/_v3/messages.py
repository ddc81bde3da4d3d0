"""The etcd v3 API's messages, described here and built into classes at import time.

Field numbers and types are facts of the wire protocol (etcd's ``rpc.proto`` and
``kv.proto``); the table below lists only the messages the fake serves.  They are turned
into a ``FileDescriptorProto`` and registered in a private descriptor pool (so another
package that registers etcd's own ``etcdserverpb`` in the default pool cannot clash),
then made into message classes with protobuf's message factory: no generated code, no
``grpcio-tools``.  Every message lives in package ``etcdserverpb`` here (``mvccpb``'s
``KeyValue`` and ``Event`` too): package names never reach the wire, service names do.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["MESSAGES", "PACKAGE", "SERVICES", "message_class"]

PACKAGE = "etcdserverpb"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "bytes": _F.TYPE_BYTES,
    "string": _F.TYPE_STRING,
    "int64": _F.TYPE_INT64,
    "uint64": _F.TYPE_UINT64,
    "uint32": _F.TYPE_UINT32,
    "bool": _F.TYPE_BOOL,
    # etcd's top-level AlarmType enum: an enum is a varint on the wire, as int32 is.
    "int32": _F.TYPE_INT32,
}

#: message -> fields as (name, number, type, repeated, oneof).  A type not in _SCALARS is
#: a message or enum of this package (enums are listed in _ENUMS).
_Field = tuple[str, int, str, bool, str | None]
_MESSAGE_TABLE: dict[str, list[_Field]] = {
    "ResponseHeader": [
        ("cluster_id", 1, "uint64", False, None),
        ("member_id", 2, "uint64", False, None),
        ("revision", 3, "int64", False, None),
        ("raft_term", 4, "uint64", False, None),
    ],
    "KeyValue": [
        ("key", 1, "bytes", False, None),
        ("create_revision", 2, "int64", False, None),
        ("mod_revision", 3, "int64", False, None),
        ("version", 4, "int64", False, None),
        ("value", 5, "bytes", False, None),
        ("lease", 6, "int64", False, None),
    ],
    "Event": [
        ("type", 1, "Event.EventType", False, None),
        ("kv", 2, "KeyValue", False, None),
        ("prev_kv", 3, "KeyValue", False, None),
    ],
    "RangeRequest": [
        ("key", 1, "bytes", False, None),
        ("range_end", 2, "bytes", False, None),
        ("limit", 3, "int64", False, None),
        ("revision", 4, "int64", False, None),
        ("sort_order", 5, "RangeRequest.SortOrder", False, None),
        ("sort_target", 6, "RangeRequest.SortTarget", False, None),
        ("serializable", 7, "bool", False, None),
        ("keys_only", 8, "bool", False, None),
        ("count_only", 9, "bool", False, None),
        ("min_mod_revision", 10, "int64", False, None),
        ("max_mod_revision", 11, "int64", False, None),
        ("min_create_revision", 12, "int64", False, None),
        ("max_create_revision", 13, "int64", False, None),
    ],
    "RangeResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("kvs", 2, "KeyValue", True, None),
        ("more", 3, "bool", False, None),
        ("count", 4, "int64", False, None),
    ],
    "PutRequest": [
        ("key", 1, "bytes", False, None),
        ("value", 2, "bytes", False, None),
        ("lease", 3, "int64", False, None),
        ("prev_kv", 4, "bool", False, None),
        ("ignore_value", 5, "bool", False, None),
        ("ignore_lease", 6, "bool", False, None),
    ],
    "PutResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("prev_kv", 2, "KeyValue", False, None),
    ],
    "DeleteRangeRequest": [
        ("key", 1, "bytes", False, None),
        ("range_end", 2, "bytes", False, None),
        ("prev_kv", 3, "bool", False, None),
    ],
    "DeleteRangeResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("deleted", 2, "int64", False, None),
        ("prev_kvs", 3, "KeyValue", True, None),
    ],
    "RequestOp": [
        ("request_range", 1, "RangeRequest", False, "request"),
        ("request_put", 2, "PutRequest", False, "request"),
        ("request_delete_range", 3, "DeleteRangeRequest", False, "request"),
        ("request_txn", 4, "TxnRequest", False, "request"),
    ],
    "ResponseOp": [
        ("response_range", 1, "RangeResponse", False, "response"),
        ("response_put", 2, "PutResponse", False, "response"),
        ("response_delete_range", 3, "DeleteRangeResponse", False, "response"),
        ("response_txn", 4, "TxnResponse", False, "response"),
    ],
    "Compare": [
        ("result", 1, "Compare.CompareResult", False, None),
        ("target", 2, "Compare.CompareTarget", False, None),
        ("key", 3, "bytes", False, None),
        ("version", 4, "int64", False, "target_union"),
        ("create_revision", 5, "int64", False, "target_union"),
        ("mod_revision", 6, "int64", False, "target_union"),
        ("value", 7, "bytes", False, "target_union"),
        ("lease", 8, "int64", False, "target_union"),
        ("range_end", 64, "bytes", False, None),
    ],
    "TxnRequest": [
        ("compare", 1, "Compare", True, None),
        ("success", 2, "RequestOp", True, None),
        ("failure", 3, "RequestOp", True, None),
    ],
    "TxnResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("succeeded", 2, "bool", False, None),
        ("responses", 3, "ResponseOp", True, None),
    ],
    "CompactionRequest": [
        ("revision", 1, "int64", False, None),
        ("physical", 2, "bool", False, None),
    ],
    "CompactionResponse": [("header", 1, "ResponseHeader", False, None)],
    "WatchRequest": [
        ("create_request", 1, "WatchCreateRequest", False, "request_union"),
        ("cancel_request", 2, "WatchCancelRequest", False, "request_union"),
        ("progress_request", 3, "WatchProgressRequest", False, "request_union"),
    ],
    "WatchCreateRequest": [
        ("key", 1, "bytes", False, None),
        ("range_end", 2, "bytes", False, None),
        ("start_revision", 3, "int64", False, None),
        ("progress_notify", 4, "bool", False, None),
        ("filters", 5, "WatchCreateRequest.FilterType", True, None),
        ("prev_kv", 6, "bool", False, None),
        ("watch_id", 7, "int64", False, None),
        ("fragment", 8, "bool", False, None),
    ],
    "WatchCancelRequest": [("watch_id", 1, "int64", False, None)],
    "WatchProgressRequest": [],
    "WatchResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("watch_id", 2, "int64", False, None),
        ("created", 3, "bool", False, None),
        ("canceled", 4, "bool", False, None),
        ("compact_revision", 5, "int64", False, None),
        ("cancel_reason", 6, "string", False, None),
        ("fragment", 7, "bool", False, None),
        ("events", 11, "Event", True, None),
    ],
    "LeaseGrantRequest": [("TTL", 1, "int64", False, None), ("ID", 2, "int64", False, None)],
    "LeaseGrantResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("ID", 2, "int64", False, None),
        ("TTL", 3, "int64", False, None),
        ("error", 4, "string", False, None),
    ],
    "LeaseRevokeRequest": [("ID", 1, "int64", False, None)],
    "LeaseRevokeResponse": [("header", 1, "ResponseHeader", False, None)],
    "LeaseKeepAliveRequest": [("ID", 1, "int64", False, None)],
    "LeaseKeepAliveResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("ID", 2, "int64", False, None),
        ("TTL", 3, "int64", False, None),
    ],
    "LeaseTimeToLiveRequest": [("ID", 1, "int64", False, None), ("keys", 2, "bool", False, None)],
    "LeaseTimeToLiveResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("ID", 2, "int64", False, None),
        ("TTL", 3, "int64", False, None),
        ("grantedTTL", 4, "int64", False, None),
        ("keys", 5, "bytes", True, None),
    ],
    "LeaseLeasesRequest": [],
    "LeaseStatus": [("ID", 1, "int64", False, None)],
    "LeaseLeasesResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("leases", 2, "LeaseStatus", True, None),
    ],
    "Member": [
        ("ID", 1, "uint64", False, None),
        ("name", 2, "string", False, None),
        ("peerURLs", 3, "string", True, None),
        ("clientURLs", 4, "string", True, None),
        ("isLearner", 5, "bool", False, None),
    ],
    "MemberListRequest": [],
    "MemberListResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("members", 2, "Member", True, None),
    ],
    "AlarmRequest": [
        ("action", 1, "AlarmRequest.AlarmAction", False, None),
        ("memberID", 2, "uint64", False, None),
        ("alarm", 3, "int32", False, None),
    ],
    "AlarmMember": [("memberID", 1, "uint64", False, None), ("alarm", 2, "int32", False, None)],
    "AlarmResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("alarms", 2, "AlarmMember", True, None),
    ],
    "StatusRequest": [],
    "StatusResponse": [
        ("header", 1, "ResponseHeader", False, None),
        ("version", 2, "string", False, None),
        ("dbSize", 3, "int64", False, None),
        ("leader", 4, "uint64", False, None),
        ("raftIndex", 5, "uint64", False, None),
        ("raftTerm", 6, "uint64", False, None),
        ("raftAppliedIndex", 7, "uint64", False, None),
        ("errors", 8, "string", True, None),
        ("dbSizeInUse", 9, "int64", False, None),
        ("isLearner", 10, "bool", False, None),
    ],
}

#: "Message.Enum" -> values in number order.
_ENUMS: dict[str, list[str]] = {
    "Event.EventType": ["PUT", "DELETE"],
    "RangeRequest.SortOrder": ["NONE", "ASCEND", "DESCEND"],
    "RangeRequest.SortTarget": ["KEY", "VERSION", "CREATE", "MOD", "VALUE"],
    "Compare.CompareResult": ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"],
    "Compare.CompareTarget": ["VERSION", "CREATE", "MOD", "VALUE", "LEASE"],
    "WatchCreateRequest.FilterType": ["NOPUT", "NODELETE"],
    "AlarmRequest.AlarmAction": ["GET", "ACTIVATE", "DEACTIVATE"],
}

#: service -> method -> (request, response, client streams, server streams).
SERVICES: dict[str, dict[str, tuple[str, str, bool, bool]]] = {
    "KV": {
        "Range": ("RangeRequest", "RangeResponse", False, False),
        "Put": ("PutRequest", "PutResponse", False, False),
        "DeleteRange": ("DeleteRangeRequest", "DeleteRangeResponse", False, False),
        "Txn": ("TxnRequest", "TxnResponse", False, False),
        "Compact": ("CompactionRequest", "CompactionResponse", False, False),
    },
    "Watch": {"Watch": ("WatchRequest", "WatchResponse", True, True)},
    "Lease": {
        "LeaseGrant": ("LeaseGrantRequest", "LeaseGrantResponse", False, False),
        "LeaseRevoke": ("LeaseRevokeRequest", "LeaseRevokeResponse", False, False),
        "LeaseKeepAlive": ("LeaseKeepAliveRequest", "LeaseKeepAliveResponse", True, True),
        "LeaseTimeToLive": ("LeaseTimeToLiveRequest", "LeaseTimeToLiveResponse", False, False),
        "LeaseLeases": ("LeaseLeasesRequest", "LeaseLeasesResponse", False, False),
    },
    "Cluster": {"MemberList": ("MemberListRequest", "MemberListResponse", False, False)},
    "Maintenance": {
        # etcdctl 3.5+'s "endpoint health" lists alarms too.
        "Alarm": ("AlarmRequest", "AlarmResponse", False, False),
        "Status": ("StatusRequest", "StatusResponse", False, False),
    },
}


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="pytest_etcd_discovery/_v3/etcdserverpb.proto", package=PACKAGE, syntax="proto3"
    )
    for name, fields in _MESSAGE_TABLE.items():
        msg = proto.message_type.add(name=name)
        oneofs: dict[str, int] = {}
        for enum_name, values in _ENUMS.items():
            owner, _, short = enum_name.partition(".")
            if owner == name:
                enum = msg.enum_type.add(name=short)
                for number, value in enumerate(values):
                    enum.value.add(name=value, number=number)
        for fname, number, ftype, repeated, oneof in fields:
            field = msg.field.add(name=fname, number=number, json_name=fname)
            field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if ftype in _SCALARS:
                field.type = _SCALARS[ftype]
            else:
                field.type = _F.TYPE_ENUM if ftype in _ENUMS else _F.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{ftype}"
            if oneof is not None:
                if oneof not in oneofs:
                    oneofs[oneof] = len(msg.oneof_decl)
                    msg.oneof_decl.add(name=oneof)
                field.oneof_index = oneofs[oneof]
    for service, methods in SERVICES.items():
        svc = proto.service.add(name=service)
        for method, (req, resp, cstream, sstream) in methods.items():
            svc.method.add(
                name=method,
                input_type=f".{PACKAGE}.{req}",
                output_type=f".{PACKAGE}.{resp}",
                client_streaming=cstream,
                server_streaming=sstream,
            )
    return proto


def _build() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    file_desc = pool.Add(_file())
    del file_desc
    classes: dict[str, Any] = {}
    for name in _MESSAGE_TABLE:
        desc = pool.FindMessageTypeByName(f"{PACKAGE}.{name}")
        classes[name] = message_factory.GetMessageClass(desc)
    return classes


#: message name -> its class (``MESSAGES["RangeRequest"](key=b"a")``).
MESSAGES: dict[str, Any] = _build()


def message_class(name: str) -> Any:
    """The class of message ``name`` (``"PutRequest"``, ...)."""
    return MESSAGES[name]
