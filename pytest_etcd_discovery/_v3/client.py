"""A minimal etcd v3 client over the same message classes (tests, seeding, the bench).

``V3Client("127.0.0.1:2379").call("KV", "Range", key=b"a")`` sends a request built from
keyword fields; :meth:`V3Client.stream` opens a bidirectional stream (Watch,
LeaseKeepAlive).  It works against the fake and a real etcd alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import grpc

from .messages import MESSAGES as M
from .messages import PACKAGE, SERVICES

__all__ = ["V3Client"]


class V3Client:
    def __init__(self, endpoint: str, *, timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.channel = grpc.insecure_channel(
            endpoint, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )

    def _method(self, service: str, method: str) -> tuple[str, Any, Any, bool, bool]:
        req, resp, cstream, sstream = SERVICES[service][method]
        return f"/{PACKAGE}.{service}/{method}", M[req], M[resp], cstream, sstream

    def request(self, service: str, method: str, **fields: Any) -> Any:
        """The request message for ``service``/``method`` with ``fields``."""
        return self._method(service, method)[1](**fields)

    def call(
        self,
        service: str,
        method: str,
        request: Any = None,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> Any:
        """One unary call; raises ``grpc.RpcError`` with etcd's status on refusal."""
        path, req_cls, resp_cls, _, _ = self._method(service, method)
        stub = self.channel.unary_unary(
            path,
            request_serializer=req_cls.SerializeToString,
            response_deserializer=resp_cls.FromString,
        )
        message = request if request is not None else req_cls(**fields)
        return stub(message, timeout=self.timeout if timeout is None else timeout)

    def stream(
        self, service: str, method: str, requests: Iterable[Any], *, timeout: float | None = None
    ) -> Iterator[Any]:
        """A bidirectional stream fed by ``requests``; iterate the answers, ``cancel()``
        the returned call to end it."""
        path, req_cls, resp_cls, _, _ = self._method(service, method)
        stub = self.channel.stream_stream(
            path,
            request_serializer=req_cls.SerializeToString,
            response_deserializer=resp_cls.FromString,
        )
        result: Iterator[Any] = stub(iter(requests), timeout=timeout)
        return result

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> V3Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
