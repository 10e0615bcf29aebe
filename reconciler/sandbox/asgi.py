"""The sandbox as an ASGI 3 application (what uvicorn serves for `reconciler sandbox serve`).

A request body is read as it arrives and never past `MAX_BODY_BYTES`: a declared Content-Length
over the cap is answered 413 before a byte of the body is read (so an `Expect: 100-continue`
client never sends it), and a body that grows past the cap as it streams in (chunked, or with a
Content-Length that lies under `Transfer-Encoding: chunked`) is answered 413 the moment it does.
A 413 closes the connection: the rest of that body is never read, and nothing of it is kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from reconciler.sandbox.defaults import MAX_BODY_BYTES

if TYPE_CHECKING:
    from reconciler.sandbox.server import Reply, Sandbox

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_TOO_LARGE: Final = b'{"error":"request body larger than %d bytes; refused"}' % MAX_BODY_BYTES


def too_large() -> Reply:
    """The answer to a body over `MAX_BODY_BYTES` (JSON like the sandbox's other HTTP errors)."""
    return 413, [("content-type", "application/json; charset=utf-8")], _TOO_LARGE


async def app(sandbox: Sandbox, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ASGI connection scope with `sandbox` (see the module docstring)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = await _read_body(scope["headers"], receive)
    if body is None:
        await _answer(send, too_large(), close=True)
        return
    reply = await sandbox.handle_async(
        scope["method"], scope["path"], scope["query_string"].decode("latin-1"), body
    )
    await _answer(send, reply, close=False)


async def _read_body(headers: Iterable[tuple[bytes, bytes]], receive: Receive) -> bytes | None:
    """The request body, or None as soon as it is known to be over `MAX_BODY_BYTES`."""
    for name, value in headers:
        if name.lower() == b"content-length" and _over_cap(value.strip()):
            return None
    body = bytearray()
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            return None
        more = message.get("more_body", False)
    return bytes(body)


def _over_cap(length: bytes) -> bool:
    """True for a declared length over `MAX_BODY_BYTES` (one that is not a number never gets
    here: the HTTP parser answers it 400). Compared by digits first: int() of a few thousand
    digits raises rather than parses."""
    digits = length.lstrip(b"0")
    if not length.isdigit() or not digits:
        return False
    return len(digits) > len(str(MAX_BODY_BYTES)) or int(digits) > MAX_BODY_BYTES


async def _answer(send: Send, reply: Reply, *, close: bool) -> None:
    status, headers, out = reply
    fields = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    fields.append((b"content-length", str(len(out)).encode("ascii")))
    if close:  # the rest of the body is still on its way: a connection that ends is the answer
        fields.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": out})
