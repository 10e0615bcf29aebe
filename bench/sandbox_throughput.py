"""How many calls per second the sandbox serves, with 1,000,000 memberships stored.

Starts `reconciler sandbox serve` as its own process (per-API rate limit off), seeds it with
`--accounts` accounts of `--memberships / --accounts` subscribers each, then drives it over real
HTTP from this process with `--concurrency` concurrent clients:

1. `get_subscriber_info` pages of 200 (Limit 200), walking every account from both ends of its
   id range, and reports the rate over the first and the last tenth of the walk (keyset paging
   must not slow down deep into the list);
2. `add_subscriber` batches of 100 into fresh accounts (memberships keep growing).

Run:  .venv/bin/python bench/sandbox_throughput.py            (about a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from reconciler import usersig
from reconciler.sandbox import defaults, store
from reconciler.sandbox.official import encode_cursor

OA = "official_account_open_http_svc"


def start_server(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--db",
            str(db),
            "--calls-per-second",
            "0",
        ],
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


class Connection:
    """One keep-alive HTTP/1.1 connection, spoken by hand.

    httpx costs this process more CPU per call than the sandbox spends answering it, and on a
    2-core machine the client would then measure itself; a plain asyncio stream keeps the client
    cheap so the figures are the server's.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, target: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode("ascii") + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


class Driver:
    def __init__(self, base_url: str, concurrency: int) -> None:
        url = httpx.URL(base_url)
        assert url.port is not None
        self.pool: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(concurrency):
            self.pool.put_nowait(Connection(url.host, url.port))
        sig = usersig.generate(
            defaults.SDKAPPID, defaults.SECRET_KEY, defaults.ADMIN, now=int(time.time())
        )
        self.query = (
            f"sdkappid={defaults.SDKAPPID}&identifier={defaults.ADMIN}&usersig={sig}"
            "&contenttype=json"
        )
        self.latencies: list[tuple[float, float]] = []  # (finish time, seconds)

    async def call(self, command: str, body: dict[str, Any]) -> dict[str, Any]:
        connection = await self.pool.get()
        try:
            started = time.perf_counter()
            status, raw = await connection.post(
                f"/v4/{OA}/{command}?{self.query}&random=1", json.dumps(body).encode("utf-8")
            )
            finished = time.perf_counter()
        finally:
            self.pool.put_nowait(connection)
        doc: dict[str, Any] = json.loads(raw)
        if status != 200 or doc["ErrorCode"] != 0:
            raise RuntimeError(f"{command}: HTTP {status} {doc}")
        self.latencies.append((finished, finished - started))
        return doc

    async def close(self) -> None:
        while not self.pool.empty():
            await self.pool.get_nowait().close()


async def walk(
    driver: Driver, account: str, start: str, stop: str | None, pages: list[int]
) -> None:
    cursor = encode_cursor(start) if start else ""
    while True:
        doc = await driver.call(
            "get_subscriber_info", {"Official_Account": account, "Limit": 200, "Next": cursor}
        )
        pages.append(len(doc["SubscriberList"]))
        cursor = doc["Next"]
        last = doc["SubscriberList"][-1]["Subscriber_Account"] if doc["SubscriberList"] else None
        if cursor == "" or (stop is not None and last is not None and last >= stop):
            return


async def add(driver: Driver, account: str, users: list[str]) -> None:
    for start in range(0, len(users), 100):
        batch = users[start : start + 100]
        doc = await driver.call(
            "add_subscriber",
            {
                "Official_Account": account,
                "SubscriberList": [{"Subscriber_Account": u} for u in batch],
            },
        )
        assert all(item["Result"] == 1 for item in doc["SubscriberList"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(seconds: float, calls: int) -> str:
    return (
        f"  server CPU {1000 * seconds / calls:.2f} ms per call"
        f" (= {calls / seconds:,.0f} calls per server CPU-second)"
    )


def rate(latencies: list[tuple[float, float]], since: float) -> float:
    return len(latencies) / (latencies[-1][0] - since)


async def run(
    args: argparse.Namespace, base_url: str, pid: int, accounts: list[str], users: list[str]
) -> None:
    driver = Driver(base_url, args.concurrency)
    try:
        # Reads: each account walked in two halves, so there are 2 x accounts concurrent walkers.
        middle = users[len(users) // 2]
        pages: list[int] = []
        walkers = []
        for account in accounts:
            walkers.append(walk(driver, account, "", middle, pages))
            walkers.append(walk(driver, account, middle, None, pages))
        started, cpu = time.perf_counter(), cpu_seconds(pid)
        await asyncio.gather(*walkers)
        read_cpu = cpu_seconds(pid) - cpu
        reads = driver.latencies
        total = rate(reads, started)
        tenth = max(1, len(reads) // 10)
        first = tenth / (reads[tenth - 1][0] - started)
        last = tenth / (reads[-1][0] - reads[-tenth - 1][0])
        avg_ms = 1000 * sum(s for _, s in reads) / len(reads)
        print(
            f"get_subscriber_info (Limit 200): {len(reads)} calls, {sum(pages):,} subscribers read"
        )
        print(
            f"  {total:,.0f} calls/s overall, first tenth {first:,.0f}/s, last tenth {last:,.0f}/s,"
            f" mean latency {avg_ms:.1f} ms, {args.concurrency} connections"
        )
        print(server_cpu(read_cpu, len(reads)))

        # Writes: fresh accounts, 100 subscribers per call, `concurrency` writers.
        driver.latencies = []
        writers = []
        per_writer = args.add_calls // args.concurrency * 100
        for i in range(args.concurrency):
            writers.append(add(driver, f"@TOA#_fresh{i:02d}", users[:per_writer]))
        started, cpu = time.perf_counter(), cpu_seconds(pid)
        await asyncio.gather(*writers)
        write_cpu = cpu_seconds(pid) - cpu
        writes = driver.latencies
        avg_ms = 1000 * sum(s for _, s in writes) / len(writes)
        print(
            f"add_subscriber (100 per call): {len(writes)} calls,"
            f" {len(writes) * 100:,} memberships added"
        )
        print(
            f"  {rate(writes, started):,.0f} calls/s, mean latency {avg_ms:.1f} ms"
            f", {args.concurrency} connections"
        )
        print(server_cpu(write_cpu, len(writes)))
    finally:
        await driver.close()
    print(f"sandbox stats: {httpx.get(base_url + '/__sandbox/stats').json()}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--memberships", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--add-calls", type=int, default=3200, help="add_subscriber calls in total")
    parser.add_argument("--db", type=Path, help="database file (default: a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.db"
        per_account = args.memberships // args.accounts
        users = [f"user{i:07d}" for i in range(per_account)]
        accounts = [f"@TOA#_bench{j:03d}" for j in range(args.accounts)]
        started = time.perf_counter()
        conn = store.connect(db)
        store.bulk_load(
            conn,
            owner="owner",
            memberships={a: users for a in accounts}
            | {f"@TOA#_fresh{i:02d}": [] for i in range(args.concurrency)},
            now=int(time.time()),
        )
        conn.close()
        print(
            f"seeded {per_account * args.accounts:,} memberships ({args.accounts} accounts x"
            f" {per_account:,}) in {time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs"
        )
        proc, base_url = start_server(db)
        try:
            asyncio.run(run(args, base_url, proc.pid, accounts, users))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            if proc.stdout:
                proc.stdout.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
