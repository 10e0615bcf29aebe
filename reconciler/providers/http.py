"""What both vendor clients share: pacing, retries, timeouts, redaction, endpoint rules.

One `Pacer` per run is shared by the Tencent and WeChat clients: it keeps every API under its
calls-per-second ceiling (evenly spaced, so the vendor's token bucket never trips) and bounds the
calls in flight. `Caller` sends one logical call through it, retrying transient faults with
exponential backoff and jitter, and turns everything that goes wrong into a `ProviderError` whose
text holds no secret.

Retries run on `tenacity`: an attempt that raises `Transient` (decided from the decoded vendor
code) is retried; every attempt re-enters the pacer; sleep and jitter are injected for tests.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
)

from reconciler.errors import ConfigError, ProviderError
from reconciler.providers.wire import HttpxWire, Wire, is_loopback_host
from reconciler.secret import REDACTED, Secret, SecretSet

logger = logging.getLogger(__name__)

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: Query parameters that carry a credential on the vendors' URLs (reference: Tencent 1.1 `usersig`;
#: WeChat 1 `access_token`, 2.1 `secret`).
SECRET_PARAMS: Final = ("usersig", "access_token", "secret", "appsecret")
_SECRET_PARAM_RE: Final = re.compile(
    r"(?i)\b(" + "|".join(SECRET_PARAMS) + r")(=|%3D|\"\s*:\s*\"|'\s*:\s*')([^&\s\"']*)"
)

#: HTTP statuses worth another attempt (doocs `HttpUtil`: 408, 429 and every 5xx; reference 1.4).
RETRY_STATUSES: Final = frozenset({408, 429})

DEFAULT_TIMEOUT: Final = 10.0
#: The largest answer read. The biggest honest one is a page of 200 subscribers or accounts with
#: 3,000-byte CustomStrings (reference 4.2, 4.3): well under 2 MiB. Anything larger is a broken
#: or hostile server (or a compression bomb), refused before it fills memory.
MAX_ANSWER_BYTES: Final = 8 * 1024 * 1024
#: Waits shorter than this are not slept (see `Pacer._reserve`).
SLACK: Final = 0.001


def base_url(http: httpx.AsyncClient | Wire) -> str:
    """The base URL an httpx client was given ("" for none, or for a `Wire`)."""
    return str(http.base_url) if isinstance(http, httpx.AsyncClient) else ""


def redact(text: str, secrets: Iterable[str | Secret] = ()) -> str:
    """Return `text` with every given secret and every credential query parameter masked."""
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            text = text.replace(value, REDACTED)
    return _SECRET_PARAM_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


class _RedactingFilter(logging.Filter):
    """Masks credentials in records of loggers we do not own (httpx logs every request URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER: Final = _RedactingFilter()


def install_log_redaction(names: Iterable[str] = ("httpx", "httpcore", "aiohttp")) -> None:
    """Attach the credential filter to the HTTP libraries' loggers (idempotent).

    httpx logs `HTTP Request: POST https://…?usersig=…` at INFO; without this, `-v` would print
    the UserSig and the WeChat access token.
    """
    for name in names:
        target = logging.getLogger(name)
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)


def is_loopback(url: str) -> bool:
    """True when `url` points at this machine (127.0.0.0/8, ::1 or `localhost`)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # "Invalid IPv6 URL": an unclosed `[`
        return False
    return is_loopback_host(host)


def check_endpoint(url: str, *, verify_tls: bool = True) -> str:
    """Validate a vendor endpoint and return it without a trailing slash.

    Credentials travel in the query string, so anything but loopback must be `https` with TLS
    verification on; plain `http` or `verify_tls=False` is accepted only for a loopback endpoint
    (a local `reconciler sandbox serve`).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ConfigError(f"endpoint {redact(url)!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"endpoint {redact(url)!r} is not an http(s) URL")
    if not is_loopback(url):
        if parts.scheme != "https":
            raise ConfigError(
                f"endpoint {redact(url)!r} must use https: credentials travel in the URL"
            )
        if not verify_tls:
            raise ConfigError(
                f"TLS verification cannot be turned off for {parts.hostname}; only loopback"
                " endpoints may skip it"
            )
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter, as the doocs SDK does (reference 1.4).

    Attempt `n` (1-based) that failed is followed by a pause of
    `min(cap, base * 2**n * uniform(*jitter))`: about 0.4, 0.8, 1.6, 3.2 s with the defaults.
    """

    attempts: int = 5
    base: float = 0.2
    cap: float = 10.0
    jitter: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("a retry policy needs at least one attempt")

    def delay(self, attempt: int, rng: random.Random) -> float:
        return min(self.cap, self.base * 2.0**attempt * rng.uniform(*self.jitter))


class Pacer:
    """Per-API rate limits and one bound on calls in flight, shared by every client of a run.

    Rates are enforced by spacing calls evenly (GCRA: each API keeps the earliest time its next
    call may start), so a run never bursts above `calls_per_second` even for a moment. An API may
    carry a lower vendor ceiling (`slot(api, ceiling=100)`), which wins.
    """

    def __init__(
        self,
        calls_per_second: float = 200.0,
        concurrency: int = 16,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if calls_per_second <= 0:
            raise ConfigError("limits.callsPerSecond must be positive")
        if concurrency < 1:
            raise ConfigError("limits.concurrency must be at least 1")
        self.calls_per_second = calls_per_second
        self.concurrency = concurrency
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}
        self._semaphore = asyncio.Semaphore(concurrency)
        #: one lock per API: its calls wait for their start times in turn, holding no place
        self._turns: dict[str, asyncio.Lock] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def rate(self, ceiling: float | None = None) -> float:
        """The effective calls per second for an API whose vendor limit is `ceiling`."""
        return self.calls_per_second if ceiling is None else min(self.calls_per_second, ceiling)

    async def _reserve(self, api: str, ceiling: float | None) -> None:
        # No await between reading and writing `_next`: reservations are atomic on the loop, so
        # concurrent callers get distinct, evenly spaced start times.
        now = self._clock()
        interval = 1.0 / self.rate(ceiling)
        due = self._next.get(api, now)
        start = max(now, due)
        # A call that comes less than half an interval after its API's due time (the loop woke
        # it or handed it the API's turn late) keeps the schedule: the next call is due one
        # interval after this one was due, not after it came, or every late wake-up would be
        # lost for good and a busy run would fall short of its rate (bench/scale.py: 188/s of
        # 200/s). Calls stay at least half an interval apart, and no second holds more than
        # `calls_per_second` of them (plus the one on its edge). Later than that (an idle API)
        # the schedule starts afresh, so idleness never banks a burst.
        late = now - due
        self._next[api] = (due if 0 < late < interval / 2 else start) + interval
        # The event loop cannot sleep for less than about a millisecond (epoll's resolution), so
        # shorter waits are skipped: the schedule still advances by one interval per call, so
        # the rate over any second is unchanged and a call starts at most SLACK early.
        if start - now >= SLACK:
            await self._sleep(start - now)

    @asynccontextmanager
    async def slot(self, api: str, ceiling: float | None = None) -> AsyncIterator[None]:
        """Wait for `api`'s next start time, then take one of the `concurrency` places.

        A call waiting for its own API's budget holds no place: were it to, the calls queued on
        one busy API (2,000 `add_subscriber` batches) would keep the places from every other API
        whose budget is idle, and a run would go at one API's rate instead of at all of them
        (bench/scale.py, S1). Calls of one API take their turns in order (`_turns`), one at a
        time, so a queue of them never leaves together in a burst.
        """
        turn = self._turns.get(api)
        if turn is None:
            turn = self._turns[api] = asyncio.Lock()
        async with turn:
            await self._reserve(api, ceiling)
            if self._semaphore.locked():
                # Every place is taken: this call starts late, and the next call of its API is
                # spaced from when it really starts (the schedule alone would let them bunch).
                await self._semaphore.acquire()
                self._next[api] = max(self._next[api], self._clock() + 1.0 / self.rate(ceiling))
            else:
                await self._semaphore.acquire()  # a free place: taken at once
        # No await from here to the `try`: the place is released whatever happens.
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
            self._semaphore.release()


class Transient(Exception):
    """An attempt failed in a way another attempt may fix; carries the redacted reason."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason)


Decode = Callable[[bytes], Any]

#: Any JSON document, as `json.loads` reads it in under half the time (a page of 200
#: subscribers: 0.04 ms instead of 0.1 ms). Stricter than `json.loads`: `NaN`, numbers beyond a
#: double's range and lone surrogates (`"\ud800"`) are refused as not JSON.
decode_json: Final[Decode] = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class Request:
    """One logical vendor call, described without its credentials."""

    api: str  # the pacing and counting key, e.g. `add_subscriber`
    action: str  # what the error names, e.g. `add_subscriber`
    method: str
    path: str
    object_id: str = ""
    ceiling: float | None = None
    #: kept out of repr: the WeChat token request carries the AppSecret in its body
    body: Mapping[str, Any] | None = field(default=None, repr=False)
    #: reads the answer's bytes (raising a ValueError if they are not JSON); a read
    #: that knows the answer's shape may decode it straight into records
    decode: Decode = field(default=decode_json, repr=False, compare=False)
    #: the answer is a credential (the WeChat token): it is not scrubbed of the credentials the
    #: client holds, since the vendor may well hand back the token it handed out before
    issues_credential: bool = field(default=False, repr=False)


Params = Callable[[], Mapping[str, str]]
Check = Callable[[Request, dict[str, Any]], None]


class Caller:
    """Sends logical calls: paced, timed out, retried, decoded, errors mapped and redacted.

    `vendor` names the API family in errors (`tencent`, `wechat`). `secrets` holds every credential
    the client has held or sent (keys, every UserSig and access token, renewed ones included).
    Each answer's raw bytes are scrubbed of them before anything decodes it, and every message is
    masked again (with any credential query parameter) before it is formatted into an error.
    """

    def __init__(
        self,
        http: httpx.AsyncClient | Wire,
        *,
        vendor: str,
        endpoint: str,
        pacer: Pacer,
        secrets: SecretSet,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        sleep: Sleep = asyncio.sleep,
        setting: str = "",
    ) -> None:
        #: what carries the bytes: an injected httpx client (the embedded sandbox, tests), or the
        #: aiohttp wire `connect()` gives a `tencent` target
        self.wire: Wire = HttpxWire(http) if isinstance(http, httpx.AsyncClient) else http
        self.vendor = vendor
        self.endpoint = endpoint
        #: the configuration that chose `endpoint`, as a message names it
        self.setting = setting or f"the {vendor} endpoint"
        self.pacer = pacer
        self.retry = retry or RetryPolicy()
        self.rng = rng or random.Random()
        self.timeout = timeout
        self.max_answer_bytes = MAX_ANSWER_BYTES
        self.secrets = secrets
        self._sleep = sleep
        #: requests sent per API, retries included: what the vendor's rate limit sees
        self.calls: Counter[str] = Counter()
        #: attempts that failed transiently and were retried, per API
        self.retries: Counter[str] = Counter()
        install_log_redaction()

    def redact(self, text: str) -> str:
        return redact(self.secrets.redact(text))

    def error(
        self,
        request: Request,
        message: str,
        code: int | None = None,
        *,
        maybe_applied: bool = False,
    ) -> ProviderError:
        return ProviderError(
            self.redact(message),
            api=self.vendor,
            action=request.action,
            object_id=request.object_id,
            code=code,
            maybe_applied=maybe_applied,
        )

    async def call(
        self, request: Request, params: Params, check: Check | None = None
    ) -> dict[str, Any]:
        """Send `request` until it succeeds or fails for good; return the decoded JSON object.

        `params()` is called per attempt (so a renewed credential is used); `check` inspects the
        decoded body and raises `Transient` (retry) or `ProviderError` (give up).
        """
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=lambda state: self.retry.delay(state.attempt_number, self.rng),
            retry=retry_if_exception_type(Transient),
            sleep=self._sleep,
            before_sleep=lambda state: self._note_retry(request, state),
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(request, params(), check)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            assert isinstance(last, Transient)  # only Transient is retried
            raise self.error(
                request,
                f"gave up after {self.retry.attempts} attempts: {last.reason}",
                last.code,
                maybe_applied=True,
            ) from last
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _note_retry(self, request: Request, state: RetryCallState) -> None:
        self.retries[request.api] += 1
        outcome = state.outcome
        reason = outcome.exception() if outcome is not None else None
        logger.info(
            "%s %s: %s; retry %d/%d in %.2fs",
            self.vendor,
            request.action,
            reason.reason if isinstance(reason, Transient) else reason,
            state.attempt_number,
            self.retry.attempts - 1,
            state.upcoming_sleep,
        )

    async def _attempt(
        self, request: Request, params: Mapping[str, str], check: Check | None
    ) -> dict[str, Any]:
        async with self.pacer.slot(request.api, request.ceiling):
            self.calls[request.api] += 1
            try:
                # httpx's `timeout` bounds each wait, and its read timeout restarts with every
                # byte: a server dripping its answer would never end. The whole exchange gets
                # twice `timeout` (so a single silent wait still reports as httpx's own timeout).
                async with asyncio.timeout(2 * self.timeout):
                    status, content = await self._exchange(request, params)
            except TimeoutError as exc:
                raise Transient(
                    f"timed out: no complete answer within {2 * self.timeout:g}s"
                ) from exc
            except httpx.TimeoutException as exc:
                raise Transient(f"timed out ({self._sanitize(exc)})") from exc
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                unknown = _unknown_host(exc)
                if unknown is not None:
                    # Not a blip either: the name does not exist (a temporary DNS failure,
                    # EAI_AGAIN, is retried). Say which setting named the host.
                    host = urlsplit(self.endpoint).hostname
                    raise self.error(
                        request,
                        f"the host {host} does not resolve ({unknown}); check {self.setting}",
                    ) from exc
                untrusted = _certificate_failure(exc)
                if untrusted is not None:
                    # Not a blip: another attempt meets the same certificate.
                    host = urlsplit(self.endpoint).hostname
                    raise self.error(
                        request, f"the TLS certificate of {host} cannot be verified: {untrusted}"
                    ) from exc
                raise Transient(f"network error ({self._sanitize(exc)})") from exc
            except httpx.HTTPError as exc:
                raise self.error(request, f"request failed: {self._sanitize(exc)}") from exc
        if status in RETRY_STATUSES or status >= 500:
            raise Transient(f"HTTP {status}")
        if status != 200:
            raise self.error(request, f"unexpected HTTP status {status}")
        if content is None:
            raise self.error(
                request, f"answer is larger than {self.max_answer_bytes:,} bytes; refused"
            )
        if not request.issues_credential:
            # before anything reads it: a vendor quoting a credential (an expired UserSig in
            # ErrorInfo, a rejected token in errmsg, a key in a name) must quote `***`
            content = self.secrets.scrub(content)
        try:
            body = request.decode(content)
        except (ValueError, RecursionError):  # msgspec's errors, bad UTF-8; arrays nested deep
            raise self.error(request, "response is not JSON") from None
        if not isinstance(body, dict):
            raise self.error(request, "response is not a JSON object")
        if check is not None:
            check(request, body)
        return body

    async def _exchange(
        self, request: Request, params: Mapping[str, str]
    ) -> tuple[int, bytes | None]:
        """Send one request; the status and the (decoded) answer, None when over the size cap.

        Only a 200's body is read; it is read in chunks and abandoned past `max_answer_bytes`.
        """
        # The query is encoded here, not by httpx: given `params`, httpx parses the URL twice,
        # checking its 200-character UserSig one character at a time each time.
        query = urlencode(params)
        target = f"{request.path}?{query}" if query else request.path
        body = None if request.body is None else msgspec.json.encode(request.body)
        status, content = await self.wire.fetch(
            self.endpoint,
            request.method,
            target,
            body,
            timeout=self.timeout,
            limit=self.max_answer_bytes,
        )
        if not self.wire.logs_requests and logger.isEnabledFor(logging.INFO):
            url = self.redact(self.endpoint + target)  # as httpx logs the requests it sends
            logger.info('HTTP Request: %s %s "HTTP/1.1 %d"', request.method, url, status)
        return status, content

    def _sanitize(self, exc: httpx.HTTPError) -> str:
        """Mask credentials in `exc` itself (it is chained as a cause) and describe it.

        httpx's texts can hold the request URL, which holds the credential; a traceback shown
        under `-v` prints the chained cause, so its text is rewritten before it is chained.
        """
        text = self.redact(str(exc))
        exc.args = (text,)
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: getaddrinfo's answers for a name that does not exist (EAI_NODATA is not on every platform).
_NO_SUCH_NAME: Final = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


def _unknown_host(exc: BaseException) -> str | None:
    """The resolver's reason when a connection failed because its host name does not exist."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror) and current.errno in _NO_SUCH_NAME:
            return current.strerror or "name does not resolve"
        current = current.__cause__ or current.__context__
    return None


def _certificate_failure(exc: BaseException) -> str | None:
    """The verification error behind a failed connection, if a certificate was refused."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or current.reason or "certificate verify failed"
        current = current.__cause__ or current.__context__
    return None


def batches(items: Iterable[str], size: int) -> list[list[str]]:
    """Split `items` into consecutive lists of at most `size` (the vendor's per-call maximum)."""
    chunk: list[str] = []
    out: list[list[str]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            out.append(chunk)
            chunk = []
    if chunk:
        out.append(chunk)
    return out


async def run_all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await independent calls concurrently (the pacer keeps them in budget), in order.

    On the first failure the others are cancelled and that failure is raised as it is (no
    `ExceptionGroup`), so a read either returns everything or raises one `ProviderError`.
    """
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class CountedClient:
    """What both vendor clients expose about the calls their `Caller` made."""

    _caller: Caller

    @property
    def calls(self) -> Counter[str]:
        """Requests sent per API, retries (and token fetches) included."""
        return self._caller.calls

    @property
    def retries(self) -> Counter[str]:
        """Attempts that failed transiently and were retried, per API."""
        return self._caller.retries
