"""The accounts during one apply: each account's lane, and memberships sent batch by batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.changes import Action, ApplyRun
from reconciler.model import ProfileField, ProfileValue
from reconciler.outcome import AccountReport, Failure, item_failures
from reconciler.providers import ItemResults


@dataclass(slots=True)
class Lane:
    """One account during an apply."""

    exists: bool = True
    profile_ok: bool = True
    #: the inventory subscription that rode in the add batches: None not sent, else whether done
    inventory: bool | None = None


class AccountsRun:
    """What the accounts' changes learn during an apply, for those that follow and for verify."""

    def __init__(self, run: ApplyRun, ridden: frozenset[str]) -> None:
        self.run = run
        self.lanes: dict[str, Lane] = {}
        #: new accounts whose inventory subscription rides in their add batches
        self.ridden = ridden
        #: per account: subscribers actually added / removed (for verification), inventory incl.
        self.added: dict[str, set[str]] = {}
        self.removed: dict[str, set[str]] = {}
        #: per account: subscribers whose add failed (their profiles are skipped)
        self.failed_adds: dict[str, set[str]] = {}
        #: per account: adds / removals whose call gave up after retries, inventory incl. An
        #: earlier attempt may have been applied and its answer lost (DESIGN section 7), so each
        #: of these may or may not have changed the subscriber count
        self.maybe_added: dict[str, set[str]] = {}
        self.maybe_removed: dict[str, set[str]] = {}
        #: per account: profile fields as they must read after apply
        self.expected: dict[str, dict[ProfileField, ProfileValue]] = {}

    def lane(self, account_id: str) -> Lane:
        return self.lanes.setdefault(account_id, Lane())

    def rides(self, account_id: str) -> bool:
        return account_id in self.ridden and self.run.inventory not in self.run.missing_users


async def subscribe_inventory(
    run: ApplyRun, accounts: AccountsRun, account_id: str, report: AccountReport
) -> bool:
    """Subscribe the inventory user to `account_id` on its own (one call)."""
    results = await run.im.add_subscribers(account_id, [run.inventory])
    run.progress(1)
    if results.failed:
        report.failed.extend(item_failures("inventory subscription", results))
        return False
    # an answer lost after the add was applied makes the retry say "already subscribed"
    accounts.added.setdefault(account_id, set()).update(results.changed | results.unchanged)
    run.settled.add(account_id)
    return True


async def send_members(
    run: ApplyRun,
    accounts: AccountsRun,
    account_id: str,
    actions: Sequence[Action],
    report: AccountReport,
    *,
    add: bool,
    inventory: bool = False,
) -> bool | None:
    """Add or remove the users of `actions` (one call per batch, concurrently); with `inventory`,
    the inventory user is added in the last batch and the answer says whether it is subscribed
    (None when it was not sent)."""
    verb = "add subscriber" if add else "remove subscriber"
    sent_batches = []
    for n, action in enumerate(actions):
        todo = (
            [u for u in action.items if u not in run.missing_users] if add else list(action.items)
        )
        for user in action.items:
            if add and user in run.missing_users:
                report.skipped.append(f"{verb} {user}: the user could not be imported")
        if inventory and n == len(actions) - 1:
            todo.append(run.inventory)
        if todo:
            sent_batches.append(todo)
    if not sent_batches:
        return None
    call = run.im.add_subscribers if add else run.im.remove_subscribers

    parts: list[ItemResults] = []

    async def one(batch: list[str]) -> None:
        parts.append(await call(account_id, batch))
        run.progress(1)

    # a task group: a batch refused on a signal (`Stopped`) ends alone, the others finish
    async with asyncio.TaskGroup() as group:
        for batch in sent_batches:
            group.create_task(one(batch))
    results = ItemResults.merged(parts)
    # "already subscribed" / "was not subscribed" count as done: the plan read these users on
    # the other side, so either this run made the change and a retry after a lost answer found
    # it made (reference 5.6, 5.7), or someone else did; either way it is now as declared
    done = results.changed | results.unchanged
    target = accounts.added if add else accounts.removed
    target.setdefault(account_id, set()).update(done)  # the inventory user counts too
    failed = dict(results.failed)
    # only a call that gave up after transient faults may have been applied unseen: a
    # definite vendor error applied nothing, and a malformed answer is for verify to flag
    maybe = accounts.maybe_added if add else accounts.maybe_removed
    maybe.setdefault(account_id, set()).update(u for u, f in failed.items() if f.maybe_applied)
    subscribed: bool | None = None
    if inventory:
        subscribed = run.inventory in done
        if subscribed:
            run.settled.add(account_id)
        done = done - {run.inventory}
        if run.inventory in failed:
            item = failed.pop(run.inventory)
            report.failed.append(
                Failure(f"inventory subscription {run.inventory}", item.code, item.message)
            )
    if add:
        run.result.subscribers_added += len(done)
    else:
        run.result.subscribers_removed += len(done)
    if done:
        report.applied.append(f"{'add' if add else 'remove'} {len(done)} subscribers")
    report.failed.extend(item_failures(verb, ItemResults(failed=failed)))
    if add and failed:
        accounts.failed_adds.setdefault(account_id, set()).update(failed)
    return subscribed
