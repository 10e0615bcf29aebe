"""Diff and plan CPU at 1,000,000 memberships (issue 6 target: the diff under 1 s of CPU).

10 accounts × 100,000 declared members each, policy exact; live holds 90% of them plus 10% extra,
so every account has 10,000 adds and 10,000 removals. Times `diff`, `plan_from_read` and the three
renderers with `time.process_time()`; peak RSS of this process from `resource`.

    .venv/bin/python bench/plan_scale.py
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from plan_scenarios import (
    INVENTORY,
    SANDBOX,
    SubscriberPolicy,
    account,
    desired,
    live,
    live_account,
)

from reconciler.diff import diff
from reconciler.digest import _frozenset_digest
from reconciler.plan import plan_from_read
from reconciler.render import render_json, render_markdown, render_text

ACCOUNTS, PER_ACCOUNT = 10, 100_000


def main() -> None:
    accounts, lives, users = [], [], set()
    for n in range(ACCOUNTS):
        declared = [f"user{n}_{i:06d}" for i in range(PER_ACCOUNT)]
        declared_account = account(f"acct{n}", members=declared, policy=SubscriberPolicy.EXACT)
        accounts.append(declared_account)
        current = declared[PER_ACCOUNT // 10 :] + [
            f"extra{n}_{i:06d}" for i in range(PER_ACCOUNT // 10)
        ]
        lives.append(live_account(f"acct{n}", members=current, owned_by=declared_account))
        users.update(declared)
    want = desired(*accounts, users=users)
    have = live(*lives, users=users | {"ops_admin"})
    _frozenset_digest.cache_clear()

    start = time.process_time()
    changes = diff(want, have, prune=False, inventory_user=INVENTORY)
    diff_cpu = time.process_time() - start
    start = time.process_time()
    plan = plan_from_read(changes, desired=want, live=have, target=SANDBOX)
    plan_cpu = time.process_time() - start
    start = time.process_time()
    render_text(plan)
    render_markdown(plan)
    render_json(plan)
    render_cpu = time.process_time() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"memberships: {ACCOUNTS * PER_ACCOUNT:,} declared")
    print(f"diff:   {diff_cpu:.2f} s CPU")
    print(f"plan:   {plan_cpu:.2f} s CPU ({len(plan.actions):,} actions)")
    print(f"render: {render_cpu:.2f} s CPU (text, markdown, json)")
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
