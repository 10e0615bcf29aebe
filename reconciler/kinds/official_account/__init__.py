"""`kind: OfficialAccount`: an official account, its profile, its subscribers and its ownership.

Its changes, in the DESIGN order (section 6): create, modify the profile, add subscribers, set
their profiles, remove subscribers, record ownership (the inventory user's subscription and the
last-applied record), destroy. Each knows its vendor calls and their batches, its lines in a
plan, its drift and how it is applied (`account.py`, `members.py`, each with their plan-file
forms; `base.py` what they share); the diff that finds them is `diff.py`; what apply learns
account by account is `run.py`.

A new account's inventory subscription rides in its own add_subscriber batches (one call fewer
when its member count is not a multiple of 100); its record is still written last, after the
account's own changes, because a record written before a field is cleared would mark the field
unmanaged and leave it set for good. An account created in a run that fails before its record is
written is still found next time: declared, it is read by id and adopted; no longer declared, the
inventory ledger names it, and `AdoptOrphan` takes it into the inventory (or `--prune` destroys it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from reconciler.changes import Action, ApplyRun, Change, Kind, batched, plural
from reconciler.kinds.official_account.account import (
    AdoptOrphan,
    CreateAccount,
    DestroyAccount,
    FieldChange,
    ModifyAccount,
    Record,
)
from reconciler.kinds.official_account.base import (
    accounts_of,
    ridden,
)
from reconciler.kinds.official_account.diff import diff_accounts
from reconciler.kinds.official_account.members import (
    SUBSCRIBERS,
    AddSubscribers,
    ProfileChange,
    RemoveSubscribers,
    SetSubscriberProfiles,
)
from reconciler.model import ACCOUNT_ID_PREFIX
from reconciler.providers.calls import API_INFO, INFO_BATCH

__all__ = [
    "KIND",
    "SUBSCRIBERS",
    "AddSubscribers",
    "AdoptOrphan",
    "CreateAccount",
    "DestroyAccount",
    "FieldChange",
    "ModifyAccount",
    "ProfileChange",
    "Record",
    "RemoveSubscribers",
    "SetSubscriberProfiles",
    "destroys_and_removals",
    "ridden",
]


# -- the kind as a whole -----------------------------------------------------------------------


def verification_reads(changes: Sequence[Change]) -> list[Action]:
    """After apply the touched accounts' info is re-read in batches of 50 (DESIGN section 7):
    every account a change of any kind touched, destroyed ones left out (apply's verify reads
    back the accounts with applied work, the same set)."""
    touched = {c.account for c in changes if c.account and not isinstance(c, DestroyAccount)}
    return [
        Action(f"verify/-/{n}", API_INFO, None, batch)
        for n, batch in enumerate(batched(touched, INFO_BATCH))
    ]


async def verify(run: ApplyRun) -> None:
    """Re-read the touched accounts' info (50 per call) and compare; with `run.verify_full`,
    re-read memberships of the accounts whose subscribers changed."""
    accounts = accounts_of(run)
    destroyed = {c.account_id for c in run.changes if isinstance(c, DestroyAccount)}
    created = {c.account_id for c in run.changes if isinstance(c, CreateAccount)}
    touched = sorted(
        a
        for a, r in run.result.reports.items()
        # reports of accounts only: another kind may report under a name of its own
        if a.startswith(ACCOUNT_ID_PREFIX) and r.applied and a not in destroyed
    )
    if not touched:
        return
    infos = await run.im.get_accounts(touched)
    run.progress(-(-len(touched) // INFO_BATCH))
    for account_id in touched:
        info = infos.get(account_id)
        problems: list[str] = []
        if info is None:
            problems.append("the account cannot be read back")
        else:
            for f, wanted in accounts.expected.get(account_id, {}).items():
                got = info.profile[f]
                if got != wanted:
                    problems.append(f"{f.value} reads {got!r}, expected {wanted!r}")
            before = _count_before(run, account_id, created)
            if before is not None:
                added = len(accounts.added.get(account_id, ()))
                removed = len(accounts.removed.get(account_id, ()))
                expected = before + added - removed
                # a failed change may have been applied before its answer was lost: the
                # count may then be off by up to the number of failed items, either way
                low = expected - len(accounts.maybe_removed.get(account_id, ()))
                high = expected + len(accounts.maybe_added.get(account_id, ()))
                if not low <= info.subscriber_num <= high:
                    wanted = f"{low}" if low == high else f"{low} to {high}"
                    problems.append(f"{info.subscriber_num} subscribers, expected {wanted}")
        if (
            run.verify_full
            and info is not None
            and (account_id in accounts.added or account_id in accounts.removed)
        ):
            page = await run.im.get_subscribers(account_id)
            live = {s.user_id for s in page.subscribers}
            lost = accounts.added.get(account_id, set()) - live
            kept = accounts.removed.get(account_id, set()) & live
            if lost:
                problems.append(f"{len(lost)} added subscribers are missing")
            if kept:
                problems.append(f"{len(kept)} removed subscribers are still there")
        if problems:
            run.result.unverified[account_id] = problems


def _count_before(run: ApplyRun, account_id: str, created: set[str]) -> int | None:
    if account_id in created:
        return 0
    return run.subscriber_counts.get(account_id)


def destroys_and_removals(
    changes: Iterable[Change],
) -> tuple[list[DestroyAccount], list[RemoveSubscribers]]:
    """What the safety thresholds count (`reconciler.safety`)."""
    destroys: list[DestroyAccount] = []
    removals: list[RemoveSubscribers] = []
    for change in changes:
        if isinstance(change, DestroyAccount):
            destroys.append(change)
        elif isinstance(change, RemoveSubscribers):
            removals.append(change)
    return destroys, removals


def _summary_text(s: Mapping[str, int]) -> list[str]:
    parts = [
        f"Plan: {s['create']} to create, {s['modify']} to modify, {s['destroy']} to destroy,"
        f" {s['adopt']} to adopt"
    ]
    if s["subscribersAdded"] or s["subscribersRemoved"]:
        parts.append(
            f"subscribers: {s['subscribersAdded']:,} to add, {s['subscribersRemoved']:,} to remove"
        )
    if s["subscriberProfiles"]:
        parts.append(f"{plural(s['subscriberProfiles'], 'subscriber profile')} to set")
    return parts


def _summary_rows(s: Mapping[str, int]) -> list[tuple[str, int]]:
    return [
        ("accounts to create", s["create"]),
        ("accounts to modify", s["modify"]),
        ("accounts to destroy", s["destroy"]),
        ("accounts to adopt", s["adopt"]),
        ("subscribers to add", s["subscribersAdded"]),
        ("subscribers to remove", s["subscribersRemoved"]),
        ("subscriber profiles to set", s["subscriberProfiles"]),
    ]


KIND = Kind(
    name="OfficialAccount",
    changes=(
        CreateAccount,
        ModifyAccount,
        AddSubscribers,
        SetSubscriberProfiles,
        RemoveSubscribers,
        Record,
        AdoptOrphan,
        DestroyAccount,
    ),
    diff=diff_accounts,
    summary_keys=(
        "adopt",
        "create",
        "modify",
        "destroy",
        "subscribersAdded",
        "subscribersRemoved",
        "subscriberProfiles",
        "records",
    ),
    summary_text=_summary_text,
    summary_rows=_summary_rows,
    closing_actions=verification_reads,
    verify=verify,
)
