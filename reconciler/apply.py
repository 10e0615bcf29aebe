"""Apply a plan: every change in DESIGN order, accounts in parallel, per-item results read.

Order and dependencies (DESIGN sections 6 and 7):

1. users are imported first (the inventory user too); an account whose owner failed to import is
   skipped, and so are subscribers that failed to import;
2. the inventory ledger's slots record the ids about to be created (`reconciler.ledger`), each
   slot concurrently, while each account runs its own changes in order — create (or adopt on
   130008), modify, add subscribers, set subscriber profiles, remove subscribers — and right after
   them its inventory bookkeeping (subscription plus last-applied record; a new account with
   members gets its inventory subscription inside its own add batches, one call fewer). A create
   waits for its slot's write and is not sent when that failed: an account created but not
   recorded anywhere could be lost for good by a kill. Accounts run concurrently; the shared
   pacer keeps every API within its rate and the calls in flight within `limits.concurrency`;
3. then owned accounts no longer declared are destroyed (only those the plan holds), the ledger
   slots are rewritten to hold only the ids whose create may have happened but which still have
   no inventory subscription (usually none), and the mass speed is set.

Each change's calls are the plan's actions (`reconciler.plan.schedule`), one vendor call each;
a change's `run` (in its kind's module) makes them and records what happened.

A failure is recorded against its account with the vendor code and never stops other accounts.
The record is written only when the account's profile changes succeeded: a record that names a
field as unmanaged before the field was cleared would leave it set for good (an inventory
subscription without a record reads as an unknown record: nothing is cleared, and the account is
never destroyed as an orphan). Membership answers "already subscribed" / "was not subscribed" are
done, not failures: a retry after a lost answer reads them. Everything else converges on the next
run, because the next plan is made from a fresh read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from reconciler.changes import APPLY_PHASES, Action, ApplyRun, Change, plural
from reconciler.connect import Providers
from reconciler.errors import ProviderError
from reconciler.interrupt import Stopped, StopSignal, signal_name
from reconciler.kinds import registered
from reconciler.outcome import (
    GLOBAL,
    LEDGER,
    AccountReport,
    ApplyResult,
    Failure,
    Progress,
    failure,
)
from reconciler.plan import Plan, phase_of

__all__ = [
    "GLOBAL",
    "LEDGER",
    "PHASES",
    "AccountReport",
    "ApplyResult",
    "Failure",
    "Progress",
    "apply_plan",
    "phase_totals",
    "render_result",
]

logger = logging.getLogger(__name__)

#: The phases of an apply, in order (DESIGN section 6), as progress shows them.
PHASES = APPLY_PHASES


def phase_totals(plan: Plan) -> dict[str, int]:
    """Calls each phase of `plan` makes, from its actions; the bookkeeping phase "ledger" (the
    slots rewritten after the accounts) only when the plan has one."""
    totals = dict.fromkeys(PHASES, 0)
    for action in plan.actions:
        totals[phase_of(action)] += 1
    for bookkeeping in ("ledger", "messages"):  # shown only when the plan has some
        if not totals[bookkeeping]:
            del totals[bookkeeping]
    return totals


def _lanes(plan: Plan, phase: str) -> dict[str, list[tuple[Change, list[Action]]]]:
    """The changes with calls in `phase`, each with those calls, by lane: an account's changes
    run one after the other in its lane, lanes run together; changes of no account share one
    lane (users are imported in order), except each ledger slot, which has its own."""
    lanes: dict[str, list[tuple[Change, list[Action]]]] = {}
    for action in plan.actions:
        change = action.change
        if change is None or change.apply_phase(action) != phase:
            continue
        lane = lanes.setdefault(change.lane, [])
        if lane and lane[-1][0] is change:
            lane[-1][1].append(action)
        else:
            lane.append((change, [action]))
    return lanes


async def _phases(run: ApplyRun, plan: Plan, stop: StopSignal) -> None:
    """The phases in order, then each kind's verify; none starts once `stop` is set."""
    for phase in PHASES[:-1]:
        if stop.stopping:
            return
        run.progress.phase(phase)
        async with asyncio.TaskGroup() as group:
            for steps in _lanes(plan, phase).values():
                group.create_task(_run_lane(run, steps))
    if stop.stopping:
        return
    run.progress.phase("verify")
    try:
        for kind in registered():
            if kind.verify is not None:
                await kind.verify(run)
    except ProviderError as exc:
        run.result.report(GLOBAL).failed.append(failure("verify", exc))


async def _run_lane(run: ApplyRun, steps: Sequence[tuple[Change, list[Action]]]) -> None:
    for change, actions in steps:
        await change.run(run, actions)


async def apply_plan(
    plan: Plan,
    providers: Providers,
    *,
    inventory_user: str,
    verify_full: bool = False,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    stop: StopSignal | None = None,
    wall: Callable[[], float] = time.time,
) -> ApplyResult:
    """Carry out `plan` (already checked: safe, fresh, without problems): its actions, phase by
    phase, one vendor call each; never raises for a vendor failure: every outcome is in the
    result.

    `stop` is the providers' (`reconciler.interrupt`): once a signal sets it, no call starts (a
    task about to make one ends with `Stopped`), the calls in flight finish and are counted, the
    phases after it are not run, and the result says which signal stopped it.
    """
    started = clock()
    before: Counter[str] = Counter(providers.im.calls)
    wechat_before: Counter[str] = Counter(providers.wechat.calls) if providers.wechat else Counter()
    counts = {a: f.subscriber_count for a, f in plan.fingerprints.items() if f is not None}
    run = ApplyRun(
        plan.changes,
        counts,
        providers.im,
        providers.wechat,
        inventory_user,
        progress,
        clock=clock,
        wall=wall,
    )
    run.verify_full = verify_full
    stop = stop or StopSignal()
    with contextlib.suppress(Stopped):
        await _phases(run, plan, stop)
    result = run.result
    result.interrupted = stop.signum
    result.calls = Counter(providers.im.calls) - before
    if providers.wechat is not None:
        result.calls += Counter(providers.wechat.calls) - wechat_before
    result.seconds = clock() - started
    return result


def render_result(result: ApplyResult) -> str:
    """The summary: a table per account of applied, failed (with code) and skipped changes."""
    lines: list[str] = []
    width = max((len(a) for a in result.reports), default=7)
    header = f"{'account':<{width}}  applied  failed  skipped"
    rows = [
        f"{a:<{width}}  {len(r.applied):>7}  {len(r.failed):>6}  {len(r.skipped):>7}"
        for a, r in sorted(result.reports.items())
        if r.applied or r.failed or r.skipped
    ]
    if rows:
        lines += [header, *rows, ""]
    for account, report in sorted(result.reports.items()):
        for failed in report.failed:
            lines.append(f"failed  {account}: {failed}")
        for skipped in report.skipped:
            lines.append(f"skipped {account}: {skipped}")
    for account, problems in sorted(result.unverified.items()):
        for problem in problems:
            lines.append(f"unverified {account}: {problem}")
    if result.failures or result.skipped:
        lines.append("")
    calls = sum(result.calls.values())
    lines.append(
        f"Applied: {result.created} created, {result.adopted} adopted, {result.modified} modified,"
        f" {plural(result.subscribers_added, 'subscriber')} added,"
        f" {result.subscribers_removed:,} removed,"
        f" {plural(result.profiles_set, 'subscriber profile')} set,"
        f" {plural(result.users_imported, 'user')} imported, {result.destroyed} destroyed"
        + (", mass speed set" if result.mass_speed_set else "")
        + (f", {plural(result.messages_sent, 'broadcast')} sent" if result.messages_sent else "")
        + (f", {result.messages_recalled} recalled" if result.messages_recalled else "")
        + f"; {result.failures} failed, {result.skipped} skipped;"
        f" {plural(calls, 'call')} in {result.seconds:.1f} s."
    )
    if result.interrupted is not None:
        lines.append(
            f"Interrupted by {signal_name(result.interrupted)}: no call was started after it and"
            " the calls in flight finished; run plan again to see exactly what remains."
        )
    elif result.exit_code == 3:
        lines.append("Partly applied: run plan again to see exactly what remains.")
    elif result.exit_code == 1:
        lines.append("Nothing was applied.")
    return "\n".join(lines) + "\n"
