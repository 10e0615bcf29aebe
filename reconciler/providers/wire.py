"""The wire: how one vendor call's bytes travel, behind one small seam with two implementations.

`Caller` sends every call through `Wire.fetch(endpoint, method, target, body)` and gets the
status and, for a 200, the whole answer (None when it is over the size cap). No HTTP parsing,
pooling or TLS handshake is ours; what is ours is the policy around them:

- `HttpxWire` (here) carries calls over an injected `httpx.AsyncClient`: the embedded sandbox's
  in-process transport, and the tests' clients of a sandbox served over real HTTP.
- `AiohttpWire` (`reconciler.providers.aio`, imported only by a run against a `tencent` target)
  carries a real vendor's calls on aiohttp: its C parser, pool, TLS and proxy tunnels, with
  https only (but to loopback), verified TLS, the environment's proxies and the read-only guard.

Both ask for no content coding, undo gzip and deflate if a server compresses anyway (bounded: a
compression bomb is refused past the cap, never inflated whole, `read_bounded`), refuse any other
coding, and read only a 200's body, in chunks, abandoned past the cap. Why a seam and not an httpx
transport over aiohttp: ARCHITECTURE.md, "The wire" (httpx's client above aiohttp costs twice the
CPU per call).
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import AsyncIterator, Iterable
from typing import Final, Protocol

import httpx

from reconciler import __version__

#: What every request says besides Host and its body's headers: JSON, uncompressed (a page of 200
#: subscribers is about 20 KB; gzip would cost the client more CPU than the bytes save).
HEADERS: Final = {
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "User-Agent": f"reconciler/{__version__}",
}
JSON_HEADERS: Final = {**HEADERS, "Content-Type": "application/json"}


class Wire(Protocol):
    """Sends one request and reads its answer: the seam between `Caller` and the network."""

    #: True when the library below logs each request itself (httpx does, at INFO)
    logs_requests: bool

    async def fetch(
        self,
        endpoint: str,
        method: str,
        target: str,
        body: bytes | None,
        *,
        timeout: float,
        limit: int,
    ) -> tuple[int, bytes | None]:
        """Send `method` to `endpoint + target` (path and query) with a JSON `body`; the status
        and, for a 200, its whole (decoded) body, None when over `limit` bytes. Every wait
        (connecting, sending, each read) lasts at most `timeout`; failures raise httpx's
        exceptions."""
        ...


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the answer: bounded, decoded --------------------------------------------------------------


def _inflater(codings: Iterable[str]) -> zlib._Decompress | None:
    """What undoes an answer's `Content-Encoding` (None: none to undo). No coding is asked for,
    but a server may compress anyway: gzip and deflate are undone, anything else refused."""
    names = [c.strip().lower() for value in codings for c in value.split(",")]
    names = [name for name in names if name and name != "identity"]
    if not names:
        return None
    if names in (["gzip"], ["x-gzip"]):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if names == ["deflate"]:
        return zlib.decompressobj()
    raise httpx.DecodingError(f"the answer's content coding ({', '.join(names)}) is not supported")


async def read_bounded(
    chunks: AsyncIterator[bytes], codings: Iterable[str], declared: str | None, limit: int
) -> bytes | None:
    """An answer's body from its raw `chunks`, decoded; None as soon as it passes `limit` bytes
    (declared or decoded). What is left unread is the caller's to abandon."""
    inflater = _inflater(codings)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    parts: list[bytes] = []
    size = 0
    try:
        async for data in chunks:
            # bounded: an answer that inflates past the limit (a compression bomb) is refused
            # without being inflated further
            chunk = data if inflater is None else inflater.decompress(data, limit - size + 1)
            size += len(chunk)
            if size > limit:
                return None
            parts.append(chunk)
        if inflater is not None:
            parts.append(inflater.flush())
    except zlib.error as exc:
        raise httpx.DecodingError(f"the compressed answer is corrupt: {exc}") from None
    return b"".join(parts)


# -- over an injected httpx client -------------------------------------------------------------


class HttpxWire:
    """Calls over an `httpx.AsyncClient` the caller was given (its transport, hooks and logs)."""

    logs_requests = True

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def fetch(
        self,
        endpoint: str,
        method: str,
        target: str,
        body: bytes | None,
        *,
        timeout: float,
        limit: int,
    ) -> tuple[int, bytes | None]:
        headers = HEADERS if body is None else JSON_HEADERS
        async with self.http.stream(
            method, endpoint + target, content=body, headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                return response.status_code, b""
            if response.is_stream_consumed:  # an in-process transport's answer, read already
                return 200, response.content if len(response.content) <= limit else None
            content = await read_bounded(
                response.aiter_raw(),
                response.headers.get_list("content-encoding"),
                response.headers.get("content-length"),
                limit,
            )
            return 200, content
