"""Client CPU per call of each way the vendor calls' bytes could travel (issue 17).

Starts `reconciler sandbox serve --calls-per-second 0` as its own process over one account of
200 subscribers, then sends `get_subscriber_info` (a page of 200, Limit 200) `--calls` times,
`--concurrency` in flight, through each candidate, and reports this process's CPU per call (median
of `--runs`):

- `seam/aiohttp`: `AiohttpWire.fetch`, what a `tencent` target uses (the `Wire` seam in `Caller`);
- `httpx/aiohttp`: `HttpxWire` over an `httpx.AsyncClient` whose transport is aiohttp (the other
  layering the issue names: httpx's client above, aiohttp below);
- `httpx`: `HttpxWire` over stock `httpx.AsyncClient` (httpcore and h11).

Run:  .venv/bin/python bench/wire_cpu.py            (about a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import httpx
import msgspec

from reconciler import usersig
from reconciler.providers.aio import AiohttpWire
from reconciler.providers.wire import HttpxWire, Wire
from reconciler.sandbox import defaults, store

ACCOUNT = "@TOA#_bench"
PATH = "/v4/official_account_open_http_svc/get_subscriber_info"


def start_server(db: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "reconciler", "sandbox", "serve", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--db", str(db), "--calls-per-second", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    match = re.search(r"listening on (\S+)", proc.stdout.readline())
    if match is None:
        proc.kill()
        raise SystemExit("the sandbox did not start")
    return proc, match[1]


class _AiohttpTransport(httpx.AsyncBaseTransport):
    """The least httpx transport over aiohttp: enough to measure httpx's client above it."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.session.request(
            request.method,
            str(request.url),
            data=await request.aread(),
            headers=dict(request.headers),
            allow_redirects=False,
        )

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            finally:
                response.release()

        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_Stream(body()),
        )


class _Stream(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks:
            yield chunk


async def measure(wire: Wire, base: str, calls: int, concurrency: int) -> tuple[float, int]:
    """CPU seconds per call of `calls` fetches, `concurrency` in flight; the page's size."""
    sig = usersig.generate(
        defaults.SDKAPPID, defaults.SECRET_KEY, defaults.ADMIN, now=int(time.time())
    )
    query = urlencode(
        {
            "sdkappid": defaults.SDKAPPID,
            "identifier": defaults.ADMIN,
            "usersig": sig,
            "random": 1,
            "contenttype": "json",
        }
    )
    body = msgspec.json.encode({"Official_Account": ACCOUNT, "Limit": 200, "Next": ""})
    size = 0

    async def one() -> None:
        nonlocal size
        status, content = await wire.fetch(
            base, "POST", f"{PATH}?{query}", body, timeout=10.0, limit=1 << 23
        )
        assert status == 200 and content is not None, status
        size = len(content)

    async def worker(share: int) -> None:
        for _ in range(share):
            await one()

    for _ in range(concurrency):  # warm: connections open, caches filled
        await one()
    started = time.process_time()
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    return (time.process_time() - started) / (calls // concurrency * concurrency), size


async def seam(base: str, calls: int, concurrency: int) -> tuple[float, int]:
    async with AiohttpWire(concurrency) as wire:
        return await measure(wire, base, calls, concurrency)


async def over_aiohttp(base: str, calls: int, concurrency: int) -> tuple[float, int]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        transport = _AiohttpTransport(session)
        async with httpx.AsyncClient(transport=transport) as http:
            return await measure(HttpxWire(http), base, calls, concurrency)


async def stock(base: str, calls: int, concurrency: int) -> tuple[float, int]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as http:
        return await measure(HttpxWire(http), base, calls, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ways: dict[str, Callable[[str, int, int], object]] = {
        "seam/aiohttp": seam,
        "httpx/aiohttp": over_aiohttp,
        "httpx": stock,
    }
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        conn = store.connect(db)
        users = [f"user{i:07d}" for i in range(200)]
        store.bulk_load(conn, owner="owner", memberships={ACCOUNT: users}, now=int(time.time()))
        conn.close()
        proc, base = start_server(db)
        try:
            print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
            for name, way in ways.items():
                figures = []
                for _ in range(args.runs):
                    cpu, size = asyncio.run(way(base, args.calls, args.concurrency))  # type: ignore[arg-type]
                    figures.append(cpu)
                shown = ", ".join(f"{1000 * f:.3f}" for f in figures)
                print(
                    f"{name:14} {1000 * statistics.median(figures):.3f} ms CPU per call"
                    f" (runs: {shown}; page of {size:,} bytes)"
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
