"""Two APIs at once through the real Tencent client and its shared pacer (issue 6).

Starts `reconciler sandbox serve --latency-ms 20` (vendor rate limits on), bulk-loads the users,
then sends `--adds` `add_subscriber` batches and `--profiles` `modify_subscriber_info` calls
concurrently, as an apply does, with one `Pacer(200, 16)`. Each API has its own 200/s budget, so
the least wall time is the larger of the two, not their sum; the rates per API are read from the
sandbox's call log.

Run:  .venv/bin/python bench/scale_pacer.py          (about 10 seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from reconciler.providers import Pacer, TencentClient
from reconciler.sandbox import defaults, store
from reconciler.secret import Secret

ROOT = Path(__file__).resolve().parent.parent


async def drive(url: str, adds: int, profiles: int) -> tuple[float, float]:
    pacer = Pacer(200, 16)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=16)) as http:
        im = TencentClient(
            http,
            sdkappid=defaults.SDKAPPID,
            identifier=defaults.ADMIN,
            secret_key=Secret(defaults.SECRET_KEY),
            pacer=pacer,
            endpoint=url,
        )

        async def add(i: int) -> None:
            users = [f"u{i * 100 + k:07d}" for k in range(100)]
            assert (await im.add_subscribers(f"@TOA#_p{i % 10}", users)).ok

        async def profile(i: int) -> None:
            await im.set_subscriber_profile("@TOA#_seed", f"u{i:07d}", f"v{i}")

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(add(i) for i in range(adds)), *(profile(i) for i in range(profiles)))
        return time.perf_counter() - started, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adds", type=int, default=1000)
    parser.add_argument("--profiles", type=int, default=600)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "pacer.db"
        conn = store.connect(db)
        users = [f"u{i:07d}" for i in range(args.adds * 100)]
        store.bulk_load(
            conn,
            owner="owner",
            memberships={f"@TOA#_p{i}": [] for i in range(10)} | {"@TOA#_seed": users},
            now=int(time.time()),
        )
        conn.close()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "sandbox",
                "serve",
                "--port",
                "0",
                "--latency-ms",
                str(args.latency_ms),
                "--db",
                str(db),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        match = re.search(r"listening on (\S+)", proc.stdout.readline())
        assert match is not None, "the sandbox did not start"
        try:
            wall, cpu = asyncio.run(drive(match[1], args.adds, args.profiles))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            proc.stdout.close()
        log = sqlite3.connect(db)
        floor = max(args.adds, args.profiles) / 200
        print(
            f"load average {os.getloadavg()[0]:.2f}; {args.adds} add_subscriber +"
            f" {args.profiles} modify_subscriber_info at once: wall {wall:.2f} s, floor"
            f" {floor:.2f} s (the sum would be {(args.adds + args.profiles) / 200:.2f} s),"
            f" client CPU {cpu:.2f} s"
        )
        for api in ("add_subscriber", "modify_subscriber_info"):
            times = [
                t
                for (t,) in log.execute(
                    "SELECT time FROM call_log WHERE api LIKE ? ORDER BY id", (f"%/{api}",)
                )
            ]
            rate = (len(times) - 1) / (times[-1] - times[0])
            print(f"  {api:<24} {len(times):>5} calls at {rate:5.1f}/s (sandbox clock)")
        rejected = log.execute("SELECT count(*) FROM call_log WHERE code = 60007").fetchone()[0]
        print(f"  rate-limited answers (60007): {rejected}")
        log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
