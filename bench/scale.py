"""Scale benchmark (issue 6): plan and apply against the vendor's rate limits, measured.

Starts `reconciler sandbox serve --latency-ms 20` (vendor rate limits on) as its own process and
drives the real CLI (`python -m reconciler plan|apply`) in a subprocess per step:

- S1 fresh apply: 100 accounts x 2,000 subscribers (200,000 memberships) from 20,000 users;
- S2 no-op plan of S1;
- S3 10% churn (adds, removals, profile edits): plan, then apply;
- S4 one account with 100,000 subscribers: fresh apply, then no-op plan;
- S5 (`--s5`) 1,000 accounts x 1,000 subscribers (1,000,000 memberships): no-op plan. Its live
  state is bulk-loaded into the sandbox and adopted by one apply that is not measured.

Per step: calls per API (the sandbox's counters) against the least calls (`scale_model`), the
floor (least wall time at the vendor's rates), wall, wall/floor, client CPU and peak RSS (rusage
of the CLI process) and the sandbox's CPU. A baseline does the same work of S1, S2 and S4's plan
the way a script on a vendor SDK does: one call at a time, in order (`--no-baseline` skips it).

Run:  .venv/bin/python bench/scale.py                 (S1-S4 with baselines, about 4 minutes)
      .venv/bin/python bench/scale.py --only S5        (S5 alone)
      .venv/bin/python bench/scale.py --smoke          (tiny sizes, seconds)
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import dataclasses
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale_model as model

from reconciler.sandbox import defaults, store
from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.server import SandboxOptions

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Sizes:
    accounts: int = 100
    members: int = 2000
    pool: int = 20000
    big: int = 100_000
    s5_accounts: int = 1000
    s5_members: int = 1000
    s5_pool: int = 100_000


SMOKE = Sizes(accounts=6, members=150, pool=400, big=1000, s5_accounts=20, s5_members=150)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """`reconciler sandbox serve` in its own process."""

    def __init__(self, db: Path, latency_ms: float) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "sandbox",
                "serve",
                "--port",
                "0",
                "--latency-ms",
                str(latency_ms),
                "--db",
                str(db),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        match = re.search(r"listening on (\S+)", self.proc.stdout.readline())
        if match is None:
            self.proc.kill()
            raise SystemExit("the sandbox did not start")
        self.url = match[1]
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def reset(self) -> None:
        self.http.post("/__sandbox/stats/reset").raise_for_status()

    def calls(self) -> Counter[str]:
        doc = self.http.get("/__sandbox/stats").json()
        if doc["rate_limited"]:
            print(f"  !! the sandbox answered {doc['rate_limited']} calls with 60007 (rate limit)")
        return Counter({k.split("/")[-1]: v for k, v in doc["calls"].items()})

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.http.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        if self.proc.stdout:
            self.proc.stdout.close()


@contextlib.contextmanager
def serving(db: Path, latency_ms: float) -> Iterator[Server]:
    server = Server(db, latency_ms)
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True, slots=True)
class Run:
    """One measured CLI invocation."""

    name: str
    command: str
    calls: Counter[str]
    minimal: Counter[str]
    floor: float
    wall: float
    cpu: float
    rss_mb: float
    server_cpu: float
    exit_code: int

    @property
    def exact(self) -> bool:
        return self.calls == self.minimal


def run_cli(
    server: Server, project: Path, command: str, out: Path
) -> tuple[int, float, float, float, Counter[str], float]:
    """Run `reconciler plan|apply` in `project`; exit, wall, CPU, RSS (MB), calls, server CPU."""
    argv = [sys.executable, "-m", "reconciler", command, "--no-color"]
    if command == "apply":
        argv.append("--auto-approve")
    argv.append(".")
    env = {**os.environ, "SCALE_IM_KEY": defaults.SECRET_KEY, "PYTHONPATH": str(ROOT)}
    server.reset()
    server_before = server.cpu()
    with out.open("w", encoding="utf-8") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=project, stdout=sink, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return (
        proc.returncode,
        wall,
        cpu,
        usage.ru_maxrss / 1024,
        server.calls(),
        server.cpu() - server_before,
    )


def measure(
    name: str,
    command: str,
    server: Server,
    project: Path,
    desired: model.World,
    live: model.World | None,
    rtt: float,
    concurrency: int = 16,
) -> Run:
    model.write_project(project, desired, server.url, concurrency=concurrency)
    out = project / f"{name}.{command}.out"
    code, wall, cpu, rss, calls, server_cpu = run_cli(server, project, command, out)
    if code != 0:
        print(out.read_text(encoding="utf-8")[-3000:])
        raise SystemExit(f"{name}: reconciler {command} exited {code}")
    run = Run(
        name,
        command,
        calls,
        model.minimal_calls(command, desired, live),
        model.floor(command, desired, live, rtt),
        wall,
        cpu,
        rss,
        server_cpu,
        code,
    )
    report(run)
    return run


def report(run: Run) -> None:
    print(
        f"{run.name} {run.command}: wall {run.wall:.2f} s, floor {run.floor:.2f} s,"
        f" wall/floor {run.wall / run.floor:.2f}; client CPU {run.cpu:.2f} s"
        f" ({100 * run.cpu / run.wall:.0f}% of wall), peak RSS {run.rss_mb:.0f} MB;"
        f" sandbox CPU {run.server_cpu:.1f} s; calls {sum(run.calls.values()):,}"
        f" (least {sum(run.minimal.values()):,}) {'= least' if run.exact else '!= least'}"
    )
    for api in sorted(set(run.calls) | set(run.minimal)):
        made, least = run.calls.get(api, 0), run.minimal.get(api, 0)
        mark = "" if made == least else "   <-- differs"
        print(f"    {api:<38} {made:>7,} {least:>7,}{mark}")


# -- the baseline: one call at a time, in order --------------------------------------------------


class Baseline:
    """What a script on a vendor SDK does: every call in turn, batched to the maxima, no overlap."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.client = SandboxClient(self.http, SandboxOptions())
        self.calls: Counter[str] = Counter()

    def oa(self, command: str, body: dict[str, object]) -> dict[str, object]:
        self.calls[command] += 1
        doc = self.client.oa(command, body)
        assert doc["ErrorCode"] == 0, doc
        return doc

    def account(self, command: str, body: dict[str, object]) -> dict[str, object]:
        self.calls[command] += 1
        doc = self.client.account(command, body)
        assert doc["ErrorCode"] == 0, doc
        return doc

    def apply(self, world: model.World) -> None:
        users = sorted(world.users)
        missing = []
        for i in range(0, len(users), model.CHECK_MAX):
            doc = self.account(
                "account_check", {"CheckItem": [{"UserID": u} for u in users[i : i + 100]]}
            )
            items = doc["ResultItem"]
            assert isinstance(items, list)
            missing += [r["UserID"] for r in items if r["AccountStatus"] != "Imported"]
        for i in range(0, len(missing), model.IMPORT_MAX):
            self.account("multiaccount_import", {"Accounts": missing[i : i + 100]})
        for acct in world.accounts.values():
            self.oa(
                "create_official_account",
                {
                    "Owner_Account": acct.owner,
                    "OfficialAccountUserID": acct.id,
                    "Name": acct.name,
                    "Introduction": acct.introduction,
                },
            )
            members = sorted(acct.members)
            for i in range(0, len(members), model.MEMBERS_MAX):
                batch = [{"Subscriber_Account": u} for u in members[i : i + 100]]
                self.oa("add_subscriber", {"Official_Account": acct.id, "SubscriberList": batch})
            for user, value in sorted(acct.profiles.items()):
                self.oa(
                    "modify_subscriber_info",
                    {
                        "Official_Account": acct.id,
                        "Subscriber_Account": user,
                        "CustomString": value,
                    },
                )

    def read(self, world: model.World) -> int:
        ids = sorted(world.accounts)
        for i in range(0, len(ids), model.INFO_MAX):
            self.oa(
                "get_official_account_info",
                {"OfficialAccountIdList": [{"Official_Account": a} for a in ids[i : i + 50]]},
            )
        seen = 0
        for account_id in ids:
            cursor = ""
            while True:
                doc = self.oa(
                    "get_subscriber_info",
                    {"Official_Account": account_id, "Limit": 200, "Next": cursor},
                )
                subscribers = doc["SubscriberList"]
                assert isinstance(subscribers, list)
                seen += len(subscribers)
                cursor = str(doc["Next"])
                if not cursor:
                    break
        return seen


def baseline(name: str, server: Server, job: str, world: model.World) -> tuple[float, int]:
    base = Baseline(server.url)
    started = time.perf_counter()
    if job == "apply":
        base.apply(world)
    else:
        base.read(world)
    wall = time.perf_counter() - started
    base.http.close()
    total = sum(base.calls.values())
    print(f"{name} baseline {job} (one call at a time): wall {wall:.2f} s, {total:,} calls")
    return wall, total


# -- scenarios ---------------------------------------------------------------------------------


def s1_to_s3(
    work: Path, sizes: Sizes, latency_ms: float, with_baseline: bool
) -> tuple[list[Run], dict[str, tuple[float, int]]]:
    rtt = latency_ms / 1000
    runs: list[Run] = []
    base: dict[str, tuple[float, int]] = {}
    s1 = model.fleet(sizes.accounts, sizes.members, sizes.pool)
    s3 = model.churn(s1)
    print(
        f"S1: {len(s1.accounts)} accounts x {sizes.members:,} subscribers ="
        f" {s1.memberships:,} memberships, {len(s1.users):,} users"
    )
    project = work / "fleet"
    with serving(work / "fleet.db", latency_ms) as server:
        runs.append(measure("S1", "apply", server, project, s1, None, rtt))
        runs.append(measure("S2", "plan", server, project, s1, s1, rtt))
        runs.append(measure("S3", "plan", server, project, s3, s1, rtt))
        runs.append(measure("S3", "apply", server, project, s3, s1, rtt))
        runs.append(measure("S3'", "plan", server, project, s3, s3, rtt))
    if with_baseline:
        with serving(work / "fleet-baseline.db", latency_ms) as server:
            base["S1 apply"] = baseline("S1", server, "apply", s1)
            base["S2 plan"] = baseline("S2", server, "plan", s1)
    return runs, base


def s4(
    work: Path, sizes: Sizes, latency_ms: float, with_baseline: bool
) -> tuple[list[Run], dict[str, tuple[float, int]]]:
    rtt = latency_ms / 1000
    big = model.fleet(1, sizes.big, sizes.big, owners=1)
    print(f"S4: 1 account x {sizes.big:,} subscribers")
    runs: list[Run] = []
    base: dict[str, tuple[float, int]] = {}
    project = work / "big"
    with serving(work / "big.db", latency_ms) as server:
        runs.append(measure("S4", "apply", server, project, big, None, rtt))
        runs.append(measure("S4", "plan", server, project, big, big, rtt))
        if with_baseline:
            base["S4 plan"] = baseline("S4", server, "plan", big)
    return runs, base


def s5(work: Path, sizes: Sizes, latency_ms: float) -> list[Run]:
    rtt = latency_ms / 1000
    world = model.fleet(sizes.s5_accounts, sizes.s5_members, sizes.s5_pool, owners=1)
    world = model.World(
        {
            a: dataclasses.replace(x, name=a, introduction="", profiles={})
            for a, x in world.accounts.items()
        },
        world.users,
        slots=0,  # bulk-loaded and adopted, never created: no inventory ledger slots
    )
    print(f"S5: {len(world.accounts):,} accounts, {world.memberships:,} memberships; loading")
    db = work / "s5.db"
    started = time.perf_counter()
    conn = store.connect(db)
    store.bulk_load(
        conn,
        owner="owner00",
        memberships={a: sorted(x.members) for a, x in world.accounts.items()},
        now=int(time.time()),
    )
    conn.close()
    print(f"  bulk-loaded in {time.perf_counter() - started:.1f} s")
    project = work / "s5"
    with serving(db, latency_ms) as server:
        # Adopt: the inventory subscribes to every account and records it (set-up, not measured
        # against a floor; printed for the record).
        model.write_project(project, world, server.url)
        code, wall, _, _, calls, _ = run_cli(server, project, "apply", project / "adopt.out")
        print(f"  adopted by apply in {wall:.1f} s (exit {code}, {sum(calls.values()):,} calls)")
        run = measure("S5", "plan", server, project, world, world, rtt)
        stages(project)
        return [run]


def stages(project: Path) -> None:
    """The same no-op plan in-process, stage by stage (`scale_stages.py`)."""
    env = {**os.environ, "SCALE_IM_KEY": defaults.SECRET_KEY, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("scale_stages.py")), str(project)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    doc = json.loads(out.splitlines()[-1])
    print("  the same plan in-process, by stage (CPU, wall, RSS after):")
    for name, figures in doc["stages"].items():
        if name != "start":
            print(
                f"    {name:<15} CPU {figures['cpu']:6.2f} s  wall {figures['wall']:6.2f} s"
                f"  RSS {figures['rss_mb']:5.0f} MB"
            )
    print(f"    peak RSS {doc['peak_rss_mb']:.0f} MB, {doc['changes']} changes")


def summary(runs: list[Run], base: Mapping[str, tuple[float, int]]) -> None:
    print("\n| step | calls (least) | floor | wall | wall/floor | client CPU | peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        calls = f"{sum(r.calls.values()):,} ({sum(r.minimal.values()):,})"
        cpu = f"{r.cpu:.1f} s ({100 * r.cpu / r.wall:.0f}%)"
        print(
            f"| {r.name} {r.command} | {calls} | {r.floor:.2f} s | {r.wall:.2f} s |"
            f" {r.wall / r.floor:.2f} | {cpu} | {r.rss_mb:.0f} MB |"
        )
    if base:
        print("\n| baseline (one call at a time) | calls | wall | our wall | speedup |")
        print("| --- | --- | --- | --- | --- |")
        ours = {f"{r.name} {r.command}": r for r in runs}
        for key, (wall, count) in base.items():
            mine = ours[key].wall
            print(f"| {key} | {count:,} | {wall:.1f} s | {mine:.1f} s | {wall / mine:.1f}x |")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="S1,S4", help="S1 (S1-S3), S4, S5; comma-separated")
    parser.add_argument("--s5", action="store_true", help="also run S5")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else Sizes()
    chosen = {s.strip().upper() for s in args.only.split(",")} | ({"S5"} if args.s5 else set())
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()};"
        f" load average {os.getloadavg()[0]:.2f}; latency {args.latency_ms:g} ms"
    )
    # An installed reconciler has its bytecode compiled (pip does it at install). A checkout run
    # with PYTHONDONTWRITEBYTECODE set (as CI machines set it) would otherwise compile every
    # module in every measured CLI process: about 0.06 s of CPU each.
    compileall.compile_dir(ROOT / "reconciler", quiet=1)
    started = time.perf_counter()
    runs: list[Run] = []
    base: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if "S1" in chosen:
            more, extra = s1_to_s3(work, sizes, args.latency_ms, not args.no_baseline)
            runs += more
            base.update(extra)
        if "S4" in chosen:
            more, extra = s4(work, sizes, args.latency_ms, not args.no_baseline)
            runs += more
            base.update(extra)
        if "S5" in chosen:
            runs += s5(work, sizes, args.latency_ms)
    summary(runs, base)
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s; load average now"
        f" {os.getloadavg()[0]:.2f}; every step's calls equal the least:"
        f" {all(r.exact for r in runs)}"
    )
    print(json.dumps({"exact": all(r.exact for r in runs)}))
    return 0 if all(r.exact for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
