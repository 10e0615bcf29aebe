"""A hostile vendor on 127.0.0.1: the sandbox's honest answers, bent by a script.

`HostileVendor(sandbox, script)` is a raw HTTP/1.1 server (asyncio, in a thread) that speaks the
Tencent IM and WeChat paths. For every request it asks `script(call)`; `None` sends the sandbox's
honest answer, a `Misbehave` sends what it describes: malformed or oversized bodies, wrong
statuses, answers dripped a byte at a time, answers that never come, connections cut mid-body.
`call.honest()` runs the request on the sandbox (so the state changes, as a real vendor's would)
and returns its JSON, for scripts that bend a real answer (drop a field, change a type, add a
cursor). Every request is recorded (`.calls`) with its command name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler.providers import Pacer, RetryPolicy, TencentClient
from reconciler.sandbox.server import Sandbox
from reconciler.secret import Secret


@dataclass(frozen=True, slots=True)
class Misbehave:
    """One answer: `status` and `body`, sent as `mode` says.

    modes: `send` (all at once), `drip` (headers, then one byte every `pace` seconds, for ever if
    `body` is long enough), `silent` (read the request, never answer), `headers` (headers, then
    nothing), `cut` (headers claiming the full length, half the body, close).
    """

    body: bytes = b""
    status: int = 200
    mode: str = "send"
    pace: float = 0.2
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


@dataclass(slots=True)
class Call:
    """A request as the script sees it."""

    command: str  # `get_subscriber_info`, `stable_token`, `message/mass/speed/get`, ...
    path: str
    query: str
    body: bytes
    count: int  # 1 for the first request of this command, 2 for the second, ...
    sandbox: Sandbox
    _honest: dict[str, Any] | None = field(default=None)

    def json(self) -> dict[str, Any]:
        loaded = json.loads(self.body or b"{}")
        assert isinstance(loaded, dict)
        return loaded

    def honest(self, **changes: Any) -> dict[str, Any]:
        """The sandbox's answer to this request, its body changed by `changes` (run once; the
        sandbox's state changes)."""
        if self._honest is None:
            body = json.dumps({**self.json(), **changes}).encode() if changes else self.body
            _, _, raw = self.sandbox.handle("POST", self.path, self.query, body)
            self._honest = json.loads(raw)
        return self._honest


Script = Callable[[Call], "Misbehave | dict[str, Any] | None"]


def answer(doc: Any) -> Misbehave:
    """A 200 answer holding `doc` as JSON."""
    return Misbehave(json.dumps(doc).encode())


class HostileVendor:
    """The server; `base_url` once started. Use as a context manager."""

    def __init__(self, sandbox: Sandbox, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.sandbox = sandbox
        self.script = script
        self.tls = tls
        self.calls: Counter[str] = Counter()
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> HostileVendor:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self._server = future.result(timeout=10)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Cancelled at shutdown (a connection left hanging on purpose): end quietly.
        with contextlib.suppress(
            ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, ssl.SSLError
        ):
            try:
                while await self._one(reader, writer):
                    pass
            finally:
                writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in header_lines if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        parts = urlsplit(target)
        command = parts.path.split("/", 3)[-1] if parts.path.startswith("/v4/") else ""
        if parts.path.startswith("/cgi-bin/"):
            command = parts.path.removeprefix("/cgi-bin/")
        with self._lock:
            self.calls[command] += 1
            count = self.calls[command]
        call = Call(command, parts.path, parts.query, body, count, self.sandbox)
        decided = self.script(call)
        if decided is None:
            status, reply_headers, raw = self.sandbox.handle(method, parts.path, parts.query, body)
            if call._honest is not None:  # the script already ran it: send that answer
                status, raw = 200, json.dumps(call._honest).encode()
            decided = Misbehave(raw, status, headers=tuple(reply_headers))
        elif isinstance(decided, dict):
            decided = answer(decided)
        return await self._send(writer, decided)

    async def _send(self, writer: asyncio.StreamWriter, reply: Misbehave) -> bool:
        if reply.mode == "silent":
            await asyncio.sleep(3600)
        head = [f"HTTP/1.1 {reply.status} X"]
        head += [f"{k}: {v}" for k, v in reply.headers if k.lower() != "content-length"]
        head.append(f"content-length: {len(reply.body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        if reply.mode == "headers":
            await asyncio.sleep(3600)
        if reply.mode == "cut":
            writer.write(reply.body[: len(reply.body) // 2])
            await writer.drain()
            return False
        if reply.mode == "drip":
            for index in range(len(reply.body)):
                writer.write(reply.body[index : index + 1])
                await writer.drain()
                await asyncio.sleep(reply.pace)
            return True
        writer.write(reply.body)
        await writer.drain()
        return True


@contextlib.contextmanager
def hostile_vendor(
    sandbox: Sandbox, script: Script, tls: ssl.SSLContext | None = None
) -> Iterator[HostileVendor]:
    with HostileVendor(sandbox, script, tls) as server:
        yield server


def tencent_client(http: httpx.AsyncClient, url: str, key: str) -> TencentClient:
    """A Tencent client of the vendor at `url`, one attempt per call (no retries to wait out)."""
    return TencentClient(
        http,
        sdkappid=1400000000,
        identifier="administrator",
        secret_key=Secret(key),
        pacer=Pacer(),
        endpoint=url,
        retry=RetryPolicy(attempts=1),
    )
