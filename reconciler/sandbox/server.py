"""The sandbox: one synchronous core over SQLite, served as ASGI or as in-process httpx transports.

`Sandbox.handle(method, path, query, body) -> (status, headers, body)` is the whole emulator; the
ASGI app (served by uvicorn for `reconciler sandbox serve`) and the httpx transports (the embedded
`sandbox` target) are thin adapters around it. Requests are handled one at a time under a lock, each
in one SQLite transaction, so concurrent callers and a second process on the same file are safe.

Order of checks for a Tencent IM call (`POST /v4/{service}/{command}?sdkappid=&identifier=&...`):
1. unknown service/command: 60009; method other than POST: 60002.
2. per-API rate limit (token bucket holding one second of calls): 60007.
3. fault injection (below).
4. `sdkappid` missing 60012, not this app 70020; `identifier`/`usersig` missing 60004; UserSig
   checked with `reconciler.usersig.verify` (70001, 70003, 70009, 70013, 70014); an identifier that
   is not the App admin: 70403 on `im_open_login_svc`, 60010 elsewhere; an official-account
   command of an edition without them (`Behaviour.official_accounts` off): 131000.
5. the body is read as JSON whatever the Content-Type says; not a JSON object: 60003.
6. the command (see `accounts.py`, `official.py` and `messages.py` for rules and codes).
Business errors are HTTP 200 with `ActionStatus: FAIL`; a failed command changes nothing.

WeChat (`/cgi-bin/...`): access token checked first (see `wechat.py`), then quotas, then (for an
unverified account, `Behaviour.wechat_verified` off) 48001 on the mass-send family, then the body
(47001 if not JSON). The per-second bucket applies to WeChat only when `calls_per_second` is set
(answering 45011); by default WeChat has just its documented minute and daily quotas.

Rate limits: `calls_per_second=None` uses the vendor's per-API limits (200/s; 100/s for
`multiaccount_import`, `account_check`, `account_delete`, reference section 1.5), a number sets
every API to that rate, 0 switches the per-second limit off. Buckets run on the injected clock.

Faults (`fail_rate`, seeded by `seed`, so the same sequence of calls meets the same faults): each
routed call draws once; a call that fails the draw gets, with equal odds of 1/2, 1/4, 1/4:
- `vendor`: a retryable vendor error, nothing applied: OA commands 10004 or 20005 (the recall
  command, whose page gives 10004 another meaning, 10002 or 20005), account commands 70500 or
  70169, WeChat errcode -1 "system error";
- `http_before`: HTTP 502 or 503 with an HTML body, nothing applied;
- `http_after`: the call IS applied and committed, then answered HTTP 502 or 503 — the response
  was lost on the way back, as real networks do; idempotent clients must converge anyway.

Request bodies: at most `defaults.MAX_BODY_BYTES` (1 MiB, three times the vendors' largest
request) are read; a larger body is answered HTTP 413 with a JSON `error`, is neither routed nor
counted, and over HTTP closes the connection without the rest being read (`asgi.py`), whether its
size was declared, chunked or lied about.

Sandbox-only endpoints (never rate-limited, delayed or faulted; no vendor client calls them):
- `GET /__sandbox/stats` → `{"calls": {"<service>/<command>" | "cgi-bin/<path>": n}, "rate_limited":
  n, "faults": n}` (counts since start or the last reset, every routed call counted);
- `POST /__sandbox/stats/reset`;
- `GET /__sandbox/log?since=N&limit=M` → `{"entries": [...], "next": id}`: the persistent call log
  (table `call_log` in the SQLite file). Each entry has `id`, `time`, `api`, `http_status`, `code`
  (vendor code, 0 on success), `fault` (`""`, `vendor`, `http_before`, `http_after`) and `effects`,
  the state changes the call made, e.g. `["account_created", "@TOA#_news"]`,
  `["subscriber_added", "@TOA#_news", "alice"]`, `["subscriber_removed", ...]`,
  `["user_imported", "alice"]`. A subscriber added twice shows up as two `subscriber_added` effects.
- `/__sandbox/clock`, `/__sandbox/behaviour`, `/__sandbox/placeholder`: the test controls (the
  sandbox's clock offset and the vendor behaviours a test may choose), see `behaviour.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs

import httpx

from reconciler import usersig
from reconciler.sandbox import accounts, asgi, defaults, messages, official, store, wechat
from reconciler.sandbox.asgi import Receive, Scope, Send
from reconciler.sandbox.behaviour import Behaviour, Controls
from reconciler.sandbox.common import JSON, ApiError, Call, Handler

log = logging.getLogger(__name__)

Reply = tuple[int, list[tuple[str, str]], bytes]

ACCOUNT_SERVICE: Final = "im_open_login_svc"
OA_SERVICE: Final = "official_account_open_http_svc"
IM_HANDLERS: Final[dict[str, dict[str, Handler]]] = {
    ACCOUNT_SERVICE: accounts.HANDLERS,
    OA_SERVICE: {**official.HANDLERS, **messages.HANDLERS},
}
IM_RATES: Final[dict[str, int]] = {
    **{f"{ACCOUNT_SERVICE}/{c}": r for c, r in accounts.RATES.items()},
    **{f"{OA_SERVICE}/{c}": r for c, r in official.RATES.items()},
    **{f"{OA_SERVICE}/{c}": r for c, r in messages.RATES.items()},
}
_JSON_HEADERS: Final = [("content-type", "application/json; charset=utf-8")]
# WeChat answers with this exact (non-standard) content type.
_WX_HEADERS: Final = [("content-type", "application/json; encoding=utf-8")]
_HTML_HEADERS: Final = [("content-type", "text/html; charset=utf-8")]
_HTTP_FAULTS: Final = {502: b"Bad Gateway", 503: b"Service Unavailable"}


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    """How a sandbox behaves: where its state lives, what it accepts, its latency and faults."""

    db_path: Path | str = defaults.DB_PATH
    sdkappid: int = defaults.SDKAPPID
    secret_key: str = defaults.SECRET_KEY
    admin: str = defaults.ADMIN
    wechat_appid: str = defaults.WECHAT_APPID
    wechat_secret: str = defaults.WECHAT_SECRET
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    seed: int = 0
    calls_per_second: float | None = None
    clock: Callable[[], float] = field(default=time.time)
    behaviour: Behaviour = field(default_factory=Behaviour)


@dataclass(slots=True)
class _Bucket:
    rate: float
    tokens: float
    stamp: float


class _Limiter:
    """Token buckets per API, each holding one second of calls, refilled from the clock."""

    def __init__(self, override: float | None) -> None:
        self._override = override
        self._buckets: dict[str, _Bucket] = {}

    def rate(self, api: str) -> float | None:
        if self._override is not None:
            return self._override or None
        return IM_RATES.get(api)

    def take(self, api: str, now: float) -> bool:
        rate = self.rate(api)
        if rate is None:
            return True
        bucket = self._buckets.get(api)
        if bucket is None:
            bucket = self._buckets[api] = _Bucket(rate, rate, now)
        # A clock set back (the sandbox's offset) refills nothing and takes nothing away.
        bucket.tokens = min(rate, bucket.tokens + max(0.0, now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


@dataclass(slots=True)
class _Stats:
    calls: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    faults: int = 0


def _dumps(doc: JSON) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _im_fail(code: int, info: str) -> bytes:
    return _dumps({"ActionStatus": "FAIL", "ErrorCode": code, "ErrorInfo": info})


def _wx_fail(code: int, info: str, extra: JSON | None = None) -> bytes:
    return _dumps({"errcode": code, "errmsg": info, **(extra or {})})


class Sandbox:
    """The emulator: one instance per SQLite file; see the module docstring for its behaviour."""

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self.options = options or SandboxOptions()
        self._db = store.connect(self.options.db_path)
        self._lock = threading.Lock()
        #: per path: what its calls cost on top of their latency wait (a moving average)
        self._overhead: dict[str, float] = {}
        self._limiter = _Limiter(self.options.calls_per_second)
        self._rng = random.Random(self.options.seed)
        self._stats = _Stats()
        self.controls = Controls(self.options.behaviour)

    # -- the core -------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, body: bytes) -> Reply:
        """Answer one HTTP request; the only entry point of the emulator."""
        if len(body) > defaults.MAX_BODY_BYTES:
            return asgi.too_large()
        if path.startswith("/__sandbox/"):
            return self._admin(method, path, query, body)
        api = _route(path)
        if api is None:
            if path.startswith("/v4/"):
                # Reference section 1.6: 60009 "request resource error" for a wrong service/command.
                return (
                    200,
                    _JSON_HEADERS,
                    _im_fail(60009, "request resource error: unknown command"),
                )
            return 404, _JSON_HEADERS, _dumps({"error": f"no such endpoint: {path}"})
        with self._lock:
            status, headers, out = self._call(api, method, path, query, body)
            now = self.controls.now(self.options.clock())
        # The vendor's Date header on the sandbox's clock: how a client sees a skewed vendor clock.
        return status, [*headers, ("date", formatdate(now, usegmt=True))], out

    def _call(self, api: str, method: str, path: str, query: str, body: bytes) -> Reply:
        is_wx = api.startswith("cgi-bin/")
        headers = _WX_HEADERS if is_wx else _JSON_HEADERS
        now = self.controls.now(self.options.clock())
        self._stats.calls[api] = self._stats.calls.get(api, 0) + 1
        if not self._limiter.take(api, now):
            self._stats.rate_limited += 1
            code = 45011 if is_wx else 60007
            out = (
                _wx_fail(code, "api freq out of limit")
                if is_wx
                else _im_fail(code, "REST API call frequency over the limit")
            )
            self._log(now, api, 200, code, "", [])
            return 200, headers, out
        fault = self._draw_fault()
        if fault == "vendor":
            code = self._fault_code(api)
            out = (
                _wx_fail(code, "system error")
                if is_wx
                else _im_fail(code, "server internal error, please retry")
            )
            self._log(now, api, 200, code, fault, [])
            return 200, headers, out
        if fault == "http_before":
            status = self._rng.choice((502, 503))
            self._log(now, api, status, 0, fault, [])
            return status, _HTML_HEADERS, _html(status)
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        call = Call(self._db, now, self.options.admin, self.controls.behaviour)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("SAVEPOINT command")
            code = 0
            try:
                if is_wx:
                    result = self._wechat(call, api[len("cgi-bin/") :], method, params, body)
                    out = _dumps(result)
                else:
                    result = self._im(call, api, method, params, body)
                    out = _dumps({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", **result})
            except ApiError as exc:
                self._db.execute("ROLLBACK TO command")
                call.effects.clear()
                code = exc.code
                out = _wx_fail(exc.code, exc.info, exc.extra) if is_wx else _im_fail(code, exc.info)
            self._db.execute("RELEASE command")
            status = 200
            if call.lose_answer and not fault:
                fault = "http_after"
            if fault == "http_after":
                status = self._rng.choice((502, 503))
                out, headers = _html(status), _HTML_HEADERS
            store.log_call(
                self._db,
                time=now,
                api=api,
                http_status=status,
                code=code,
                fault=fault,
                effects=call.effects,
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return status, headers, out

    def _draw_fault(self) -> str:
        if self.options.fail_rate <= 0 or self._rng.random() >= self.options.fail_rate:
            return ""
        self._stats.faults += 1
        kind = self._rng.random()
        if kind < 0.5:
            return "vendor"
        return "http_before" if kind < 0.75 else "http_after"

    def _fault_code(self, api: str) -> int:
        if api.startswith("cgi-bin/"):
            return -1
        if api.startswith(ACCOUNT_SERVICE):
            return self._rng.choice((70500, 70169))
        if api.endswith("/official_account_msg_recall"):
            return self._rng.choice((10002, 20005))
        return self._rng.choice((10004, 20005))

    def _log(
        self, now: float, api: str, status: int, code: int, fault: str, effects: list[list[str]]
    ) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            store.log_call(
                self._db,
                time=now,
                api=api,
                http_status=status,
                code=code,
                fault=fault,
                effects=effects,
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _im(self, call: Call, api: str, method: str, params: dict[str, str], body: bytes) -> JSON:
        service, command = api.split("/", 1)
        if method != "POST":
            raise ApiError(60002, "HTTP parse error: REST API calls must be POST")
        sdkappid = params.get("sdkappid")
        if not sdkappid:
            raise ApiError(60012, "REST API requires sdkappid in the URL")
        if sdkappid != str(self.options.sdkappid):
            raise ApiError(70020, "SDKAppID does not exist")
        identifier, sig = params.get("identifier"), params.get("usersig")
        if not identifier or not sig:
            raise ApiError(60004, "identifier and usersig are required in the URL")
        try:
            usersig.verify(
                sig,
                sdkappid=self.options.sdkappid,
                key=self.options.secret_key,
                identifier=identifier,
                now=int(call.now),
            )
        except usersig.UserSigError as exc:
            raise ApiError(int(exc.reason), str(exc)) from exc
        if identifier != self.options.admin:
            code = 70403 if service == ACCOUNT_SERVICE else 60010
            raise ApiError(code, "request requires App admin privilege")
        if service == OA_SERVICE and not call.behaviour.official_accounts:
            raise ApiError(131000, "this AppId has not enabled the official account service")
        doc = _parse_json(body)
        if doc is None:
            raise ApiError(60003, "HTTP request JSON parse error")
        return IM_HANDLERS[service][command](call, doc)

    def _wechat(
        self, call: Call, endpoint: str, method: str, params: dict[str, str], body: bytes
    ) -> JSON:
        creds = (self.options.wechat_appid, self.options.wechat_secret)
        if endpoint == "token":
            return wechat.token(call, params, creds)
        if method != "POST":
            raise ApiError(43002, "require POST method")
        if endpoint != "stable_token":
            wechat.check_token(call, params.get("access_token"))
            wechat.minute_limit(call, endpoint)
            if endpoint.startswith("message/mass/") and not call.behaviour.wechat_verified:
                raise ApiError(48001, "api unauthorized")
        if not body.strip():
            if endpoint != "message/mass/speed/get":
                raise ApiError(44002, "empty post data")
            doc: JSON | None = {}
        else:
            doc = _parse_json(body)
        if doc is None:
            raise ApiError(47001, "data format error")
        if endpoint == "stable_token":
            return wechat.stable_token(call, doc, creds)
        return wechat.BODY_HANDLERS[endpoint](call, doc)

    # -- sandbox-only endpoints -------------------------------------------------------------

    def stats(self) -> JSON:
        """Call counts per API since start or the last reset (what `/__sandbox/stats` serves)."""
        with self._lock:
            return {
                "calls": dict(sorted(self._stats.calls.items())),
                "rate_limited": self._stats.rate_limited,
                "faults": self._stats.faults,
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = _Stats()

    def _admin(self, method: str, path: str, query: str, body: bytes) -> Reply:
        if path == "/__sandbox/stats" and method == "GET":
            return 200, _JSON_HEADERS, _dumps(self.stats())
        if path == "/__sandbox/stats/reset" and method == "POST":
            self.reset_stats()
            return 200, _JSON_HEADERS, _dumps({"ok": True})
        if path == "/__sandbox/log" and method == "GET":
            params = {k: v[-1] for k, v in parse_qs(query).items()}
            try:
                since = int(params.get("since", "0"))
                limit = min(int(params.get("limit", "1000")), 10000)
            except ValueError:
                return 400, _JSON_HEADERS, _dumps({"error": "since and limit must be integers"})
            with self._lock:
                return 200, _JSON_HEADERS, _dumps(store.read_log(self._db, since, limit))
        with self._lock:  # clock, behaviour and placeholder controls (behaviour.py)
            answer = self.controls.admin(self._db, self.options.clock(), method, path, body)
        if answer is not None:
            return answer[0], _JSON_HEADERS, _dumps(answer[1])
        return 404, _JSON_HEADERS, _dumps({"error": f"no such endpoint: {method} {path}"})

    # -- adapters ---------------------------------------------------------------------------

    async def asgi_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3 application (what uvicorn serves for `reconciler sandbox serve`)."""
        await asgi.app(self, scope, receive, send)

    async def handle_async(self, method: str, path: str, query: str, body: bytes) -> Reply:
        """`handle` at the end of the configured latency (awaited: never blocks the event loop).

        The latency is the round trip a client sees, and a vendor's own work is part of it: the
        call waits the latency less what its path's calls have been costing on top of their wait
        (the handling, and an event loop waking up to a millisecond late), then is handled. Its
        answer so leaves about `latency_ms` after the request arrived, and a chain of dependent
        calls costs one latency per call, not latency plus overhead.
        """
        if self.options.latency_ms <= 0 or path.startswith("/__sandbox/"):
            return self.handle(method, path, query, body)
        latency = self.options.latency_ms / 1000
        arrived = time.monotonic()
        wait = max(0.0, latency - self._overhead.get(path, 0.0))
        await asyncio.sleep(wait)
        reply = self.handle(method, path, query, body)
        extra = time.monotonic() - arrived - wait
        self._overhead[path] = 0.8 * self._overhead.get(path, extra) + 0.2 * extra
        return reply

    def transport(self) -> httpx.BaseTransport:
        """An in-process sync httpx transport; any base URL host works, routing is by path."""
        return _SyncTransport(self)

    def async_transport(self) -> httpx.AsyncBaseTransport:
        """An in-process async httpx transport; any base URL host works, routing is by path."""
        return _AsyncTransport(self)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _SyncTransport(httpx.BaseTransport):
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        path = request.url.path
        if self._sandbox.options.latency_ms > 0 and not path.startswith("/__sandbox/"):
            time.sleep(self._sandbox.options.latency_ms / 1000)
        status, headers, out = self._sandbox.handle(
            request.method, path, request.url.query.decode("ascii"), body
        )
        return httpx.Response(status, headers=headers, content=out, request=request)


class _AsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        status, headers, out = await self._sandbox.handle_async(
            request.method, request.url.path, request.url.query.decode("ascii"), body
        )
        return httpx.Response(status, headers=headers, content=out, request=request)


def _route(path: str) -> str | None:
    """The API name of a vendor path (`<service>/<command>` or `cgi-bin/<endpoint>`), or None."""
    parts = path.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "v4":
        service, command = parts[1], parts[2]
        if command in IM_HANDLERS.get(service, {}):
            return f"{service}/{command}"
        return None
    if parts[0] == "cgi-bin" and "/".join(parts[1:]) in wechat.ENDPOINTS:
        return "/".join(parts)
    return None


def _parse_json(body: bytes) -> JSON | None:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _html(status: int) -> bytes:
    reason = _HTTP_FAULTS[status].decode("ascii")
    return f"<html><body><h1>{status} {reason}</h1></body></html>".encode("ascii")
