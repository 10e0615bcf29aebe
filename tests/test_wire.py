"""The wire (`reconciler.providers.wire`) against a scripted HTTP/1.1 server on 127.0.0.1.

Each test scripts the server's answers byte for byte and counts the connections it accepts, so
reuse, the pool's bound and every way an answer can be malformed, oversized or late are seen as the
client sees them. The server runs its own event loop in a thread. The bytes are carried by aiohttp
(`AiohttpWire`, a `tencent` target's calls) or by an injected httpx client (`HttpxWire`); what is
tested here is the policy that is ours on both: the size cap and bounded decompression, httpx's
exceptions with no credential in their chain, verified TLS, plain http only to loopback, the
read-only guard, the environment's proxies (through a real CONNECT proxy), and uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp.http_exceptions import HttpProcessingError
from hostile_vendor import hostile_vendor, tencent_client

from reconciler import __version__
from reconciler.config import Limits, TencentTarget
from reconciler.connect import connect
from reconciler.errors import ProviderError, ReadOnlyViolation
from reconciler.providers.aio import AiohttpWire, _legacy_ipv4, _proxy_for, _route, _translate
from reconciler.providers.http import _certificate_failure, _unknown_host
from reconciler.providers.wire import HttpxWire
from reconciler.readonly import refuse_write
from reconciler.sandbox.server import Sandbox, SandboxOptions
from reconciler.secret import Secret

SECRET = "usersig-0f3c9a"
PATH = f"/v4/svc/cmd?sdkappid=1&usersig={SECRET}"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

#: What the server does for one request, step by step: bytes are sent, a float pauses that many
#: seconds, `CLOSE` closes the connection, `RESET` resets it, `AWAIT_CLOSE` waits for the client
#: to close it.
Step = bytes | float | str | None
CLOSE: None = None
RESET = "reset"
AWAIT_CLOSE = "await-close"
FOREVER = 3600.0


@dataclass(frozen=True, slots=True)
class Seen:
    """A request as the server read it."""

    connection: int  # 1 for the first connection accepted, ...
    head: bytes
    body: bytes


class Server:
    """Answers each request with `script(seen)`; counts accepted and closed connections."""

    def __init__(
        self,
        script: Callable[[Seen], Sequence[Step]],
        tls: ssl.SSLContext | None = None,
        *,
        on_accept: Sequence[Step] = (),
    ) -> None:
        self.script = script
        self.tls = tls
        self.on_accept = on_accept
        self.accepted = 0
        self.closed_by_client = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.requests: list[Seen] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def url(self, path: str = PATH, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> Server:
        self._thread.start()
        start = asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Run `on_accept`, then answer requests until a step or the client ends the connection."""
        self.accepted += 1
        number = self.accepted
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.CancelledError):
            try:
                if not await self._steps(self.on_accept, reader, writer):
                    return
                while True:
                    try:
                        head = await reader.readuntil(b"\r\n\r\n")
                    except asyncio.IncompleteReadError:
                        self.closed_by_client += 1
                        return
                    if re.search(rb"(?i)\r\ntransfer-encoding: *chunked", head):
                        body = await reader.readuntil(b"0\r\n\r\n")
                    else:
                        found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                        body = await reader.readexactly(int(found.group(1)) if found else 0)
                    seen = Seen(number, head, body)
                    self.requests.append(seen)
                    self.in_flight += 1
                    self.most_in_flight = max(self.most_in_flight, self.in_flight)
                    try:
                        if not await self._steps(self.script(seen), reader, writer):
                            return
                    finally:
                        self.in_flight -= 1
            finally:
                writer.close()

    async def _steps(
        self, steps: Sequence[Step], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Run `steps`; False when they ended the connection."""
        for step in steps:
            if step is CLOSE:
                return False
            if step == RESET:  # no lingering: the peer gets a reset
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return False
            if step == AWAIT_CLOSE:
                await reader.read()
                self.closed_by_client += 1
                return False
            if isinstance(step, float):
                await asyncio.sleep(step)
            else:
                assert isinstance(step, bytes)
                writer.write(step)
                await writer.drain()
        return True


def always(*steps: Step) -> Callable[[Seen], Sequence[Step]]:
    return lambda seen: steps


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def mentions_secret(error: BaseException | None) -> bool:
    """True if the error or anything it is chained from names the URL's credential."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if SECRET in str(error) or any(SECRET in str(a) for a in error.args):
            return True
        error = error.__cause__ or error.__context__
    return False


Make = Callable[[], Any]  # an async context manager yielding a Wire


@contextlib.asynccontextmanager
async def _httpx_wire() -> Any:
    async with httpx.AsyncClient() as http:
        yield HttpxWire(http)


WIRES = pytest.mark.parametrize("make", [AiohttpWire, _httpx_wire], ids=["aiohttp", "httpx"])


async def fetch_each(
    base: str,
    calls: Sequence[tuple[str, bytes | None]],
    make: Make = AiohttpWire,
    *,
    timeout: float = 10.0,
    limit: int = 1 << 20,
) -> list[tuple[int, bytes | None]]:
    """Fetch PATH with each (method, body) in turn over one wire; the answers."""
    async with make() as wire:
        return [
            await wire.fetch(base, method, PATH, body, timeout=timeout, limit=limit)
            for method, body in calls
        ]


def failure(server: Server, *, timeout: float = 5.0) -> BaseException:
    """The exception one fetch over aiohttp raises (the test fails if it does not)."""

    async def main() -> BaseException:
        with pytest.raises(httpx.HTTPError) as caught:
            await fetch_each(server.url(""), [("GET", None)], timeout=timeout)
        return caught.value

    error: BaseException = run(main())
    assert not mentions_secret(error)
    return error


# -- what is sent, reuse, the pool's bound -----------------------------------------------------


def test_a_bare_request_is_sent_and_its_connection_reused() -> None:
    with Server(always(OK)) as server:
        answers = run(fetch_each(server.url(""), [("POST", b'{"a":1}'), ("GET", None)]))
        assert answers == [(200, b"{}"), (200, b"{}")]
        assert server.accepted == 1
        post, get = server.requests
    request_line, *lines = post.head.decode().removesuffix("\r\n\r\n").split("\r\n")
    assert request_line == f"POST {PATH} HTTP/1.1"
    assert sorted(lines) == sorted(
        [
            f"Host: 127.0.0.1:{server.port}",
            "Accept: application/json",
            "Accept-Encoding: identity",
            f"User-Agent: reconciler/{__version__}",
            "Content-Type: application/json",
            "Content-Length: 7",
        ]
    )
    assert post.body == b'{"a":1}'
    assert b"Content-Type" not in get.head and get.body == b""


def test_the_endpoints_path_goes_before_the_target() -> None:
    with Server(always(OK)) as server:
        run(fetch_each(server.url("/im"), [("GET", None)]))
        assert server.requests[0].head.startswith(f"GET /im{PATH} HTTP/1.1\r\n".encode())


def test_concurrent_calls_open_at_most_max_connections_and_reuse_them() -> None:
    async def main(base: str) -> None:
        async with AiohttpWire(2) as wire:
            calls = [wire.fetch(base, "GET", PATH, None, timeout=5, limit=99) for _ in range(8)]
            assert await asyncio.gather(*calls) == [(200, b"{}")] * 8

    with Server(always(0.05, OK)) as server:
        run(main(server.url("")))
        assert (server.accepted, server.most_in_flight) == (2, 2)


@WIRES
def test_an_error_answer_is_not_read(make: Make) -> None:
    error = b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy"
    bodyless = b"HTTP/1.1 204 No Content\r\n\r\n"
    answers = iter([error, bodyless, OK])
    with Server(lambda seen: [next(answers)]) as server:
        got = run(fetch_each(server.url(""), [("GET", None)] * 3, make))
        assert got == [(503, b""), (204, b""), (200, b"{}")]


@pytest.mark.parametrize("busy", [False, True], ids=["loop-saw-it", "loop-busy"])
def test_a_keep_alive_closed_by_the_server_costs_no_failed_call(busy: bool) -> None:
    async def main(base: str) -> list[tuple[int, bytes | None]]:
        async with AiohttpWire() as wire:
            first = await wire.fetch(base, "GET", PATH, None, timeout=5, limit=99)
            if busy:
                time.sleep(0.1)
            else:
                await asyncio.sleep(0.1)
            return [first, await wire.fetch(base, "GET", PATH, None, timeout=5, limit=99)]

    with Server(always(OK, CLOSE)) as server:  # the server closes its idle connection
        assert run(main(server.url(""))) == [(200, b"{}")] * 2
        assert (server.accepted, len(server.requests)) == (2, 2)


# -- the size cap and content codings (ours, on both wires) -------------------------------------


@WIRES
@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n[1,2,3,4,5]",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\n[1,2,3\r\n5\r\n,4,5]\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[1,2,3,4,5]",
    ],
    ids=["length", "chunked", "to-close"],
)
def test_an_answer_over_the_limit_is_refused(make: Make, answer: bytes) -> None:
    with Server(always(answer, CLOSE)) as server:
        base = server.url("")
        assert run(fetch_each(base, [("GET", None)], make, limit=10)) == [(200, None)]
        assert run(fetch_each(base, [("GET", None)], make, limit=11)) == [(200, b"[1,2,3,4,5]")]


@WIRES
def test_a_declared_length_over_the_limit_is_refused_before_the_body_comes(make: Make) -> None:
    lying = b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n{}"
    with Server(always(lying, FOREVER)) as server:  # the body never comes: it is not waited for
        started = time.monotonic()
        assert run(fetch_each(server.url(""), [("GET", None)], make, timeout=5)) == [(200, None)]
        assert time.monotonic() - started < 2


def test_an_answer_over_the_limit_is_not_read_on_and_its_connection_not_reused() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n[1,2,3\r\n"
    with Server(always(chunked, FOREVER)) as server:  # the rest never comes: it is not waited for
        answers = run(fetch_each(server.url(""), [("GET", None)] * 2, limit=5, timeout=5))
        assert answers == [(200, None), (200, None)]
        assert server.accepted == 2


def compressed(coding: str, body: bytes) -> bytes:
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s"
    return answer % (coding.encode(), len(body), body)


@WIRES
@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", gzip.compress(b'{"a":1}')),
        ("x-gzip", gzip.compress(b'{"a":1}')),
        ("deflate", zlib.compress(b'{"a":1}')),
        ("Identity", b'{"a":1}'),
    ],
)
def test_a_content_coding_not_asked_for_is_undone(make: Make, coding: str, body: bytes) -> None:
    with Server(always(compressed(coding, body))) as server:
        got = run(fetch_each(server.url(""), [("GET", None)] * 2, make))
        assert got == [(200, b'{"a":1}')] * 2
        assert server.accepted == 1


@WIRES
def test_a_compression_bomb_is_refused_without_being_inflated(make: Make) -> None:
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB in about 64 KB
    with Server(always(compressed("gzip", bomb))) as server:
        assert run(fetch_each(server.url(""), [("GET", None)], make, limit=1024)) == [(200, None)]


@WIRES
@pytest.mark.parametrize(
    ("coding", "body", "message"),
    [
        ("br", b"\x0b\x01\x80{}\x03", "content coding (br) is not supported"),
        ("gzip, gzip", gzip.compress(gzip.compress(b"{}")), "(gzip, gzip) is not supported"),
        ("gzip", b"\x1f\x8b not gzip at all", "the compressed answer is corrupt"),
    ],
)
def test_a_coding_that_cannot_be_undone_is_refused(
    make: Make, coding: str, body: bytes, message: str
) -> None:
    refused = pytest.raises(httpx.DecodingError, match=re.escape(message))
    with Server(always(compressed(coding, body))) as server, refused:
        run(fetch_each(server.url(""), [("GET", None)], make))


# -- failures: httpx's exceptions, no credential in their chain ---------------------------------

MALFORMED: list[tuple[str, Sequence[Step]]] = [
    ("no-status-code", (b"HTTP/1.1 OK\r\n\r\n",)),
    ("not-http", (b"SSH-2.0-OpenSSH\r\n\r\n",)),
    ("header-no-colon", (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",)),
    ("header-nul", (b"HTTP/1.1 200 OK\r\nA: b\x00c\r\nContent-Length: 2\r\n\r\n{}",)),
    ("length-text", (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",)),
    ("length-negative", (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",)),
    ("length-two", (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",)),
    (
        "length-twice",
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",),
    ),
    (
        "smuggled-framing",
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\n{}\r\n0\r\n\r\n",
        ),
    ),
    ("chunk-size-text", (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",)),
    ("chunked-cut", (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc", CLOSE)),
    ("body-short", (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", CLOSE)),
    ("no-answer", (CLOSE,)),
    ("half-head", (b"HTTP/1.1 200 OK\r\nContent-", CLOSE)),
    ("head-huge", (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 70_000 + b"\r\n\r\n",)),
    ("head-endless", (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: p\r\n" * 7000,)),
]


@pytest.mark.parametrize("steps", [pytest.param(s, id=n) for n, s in MALFORMED])
def test_a_malformed_answer_is_a_remote_protocol_error(steps: Sequence[Step]) -> None:
    with Server(always(*steps, FOREVER)) as server:
        error = failure(server)
    assert isinstance(error, httpx.RemoteProtocolError), repr(error)


def test_a_connection_that_failed_is_not_reused() -> None:
    def script(seen: Seen) -> Sequence[Step]:
        return (b"HTTP/1.1 200 OK\r\nA: \x00\r\n\r\n",) if seen.connection == 1 else (OK,)

    async def main(base: str) -> tuple[int, bytes | None]:
        async with AiohttpWire() as wire:
            with pytest.raises(httpx.RemoteProtocolError):
                await wire.fetch(base, "GET", PATH, None, timeout=5, limit=99)
            return await wire.fetch(base, "GET", PATH, None, timeout=5, limit=99)

    with Server(script) as server:
        assert run(main(server.url(""))) == (200, b"{}")
        assert server.accepted == 2


@pytest.mark.parametrize(
    ("steps", "kind"),
    [
        ((FOREVER,), httpx.ReadTimeout),
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", FOREVER), httpx.ReadTimeout),
        ((RESET,), httpx.NetworkError | httpx.RemoteProtocolError),
    ],
    ids=["silent", "stalled-body", "reset"],
)
def test_a_failure_is_httpxs_exception(steps: Sequence[Step], kind: Any) -> None:
    with Server(always(*steps)) as server:
        error = failure(server, timeout=0.2)
    assert isinstance(error, kind), repr(error)


def test_a_dripping_body_restarts_the_read_timeout() -> None:
    steps: list[Step] = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"]
    for byte in b"abcde":
        steps += [0.06, bytes([byte])]
    with Server(always(*steps)) as server:
        assert run(fetch_each(server.url(""), [("GET", None)], timeout=0.2)) == [(200, b"abcde")]


def test_a_tls_handshake_that_never_ends_is_a_connect_timeout() -> None:
    with Server(always(OK), on_accept=(FOREVER,)) as server, pytest.raises(httpx.ConnectTimeout):
        run(fetch_each(server.url("", scheme="https"), [("GET", None)], timeout=0.2))


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(httpx.ConnectError) as caught:
        run(fetch_each(f"http://127.0.0.1:{port}", [("GET", None)]))
    assert isinstance(caught.value.__cause__, OSError)
    assert not mentions_secret(caught.value)


def test_a_name_that_does_not_resolve_is_recognised() -> None:
    with pytest.raises(httpx.ConnectError) as caught:
        run(fetch_each("https://no-such-host.invalid", [("GET", None)], timeout=5))
    assert _unknown_host(caught.value) is not None
    assert not mentions_secret(caught.value)


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET /x HTTP/1.1\r\nX:", PATH),
        ("GET", "/v4/a b"),
        ("GET", "/v4/\r\nX: y"),
        ("GET", "/v4/\u00fc"),
        ("GET", "v4"),
    ],
    ids=["method", "space", "crlf", "non-ascii", "no-slash"],
)
def test_what_cannot_be_put_on_a_request_line_is_not_sent(method: str, target: str) -> None:
    async def main(base: str) -> None:
        async with AiohttpWire() as wire:
            await wire.fetch(base, method, target, None, timeout=1, limit=10)

    with Server(always(OK)) as server:
        with pytest.raises(httpx.LocalProtocolError):
            run(main(server.url("")))
        assert server.requests == []


# -- TLS and plain http ----------------------------------------------------------------------------


def _make_certificate(where: Path, name: str, san: str) -> tuple[Path, Path]:
    cert, key = where / f"{name}.pem", where / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", f"/CN={name}", "-addext", f"subjectAltName={san}"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Self-signed certificates: for localhost/127.0.0.1, for another name, for `vendor.test`."""
    if shutil.which("openssl") is None:  # pragma: no cover - openssl is on every CI image
        pytest.skip("openssl is needed to make a self-signed certificate")
    where = tmp_path_factory.mktemp("wire-tls")
    return {
        "localhost": _make_certificate(where, "localhost", "DNS:localhost,IP:127.0.0.1"),
        "elsewhere": _make_certificate(where, "elsewhere", "DNS:elsewhere.example"),
        "vendor": _make_certificate(where, "vendor", "DNS:vendor.test"),
    }


def tls_server(cert: tuple[Path, Path], names: list[str | None]) -> ssl.SSLContext:
    """A server context for `cert` that notes the SNI name of each handshake in `names`."""

    def note(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    context.sni_callback = note
    return context


def test_an_untrusted_certificate_is_refused_and_recognised(
    certificates: dict[str, tuple[Path, Path]],
) -> None:
    with Server(always(OK), tls_server(certificates["localhost"], [])) as server:
        with pytest.raises(httpx.ConnectError) as caught:
            run(fetch_each(server.url("", scheme="https"), [("GET", None)]))
        assert server.requests == []
    assert type(caught.value) is httpx.ConnectError
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert re.fullmatch(r"self[- ]signed certificate", _certificate_failure(caught.value) or "")
    assert not mentions_secret(caught.value)


def test_a_certificate_trusted_through_ssl_cert_file_is_verified_by_name(
    certificates: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Verification stays on: the one certificate the process trusts is accepted for its names,
    # with the host sent as SNI, and refused for any other name.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates["localhost"][0]))
    names: list[str | None] = []
    with Server(always(OK), tls_server(certificates["localhost"], names)) as server:
        base = server.url("", scheme="https", host="localhost")
        assert run(fetch_each(base, [("GET", None)])) == [(200, b"{}")]
        assert server.requests[0].head.startswith(f"GET {PATH} HTTP/1.1\r\n".encode())
    assert names == ["localhost"]

    monkeypatch.setenv("SSL_CERT_FILE", str(certificates["elsewhere"][0]))
    with Server(always(OK), tls_server(certificates["elsewhere"], [])) as server:
        with pytest.raises(httpx.ConnectError) as caught:
            run(fetch_each(server.url("", scheme="https", host="localhost"), [("GET", None)]))
        assert server.requests == []
    assert "Hostname mismatch" in (_certificate_failure(caught.value) or "")


def test_verification_has_no_off_switch() -> None:
    import inspect

    assert list(inspect.signature(AiohttpWire).parameters) == [
        "max_connections",
        "guard",
        "environ",
    ]


@pytest.mark.parametrize("host", ["10.0.0.5", "vendor.example", "[2001:db8::1]"])
def test_plain_http_goes_only_to_loopback(host: str) -> None:
    with pytest.raises(httpx.UnsupportedProtocol) as caught:
        run(fetch_each(f"http://{host}", [("GET", None)], timeout=0.2))
    assert str(caught.value) == "plain http is spoken only to loopback hosts; use https"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1",
        "https://",
        "http://[::1",
        "https://user:pass@vendor.example",
        "https://vendor.example/?q=1",
        "https://vendor.example/#part",
        "https://vendor.example/a b",
    ],
)
def test_what_is_not_an_http_endpoint_is_refused(url: str) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        run(fetch_each(url, [("GET", None)], timeout=0.2))


def test_plain_http_to_localhost_is_spoken() -> None:
    with Server(always(OK)) as server:
        assert run(fetch_each(server.url("", host="localhost"), [("GET", None)])) == [(200, b"{}")]


def test_the_wire_is_used_inside_async_with_only() -> None:
    async def main() -> None:
        await AiohttpWire().fetch("http://127.0.0.1:1", "GET", "/", None, timeout=1, limit=1)

    with pytest.raises(RuntimeError, match="outside `async with`"):
        run(main())
    with pytest.raises(ValueError, match=r"^max_connections must be at least 1$"):
        AiohttpWire(0)


# -- the read-only guard ---------------------------------------------------------------------------


def test_the_guard_sees_every_request_before_it_is_sent() -> None:
    seen: list[tuple[str, str]] = []

    def guard(method: str, path: str) -> None:
        seen.append((method, path))
        refuse_write(method, path)

    async def main(base: str) -> None:
        read = "/v4/openim_oa_http_svc/get_subscriber_info?usersig=x"
        write = "/v4/openim_oa_http_svc/destroy_official_account?usersig=x"
        async with AiohttpWire(guard=guard) as wire:
            assert (await wire.fetch(base, "POST", read, b"{}", timeout=1, limit=99))[0] == 200
            with pytest.raises(ReadOnlyViolation):
                await wire.fetch(base, "POST", write, b"{}", timeout=1, limit=99)

    with Server(always(OK)) as server:
        run(main(server.url("")))
        assert len(server.requests) == 1  # the read; the write was refused before leaving
    assert seen == [
        ("POST", "/v4/openim_oa_http_svc/get_subscriber_info"),
        ("POST", "/v4/openim_oa_http_svc/destroy_official_account"),
    ]


def test_connect_keeps_the_read_only_guard() -> None:
    async def main(url: str) -> None:
        target = TencentTarget("t", url, 1400000000, "administrator", Secret("k"))
        async with connect(target, Limits(), read_only=True) as providers:
            with pytest.raises(ReadOnlyViolation):
                await providers.im.destroy_account("@TOA#_x")

    with Server(always(OK)) as server:
        run(main(server.url("")))
        assert server.requests == []  # refused before it left the process


def test_the_vendor_clients_send_over_the_wire_and_log_each_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answer = b'{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}'
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)

    async def main(url: str) -> None:
        async with AiohttpWire() as wire:
            await tencent_client(wire, url, "k").import_account("u1")  # type: ignore[arg-type]

    caplog.set_level(logging.INFO)
    with Server(always(reply)) as server:
        run(main(server.url("")))
        (sent,) = (seen.head for seen in server.requests)
    assert b"\r\nUser-Agent: reconciler/" in sent
    (logged,) = [r.getMessage() for r in caplog.records if r.name == "reconciler.providers.http"]
    assert logged.startswith(f"HTTP Request: POST {server.url('')}/v4/im_open_login_svc/")
    assert "usersig=***&" in logged and logged.endswith('"HTTP/1.1 200"')


# -- proxies: through a real CONNECT proxy ---------------------------------------------------------


@dataclass
class Tunnels:
    """What the proxy did: the CONNECT targets it tunnelled, in order."""

    opened: list[str]


@contextlib.asynccontextmanager
async def connect_proxy(upstream_port: int) -> Any:
    """An HTTP CONNECT proxy on 127.0.0.1 (in the test's own loop) that sends every tunnel to
    127.0.0.1:`upstream_port`, whatever host it was asked for, and notes each one it opens."""
    tunnels = Tunnels([])
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        tunnels.opened.append(target)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            pipes.add(asyncio.ensure_future(task))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], tunnels
    finally:
        server.close()
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


@pytest.fixture
def clean_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def vendor_behind_tls(
    certificates: dict[str, tuple[Path, Path]], tmp_path: Path, clean_proxies: pytest.MonkeyPatch
) -> Iterator[int]:
    """The sandbox behind TLS as `vendor.test` (trusted through SSL_CERT_FILE); yields its port.
    The name does not resolve: only a proxy can reach it."""
    clean_proxies.setenv("SSL_CERT_FILE", str(certificates["vendor"][0]))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*certificates["vendor"])
    box = Sandbox(SandboxOptions(db_path=tmp_path / "sandbox.db", secret_key="proxy-key-4d1e"))
    with hostile_vendor(box, lambda call: None, tls) as server:
        yield int(server.base_url.rsplit(":", 1)[1])
    box.close()


def test_https_proxy_carries_every_call_through_tunnels_it_opened(
    vendor_behind_tls: int, clean_proxies: pytest.MonkeyPatch
) -> None:
    target = TencentTarget(
        "prod", "https://vendor.test", 1400000000, "administrator", Secret("proxy-key-4d1e")
    )

    async def main() -> tuple[Tunnels, dict[str, int]]:
        async with connect_proxy(vendor_behind_tls) as (port, tunnels):
            clean_proxies.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
            async with connect(target, Limits(concurrency=2)) as providers:
                # the fast path, not a fallback to another stack when a proxy is set
                assert isinstance(providers.im._caller.wire, AiohttpWire)
                for _ in range(3):  # one after another: one tunnel, kept alive
                    await providers.im.get_subscriptions("reconciler-inventory")
                assert tunnels.opened == ["vendor.test:443"]
                await asyncio.gather(  # at once: at most `concurrency` tunnels
                    *(providers.im.check_accounts([f"u{i}"]) for i in range(8))
                )
                return tunnels, dict(providers.im.calls)

    tunnels, calls = run(main())
    assert tunnels.opened in (["vendor.test:443"], ["vendor.test:443"] * 2)
    assert calls == {"get_subscribed_official_account_list": 3, "account_check": 8}


def test_no_proxy_sends_the_call_past_the_proxy(
    vendor_behind_tls: int, clean_proxies: pytest.MonkeyPatch
) -> None:
    target = TencentTarget("prod", "https://vendor.test", 1400000000, "administrator", Secret("k"))

    async def main() -> tuple[Tunnels, str]:
        async with connect_proxy(vendor_behind_tls) as (port, tunnels):
            clean_proxies.setenv("https_proxy", f"127.0.0.1:{port}")
            clean_proxies.setenv("NO_PROXY", "example.com,.test")
            async with connect(target, Limits()) as providers:
                with pytest.raises(ProviderError) as caught:
                    await providers.im.get_subscriptions("reconciler-inventory")
                return tunnels, str(caught.value)

    tunnels, error = run(main())
    assert tunnels.opened == []  # straight to vendor.test, which does not resolve
    assert "the host vendor.test does not resolve" in error


@pytest.mark.parametrize(
    ("environ", "proxy"),
    [
        ({}, None),
        ({"HTTPS_PROXY": "http://p:1"}, "http://p:1"),
        ({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1"}, "http://lower:1"),
        ({"https_proxy": "p:3128"}, "http://p:3128"),
        ({"HTTP_PROXY": "http://p:1"}, None),  # for http URLs only
        ({"ALL_PROXY": "http://all:1"}, "http://all:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "vendor.test"}, None),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "*"}, None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.test"}, "http://p:1"),
    ],
)
def test_the_proxy_is_the_environments(environ: dict[str, str], proxy: str | None) -> None:
    assert _proxy_for("https", "vendor.test", None, environ) == proxy


def test_http_proxy_is_not_taken_from_a_cgi_request() -> None:
    """httpoxy: under CGI, HTTP_PROXY is the request's `Proxy:` header."""
    environ = {"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"}
    assert _proxy_for("http", "vendor.test", 80, environ) is None


def test_a_proxy_the_wire_cannot_speak_is_refused() -> None:
    with pytest.raises(httpx.UnsupportedProtocol, match="only http"):
        _proxy_for("https", "vendor.test", None, {"ALL_PROXY": "socks5://p:1080"})


def test_a_loopback_endpoint_is_never_proxied(clean_proxies: pytest.MonkeyPatch) -> None:
    clean_proxies.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    clean_proxies.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with Server(always(OK)) as server:
        assert run(fetch_each(server.url(""), [("GET", None)])) == [(200, b"{}")]


# -- uvloop ----------------------------------------------------------------------------------------


def test_the_wire_runs_under_uvloop(
    vendor_behind_tls: int, clean_proxies: pytest.MonkeyPatch
) -> None:
    uvloop = pytest.importorskip("uvloop")
    target = TencentTarget(
        "prod", "https://vendor.test", 1400000000, "administrator", Secret("proxy-key-4d1e")
    )

    async def main() -> tuple[type, list[str], int]:
        async with connect_proxy(vendor_behind_tls) as (port, tunnels):
            clean_proxies.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
            async with connect(target, Limits()) as providers:
                await providers.im.get_subscriptions("reconciler-inventory")
                return (
                    type(asyncio.get_running_loop()),
                    tunnels.opened,
                    sum(providers.im.calls.values()),
                )

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        kind, opened, calls = runner.run(main())
    assert kind.__module__.startswith("uvloop")
    assert (opened, calls) == (["vendor.test:443"], 1)
    with Server(always(OK)) as server, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(fetch_each(server.url(""), [("GET", None)] * 2)) == [(200, b"{}")] * 2
        assert server.accepted == 1


# -- small parts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (HttpProcessingError(message="bad status line"), httpx.RemoteProtocolError),
        (TimeoutError(), httpx.ReadTimeout),
        (ConnectionResetError("reset by peer"), httpx.ReadError),
        (aiohttp.ClientError(), httpx.TransportError),
    ],
)
def test_what_aiohttp_raises_becomes_httpxs_exception(error: Exception, kind: type) -> None:
    assert type(_translate(error)) is kind


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.0.1", None),
        ("cafe.be", None),
        ("vendor.test", None),
        ("::1", None),
    ],
)
def test_a_legacy_ipv4_host_is_read_as_the_address_it_means(host: str, address: str | None) -> None:
    assert _legacy_ipv4(host) == address


def test_a_legacy_ipv4_host_is_connected_to_by_address_and_verified_by_name() -> None:
    route = _route("https://127.1:8443/im", {})
    assert (route.base, route.path, route.server_hostname) == (
        "https://127.0.0.1:8443/im",
        "/im",
        "127.1",
    )
    assert route.bare == {"Host": "127.1:8443"}


@pytest.mark.parametrize("url", ["https://exa mple.com", "https://ex\x00m.example"])
def test_a_host_aiohttp_cannot_take_is_refused(url: str) -> None:
    with pytest.raises(httpx.UnsupportedProtocol, match="not a valid URL"):
        _route(url, {})


def test_an_in_process_answer_over_the_limit_is_refused() -> None:
    async def main() -> tuple[int, bytes | None]:
        transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 11))
        async with httpx.AsyncClient(transport=transport) as http:
            return await HttpxWire(http).fetch(
                "https://sandbox", "GET", "/x", None, timeout=1, limit=10
            )

    assert run(main()) == (200, None)


def test_closing_twice_is_harmless() -> None:
    async def main() -> None:
        wire = AiohttpWire()
        async with wire:
            pass
        await wire.aclose()

    run(main())
