"""LeanTransport against a scripted HTTP/1.1 server on 127.0.0.1 (real sockets, its own thread).

Each test scripts the server's answers byte for byte and counts the connections it accepts, so
reuse, the pool's bound and every way an answer can be malformed or late are seen as the client
sees them. The server runs its own event loop in a thread: the client can block its loop (a
keep-alive closed while the client was busy) without stopping the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import inspect
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hostile_vendor import tencent_client

from reconciler import __version__
from reconciler.config import Limits, TencentTarget
from reconciler.connect import _vendor_client, connect
from reconciler.errors import ReadOnlyViolation
from reconciler.providers.http import _certificate_failure
from reconciler.providers.transport import Endpoint, LeanClient, LeanTransport
from reconciler.readonly import refuse_write
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


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def get_all(
    urls: Sequence[str], transport: LeanTransport | None = None, **kw: Any
) -> list[httpx.Response]:
    """GET each URL in turn over one client; the answers, read."""
    async with httpx.AsyncClient(transport=transport or LeanTransport()) as http:
        return [await http.get(url, **kw) for url in urls]


def failure(server: Server, *, transport: LeanTransport | None = None, **kw: Any) -> BaseException:
    """The exception one GET raises (the test fails if it does not)."""

    async def main() -> BaseException:
        with pytest.raises(httpx.HTTPError) as caught:
            await get_all([server.url()], transport, **kw)
        return caught.value

    error: BaseException = run(main())
    assert not mentions_secret(error)
    return error


def mentions_secret(error: BaseException | None) -> bool:
    """True if the error or anything it is chained from names the URL's credential."""
    while error is not None:
        if SECRET in str(error) or any(SECRET in str(a) for a in error.args):
            return True
        error = error.__cause__ or error.__context__
    return False


# -- keep-alive, pooling, framing -------------------------------------------------------------


def test_sequential_calls_share_one_connection_and_send_what_httpx_built() -> None:
    with Server(always(OK)) as server:
        answers = run(get_all([server.url()] * 5))
        assert [(a.status_code, a.json()) for a in answers] == [(200, {})] * 5
        assert server.accepted == 1
        head = server.requests[0].head.decode()
    assert head.startswith(f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n")
    assert answers[0].http_version == "HTTP/1.1"
    assert answers[0].reason_phrase == "OK"
    assert answers[0].headers["content-type"] == "application/json"  # case-insensitive


def test_a_post_body_arrives_with_its_length() -> None:
    async def main(url: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=LeanTransport()) as http:
            return await http.post(url, json={"a": 1}, timeout=None)  # no bound on any wait

    with Server(always(OK)) as server:
        assert run(main(server.url())).status_code == 200
        (seen,) = server.requests
    assert seen.body == b'{"a":1}'
    assert b"\r\nContent-Length: 7\r\n" in seen.head


def test_a_streamed_request_body_is_sent_chunked() -> None:
    async def parts() -> Any:
        yield b"ab"
        yield b"cd"

    async def main(url: str) -> list[int]:
        async with httpx.AsyncClient(transport=LeanTransport()) as http:
            streamed = await http.post(url, content=parts())
            return [streamed.status_code, (await http.get(url)).status_code]

    with Server(always(OK)) as server:
        assert run(main(server.url())) == [200, 200]
        assert server.accepted == 1
        first = server.requests[0]
    assert b"\r\nTransfer-Encoding: chunked\r\n" in first.head
    assert first.body == b"4\r\nabcd\r\n0\r\n\r\n"


def test_a_large_request_body_waits_for_the_socket_to_drain() -> None:
    body = bytes(range(256)) * 100_000  # 25.6 MB: more than the socket buffers hold

    async def main(url: str) -> int:
        async with httpx.AsyncClient(transport=LeanTransport()) as http:
            return (await http.post(url, content=body)).status_code

    with Server(always(OK)) as server:
        assert run(main(server.url())) == 200
        assert server.requests[0].body == body


def test_a_large_answer_read_slowly_is_held_back_not_buffered() -> None:
    body = bytes(range(256)) * 8_000  # 2 MB
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def main(url: str) -> bytes:
        received = b""
        async with httpx.AsyncClient(transport=LeanTransport()) as http:
            async with http.stream("GET", url) as reply:
                async for chunk in reply.aiter_raw():
                    received += chunk
                    await asyncio.sleep(0.005)  # the socket is paused while it waits
            return received + (await http.get(url)).content[:1]

    with Server(always(answer)) as server:
        assert run(main(server.url())) == body + body[:1]
        assert server.accepted == 1


def test_concurrent_calls_open_at_most_max_connections_and_reuse_them() -> None:
    async def main(url: str) -> list[int]:
        async with httpx.AsyncClient(transport=LeanTransport(3)) as http:
            answers = await asyncio.gather(*(http.get(url) for _ in range(12)))
        return [a.status_code for a in answers]

    with Server(always(0.05, OK)) as server:
        assert run(main(server.url())) == [200] * 12
        assert (server.accepted, server.most_in_flight) == (3, 3)


def test_a_request_waits_for_a_place_at_most_the_pool_timeout() -> None:
    async def main(url: str) -> BaseException:
        transport = LeanTransport(1)
        async with httpx.AsyncClient(transport=transport) as http:
            hanging = asyncio.ensure_future(http.get(url, timeout=10))
            await asyncio.sleep(0.1)
            with pytest.raises(httpx.PoolTimeout) as caught:
                await http.get(url, timeout=httpx.Timeout(10, pool=0.1))
            hanging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hanging
            # the cancelled call gave its place back
            await http.get(url.replace("hang", "ok"), timeout=httpx.Timeout(10, pool=1))
        return caught.value

    def script(seen: Seen) -> Sequence[Step]:
        return (FOREVER,) if b"hang" in seen.head else (OK,)

    with Server(script) as server:
        error = run(main(server.url(PATH + "&hang")))
    assert (str(error), error.__cause__) == ("", None)


def test_a_woken_request_that_is_cancelled_passes_its_place_on() -> None:
    async def main(url: str) -> int:
        transport = LeanTransport(1)
        async with httpx.AsyncClient(transport=transport) as http:
            holder = await http.send(http.build_request("GET", url), stream=True)
            unbounded = httpx.Timeout(10, pool=None)
            woken = asyncio.ensure_future(http.get(url, timeout=unbounded))
            waiting = asyncio.ensure_future(http.get(url, timeout=httpx.Timeout(10, pool=2)))
            await asyncio.sleep(0.05)
            await holder.aclose()  # the place is free: the first waiter is woken ...
            woken.cancel()  # ... and cancelled before it runs
            with contextlib.suppress(asyncio.CancelledError):
                await woken
            return (await waiting).status_code

    with Server(always(OK)) as server:
        started = time.monotonic()
        assert run(main(server.url())) == 200
        assert time.monotonic() - started < 1.0


def test_a_cancelled_connect_gives_its_place_back() -> None:
    async def main(hanging: str, answering: str) -> int:
        async with httpx.AsyncClient(transport=LeanTransport(1)) as http:
            stuck = asyncio.ensure_future(http.get(hanging, timeout=None))
            await asyncio.sleep(0.1)  # in the TLS handshake, which never ends
            stuck.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stuck
            return (await http.get(answering, timeout=httpx.Timeout(10, pool=0.5))).status_code

    with Server(always(OK), on_accept=(FOREVER,)) as mute, Server(always(OK)) as server:
        assert run(main(mute.url(scheme="https"), server.url())) == 200


def test_an_idle_connection_to_another_host_makes_room() -> None:
    with Server(always(OK)) as first, Server(always(OK)) as second:
        urls = [first.url(), second.url(), first.url()]
        assert [a.status_code for a in run(get_all(urls, LeanTransport(1)))] == [200] * 3
        assert (first.accepted, second.accepted) == (2, 1)


def test_connection_close_is_honoured() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    with Server(always(answer)) as server:
        assert [a.json() for a in run(get_all([server.url()] * 2))] == [{}, {}]
        assert server.accepted == 2


def test_a_chunked_answer_is_joined_and_its_connection_reused() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    with Server(always(answer)) as server:
        assert [a.json() for a in run(get_all([server.url()] * 2))] == [{"a": 1}] * 2
        assert server.accepted == 1


def test_an_answer_without_a_length_is_read_to_the_close() -> None:
    with Server(always(b"HTTP/1.1 200 OK\r\n\r\n", b'{"a":', 0.05, b" 1}", CLOSE)) as server:
        assert [a.json() for a in run(get_all([server.url()] * 2))] == [{"a": 1}] * 2
        assert server.accepted == 2


def test_an_http_10_answer_closes_unless_kept_alive() -> None:
    plain = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    kept = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n{}"
    with Server(always(plain)) as server:
        answers = run(get_all([server.url()] * 2))
        assert (answers[0].http_version, server.accepted) == ("HTTP/1.0", 2)
    with Server(always(kept)) as server:
        run(get_all([server.url()] * 2))
        assert server.accepted == 1


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        (
            "GET",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ),
    ],
    ids=["204", "304", "head", "empty", "103-then-answer"],
)
def test_bodyless_answers_keep_the_connection(method: str, answer: bytes) -> None:
    async def main(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=LeanTransport()) as http:
            return [await http.request(method, url) for _ in range(3)]

    with Server(always(answer)) as server:
        answers = run(main(server.url()))
        assert [a.content for a in answers] == [b""] * 3
        assert server.accepted == 1


def test_content_encoding_is_left_to_httpx() -> None:
    body = gzip.compress(b'{"a": 1}')
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
    with Server(always(answer % (len(body), body))) as server:
        (reply,) = run(get_all([server.url()]))
    assert reply.json() == {"a": 1}


def test_a_body_is_streamed_as_it_arrives() -> None:
    async def main(url: str) -> list[float]:
        arrivals: list[float] = []
        async with (
            httpx.AsyncClient(transport=LeanTransport()) as http,
            http.stream("GET", url) as reply,
        ):
            started = time.monotonic()
            async for _ in reply.aiter_raw():
                arrivals.append(time.monotonic() - started)
        return arrivals

    steps = (b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab", 0.2, b"cd", 0.2, b"ef")
    with Server(always(*steps)) as server:
        arrivals = run(main(server.url()))
    assert len(arrivals) == 3 and arrivals[0] < 0.1 < 0.3 < arrivals[2]


def test_an_abandoned_body_is_not_reused() -> None:
    async def main(url: str) -> int:
        async with httpx.AsyncClient(transport=LeanTransport()) as http:
            async with http.stream("GET", url) as reply:
                async for _ in reply.aiter_raw():
                    break  # what the Caller does past its size cap
            async with http.stream("GET", url) as unread:
                assert unread.status_code == 200  # what it does with a status that is not 200
            return len((await http.get(url)).content)

    big = b"x" * 1_000_000
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)
    with Server(always(answer)) as server:
        assert run(main(server.url())) == len(big)
        assert server.accepted == 3


# -- stale keep-alives -------------------------------------------------------------------------


async def get_twice_with_a_pause(url: str, *, busy: bool) -> list[httpx.Response]:
    """GET `url`, stay idle 0.1 s, GET it again, over one client; the answers, read.

    While idle the client either watches its loop or is busy (its loop blocked), so whatever
    the server did meanwhile waits on the socket."""
    async with httpx.AsyncClient(transport=LeanTransport()) as http:
        first = await http.get(url)
        if busy:
            time.sleep(0.1)
        else:
            await asyncio.sleep(0.1)
        return [first, await http.get(url)]


@pytest.mark.parametrize("busy", [False, True], ids=["loop-saw-it", "loop-busy"])
def test_a_keep_alive_closed_by_the_server_costs_no_failed_call(busy: bool) -> None:
    with Server(always(OK, CLOSE)) as server:  # the server closes its idle connection
        answers = run(get_twice_with_a_pause(server.url(), busy=busy))
        assert [a.status_code for a in answers] == [200, 200]
        assert (server.accepted, len(server.requests)) == (2, 2)


@pytest.mark.parametrize("busy", [False, True], ids=["loop-saw-it", "loop-busy"])
def test_an_idle_connection_that_turns_readable_is_not_reused(busy: bool) -> None:
    unasked = b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"unasked"'
    with Server(always(OK, 0.02, unasked)) as server:
        answers = run(get_twice_with_a_pause(server.url(), busy=busy))
        assert [a.json() for a in answers] == [{}, {}]
        assert server.accepted == 2


def test_an_idle_connection_past_its_expiry_is_not_reused() -> None:
    with Server(always(OK)) as server:
        run(get_all([server.url()] * 2, LeanTransport(keepalive_expiry=0.0)))
        assert server.accepted == 2


def test_aclose_closes_every_connection_idle_or_in_use() -> None:
    async def main(url: str) -> None:
        transport = LeanTransport()
        http = httpx.AsyncClient(transport=transport)
        await asyncio.gather(*(http.get(url) for _ in range(2)))  # two idle connections
        reply = await http.send(http.build_request("GET", url + "&slow"), stream=True)
        assert reply.status_code == 200  # a third, its body still coming
        await http.aclose()
        await reply.aclose()  # its connection is already closed: nothing goes back to the pool

    def script(seen: Seen) -> Sequence[Step]:
        if b"slow" in seen.head:
            return (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", AWAIT_CLOSE)
        return (0.05, OK)

    with Server(script) as server:
        run(main(server.url()))
        time.sleep(0.1)
        # two connections: the slow call took one of the idle ones
        assert (server.accepted, server.closed_by_client) == (2, 2)


# -- malformed answers -------------------------------------------------------------------------

MALFORMED: list[tuple[str, Sequence[Step], str]] = [
    ("no-status-code", (b"HTTP/1.1 OK\r\n\r\n",), "malformed status line"),
    ("short-status-code", (b"HTTP/1.1 20 OK\r\n\r\n",), "malformed status line"),
    ("http-2", (b"HTTP/2 200 OK\r\n\r\n",), "malformed status line"),
    ("not-http", (b"SSH-2.0-OpenSSH\r\n\r\n",), "malformed status line"),
    ("status-below-100", (b"HTTP/1.1 099 X\r\n\r\n",), "malformed status line"),
    ("switching", (b"HTTP/1.1 101 Switching Protocols\r\n\r\n",), "switched protocols"),
    ("header-no-colon", (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",), "malformed header"),
    ("header-space-name", (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",), "malformed header"),
    ("header-folded", (b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",), "malformed header"),
    ("header-nul", (b"HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n",), "malformed header"),
    ("header-bare-lf", (b"HTTP/1.1 200 OK\r\nA: b\nB: c\r\n\r\n",), "malformed header"),
    ("length-text", (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",), "malformed Content"),
    ("length-negative", (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",), "malformed Content"),
    ("length-two", (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",), "conflicting"),
    (
        "length-twice",
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",),
        "conflicting",
    ),
    ("te-gzip", (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",), "Transfer-Encoding"),
    (
        "chunk-size-text",
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",),
        "malformed chunk size",
    ),
    (
        "chunk-size-0x",
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n",),
        "malformed chunk size",
    ),
    (
        "chunk-size-negative",
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n",),
        "malformed chunk size",
    ),
    (
        "chunk-overlong",
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",),
        "longer than its size",
    ),
    (
        "chunk-size-line-huge",
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;" + b"x" * 5000,),
        "longer than 4096 bytes",
    ),
    (
        "chunked-cut",
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc", CLOSE),
        "in the middle of a chunk",
    ),
    (
        "chunked-no-end",
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", CLOSE),
        "ended in the middle of its chunks",
    ),
    (
        "trailers-huge",
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            + (b"X-Trailer: " + b"t" * 4000 + b"\r\n") * 17,  # each line short, all too long
        ),
        "trailers longer than the header limit",
    ),
    (
        "body-short",
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", CLOSE),
        "7 bytes short of its Content-Length",
    ),
    ("no-answer", (CLOSE,), "closed the connection without an answer"),
    ("half-head", (b"HTTP/1.1 200 OK\r\nContent-", CLOSE), "in the middle of an answer"),
    (
        "head-huge",
        (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 70_000 + b"\r\n\r\n",),
        "longer than 65536 bytes",
    ),
    (
        "head-endless",
        (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: p\r\n" * 7000,),
        "longer than 65536 bytes",
    ),
]


@pytest.mark.parametrize(("steps", "message"), [pytest.param(s, m, id=n) for n, s, m in MALFORMED])
def test_a_malformed_answer_is_a_remote_protocol_error(steps: Sequence[Step], message: str) -> None:
    with Server(always(*steps, FOREVER)) as server:
        error = failure(server, timeout=5)
    assert isinstance(error, httpx.RemoteProtocolError), repr(error)
    assert message in str(error)


def test_a_connection_that_failed_is_not_reused() -> None:
    def script(seen: Seen) -> Sequence[Step]:
        return (b"HTTP/1.1 200 OK\r\nA: \x00\r\n\r\n",) if seen.connection == 1 else (OK,)

    async def main(url: str) -> int:
        async with httpx.AsyncClient(transport=LeanTransport()) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(url)
            return (await http.get(url)).status_code

    with Server(script) as server:
        assert run(main(server.url())) == 200
        assert server.accepted == 2


@pytest.mark.parametrize(
    ("method", "headers"),
    [("GET", {"X-Bad": "a\r\nInjected: 1"}), ("GET", {"X-Bad": "a\x00"}), ("GET /x", {})],
    ids=["crlf-in-header", "nul-in-header", "space-in-method"],
)
def test_a_request_that_would_smuggle_another_is_not_sent(
    method: str, headers: dict[str, str]
) -> None:
    async def main(url: str) -> None:
        async with httpx.AsyncClient(transport=LeanTransport()) as http:
            with pytest.raises(httpx.LocalProtocolError):
                await http.request(method, url, headers=headers)

    with Server(always(OK)) as server:
        run(main(server.url()))
        assert server.accepted == 0


def test_a_reset_before_the_answer_is_a_read_error() -> None:
    with Server(always(RESET)) as server:
        error = failure(server)
    assert type(error) is httpx.ReadError
    assert isinstance(error.__cause__, ConnectionResetError)


def test_a_server_that_hangs_up_while_the_request_is_sent_is_a_write_error() -> None:
    async def main(url: str) -> BaseException:
        async with httpx.AsyncClient(transport=LeanTransport()) as http:
            with pytest.raises(httpx.WriteError) as caught:
                await http.post(url, content=b"x" * 32_000_000)
            return caught.value

    with Server(always(OK), on_accept=(0.2, CLOSE)) as server:
        error = run(main(server.url()))
    assert str(error) == "the connection was closed while sending"
    assert not mentions_secret(error)


def test_a_reset_is_no_end_of_a_body_read_to_the_close() -> None:
    async def main(url: str) -> tuple[bytes, BaseException]:
        received = b""
        async with httpx.AsyncClient(transport=LeanTransport()) as http:
            with pytest.raises(httpx.ReadError) as caught:
                async with http.stream("GET", url) as reply:
                    async for chunk in reply.aiter_raw():
                        received += chunk
        return received, caught.value

    with Server(always(b"HTTP/1.1 200 OK\r\n\r\nabc", 0.05, RESET)) as server:
        received, error = run(main(server.url()))
    assert received == b"abc"
    assert isinstance(error.__cause__, ConnectionResetError)
    assert not mentions_secret(error)


# -- timeouts ------------------------------------------------------------------------------------


def test_a_silent_server_is_a_read_timeout() -> None:
    with Server(always(FOREVER)) as server:
        error = failure(server, timeout=httpx.Timeout(10, read=0.1))
    assert type(error) is httpx.ReadTimeout and str(error) == ""


def test_a_body_that_stops_is_a_read_timeout() -> None:
    with Server(always(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", FOREVER)) as server:
        error = failure(server, timeout=httpx.Timeout(10, read=0.1))
    assert type(error) is httpx.ReadTimeout


def test_a_dripping_body_restarts_the_read_timeout() -> None:
    steps: list[Step] = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"]
    for byte in b"abcde":
        steps += [0.06, bytes([byte])]
    with Server(always(*steps)) as server:
        (reply,) = run(get_all([server.url()], timeout=httpx.Timeout(10, read=0.15)))
    assert reply.content == b"abcde"


def test_a_server_that_never_reads_is_a_write_timeout() -> None:
    async def main(url: str) -> BaseException:
        async with httpx.AsyncClient(transport=LeanTransport()) as http:
            with pytest.raises(httpx.WriteTimeout) as caught:
                body = b"x" * 32_000_000  # more than the socket buffers hold
                await http.post(url, content=body, timeout=httpx.Timeout(10, write=0.2))
            return caught.value

    with Server(always(OK), on_accept=(FOREVER,)) as server:
        error = run(main(server.url()))
    assert str(error) == ""


def test_a_tls_handshake_that_never_ends_is_a_connect_timeout() -> None:
    with Server(always(OK), on_accept=(FOREVER,)) as server:
        error = run(
            get_all_error(server.url(scheme="https"), timeout=httpx.Timeout(10, connect=0.2))
        )
    assert type(error) is httpx.ConnectTimeout and str(error) == ""


async def get_all_error(url: str, **kw: Any) -> BaseException:
    with pytest.raises(httpx.HTTPError) as caught:
        await get_all([url], **kw)
    return caught.value


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    error = run(get_all_error(f"http://127.0.0.1:{port}{PATH}"))
    assert type(error) is httpx.ConnectError
    assert isinstance(error.__cause__, OSError)
    assert not mentions_secret(error)


# -- TLS -----------------------------------------------------------------------------------------


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
    """Self-signed certificates: one for localhost/127.0.0.1, one for another name."""
    if shutil.which("openssl") is None:  # pragma: no cover - openssl is on every CI image
        pytest.skip("openssl is needed to make a self-signed certificate")
    where = tmp_path_factory.mktemp("lean-tls")
    return {
        "localhost": _make_certificate(where, "localhost", "DNS:localhost,IP:127.0.0.1"),
        "elsewhere": _make_certificate(where, "elsewhere", "DNS:elsewhere.example"),
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
        error = run(get_all_error(server.url(scheme="https")))
        assert server.requests == []
    assert type(error) is httpx.ConnectError
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert re.fullmatch(r"self[- ]signed certificate", _certificate_failure(error) or "")


def test_a_certificate_trusted_through_ssl_cert_file_is_verified_by_name(
    certificates: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Verification stays on: the one certificate the process trusts is accepted for its names,
    # with the host sent as SNI, and refused for any other name.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates["localhost"][0]))
    names: list[str | None] = []
    with Server(always(OK), tls_server(certificates["localhost"], names)) as server:
        urls = [server.url(scheme="https", host="localhost"), server.url(scheme="https")]
        assert [a.json() for a in run(get_all(urls))] == [{}, {}]
    assert names == ["localhost", None]  # no SNI for an address

    monkeypatch.setenv("SSL_CERT_FILE", str(certificates["elsewhere"][0]))
    with Server(always(OK), tls_server(certificates["elsewhere"], [])) as server:
        error = run(get_all_error(server.url(scheme="https", host="localhost")))
    assert "Hostname mismatch" in (_certificate_failure(error) or "")


def test_fetch_verifies_tls_as_the_transport_does(
    certificates: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates["localhost"][0]))
    names: list[str | None] = []
    with Server(always(OK), tls_server(certificates["localhost"], names)) as server:
        base = server.url("", scheme="https", host="localhost")
        assert run(fetch_each(base, [("GET", None)])) == [(200, b"{}")]
        assert server.requests[0].head.startswith(
            f"GET {PATH} HTTP/1.1\r\nHost: localhost:{server.port}\r\n".encode()
        )
    assert names == ["localhost"]

    monkeypatch.setenv("SSL_CERT_FILE", str(certificates["elsewhere"][0]))
    with Server(always(OK), tls_server(certificates["elsewhere"], [])) as server:
        with pytest.raises(httpx.ConnectError) as caught:
            run(fetch_each(server.url("", scheme="https", host="localhost"), [("GET", None)]))
        assert server.requests == []
    assert "Hostname mismatch" in (_certificate_failure(caught.value) or "")


def test_verification_has_no_off_switch() -> None:
    assert list(inspect.signature(LeanTransport).parameters) == [
        "max_connections",
        "keepalive_expiry",
        "guard",
    ]


@pytest.mark.parametrize("host", ["10.0.0.5", "vendor.example", "[2001:db8::1]"])
def test_plain_http_goes_only_to_loopback(host: str) -> None:
    error = run(get_all_error(f"http://{host}{PATH}", timeout=0.2))
    assert type(error) is httpx.UnsupportedProtocol
    assert str(error) == "plain http is spoken only to loopback hosts; use https"


def test_plain_http_to_localhost_is_spoken() -> None:
    with Server(always(OK)) as server:
        (reply,) = run(get_all([server.url(host="localhost")]))
    assert reply.status_code == 200


def test_what_httpx_would_not_send_is_refused_by_the_transport_too() -> None:
    async def main() -> None:
        transport = LeanTransport()
        with pytest.raises(httpx.UnsupportedProtocol, match=r"^'ftp' is not http or https$"):
            await transport.handle_async_request(httpx.Request("GET", "ftp://127.0.0.1/x"))
        with Server(always(OK)) as server:
            reply = await transport.handle_async_request(httpx.Request("GET", server.url()))
            assert await reply.aread() == b"{}"
            with pytest.raises(httpx.StreamClosed):
                async for _ in reply.stream:  # type: ignore[union-attr]
                    pass
        await transport.aclose()

    run(main())
    with pytest.raises(ValueError, match=r"^max_connections must be at least 1$"):
        LeanTransport(0)


# -- connect() -----------------------------------------------------------------------------------


def test_connect_keeps_the_read_only_hook() -> None:
    async def main(url: str) -> None:
        target = TencentTarget("t", url, 1400000000, "administrator", Secret("k"))
        async with connect(target, Limits(), read_only=True) as providers:
            with pytest.raises(ReadOnlyViolation):
                await providers.im.destroy_account("@TOA#_x")

    with Server(always(OK)) as server:
        run(main(server.url("")))
        assert server.requests == []  # refused before it left the process


def test_connect_keeps_httpx_stack_when_a_proxy_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{unused.getsockname()[1]}/x"

    async def main() -> int:
        async with _vendor_client(Limits(), {}, read_only=False) as http:
            return (await http.get(nowhere)).status_code

    with Server(always(OK)) as proxy:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        assert run(main()) == 200  # nothing listens at `nowhere`: the proxy answered
        assert proxy.requests[0].head.startswith(f"GET {nowhere} HTTP/1.1".encode())


# -- fetch: the vendor clients' way past httpx's client ----------------------------------------

TARGET = PATH  # path and query after the endpoint's prefix


async def fetch_each(
    base: str,
    calls: Sequence[tuple[str, bytes | None]],
    transport: LeanTransport | None = None,
    *,
    timeout: float | None = 10.0,
    limit: int = 1 << 20,
) -> list[tuple[int, bytes | None]]:
    """`fetch` TARGET with each (method, body) in turn over one transport; the answers."""
    endpoint = Endpoint.parse(base)
    assert endpoint is not None
    lean = transport or LeanTransport()
    try:
        return [
            await lean.fetch(endpoint, method, TARGET, body, timeout=timeout, limit=limit)
            for method, body in calls
        ]
    finally:
        await lean.aclose()


def test_fetch_sends_a_bare_request_and_reuses_its_connection() -> None:
    with Server(always(OK)) as server:
        answers = run(fetch_each(server.url(""), [("POST", b'{"a":1}'), ("GET", None)]))
        assert answers == [(200, b"{}"), (200, b"{}")]
        assert server.accepted == 1
        post, get = server.requests
    assert post.head.decode() == (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Accept: application/json\r\nAccept-Encoding: identity\r\n"
        f"User-Agent: reconciler/{__version__}\r\n"
        "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n"
    )
    assert post.body == b'{"a":1}'
    assert b"Content-" not in get.head and get.body == b""


def test_fetch_puts_the_endpoints_path_before_the_target() -> None:
    with Server(always(OK)) as server:
        run(fetch_each(server.url("/im/"), [("GET", None)]))
        assert server.requests[0].head.startswith(f"GET /im{PATH} HTTP/1.1\r\n".encode())


def test_fetch_does_not_read_an_error_answer_or_reuse_its_connection() -> None:
    error = b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy"
    bodyless = b"HTTP/1.1 204 No Content\r\n\r\n"
    answers = iter([error, bodyless, OK])
    with Server(lambda seen: [next(answers)]) as server:
        got = run(fetch_each(server.url(""), [("GET", None)] * 3))
        assert got == [(503, b""), (204, b""), (200, b"{}")]
        assert server.accepted == 2  # the 503's connection was closed; the 204's kept


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
def test_fetch_refuses_an_answer_over_its_limit(answer: bytes) -> None:
    with Server(always(answer, CLOSE)) as server:
        assert run(fetch_each(server.url(""), [("GET", None)], limit=10)) == [(200, None)]
        assert run(fetch_each(server.url(""), [("GET", None)], limit=11)) == [(200, b"[1,2,3,4,5]")]


def test_an_answer_over_the_limit_is_not_read_on_and_its_connection_not_reused() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n[1,2,3\r\n"
    with Server(always(chunked, FOREVER)) as server:  # the rest never comes: it is not waited for
        answers = run(fetch_each(server.url(""), [("GET", None)] * 2, limit=5, timeout=5))
        assert answers == [(200, None), (200, None)]
        assert server.accepted == 2


def compressed(coding: str, body: bytes) -> bytes:
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s"
    return answer % (coding.encode(), len(body), body)


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", gzip.compress(b'{"a":1}')),
        ("x-gzip", gzip.compress(b'{"a":1}')),
        ("deflate", zlib.compress(b'{"a":1}')),
        ("Identity", b'{"a":1}'),
    ],
)
def test_fetch_undoes_a_content_coding_it_did_not_ask_for(coding: str, body: bytes) -> None:
    with Server(always(compressed(coding, body))) as server:
        assert run(fetch_each(server.url(""), [("GET", None)] * 2)) == [(200, b'{"a":1}')] * 2
        assert server.accepted == 1


def test_fetch_refuses_a_compression_bomb() -> None:
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB in about 64 KB
    with Server(always(compressed("gzip", bomb))) as server:
        assert run(fetch_each(server.url(""), [("GET", None)], limit=1024)) == [(200, None)]


@pytest.mark.parametrize(
    ("coding", "body", "message"),
    [
        ("br", b"\x0b\x01\x80{}\x03", "content coding (br) is not supported"),
        ("gzip, gzip", gzip.compress(gzip.compress(b"{}")), "(gzip, gzip) is not supported"),
        ("gzip", b"\x1f\x8b not gzip at all", "the compressed answer is corrupt"),
    ],
)
def test_fetch_refuses_a_coding_it_cannot_undo(coding: str, body: bytes, message: str) -> None:
    refused = pytest.raises(httpx.DecodingError, match=re.escape(message))
    with Server(always(compressed(coding, body))) as server, refused:
        run(fetch_each(server.url(""), [("GET", None)]))


@pytest.mark.parametrize(
    ("steps", "kind"),
    [
        ((FOREVER,), httpx.ReadTimeout),
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", FOREVER), httpx.ReadTimeout),
        ((RESET,), httpx.ReadError),
        ((b"HTTP/1.1 200\r\nContent-Length: x\r\n\r\n",), httpx.RemoteProtocolError),
    ],
    ids=["silent", "stalled-body", "reset", "malformed"],
)
def test_fetch_fails_as_httpx_would(steps: Sequence[Step], kind: type[Exception]) -> None:
    with Server(always(*steps)) as server, pytest.raises(kind) as caught:
        run(fetch_each(server.url(""), [("GET", None)], timeout=0.2))
    assert type(caught.value) is kind and not mentions_secret(caught.value)


def test_fetch_to_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        run(fetch_each(f"http://127.0.0.1:{port}", [("GET", None)]))


@pytest.mark.parametrize(
    ("method", "target"),
    [("GET /x HTTP/1.1\r\nX:", PATH), ("GET", "/v4/a b"), ("GET", "/v4/\r\nX: y"), ("GET", "v4")],
)
def test_fetch_refuses_what_cannot_be_put_on_a_request_line(method: str, target: str) -> None:
    async def main(url: str) -> None:
        endpoint = Endpoint.parse(url)
        assert endpoint is not None
        await LeanTransport().fetch(endpoint, method, target, None, timeout=1, limit=10)

    with Server(always(OK)) as server:
        with pytest.raises(httpx.LocalProtocolError):
            run(main(server.url("")))
        assert server.accepted == 0


def test_the_guard_sees_every_request_either_way() -> None:
    seen: list[tuple[str, str]] = []

    def guard(method: str, path: str) -> None:
        seen.append((method, path))
        refuse_write(method, path)

    async def main(base: str) -> None:
        transport = LeanTransport(guard=guard)
        endpoint = Endpoint.parse(base)
        assert endpoint is not None
        read = "/v4/openim_oa_http_svc/get_subscriber_info?usersig=x"
        write = "/v4/openim_oa_http_svc/destroy_official_account?usersig=x"
        assert (await transport.fetch(endpoint, "POST", read, b"{}", timeout=1, limit=99))[0] == 200
        with pytest.raises(ReadOnlyViolation):
            await transport.fetch(endpoint, "POST", write, b"{}", timeout=1, limit=99)
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(ReadOnlyViolation):
                await http.post(base + write, json={})

    with Server(always(OK)) as server:
        run(main(server.url("")))
        assert len(server.requests) == 1  # the read; both writes were refused before leaving
    write_path = "/v4/openim_oa_http_svc/destroy_official_account"
    assert seen == [
        ("POST", "/v4/openim_oa_http_svc/get_subscriber_info"),
        ("POST", write_path),
        ("POST", write_path),
    ]


@pytest.mark.parametrize(
    ("url", "key", "authority", "prefix"),
    [
        (
            "https://console.tim.qq.com",
            ("https", "console.tim.qq.com", 443),
            b"console.tim.qq.com",
            "",
        ),
        (
            "https://console.tim.qq.com:443/",
            ("https", "console.tim.qq.com", 443),
            b"console.tim.qq.com",
            "",
        ),
        ("http://127.0.0.1:8754/", ("http", "127.0.0.1", 8754), b"127.0.0.1:8754", ""),
        ("http://[::1]:80/im/v1/", ("http", "::1", 80), b"[::1]", "/im/v1"),
        ("http://LocalHost:81", ("http", "localhost", 81), b"localhost:81", ""),
    ],
)
def test_an_endpoint_is_split_once(
    url: str, key: tuple[str, str, int], authority: bytes, prefix: str
) -> None:
    assert Endpoint.parse(url) == Endpoint(key, authority, prefix)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@vendor.example",
        "https://vendor.example/?q=1",
        "https://vendor.example/#part",
        "https://bücher.example",
        "ftp://vendor.example",
        "https://vendor.example:99999",
        "https://vendor.example/a b",
        "https://",
    ],
)
def test_an_endpoint_fetch_does_not_speak_to_is_left_to_httpx(url: str) -> None:
    assert Endpoint.parse(url) is None


def test_the_vendor_clients_fetch_over_a_lean_client_and_log_each_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answer = b'{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}'
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)

    async def main(url: str, http: httpx.AsyncClient) -> None:
        async with http:
            await tencent_client(http, url, "k").import_account("u1")

    caplog.set_level(logging.INFO)
    with Server(always(reply)) as server:
        run(main(server.url(""), LeanClient(LeanTransport())))
        run(main(server.url(""), httpx.AsyncClient(transport=LeanTransport())))
        lean, plain = (seen.head for seen in server.requests)
    assert b"\r\nUser-Agent: reconciler/" in lean
    assert b"\r\nUser-Agent: python-httpx/" in plain
    (logged,) = [r.getMessage() for r in caplog.records if r.name == "reconciler.providers.http"]
    assert logged.startswith(f"HTTP Request: POST {server.url('')}/v4/im_open_login_svc/")
    assert "usersig=***&" in logged and logged.endswith('"HTTP/1.1 200"')
