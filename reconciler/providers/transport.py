"""A lean HTTP/1.1 transport for httpx: keep-alive connections over asyncio, nothing more.

httpx's default transport (httpcore's connection pool and h11) costs about 0.55 ms of CPU per
call; this one about 0.17 ms (one call at a time to a local `reconciler sandbox serve`). At 200
calls/s on several APIs at once that difference is a large share of the client's CPU (issue 6,
BENCHMARKS.md). The vendors speak plain HTTP/1.1 with small JSON answers, so this transport does
only that: one request at a time per connection, connections kept alive and reused, answers
streamed as they arrive. Through `handle_async_request`, httpx above it still builds requests,
runs the event hooks, decodes `Content-Encoding` and raises its own exceptions, so a caller of
httpx's client cannot tell the difference.

- TLS is always verified against the trust httpx's own stack uses (`httpx.create_ssl_context()`:
  certifi's bundle, or `SSL_CERT_FILE`/`SSL_CERT_DIR` when set), with SNI set to the host; there
  is no way to turn that off. Plain http is spoken only to a loopback host (a
  local `reconciler sandbox serve`).
- At most `max_connections` are open at once; a connection goes back to the pool only after an
  answer read to its end that did not ask to close it, and is checked (closed, readable or older
  than `keepalive_expiry` while idle: the server may have dropped it) before it is reused.
- Timeouts come from httpx's `timeout` extension and raise httpx's own timeout exceptions; every
  other failure is an `httpx.TransportError` chained from its cause (`ConnectError` from an
  `ssl.SSLCertVerificationError` for a refused certificate). Messages never hold a URL: its query
  string holds the UserSig or access token.

`fetch` sends a request without httpx's client at all: no `httpx.Request` or `httpx.Response`
is built and no URL is parsed per call (httpx's client, its URL parsing, cookie jar and hooks
cost about as much CPU per call as this transport does; issue 6). The vendor clients use it for
every call when their httpx client is a `LeanClient` (as `connect()` makes for a `tencent`
target). It asks for no content coding (but undoes gzip and deflate, bounded, if a server
compresses anyway), and raises httpx's exceptions as the transport does.

A `guard(method, path)` given to the transport sees every request it sends, either way, before it
is sent: the read-only guard of `plan` and `drift` runs here, whoever builds the request.

Not supported, as the vendors need none of it: HTTP/2, proxies (`connect()` keeps httpx's own
stack when the environment names one), upgrades, `Expect: 100-continue`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import select
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import httpx

from reconciler import __version__

#: The largest status line and header block accepted (h11's default is 16 KiB; nginx's largest
#: proxied header block is 32 KiB).
MAX_HEADER_BYTES: Final = 64 * 1024
#: The longest chunk-size line (size and extensions) accepted.
MAX_CHUNK_LINE: Final = 4 * 1024
#: The most bytes handed up at once, and the buffer above which the socket is not read until the
#: caller consumes: a huge answer is abandoned by the caller, not buffered by the transport.
READ_SIZE: Final = 64 * 1024
HIGH_WATER: Final = 256 * 1024
#: httpcore's default: an idle connection older than this is closed rather than reused, well
#: before a server's own idle timeout (nginx: 75 s) makes reusing it a race.
KEEPALIVE_EXPIRY: Final = 5.0

_Key = tuple[str, str, int]  # scheme, host, port
_Phase = Literal["connect", "write", "read"]
#: Called with a request's method and URL path before it is sent; raises to refuse it.
Guard = Callable[[str, str], None]

_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_METHOD: Final = re.compile(_TOKEN.decode())
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_HEADER_LINE: Final = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)")
_CHUNK_SIZE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")
#: The headers `fetch` sends besides Host and the body's: JSON, uncompressed (a page of 200
#: subscribers is about 20 KB; gzip would cost the client more CPU than the bytes save).
_FIXED_HEADERS: Final = (
    b"Accept: application/json\r\nAccept-Encoding: identity\r\n"
    b"User-Agent: reconciler/%s\r\n" % __version__.encode()
)
#: What `fetch` puts on a request line: a path and query of printable ASCII without spaces.
_TARGET: Final = re.compile(r"/[!-~]*")
_HOST: Final = re.compile(r"[A-Za-z0-9.:-]+")  # a name or an IP address (IPv6 unbracketed)
_BODYLESS_STATUSES: Final = frozenset({204, 304})
_CHUNKS_ENDED: Final = "the answer ended in the middle of its chunks"
#: How a `_Body` ends, besides a length (0 or more): chunked, or at the connection's close.
_CHUNKED: Final = -1
_TO_CLOSE: Final = -2

_TIMEOUTS: Final[dict[_Phase, type[httpx.TimeoutException]]] = {
    "connect": httpx.ConnectTimeout,
    "write": httpx.WriteTimeout,
    "read": httpx.ReadTimeout,
}
_FAILURES: Final[dict[_Phase, type[httpx.NetworkError]]] = {
    "connect": httpx.ConnectError,
    "write": httpx.WriteError,
    "read": httpx.ReadError,
}


def _translate(exc: BaseException, phase: _Phase, request: httpx.Request | None) -> BaseException:
    """httpx's exception for `exc`, raised while `phase` (to be raised `from exc`)."""
    if isinstance(exc, httpx.HTTPError):
        return exc
    # Before OSError: TimeoutError is one. httpx's own timeouts have empty texts too.
    if isinstance(exc, TimeoutError):
        return _TIMEOUTS[phase]("", request=request)
    if isinstance(exc, OSError):  # socket errors, refused or reset connections, TLS failures
        return _FAILURES[phase](str(exc) or type(exc).__name__, request=request)
    return exc  # cancellation and the like pass through untouched


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _readable(fd: int) -> bool:
    """True when the socket has data or an end waiting that the event loop has not read yet."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # pragma: no cover - Windows


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Connection(asyncio.Protocol):
    """One socket: what arrived (`buffer`, `eof`) and waits for more, with a timeout."""

    def __init__(self, key: _Key, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        #: why the connection was lost, when it was not closed cleanly (a reset)
        self.error: Exception | None = None
        self.lost = loop.create_future()  # done once the socket is closed
        self.idle_since = 0.0
        self.discarded = False
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._reading_paused = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self._reading_paused and self.transport:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def eof_received(self) -> None:  # returning None: the transport closes itself
        self.eof = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- used by the transport ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing() or self.lost.done()

    def usable(self, now: float, expiry: float) -> bool:
        """Whether an idle connection may carry another request."""
        if self.eof or self.buffer or self.closed or now - self.idle_since > expiry:
            return False
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        return sock is None or not _readable(sock.fileno())

    async def _wait(self, waiter: asyncio.Future[None], timeout: float | None) -> None:
        timer = None if timeout is None else self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()

    async def more(self, timeout: float | None) -> None:
        """Wait until more bytes (or the end) arrive; TimeoutError after `timeout` seconds."""
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        self._waiter = self.loop.create_future()
        try:
            await self._wait(self._waiter, timeout)
        finally:
            self._waiter = None

    async def write(self, data: bytes, timeout: float | None) -> None:
        """Send `data` (on a connection just opened or checked `usable`, so not closed)."""
        assert self.transport is not None
        self.transport.write(data)
        if self._drained is not None:  # the socket's buffer is full: wait for it to drain
            await self._wait(self._drained, timeout)
            if self.closed:
                raise ConnectionResetError("the connection was closed while sending")

    async def read_until(
        self, separator: bytes, limit: int, timeout: float | None, ended: str = ""
    ) -> bytes:
        """The bytes before `separator` (consumed with it); at most `limit` of them.

        At the end of the stream: `ended` as a RemoteProtocolError, or (by default) what that
        means before an answer's headers.
        """
        start = 0
        while True:
            end = self.buffer.find(separator, start)
            if end >= 0:
                if end > limit:
                    break
                data = bytes(self.buffer[:end])
                del self.buffer[: end + len(separator)]
                return data
            if len(self.buffer) > limit:
                break
            if self.eof:
                if self.error is not None:
                    raise self.error
                raise httpx.RemoteProtocolError(
                    ended
                    or (
                        "the server closed the connection in the middle of an answer"
                        if self.buffer
                        else "the server closed the connection without an answer"
                    )
                )
            start = max(0, len(self.buffer) - len(separator) + 1)
            await self.more(timeout)
        raise httpx.RemoteProtocolError(f"answer line or header block longer than {limit} bytes")

    async def read_some(self, most: int, timeout: float | None) -> bytes:
        """Up to `most` bytes as soon as there are any; b"" at the end of the stream."""
        while not self.buffer:
            if self.eof:
                if self.error is not None:  # a reset is no end: a body read to close is cut
                    raise self.error
                return b""
            await self.more(timeout)
        if len(self.buffer) <= most:
            data = bytes(self.buffer)
            self.buffer.clear()
        else:
            data = bytes(self.buffer[:most])
            del self.buffer[:most]
        return data


class _Body(httpx.AsyncByteStream):
    """An answer's body, yielded as it arrives; its connection goes back to the pool (or is
    closed) once it is read to its end, and is closed if the body is abandoned."""

    def __init__(
        self,
        pool: LeanTransport,
        connection: _Connection,
        request: httpx.Request | None,
        framing: int,
        keep_alive: bool,
        timeout: float | None,
    ) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self._request = request
        self._framing = framing
        self._keep_alive = keep_alive and framing != _TO_CLOSE
        self._timeout = timeout

    async def __aiter__(self) -> AsyncGenerator[bytes, None]:
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        try:
            if self._framing == _CHUNKED:
                async for chunk in self._chunked(connection):
                    yield chunk
            else:
                left = self._framing  # bytes still due, or _TO_CLOSE
                while left:
                    want = READ_SIZE if left < 0 else min(left, READ_SIZE)
                    chunk = await connection.read_some(want, self._timeout)
                    if not chunk:
                        if left > 0:
                            raise httpx.RemoteProtocolError(
                                f"the answer ended {left} bytes short of its Content-Length"
                            )
                        break
                    if left > 0:
                        left -= len(chunk)
                        if not left:  # complete: the connection is free before the last yield
                            self._finish(reuse=self._keep_alive)
                    yield chunk
        except BaseException as exc:  # GeneratorExit too: an abandoned body
            self._finish(reuse=False)
            translated = _translate(exc, "read", self._request)
            if translated is exc:
                raise
            raise translated from exc
        self._finish(reuse=self._keep_alive)

    async def _chunked(self, connection: _Connection) -> AsyncIterator[bytes]:
        timeout = self._timeout
        while True:
            line = await connection.read_until(b"\r\n", MAX_CHUNK_LINE, timeout, _CHUNKS_ENDED)
            size = _CHUNK_SIZE.fullmatch(line)
            if size is None:
                raise httpx.RemoteProtocolError("malformed chunk size")
            left = int(size.group(1), 16)
            if left == 0:
                break
            while left:
                chunk = await connection.read_some(min(left, READ_SIZE), timeout)
                if not chunk:
                    raise httpx.RemoteProtocolError("the answer ended in the middle of a chunk")
                left -= len(chunk)
                yield chunk
            if await connection.read_until(b"\r\n", MAX_CHUNK_LINE, timeout, _CHUNKS_ENDED):
                raise httpx.RemoteProtocolError("a chunk is longer than its size")
        trailers = 0
        while line := await connection.read_until(b"\r\n", MAX_CHUNK_LINE, timeout, _CHUNKS_ENDED):
            trailers += len(line)  # read and dropped, within the header block's bound
            if trailers > MAX_HEADER_BYTES:
                raise httpx.RemoteProtocolError("trailers longer than the header limit")

    def _finish(self, *, reuse: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool._give_back(connection, reuse=reuse)

    async def aclose(self) -> None:
        self._finish(reuse=False)  # not read to its end: what is left would poison the next


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A base URL split once for `fetch`: where to connect, the Host header, the path prefix."""

    key: _Key
    authority: bytes
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Endpoint | None:
        """None for a URL `fetch` does not send to (user info, a query, a non-ASCII host...):
        such endpoints go through httpx's client, which knows what to do with them."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        host = parts.hostname or ""
        prefix = parts.path.rstrip("/")
        if (
            parts.scheme not in ("http", "https")
            or not _HOST.fullmatch(host)
            or parts.username is not None
            or parts.password is not None
            or parts.query
            or parts.fragment
            or (prefix and not _TARGET.fullmatch(prefix))
        ):
            return None
        default = 443 if parts.scheme == "https" else 80
        shown = f"[{host}]" if ":" in host else host
        authority = shown if port is None or port == default else f"{shown}:{port}"
        return cls((parts.scheme, host, port or default), authority.encode("ascii"), prefix)


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive over asyncio, at most `max_connections` open at a time.

    Connections are pooled per (scheme, host, port); a request waits for a free one at most the
    `pool` timeout. An idle connection to another host is closed to make room when needed.
    """

    def __init__(
        self,
        max_connections: int = 16,
        *,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
        guard: Guard | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self.guard = guard
        self._tls: ssl.SSLContext | None = None
        self._idle: dict[_Key, list[_Connection]] = {}
        #: every connection open or being opened (counts against `max_connections`)
        self._open: set[_Connection] = set()
        self._opening = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"{scheme!r} is not http or https", request=request)
        if self.guard is not None:  # the path as it goes on the wire, as `fetch` checks it
            self.guard(request.method, url.raw_path.decode("ascii").partition("?")[0])
        key = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        # The request is ready before a connection is taken: none waits on a streamed body, and
        # none is checked and then left to go stale before it is written to.
        data = await self._head_and_body(request)
        connection = await self._acquire(key, request, timeouts)
        phase: _Phase = "write"
        try:
            await connection.write(data, timeouts.get("write"))
            phase = "read"
            response = await self._answer(connection, request, timeouts.get("read"))
        except BaseException as exc:
            self._give_back(connection, reuse=False)
            translated = _translate(exc, phase, request)
            if translated is exc:
                raise
            raise translated from exc
        return response

    async def fetch(
        self,
        endpoint: Endpoint,
        method: str,
        target: str,
        body: bytes | None,
        *,
        timeout: float | None,
        limit: int,
    ) -> tuple[int, bytes | None]:
        """Send `method` to `target` (path and query, after the endpoint's prefix) with a JSON
        `body`, without httpx's client; the status and, for a 200, its whole body (None when it
        is over `limit` bytes). Any other status's body is not read (its connection is closed).

        Every wait (a place in the pool, connecting, sending, each read) lasts at most `timeout`;
        failures raise httpx's exceptions as `handle_async_request` does.
        """
        target = endpoint.prefix + target
        if not _METHOD.fullmatch(method) or not _TARGET.fullmatch(target):
            raise httpx.LocalProtocolError("a request method or target that cannot be sent")
        if self.guard is not None:
            self.guard(method, target.partition("?")[0])
        lines = [
            b"%s %s HTTP/1.1\r\nHost: %s\r\n"
            % (method.encode(), target.encode(), endpoint.authority),
            _FIXED_HEADERS,
        ]
        if body is not None:
            lines.append(b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
        lines += (b"\r\n", body or b"")
        timeouts = {"pool": timeout, "connect": timeout}
        connection = await self._acquire(endpoint.key, None, timeouts)
        phase: _Phase = "write"
        try:
            await connection.write(b"".join(lines), timeout)
            phase = "read"
            code, headers, framing, keep_alive, _ = await self._head(
                connection, method, False, timeout
            )
            if code != 200 or framing == 0:
                self._give_back(connection, reuse=framing == 0 and keep_alive)
                return code, b""
            inflater = _inflater([v for n, v in headers if n.lower() == b"content-encoding"])
            if framing > limit:
                self._give_back(connection, reuse=False)
                return 200, None
            stream = _Body(self, connection, None, framing, keep_alive, timeout)
        except BaseException as exc:
            self._give_back(connection, reuse=False)
            translated = _translate(exc, phase, None)
            if translated is exc:
                raise
            raise translated from exc
        chunks: list[bytes] = []
        size = 0
        # closed on every way out: a body left unread closes its connection at once
        async with contextlib.aclosing(stream.__aiter__()) as arriving:
            try:
                async for data in arriving:
                    chunk = data
                    if inflater is not None:
                        # bounded: an answer that inflates past the limit (a compression bomb)
                        # is refused without being inflated further
                        chunk = inflater.decompress(data, limit - size + 1)
                    size += len(chunk)
                    if size > limit:
                        return 200, None
                    chunks.append(chunk)
                if inflater is not None:
                    chunks.append(inflater.flush())
            except zlib.error as exc:
                raise httpx.DecodingError(f"the compressed answer is corrupt: {exc}") from None
        return 200, b"".join(chunks)

    async def aclose(self) -> None:
        """Close every connection, idle or in use, and wait (briefly) until they are closed."""
        connections = list(self._open)
        self._idle.clear()
        for connection in connections:
            self._close(connection)
        if connections:
            await asyncio.wait([c.lost for c in connections], timeout=1.0)

    # -- the exchange ---------------------------------------------------------------------------

    @staticmethod
    async def _head_and_body(request: httpx.Request) -> bytes:
        if not _METHOD.fullmatch(request.method):
            raise httpx.LocalProtocolError("a request method must be a token")
        body = await request.aread()
        lines = [request.method.encode(), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        chunked = False
        for name, value in request.headers.raw:
            lines += (name, b": ", value, b"\r\n")
            chunked = chunked or name.lower() == b"transfer-encoding"
        lines.append(b"\r\n")
        head = b"".join(lines)
        # One CR and one LF per line and nowhere else: no header can smuggle in another.
        breaks = len(request.headers.raw) + 2
        if head.count(b"\n") != breaks or head.count(b"\r") != breaks or b"\0" in head:
            raise httpx.LocalProtocolError("a request header holds a line break or a NUL")
        if chunked:  # a streamed body httpx could not size: sent as one chunk
            body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        return head + body

    async def _answer(
        self, connection: _Connection, request: httpx.Request, timeout: float | None
    ) -> httpx.Response:
        close = request.headers.get("connection", "").lower() == "close"
        code, headers, framing, keep_alive, extensions = await self._head(
            connection, request.method, close, timeout
        )
        if framing == 0:
            self._give_back(connection, reuse=keep_alive)
            return httpx.Response(code, headers=headers, extensions=extensions)
        stream = _Body(self, connection, request, framing, keep_alive, timeout)
        return httpx.Response(code, headers=headers, stream=stream, extensions=extensions)

    @staticmethod
    async def _head(
        connection: _Connection, method: str, close: bool, timeout: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]], int, bool, dict[str, bytes]]:
        """An answer's status line and headers: its status, headers, framing (a length,
        `_CHUNKED` or `_TO_CLOSE`), whether its connection may be reused, and httpx's
        extensions. `close`: the request asked to close the connection."""
        while True:
            head = await connection.read_until(b"\r\n\r\n", MAX_HEADER_BYTES, timeout)
            status_line, *lines = head.split(b"\r\n")
            status = _STATUS_LINE.fullmatch(status_line)
            if status is None:
                raise httpx.RemoteProtocolError("malformed status line")
            code = int(status.group(2))
            if code < 100:
                raise httpx.RemoteProtocolError("malformed status line")
            if code == 101:
                raise httpx.RemoteProtocolError("the server switched protocols unasked")
            if code >= 200:
                break  # 1xx (103 Early Hints, an unasked 100 Continue): the answer follows
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = False
        keep_alive_asked = False
        for line in lines:
            field = _HEADER_LINE.fullmatch(line)
            if field is None:
                raise httpx.RemoteProtocolError("malformed header line")
            name, value = field.group(1), field.group(2).rstrip(b" \t")
            headers.append((name, value))
            lowered = name.lower()
            if lowered == b"content-length":
                length = _content_length(value, length)
            elif lowered == b"transfer-encoding":
                if value.lower() != b"chunked" or chunked:
                    raise httpx.RemoteProtocolError("unsupported Transfer-Encoding")
                chunked = True
            elif lowered == b"connection":
                tokens = {t.strip() for t in value.lower().split(b",")}
                close = close or b"close" in tokens
                keep_alive_asked = keep_alive_asked or b"keep-alive" in tokens
        http_10 = status.group(1) == b"0"
        keep_alive = not close and (keep_alive_asked or not http_10)
        if method == "HEAD" or code in _BODYLESS_STATUSES:
            framing = 0
        elif chunked:
            framing = _CHUNKED
            # Both framings at once is how requests are smuggled: answer this one, then close.
            keep_alive = keep_alive and length is None
        elif length is not None:
            framing = length
        else:
            framing = _TO_CLOSE
        extensions = {
            "http_version": b"HTTP/1.0" if http_10 else b"HTTP/1.1",
            "reason_phrase": status.group(3) or b"",
        }
        return code, headers, framing, keep_alive, extensions

    # -- the pool -------------------------------------------------------------------------------

    async def _acquire(
        self, key: _Key, request: httpx.Request | None, timeouts: dict[str, float | None]
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        pool_timeout = timeouts.get("pool")
        deadline = None if pool_timeout is None else loop.time() + pool_timeout
        while True:
            connection = self._take_idle(key)
            if connection is not None:
                return connection
            if len(self._open) + self._opening < self.max_connections or self._evict_idle():
                return await self._connect(key, request, timeouts.get("connect"))
            waiter = loop.create_future()
            self._waiters.append(waiter)
            timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            except TimeoutError:
                raise httpx.PoolTimeout("", request=request) from None
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._wake()  # woken, but not taking the place: pass it on
                raise
            finally:
                if timer is not None:
                    timer.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def _take_idle(self, key: _Key) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            if connection.usable(now, self.keepalive_expiry):
                return connection
            self._close(connection)
        return None

    def _evict_idle(self) -> bool:
        """Close the longest idle connection (to any host) to make room; False if none is."""
        oldest: _Connection | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest.idle_since):
                oldest = idle[0]
        if oldest is None:
            return False
        self._idle[oldest.key].remove(oldest)
        self._close(oldest)
        return True

    async def _connect(
        self, key: _Key, request: httpx.Request | None, timeout: float | None
    ) -> _Connection:
        scheme, host, port = key
        if scheme == "http" and not is_loopback_host(host):
            # check_endpoint refuses such endpoints already; this transport never sends a
            # credential in clear over a network, whoever builds the request.
            raise httpx.UnsupportedProtocol(
                "plain http is spoken only to loopback hosts; use https", request=request
            )
        tls = None
        if scheme == "https":
            if self._tls is None:
                # verifies and checks the host name, trusting what httpx would trust
                self._tls = httpx.create_ssl_context()
            tls = self._tls
        loop = asyncio.get_running_loop()
        connection = _Connection(key, loop)
        self._opening += 1
        try:
            opening = loop.create_connection(
                lambda: connection, host, port, ssl=tls, server_hostname=host if tls else None
            )
            if timeout is None:
                await opening
            else:
                async with asyncio.timeout(timeout):
                    await opening
        except BaseException as exc:
            self._opening -= 1
            self._wake()  # the place it held is free again
            translated = _translate(exc, "connect", request)
            if translated is exc:
                raise
            raise translated from exc
        self._opening -= 1
        self._open.add(connection)
        return connection

    def _give_back(self, connection: _Connection, *, reuse: bool) -> None:
        if connection.discarded:
            return
        if not reuse or connection.eof or connection.buffer or connection.closed:
            self._close(connection)
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.key, []).append(connection)
        self._wake()

    def _close(self, connection: _Connection) -> None:
        connection.discarded = True
        assert connection.transport is not None  # only connections that opened are pooled
        # abort, not close: nothing is owed to a server whose answer is abandoned, and a TLS
        # close would wait for its close_notify.
        connection.transport.abort()
        self._open.discard(connection)
        self._wake()

    def _wake(self) -> None:
        """A place in the pool may be free: let the longest waiting request look."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _inflater(codings: list[bytes]) -> zlib._Decompress | None:
    """What undoes an answer's `Content-Encoding` (None: none to undo). `fetch` asks for none,
    but a server may compress anyway: gzip and deflate are undone, anything else refused."""
    names = [c.strip().lower() for value in codings for c in value.split(b",")]
    names = [name for name in names if name and name != b"identity"]
    if not names:
        return None
    if names in ([b"gzip"], [b"x-gzip"]):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if names == [b"deflate"]:
        return zlib.decompressobj()
    shown = b", ".join(names).decode("latin-1")
    raise httpx.DecodingError(f"the answer's content coding ({shown}) is not supported")


def _content_length(value: bytes, previous: int | None) -> int:
    # `Content-Length: 5, 5` (a proxy merged two) is fine; anything else that is not one
    # decimal number is how answers are smuggled.
    values = {v.strip() for v in value.split(b",")}
    if len(values) != 1:
        raise httpx.RemoteProtocolError("conflicting Content-Length")
    (text,) = values
    if not text.isdigit() or len(text) > 18:
        raise httpx.RemoteProtocolError("malformed Content-Length")
    length = int(text)
    if previous is not None and previous != length:
        raise httpx.RemoteProtocolError("conflicting Content-Length")
    return length


class LeanClient(httpx.AsyncClient):
    """httpx's client over a `LeanTransport`; the vendor clients send their calls through the
    transport's `fetch` (the same connections), anything else goes through httpx as usual."""

    def __init__(self, transport: LeanTransport, **options: Any) -> None:
        super().__init__(transport=transport, **options)
        self.lean = transport
