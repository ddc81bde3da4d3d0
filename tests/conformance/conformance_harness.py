"""The differential harness: run one request sequence against the fake and the real
discovery service, normalise both transcripts and compare them.

A *scenario* is a function ``scenario(d: Recorder) -> None``. It talks HTTP through the
recorder, which records every reply as a normalised step:

- tokens become ``<T0>``, ``<T1>`` … (never-issued ones ``<N0>`` …), the server's base
  URL becomes ``<URL>``;
- indexes (``modifiedIndex``, ``createdIndex``, error ``index``, ``X-Etcd-Index``, the
  numbers in 101/401 causes, ``prevIndex``/``waitIndex`` we send) become offsets from an
  anchor taken in the scenario (the first token's ``createdIndex``): ``I+3``; ``0`` stays 0;
- ``expiration`` becomes ``<EXP>`` when it is RFC 3339 (nanoseconds, ``Z``) and agrees
  with ``ttl``; ``ttl`` becomes ``~N`` when within 1 below a TTL the scenario asked for;
- ``X-Raft-*`` / ``X-Etcd-Cluster-Id`` become ``<present>``; ``Date``, ``Content-Length``
  and hop-by-hop headers are dropped (``Server`` too, checked in its own test);
- listings not asked for ``sorted=true`` are sorted by key (Go map order is random).

Raw properties travel in the step too: the trailing newline of JSON bodies and the
``\\uXXXX`` escapes used (Go escapes ``<``, ``>``, ``&``).
"""

from __future__ import annotations

import datetime as dt
import difflib
import http.client
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from requests.structures import CaseInsensitiveDict
from unitutil import TOKEN_RE, wait_until

#: Hex runs long enough to be (parts of) tokens; etcd member ids (16 hex) stay as they are.
HEX_RUN_RE = re.compile(r"[a-fA-F0-9]{24,}")
IN_ORDER_KEY_RE = re.compile(r"/(\d{20})\b")
EXPIRATION_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
ESCAPE_RE = re.compile(r"\\u[0-9a-fA-F]{4}")
INDEX_FIELDS = frozenset({"modifiedIndex", "createdIndex", "index"})
INDEX_PARAMS = frozenset({"prevIndex", "waitIndex"})
DROPPED_HEADERS = frozenset(
    {"date", "content-length", "transfer-encoding", "connection", "keep-alive", "server"}
)
PRESENCE_HEADERS = frozenset({"x-raft-index", "x-raft-term", "x-etcd-cluster-id"})
#: Upper bound for any single request; watches that should fire do so within it.
REQUEST_TIMEOUT = 10.0

Step = dict[str, Any]
Scenario = Callable[["Recorder"], None]


@dataclass
class Side:
    """One discovery service under test."""

    name: str
    url: str
    #: How many long polls the backing store currently holds (for "next event" watches).
    watcher_count: Callable[[], int]
    #: "discovery": the discovery routes; "keys": an etcd v2 keys API (``url`` ends in
    #: ``/v2/keys``), where a token is a directory the scenario creates itself.
    kind: str = "discovery"
    #: Whether replies are etcd's own (JSON with a trailing newline and X-Raft headers);
    #: discoveryserver marshals its v2v3 events itself and sends neither.
    etcd_replies: bool = True

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # loopback only: no proxies from the environment
        return session


@dataclass
class Reply:
    """A raw HTTP reply, as the scenario sees it."""

    method: str
    path: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Watch:
    """A request running in its own thread (a long poll); recorded when collected."""

    recorder: Recorder
    method: str
    path: str
    params: dict[str, Any]
    sorted_listing: bool
    #: The HTTP timeout of the poll itself (short for polls that may rightly never fire).
    timeout: float = REQUEST_TIMEOUT
    _done: threading.Event = field(default_factory=threading.Event)
    _reply: Reply | None = None
    _error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="conformance-watch")
        self._thread.start()

    def _run(self) -> None:
        # Own session: requests.Session is not meant to be shared between threads.
        try:
            with self.recorder.side.session() as session:
                self._reply = self.recorder.send(
                    session, self.method, self.path, self.params, timeout=self.timeout
                )
        except BaseException as err:  # handed to the scenario thread in result()
            self._error = err
        finally:
            self._done.set()

    @property
    def error(self) -> BaseException | None:
        """What the poll raised (a timeout, say), once it is done."""
        return self._error

    def answered(self, within: float) -> bool:
        """Whether the poll got its reply (or failed) within ``within`` seconds; unrecorded."""
        return self._done.wait(within)

    def pending(self, within: float = 0.15) -> bool:
        """True if no reply arrived within ``within`` s (proves the poll blocks), recorded."""
        still = not self._done.wait(within)
        self.recorder.note(f"watch {self.recorder.norm_path(self.path)} pending", still)
        return still

    def result(
        self, timeout: float = REQUEST_TIMEOUT, *, expect: int | None = 200, record: bool = True
    ) -> Reply:
        """Wait for the reply and record it as the next step (unless ``record`` is false:
        for replies whose headers depend on timing, such as etcd's 500 ms expiry tick)."""
        assert self._thread is not None
        if not self._done.wait(timeout):
            raise AssertionError(
                f"[{self.recorder.side.name}] watch {self.method} {self.path} "
                f"{self.params} got no reply within {timeout} s"
            )
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._reply is not None
        if record:
            self.recorder.record(self._reply, self.params, None, self.sorted_listing, expect)
        elif expect is not None and self._reply.status != expect:
            raise AssertionError(f"watch {self.path}: {self._reply.status} {self._reply.text!r}")
        return self._reply


class Stream:
    """A ``stream=true`` long poll read line by line in its own thread."""

    def __init__(
        self,
        recorder: Recorder,
        path: str,
        params: dict[str, Any],
        count: int,
        timeout: float = REQUEST_TIMEOUT,
    ):
        self.recorder = recorder
        #: Seconds without a new line after which the stream counts as ended (noted).
        self.timeout = timeout
        self.timed_out = False
        self.path = path
        self.params = params
        self.count = count
        self.status = 0
        self.lines: list[bytes] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="conformance-stream")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        url = self.recorder.side.url + self.path + "?" + urlencode(self.params)
        try:
            with (
                self.recorder.side.session() as session,
                session.get(url, stream=True, timeout=self.timeout) as resp,
            ):
                self.status = resp.status_code
                for line in resp.iter_lines():
                    if line:
                        self.lines.append(line)
                    if len(self.lines) >= self.count:
                        break  # leaving the with-block closes the connection
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as err:
            # Before the headers a read timeout is a ReadTimeout; inside the body requests
            # reports it as a ConnectionError.
            if "timed out" not in str(err):
                self.error = err
            self.timed_out = True
        except BaseException as err:  # handed over in result()
            self.error = err

    def result(self, timeout: float = REQUEST_TIMEOUT) -> list[Any]:
        """Join the reader; record the status and every event (normalised) as notes."""
        self._thread.join(timeout)
        if self.timed_out:
            label = f"stream {self.recorder.norm_path(self.path)}"
            self.recorder.note(f"{label} went quiet after", len(self.lines))
        elif self._thread.is_alive() or self.error is not None:
            raise AssertionError(
                f"[{self.recorder.side.name}] stream {self.path}: {len(self.lines)} of "
                f"{self.count} events ({self.error!r})"
            )
        label = f"stream {self.recorder.norm_path(self.path)}"
        self.recorder.note(f"{label} status", self.status)
        events = [json.loads(line) for line in self.lines]
        for event in events:
            normalised = self.recorder._norm_json(event, False)
            self.recorder.note(f"{label} event", json.dumps(normalised, separators=(",", ":")))
        return events


class Recorder:
    """Sends requests for a scenario and keeps the normalised transcript."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.session = side.session()
        self.steps: list[Step] = []
        self.failures: list[str] = []
        self.anchor: int | None = None
        self._names: dict[str, str] = {}
        self._issued = 0
        self._never = 0
        self._ttls: set[int] = set()
        self._watches: list[Watch] = []
        # Long polls left over elsewhere (the Go proxy keeps a poll open upstream after
        # its client went away) do not count.
        self._watchers_before = side.watcher_count()

    # -- names, anchors ----------------------------------------------------------------

    def name_token(self, token: str, *, issued: bool = True) -> str:
        if token not in self._names:
            if issued:
                self._names[token] = f"<T{self._issued}>"
                self._issued += 1
            else:
                self._names[token] = f"<N{self._never}>"
                self._never += 1
        return self._names[token]

    def never_issued(self) -> str:
        """A well-formed token nobody created (random, so it cannot exist on either side)."""
        token = secrets.token_hex(16)
        self.name_token(token, issued=False)
        return token

    def set_anchor(self, index: int) -> None:
        self.anchor = index

    def idx(self, offset: int) -> int:
        """The absolute index ``anchor + offset`` to send as prevIndex/waitIndex."""
        assert self.anchor is not None, "scenario has no anchor yet (call new_token first)"
        return self.anchor + offset

    def rel(self, value: int) -> str | int:
        # 0 means "no index"; absurd values (sent on purpose) are not offsets either.
        if value == 0 or self.anchor is None or abs(value - self.anchor) > 10**9:
            return value
        return f"I{value - self.anchor:+d}"

    def norm_text(self, text: str) -> str:
        text = text.replace(self.side.url, "<URL>")
        # In-order keys (POST on a keys API) are named by their index, 20 digits.
        text = IN_ORDER_KEY_RE.sub(lambda m: f"/<{self.rel(int(m.group(1)))}>", text)
        return HEX_RUN_RE.sub(self._name_hex, text)

    def _name_hex(self, match: re.Match[str]) -> str:
        run = match.group(0)
        low = run.lower()
        case = "" if run == low else ":upper"
        if low in self._names:
            return self._names[low] + case
        for token, name in self._names.items():
            # A token cut short or with extra characters (route-matching probes).
            if token.startswith(low):
                return f"{name}[:{len(low)}]{case}"
            if low.startswith(token):
                return f"{name}+{low[len(token) :]}{case}"
        return "<unknown-hex>"

    def norm_path(self, path: str) -> str:
        return self.norm_text(path)

    # -- requests ----------------------------------------------------------------------

    def send(
        self,
        session: requests.Session,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Reply:
        url = self.side.url + path
        if params:
            url += "?" + urlencode(params)
        resp = session.request(
            method,
            url,
            data=data,
            headers=dict(headers or {}),
            allow_redirects=False,  # "/" redirects to an outside host: never follow
            timeout=timeout,
        )
        return Reply(method, path, resp.status_code, resp.headers, resp.content)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        expect: int | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Reply:
        """Send one request, record the normalised reply, check ``expect`` (status)."""
        params = dict(params or {})
        self._learn_ttls(params, data)
        reply = self.send(self.session, method, path, params, data, headers, timeout)
        self.record(reply, params, data, _asks_sorted(params), expect)
        return reply

    def raw(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect: int | None = None,
    ) -> Reply:
        """Send ``target`` byte for byte (no URL normalisation by a client library)."""
        parsed = urlsplit(self.side.url)
        host = parsed.hostname or "127.0.0.1"
        conn = http.client.HTTPConnection(host, parsed.port, timeout=REQUEST_TIMEOUT)
        try:
            # (A keys-API side's URL has a path prefix, /v2/keys.)
            conn.request(method, parsed.path + target, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            fields = CaseInsensitiveDict(resp.getheaders())
            reply = Reply(method, target, resp.status, fields, resp.read())
        finally:
            conn.close()
        data = body.decode("utf-8", "replace") if body is not None else None
        self.record(reply, {}, data, _asks_sorted(_query_of(target)), expect)
        return reply

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def put(self, path: str, **kw: Any) -> Reply:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)

    def watch(
        self,
        path: str,
        params: Mapping[str, Any],
        method: str = "GET",
        *,
        timeout: float = REQUEST_TIMEOUT,
        registered: bool = False,
    ) -> Watch:
        """Start a long poll in a thread; collect it with :meth:`Watch.result`.

        ``registered=True`` returns only once the store holds the poll (for a future
        index), so the poll's ``X-Etcd-Index`` (the index at registration) is not a race.
        """
        params = {"wait": "true", **params}
        before = self.side.watcher_count() if registered else 0
        watch = Watch(self, method, path, params, _asks_sorted(params), timeout)
        self._watches.append(watch)
        watch.start()
        if registered:
            self._wait_count(before + 1)
        return watch

    def wait_watchers(self, count: int, timeout: float = 5.0) -> None:
        """Block until the store holds ``count`` more long polls than when the scenario
        started (so a write cannot race them)."""
        self._wait_count(self._watchers_before + count, timeout)

    def _wait_count(self, count: int, timeout: float = 5.0) -> None:
        wait_until(
            lambda: self.side.watcher_count() >= count,
            f"[{self.side.name}] watcher count {count} is reached",
            timeout=timeout,
            interval=0.02,
        )

    def new_token(
        self, size: int | str | None = 3, *, method: str = "GET", form: bool = False
    ) -> str:
        """``/new`` (recorded); returns the token. The first one anchors the indexes.

        On a keys API there is no ``/new``: the token is a random directory whose
        ``_config/size`` is created the way users prepare a custom discovery URL.
        """
        if self.side.kind == "keys":
            return self._new_keys_token(size)
        params = {} if size is None or form else {"size": size}
        data = {"size": size} if form and size is not None else None
        reply = self.send(self.session, method, "/new", params, data)
        token = reply.text.rsplit("/", 1)[-1]
        assert reply.status == 200 and TOKEN_RE.fullmatch(token), (
            f"[{self.side.name}] /new failed: {reply.status} {reply.text!r}"
        )
        self.name_token(token)
        self.record(reply, params, data, False, 200)
        if self.anchor is None:
            size_reply = self.send(self.session, "GET", f"/{token}/_config/size")
            self.set_anchor(size_reply.json()["node"]["createdIndex"])
            self.record(size_reply, {}, None, False, 200)
        return token

    def _new_keys_token(self, size: int | str | None) -> str:
        token = secrets.token_hex(16)
        self.name_token(token)
        value = {"value": "3" if size is None else str(size)}
        params = {"prevExist": "false"}
        reply = self.send(self.session, "PUT", f"/{token}/_config/size", params, value)
        assert reply.status == 201, f"[{self.side.name}] size key: {reply.status} {reply.text!r}"
        if self.anchor is None:
            self.set_anchor(reply.json()["node"]["createdIndex"])
        self.record(reply, params, value, False, 201)
        return token

    def stream(
        self,
        path: str,
        params: Mapping[str, Any],
        count: int,
        *,
        registered: bool = True,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Stream:
        """Start a ``stream=true`` watch that collects ``count`` events (JSON lines);
        with ``registered`` returns once the store holds it. Collect with
        :meth:`Stream.result`."""
        before = self.side.watcher_count()
        stream = Stream(self, path, {"wait": "true", "stream": "true", **params}, count, timeout)
        stream.start()
        if registered:
            self._wait_count(before + 1)
        return stream

    def note(self, label: str, value: Any) -> None:
        """Record a fact the scenario computed (compared like any reply)."""
        self.steps.append({"note": label, "value": value})

    def close(self) -> None:
        for watch in self._watches:
            if watch._thread is not None:
                watch._thread.join(REQUEST_TIMEOUT + 1)
        self.session.close()

    # -- normalisation -----------------------------------------------------------------

    def _learn_ttls(self, params: Mapping[str, Any], data: Mapping[str, Any] | str | None) -> None:
        for source in (params, data if isinstance(data, Mapping) else {}):
            ttl = source.get("ttl")
            if ttl is not None and str(ttl).isdigit() and int(ttl) > 0:
                self._ttls.add(int(ttl))

    def record(
        self,
        reply: Reply,
        params: Mapping[str, Any],
        data: Mapping[str, Any] | str | None,
        sorted_listing: bool,
        expect: int | None,
    ) -> Step:
        issued = reply.text.rsplit("/", 1)[-1]
        if reply.path.split("?")[0].lstrip("/") == "new" and TOKEN_RE.fullmatch(issued):
            self.name_token(issued)  # however /new was reached
        step: Step = {"req": self._request_line(reply.method, reply.path, params, data)}
        step["status"] = reply.status
        step["headers"] = self._headers(reply.headers)
        content_type = reply.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            step.update(self._json_body(reply.body, sorted_listing))
        else:
            step["body"] = self.norm_text(reply.text)
        self.steps.append(step)
        # Violations are collected, not raised, so the transcript goes on and shows every
        # difference; run_scenario raises them together at the end.
        where = f"#{len(self.steps) - 1} [{self.side.name}] {reply.method} {reply.path}"
        if expect is not None and reply.status != expect:
            self.failures.append(f"{where}: expected {expect}, got {reply.status} {reply.text!r}")
        problems = raw_problems(reply, etcd=self.side.etcd_replies)
        if problems:
            self.failures.append(f"{where}: {'; '.join(problems)}: {reply.status} {reply.text!r}")
        return step

    def _request_line(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any],
        data: Mapping[str, Any] | str | None,
    ) -> str:
        def shown(fields: Mapping[str, Any]) -> dict[str, Any]:
            return {
                k: (self.rel(int(v)) if k in INDEX_PARAMS and str(v).isdigit() else v)
                for k, v in fields.items()
            }

        line = f"{method} {self.norm_path(path)}"
        if params:
            line += "?" + "&".join(f"{k}={v}" for k, v in shown(params).items())
        if data is not None:
            body = data if isinstance(data, str) else urlencode(shown(data))
            if len(body) > 200:  # keep diffs readable
                body = f"{body[:60]}...({len(body)} chars)"
            line += f" body={self.norm_text(body)}"
        return line

    def _headers(self, headers: Mapping[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in sorted(headers, key=str.lower):
            low = name.lower()
            if low in DROPPED_HEADERS:
                continue
            value: Any = headers[name]
            if low in PRESENCE_HEADERS:
                value = "<present>"
            elif low == "x-etcd-index":
                value = self.rel(int(value)) if str(value).isdigit() else value
            else:
                value = self.norm_text(value)
            out[name.title()] = value
        return out

    def _json_body(self, body: bytes, sorted_listing: bool) -> Step:
        if not body:  # HEAD
            return {"body": ""}
        try:
            parsed = json.loads(body)
        except ValueError as err:
            return {"body": f"<invalid JSON: {err}> {body[:200]!r}"}
        normalised = self._norm_json(parsed, sorted_listing)
        return {
            "body": json.dumps(normalised, separators=(",", ":"), ensure_ascii=False),
            "newline": body.endswith(b"\n"),
            "escapes": sorted(set(ESCAPE_RE.findall(body.decode("utf-8", "replace")))),
        }

    def _norm_json(self, value: Any, sorted_listing: bool) -> Any:
        if isinstance(value, list):
            items = [self._norm_json(v, sorted_listing) for v in value]
            return items
        if isinstance(value, str):
            return self.norm_text(value)
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in INDEX_FIELDS and isinstance(item, int) and not isinstance(item, bool):
                out[key] = self.rel(item)
            elif key == "expiration":
                out[key] = self._norm_expiration(item, value.get("ttl"))
            elif key == "ttl" and isinstance(item, int):
                out[key] = self._norm_ttl(item)
            elif key == "cause" and isinstance(item, str):
                out[key] = self._norm_cause(item, value.get("errorCode"))
            elif key == "nodes" and isinstance(item, list):
                nodes = [self._norm_json(v, sorted_listing) for v in item]
                raw_keys = [n.get("key", "") for n in item if isinstance(n, dict)]
                if sorted_listing:
                    # The order is part of the contract here; record whether it held.
                    out["(sorted by key)"] = raw_keys == sorted(raw_keys)
                else:
                    nodes.sort(key=lambda n: str(n.get("key", "")) if isinstance(n, dict) else "")
                out[key] = nodes
            else:
                out[key] = self._norm_json(item, sorted_listing)
        return out

    def _norm_expiration(self, value: Any, ttl: Any) -> str:
        if not isinstance(value, str) or not EXPIRATION_RE.match(value):
            return f"<EXP malformed: {value!r}>"
        whole, _, frac = value[:-1].partition(".")
        when = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.timezone.utc)
        left = when.timestamp() + float(f"0.{frac or '0'}") - time.time()
        # ttl = ceil(seconds left) on the server; a cached (history) copy may be older.
        if isinstance(ttl, int) and left > ttl + 1.0:
            return f"<EXP beyond ttl {ttl}>"
        return "<EXP>"

    def _norm_ttl(self, ttl: int) -> str | int:
        for asked in sorted(self._ttls):
            if asked - 1 <= ttl <= asked:
                return f"~{asked}"
        return ttl

    def _norm_cause(self, cause: str, code: Any) -> str:
        if code == 101:
            # "[prevValue != value] [prevIndex != modifiedIndex]": only all-digit pairs are
            # indexes (scenarios use non-numeric values).
            def pair(m: re.Match[str]) -> str:
                a, b = m.group(1), m.group(2)
                if a.isdigit() and b.isdigit():
                    return f"[{self.rel(int(a))} != {self.rel(int(b))}]"
                return m.group(0)

            return self.norm_text(re.sub(r"\[([^\]]*) != ([^\]]*)\]", pair, cause))
        if code == 401:
            return re.sub(
                r"\[(\d+)/(\d+)\]",
                lambda m: f"[{self.rel(int(m.group(1)))}/{self.rel(int(m.group(2)))}]",
                cause,
            )
        return self.norm_text(cause)


#: etcd's error code -> HTTP status table (v2error); every other code is a 400.
ERROR_STATUS = {100: 404, 102: 403, 108: 403, 101: 412, 105: 412, 110: 401, 300: 500, 301: 500}


def raw_problems(reply: Reply, *, etcd: bool = True) -> list[str]:
    """Properties every reply must have on both sides, whatever the other side says
    (``etcd``: the reply is etcd's own JSON, with its framing and headers)."""
    problems: list[str] = []
    length = reply.headers.get("Content-Length")
    if length is not None and reply.method != "HEAD" and int(length) != len(reply.body):
        problems.append(f"Content-Length {length} but {len(reply.body)} bytes")
    if not etcd:
        return problems
    if reply.method == "HEAD" or not reply.headers.get("Content-Type", "").startswith(
        "application/json"
    ):
        return problems
    if not reply.body.endswith(b"\n"):
        problems.append("JSON body without the trailing newline")
    if not str(reply.headers.get("X-Etcd-Index", "")).isdigit():
        problems.append("JSON reply without a numeric X-Etcd-Index")
    try:
        doc = json.loads(reply.body)
    except ValueError:
        return [*problems, "body is not JSON"]
    if "errorCode" in doc:
        status = ERROR_STATUS.get(doc["errorCode"], 400)
        if reply.status != status:
            problems.append(f"error {doc['errorCode']} must be HTTP {status}")
        if doc.get("index") != int(reply.headers.get("X-Etcd-Index", -1)):
            problems.append("error index differs from X-Etcd-Index")
        if "X-Raft-Index" in reply.headers:
            problems.append("error reply with X-Raft-Index")
    elif "action" in doc:
        # Watches and GETs answer 200; a PUT's status follows what it did.
        created = reply.method in ("PUT", "POST") and (
            doc["action"] == "create" or (doc["action"] == "set" and "prevNode" not in doc)
        )
        if reply.status != (201 if created else 200):
            problems.append(f"action {doc['action']} must be {201 if created else 200}")
        for name in ("X-Raft-Index", "X-Raft-Term", "X-Etcd-Cluster-Id"):
            if name not in reply.headers:
                problems.append(f"success reply without {name}")
    return problems


def _query_of(target: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))


def _asks_sorted(params: Mapping[str, Any]) -> bool:
    return str(params.get("sorted", "")).lower() in ("true", "1", "t")


def run_scenario(side: Side, scenario: Scenario) -> list[Step]:
    """Run ``scenario`` against ``side``; return the transcript (raises on its failures)."""
    recorder = Recorder(side)
    try:
        scenario(recorder)
        if recorder.failures:
            raise AssertionError("\n".join(recorder.failures))
    except BaseException as err:
        err.transcript = recorder.steps  # type: ignore[attr-defined]
        raise
    finally:
        recorder.close()
    return recorder.steps


def render(steps: list[Step]) -> list[str]:
    """One transcript as text lines, for a readable unified diff."""
    lines: list[str] = []
    for number, step in enumerate(steps):
        if "note" in step:
            lines.append(f"#{number} note {step['note']}: {step['value']!r}")
            continue
        if "error" in step:
            lines.append(f"#{number} ERROR {step['error']}")
            continue
        lines.append(f"#{number} {step['req']}")
        lines.append(f"    -> {step['status']}")
        for name, value in step["headers"].items():
            lines.append(f"    {name}: {value}")
        lines.append(f"    body: {step['body']}")
        for extra in ("newline", "escapes"):
            if extra in step:
                lines.append(f"    {extra}: {step[extra]!r}")
    return lines


def diff(a_name: str, a: list[Step], b_name: str, b: list[Step]) -> str:
    return "\n".join(
        difflib.unified_diff(render(a), render(b), fromfile=a_name, tofile=b_name, lineterm="")
    )


def count_requests(steps: list[Step]) -> int:
    return sum(1 for s in steps if "req" in s)


# -- the differential comparison (used by the ``discovery`` fixture) --------------------

SELFCHECK_ENV = "ETCD_DISCOVERY_CONFORMANCE_SELFCHECK"
#: A directory to write every rendered transcript to (for reading them by eye).
DUMP_ENV = "ETCD_DISCOVERY_CONFORMANCE_DUMP"

# (scenario id, side name, run number) -> what the run gave
_RUNS: dict[tuple[str, str, int], Outcome] = {}
#: Statistics for the final report: scenario id -> request steps compared, divergent?
COMPARED: dict[str, tuple[int, bool]] = {}


def side_for(request: pytest.FixtureRequest, name: str, kind: str = "discovery") -> Side:
    """The ``name`` ("fake"/"real") service: its discovery routes, or (``kind="keys"``)
    the etcd v2 keys API behind it (real etcd's own; the fake's ``/v2/keys``)."""
    if name == "real":
        real = request.getfixturevalue("real_service")
        etcd_url = real.etcd_url

        def real_watchers() -> int:
            stats = requests.get(f"{etcd_url}/v2/stats/store", timeout=5).json()
            return int(stats["watchers"])

        if kind == "keys":
            return Side("real", f"{etcd_url}/v2/keys", real_watchers, kind)
        return Side("real", real.url, real_watchers)
    if kind == "keys":
        fake = request.getfixturevalue("fake_keys_service")  # the keys API is opt-in
        return Side("fake", f"{fake.url}/v2/keys", lambda: int(fake.store.watcher_count), kind)
    fake = request.getfixturevalue("fake_service")
    url = fake.url
    return Side("fake", url, lambda: int(fake.store.watcher_count), kind)


@dataclass
class Outcome:
    """One scenario run on one side: its transcript, and what went wrong if anything."""

    steps: list[Step]
    error: BaseException | None = None

    def compared(self) -> list[Step]:
        """The transcript to compare: a crash (not a failed expectation) shows as a step."""
        if self.error is None or isinstance(self.error, AssertionError):
            return self.steps
        return [*self.steps, {"error": f"{type(self.error).__name__}: {self.error}"}]


def _run(side: Side, scenario: Scenario, run: int) -> Outcome:
    key = (f"{scenario.__module__}.{scenario.__qualname__}", f"{side.name}-{side.kind}", run)
    if key not in _RUNS:
        try:
            _RUNS[key] = Outcome(run_scenario(side, scenario))
        except Exception as err:
            _RUNS[key] = Outcome(list(getattr(err, "transcript", [])), err)
        dump_dir = os.environ.get(DUMP_ENV)
        if dump_dir:
            os.makedirs(dump_dir, exist_ok=True)
            kind = "" if side.kind == "discovery" else f".{side.kind}"
            name = f"{scenario.__qualname__}{kind}.{side.name}{'.2' if run else ''}.txt"
            with open(os.path.join(dump_dir, name), "w", encoding="utf-8") as out:
                lines = render(_RUNS[key].steps)
                if _RUNS[key].error is not None:
                    lines.append(f"ERROR {_RUNS[key].error!r}")
                out.write("\n".join(lines) + "\n")
    return _RUNS[key]


@dataclass
class Discovery:
    """What a conformance test gets: its side, plus :meth:`check` for the comparison."""

    side: Side
    request: pytest.FixtureRequest

    @property
    def url(self) -> str:
        return self.side.url

    @property
    def session(self) -> requests.Session:
        return self.side.session()

    def check(self, scenario: Scenario) -> list[Step]:
        """Run ``scenario`` here and on the other side; fail if this side broke one of
        the scenario's own expectations or if the normalised transcripts differ (with a
        unified diff, real first)."""
        __tracebackhide__ = True
        mine = _run(self.side, scenario, 0)
        if os.environ.get(SELFCHECK_ENV) == "1":
            other_side, run = self.side, 1
        else:
            other = "real" if self.side.name == "fake" else "fake"
            other_side, run = side_for(self.request, other, self.side.kind), 0
        theirs = _run(other_side, scenario, run)
        real, fake = (mine, theirs) if self.side.name == "real" else (theirs, mine)
        real_steps, fake_steps = real.compared(), fake.compared()
        name = f"{scenario.__module__}.{scenario.__qualname__}"
        if self.side.kind != "discovery":
            name += f" ({self.side.kind})"
        COMPARED[name] = (count_requests(real_steps), real_steps != fake_steps)
        problems: list[str] = []
        if mine.error is not None:
            problems.append(f"{self.side.name} side: {type(mine.error).__name__}: {mine.error}")
        if real_steps != fake_steps:
            other_name = "fake" if run == 0 else "real (2nd run)"
            problems.append(
                f"fake and real differ for {scenario.__qualname__}:\n"
                + diff("real", real_steps, other_name, fake_steps)
            )
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)
        return mine.steps
