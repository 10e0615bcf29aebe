"""One `plan` in-process, stage by stage: CPU seconds and RSS after each (used by S5 of scale.py).

The CLI's rusage says how much a whole plan costs; this says where: loading the manifests, the
live read, the diff (issue 6 target: under 1 s of CPU at 1,000,000 memberships), the plan and its
rendering. Prints one JSON object. Run in its own process so that RSS is the plan's alone:

    SCALE_IM_KEY=... .venv/bin/python bench/scale_stages.py PROJECT_DIR
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from reconciler.commands import render_plan
from reconciler.connect import connect
from reconciler.diff import diff
from reconciler.live import LiveState
from reconciler.model import DesiredState
from reconciler.pipeline import Scope, open_scope, read
from reconciler.plan import plan_from_read


async def read_live(scope: Scope) -> tuple[DesiredState, LiveState]:
    """The pipeline's read stage on read-only clients, as `plan` runs it."""
    async with connect(scope.target, scope.config.limits, read_only=True) as providers:
        return await read(scope, providers)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    project = (sys.argv[1:] if argv is None else argv)[0]
    stages: dict[str, dict[str, float]] = {}
    cpu = time.process_time()
    wall = time.perf_counter()

    def mark(name: str) -> None:
        nonlocal cpu, wall
        now_cpu, now_wall = time.process_time(), time.perf_counter()
        stages[name] = {
            "cpu": round(now_cpu - cpu, 3),
            "wall": round(now_wall - wall, 3),
            "rss_mb": round(rss_mb(), 1),
        }
        cpu, wall = now_cpu, now_wall

    mark("start")
    scope = open_scope([project], config=None, target=None)
    mark("load manifests")
    desired, live = asyncio.run(read_live(scope))
    mark("read live")
    changes = diff(desired, live, prune=False, inventory_user=scope.config.inventory)
    mark("diff")
    plan = plan_from_read(
        changes,
        desired=desired,
        live=live,
        target=scope.identity,
        limits=scope.config.limits,
        safety=scope.config.safety,
        prune=False,
    )
    mark("plan")
    render_plan(plan, "text", color=False, show_all=False)
    mark("render")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"stages": stages, "peak_rss_mb": round(peak, 1), "changes": len(changes.findings())}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
