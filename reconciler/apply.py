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
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol

from reconciler.changes import (
    AddSubscribers,
    AdoptOrphan,
    Change,
    CreateAccount,
    DestroyAccount,
    ImportInventoryUser,
    ImportUsers,
    LedgerWrite,
    ModifyAccount,
    Record,
    RemoveSubscribers,
    SetMassSpeed,
    SetSubscriberProfiles,
    plural,
)
from reconciler.connect import Providers
from reconciler.errors import ProviderError
from reconciler.interrupt import Stopped, StopSignal, signal_name
from reconciler.ledger import (
    ABANDONED,
    SEND_WINDOW,
    SLOT_NAME,
    SUBSCRIBE_WINDOW,
    Claim,
    encode_slot,
    read_slot,
    slot_id,
    slot_index,
)
from reconciler.model import ProfileField, ProfileValue
from reconciler.plan import Plan, phase_of
from reconciler.providers import CreateOutcome, ItemResults
from reconciler.record import INTERRUPTED_RECORD, encode_record

logger = logging.getLogger(__name__)

#: where changes that belong to no account are reported
GLOBAL = "(users and settings)"
#: where the inventory ledger's writes are reported (only when one fails)
LEDGER = "(inventory ledger)"
#: slot indices tried, from the planned one, before a slot's creates are given up for this run
SLOT_PROBES: Final = 4
#: where the indices tried after the planned one are drawn from (a slot id stays within the 48
#: bytes of a custom id, reference 4.4)
SLOT_RANGE: Final = 10**9


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed change: what, the vendor code when there is one, and why."""

    what: str
    code: int | None
    message: str

    def __str__(self) -> str:
        # a ProviderError's message already ends with its "[vendor code N]"
        tag = f"[vendor code {self.code}]"
        code = f" {tag}" if self.code is not None and tag not in self.message else ""
        return f"{self.what}: {self.message}{code}"


@dataclass(slots=True)
class AccountReport:
    """What happened to one account (or to the global changes)."""

    applied: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ApplyResult:
    """Per-account outcome, totals, calls made and duration."""

    reports: dict[str, AccountReport] = field(default_factory=dict)
    created: int = 0
    adopted: int = 0
    modified: int = 0
    destroyed: int = 0
    users_imported: int = 0
    subscribers_added: int = 0
    subscribers_removed: int = 0
    profiles_set: int = 0
    mass_speed_set: bool = False
    #: accounts whose verification found a difference: id → what
    unverified: dict[str, list[str]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    #: the signal that stopped the run (no call started after it), None when it ran to the end
    interrupted: int | None = None

    def report(self, account: str) -> AccountReport:
        return self.reports.setdefault(account, AccountReport())

    @property
    def failures(self) -> int:
        return sum(len(r.failed) for r in self.reports.values()) + len(self.unverified)

    @property
    def applied(self) -> int:
        return sum(len(r.applied) for r in self.reports.values())

    @property
    def skipped(self) -> int:
        return sum(len(r.skipped) for r in self.reports.values())

    @property
    def exit_code(self) -> int:
        """0 all applied and verified; 3 partly applied; 1 nothing applied and something failed."""
        if not self.failures and not self.skipped:
            return 0
        return 3 if self.applied else 1


class Progress(Protocol):
    """Told which phase runs and how many calls it has made (`reconciler.progress.Phases`)."""

    def phase(self, name: str) -> None: ...

    def __call__(self, n: int) -> None: ...


class _NoProgress:
    def phase(self, name: str) -> None:
        del name

    def __call__(self, n: int) -> None:
        del n


#: The phases of an apply, in order (DESIGN section 6), as progress shows them.
PHASES: Final = ("users", "accounts", "destroy", "ledger", "mass speed", "verify")


def phase_totals(plan: Plan) -> dict[str, int]:
    """Calls each phase of `plan` makes, from its actions; the bookkeeping phase "ledger" (the
    slots rewritten after the accounts) only when the plan has one."""
    totals = dict.fromkeys(PHASES, 0)
    for action in plan.actions:
        totals[phase_of(action)] += 1
    if not totals["ledger"]:
        del totals["ledger"]
    return totals


def _failure(what: str, exc: ProviderError) -> Failure:
    return Failure(what, exc.code, str(exc))


def _item_failures(what: str, results: ItemResults) -> list[Failure]:
    return [
        Failure(f"{what} {user}", item.code, item.message)
        for user, item in sorted(results.failed.items())
    ]


class _Run:
    def __init__(
        self,
        plan: Plan,
        providers: Providers,
        inventory_user: str,
        progress: Progress | None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.plan = plan
        self.clock = clock
        self.wall = wall
        self.im = providers.im
        self.wechat = providers.wechat
        self.inventory = inventory_user
        self.result = ApplyResult()
        self.progress: Progress = progress or _NoProgress()
        #: users whose import failed: what needs them is skipped
        self.missing_users: set[str] = set()
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
        # -- the inventory ledger (reconciler.ledger) --
        #: create id → its slot's write: None once recorded, else why it was not
        self.recorded: dict[str, asyncio.Future[str | None]] = {}
        #: create id → when (this run's clock) the claim of the slot recording it was sent
        self.claimed: dict[str, float] = {}
        #: slot → this run's claim of it, and the id of the slot claimed (the planned one or,
        #: when that existed, one of the next)
        self.claims: dict[int, Claim] = {}
        self.slot_ids: dict[int, str] = {}
        #: slot → whether its write before the creates succeeded
        self.slot_written: dict[int, bool] = {}
        #: accounts that need no ledger entry any more: subscribed by the inventory user in this
        #: run, destroyed, or whose create surely never happened
        self.settled: set[str] = set()

    # -- global changes ------------------------------------------------------------------------

    async def import_users(self, changes: Iterable[Change]) -> None:
        report = self.result.report(GLOBAL)
        for change in changes:
            if isinstance(change, ImportInventoryUser):
                try:
                    await self.im.import_account(change.user)
                except ProviderError as exc:
                    report.failed.append(_failure("import inventory user", exc))
                    self.missing_users.add(change.user)
                else:
                    report.applied.append(f"import inventory user {change.user}")
                self.progress(1)
            elif isinstance(change, ImportUsers):
                try:
                    results = await self.im.import_accounts(sorted(change.users))
                except ProviderError as exc:
                    report.failed.append(_failure(f"import {len(change.users)} users", exc))
                    self.missing_users.update(change.users)
                else:
                    done = len(change.users) - len(results.failed)
                    self.result.users_imported += done
                    if done:
                        report.applied.append(f"import {done} users")
                    report.failed.extend(_item_failures("import user", results))
                    self.missing_users.update(results.failed)
                self.progress(-(-len(change.users) // 100))

    # -- one account ---------------------------------------------------------------------------

    async def account(self, account_id: str, changes: list[Change]) -> None:
        report = self.result.report(account_id)
        profile_ok = True
        exists = True
        # A new account's inventory subscription rides in its own add_subscriber batches (one
        # call fewer when its member count is not a multiple of 100); the record is still written
        # last. None: not ridden (the record step subscribes); True/False: subscribed or failed.
        ride = (
            self.inventory not in self.missing_users
            and any(isinstance(c, CreateAccount) for c in changes)
            and any(isinstance(c, AddSubscribers) for c in changes)
            and any(isinstance(c, Record) and c.subscribe for c in changes)
        )
        inventory: bool | None = None
        for change in changes:
            if not exists:
                report.skipped.append(f"{change.kind}: the account was not created")
                continue
            try:
                if isinstance(change, CreateAccount):
                    exists = await self._create(change, report)
                    profile_ok = exists
                elif isinstance(change, ModifyAccount):
                    fields = {f.field: f.new for f in change.fields}
                    await self.im.modify_account(account_id, fields)
                    self.expected.setdefault(account_id, {}).update(fields)
                    self.result.modified += 1
                    report.applied.append(f"modify {', '.join(f.value for f in fields)}")
                    self.progress(1)
                elif isinstance(change, AddSubscribers):
                    inventory = await self._members(
                        account_id, change.users, report, add=True, inventory=ride
                    )
                elif isinstance(change, RemoveSubscribers):
                    await self._members(account_id, change.users, report, add=False)
                elif isinstance(change, SetSubscriberProfiles):
                    await self._profiles(change, report)
                elif isinstance(change, AdoptOrphan):
                    await self._adopt_orphan(change, report)
                elif isinstance(change, Record):
                    if not profile_ok:
                        report.skipped.append("record: a profile change failed")
                        continue
                    if inventory is False:
                        report.skipped.append("record: the inventory subscription failed")
                        continue
                    await self._record(change, report, subscribed=inventory is True)
            except ProviderError as exc:
                report.failed.append(_failure(change.kind, exc))
                if isinstance(change, CreateAccount | ModifyAccount):
                    profile_ok = False
                    exists = not isinstance(change, CreateAccount)
                if isinstance(change, CreateAccount) and not exc.maybe_applied:
                    self.settled.add(account_id)  # a definite error: nothing was created

    async def _create(self, change: CreateAccount, report: AccountReport) -> bool:
        if change.owner in self.missing_users:
            report.skipped.append(f"create: its owner {change.owner} could not be imported")
            self.settled.add(change.account_id)
            return False
        unrecorded = await self._recorded(change.account_id)
        if unrecorded is not None:
            report.skipped.append(f"create: {unrecorded}")
            self.settled.add(change.account_id)
            return False
        profile = dict(change.profile)
        outcome = await self.im.create_account(change.account_id, change.owner, profile)
        self.progress(1)
        self.expected[change.account_id] = dict(profile)
        if outcome is CreateOutcome.EXISTED:
            # 130008: our own id exists (a create whose answer was lost, or a crash before the
            # record): adopt it and make its profile what the create would have made it
            if profile:
                await self.im.modify_account(change.account_id, profile)
            self.result.adopted += 1
            report.applied.append("adopt (the id already existed)")
        else:
            self.result.created += 1
            report.applied.append("create")
        return True

    async def _members(
        self,
        account_id: str,
        users: frozenset[str],
        report: AccountReport,
        *,
        add: bool,
        inventory: bool = False,
    ) -> bool | None:
        """Add or remove `users`; with `inventory`, the inventory user is added in the same
        batches and the answer says whether it is subscribed (None when it was not sent)."""
        verb = "add subscriber" if add else "remove subscriber"
        todo = users - self.missing_users if add else users
        for user in sorted(users - todo):
            report.skipped.append(f"{verb} {user}: the user could not be imported")
        sent = todo | {self.inventory} if inventory else todo
        if not sent:
            return None
        call = self.im.add_subscribers if add else self.im.remove_subscribers
        results = await call(account_id, sorted(sent))
        self.progress(-(-len(sent) // 100))
        # "already subscribed" / "was not subscribed" count as done: the plan read these users on
        # the other side, so either this run made the change and a retry after a lost answer found
        # it made (reference 5.6, 5.7), or someone else did; either way it is now as declared
        done = results.changed | results.unchanged
        target = self.added if add else self.removed
        target.setdefault(account_id, set()).update(done)  # the inventory user counts too
        failed = dict(results.failed)
        # only a call that gave up after transient faults may have been applied unseen: a
        # definite vendor error applied nothing, and a malformed answer is for verify to flag
        maybe = self.maybe_added if add else self.maybe_removed
        maybe.setdefault(account_id, set()).update(u for u, f in failed.items() if f.maybe_applied)
        subscribed: bool | None = None
        if inventory:
            subscribed = self.inventory in done
            if subscribed:
                self.settled.add(account_id)
            done = done - {self.inventory}
            if self.inventory in failed:
                item = failed.pop(self.inventory)
                report.failed.append(
                    Failure(f"inventory subscription {self.inventory}", item.code, item.message)
                )
        if add:
            self.result.subscribers_added += len(done)
        else:
            self.result.subscribers_removed += len(done)
        if done:
            report.applied.append(f"{'add' if add else 'remove'} {len(done)} subscribers")
        report.failed.extend(_item_failures(verb, ItemResults(failed=failed)))
        if add and failed:
            self.failed_adds.setdefault(account_id, set()).update(failed)
        return subscribed

    async def _profiles(self, change: SetSubscriberProfiles, report: AccountReport) -> None:
        account_id = change.account_id
        unsubscribed = self.missing_users | self.failed_adds.get(account_id, set())

        done = 0

        async def one(user: str, value: str) -> None:
            nonlocal done
            try:
                await self.im.set_subscriber_profile(account_id, user, value)
            except ProviderError as exc:
                report.failed.append(_failure(f"subscriber profile {user}", exc))
            else:
                self.result.profiles_set += 1
                done += 1
            self.progress(1)

        wanted = [p for p in change.profiles if p.user not in unsubscribed]
        for p in change.profiles:
            if p.user in unsubscribed:
                report.skipped.append(f"subscriber profile {p.user}: not subscribed")
        async with asyncio.TaskGroup() as group:
            for p in wanted:
                group.create_task(one(p.user, p.new))
        if done:  # fewer than wanted when some failed, or the run stopped on a signal
            report.applied.append(f"set {done} subscriber profiles")

    async def _record(self, change: Record, report: AccountReport, *, subscribed: bool) -> None:
        if self.inventory in self.missing_users:
            report.skipped.append("record: the inventory user could not be imported")
            return
        if change.subscribe and not subscribed:
            results = await self.im.add_subscribers(change.account_id, [self.inventory])
            self.progress(1)
            if results.failed:
                report.failed.extend(_item_failures("inventory subscription", results))
                return
            # an answer lost after the add was applied makes the retry say "already subscribed"
            self.added.setdefault(change.account_id, set()).update(
                results.changed | results.unchanged
            )
            self.settled.add(change.account_id)
        await self.im.set_subscriber_profile(
            change.account_id, self.inventory, encode_record(change.record)
        )
        self.progress(1)
        report.applied.append("record" + (" (adopted)" if change.adopt else ""))
        if change.adopt:  # the plan counts it as "to adopt"; so does the summary
            self.result.adopted += 1

    async def _adopt_orphan(self, change: AdoptOrphan, report: AccountReport) -> None:
        """Subscribe the inventory user to an account an interrupted apply created, with a record
        that manages and protects nothing."""
        if self.inventory in self.missing_users:
            report.skipped.append("adopt: the inventory user could not be imported")
            return
        results = await self.im.add_subscribers(change.account_id, [self.inventory])
        self.progress(1)
        if results.failed:
            report.failed.extend(_item_failures("inventory subscription", results))
            return
        self.added.setdefault(change.account_id, set()).update(results.changed | results.unchanged)
        self.settled.add(change.account_id)
        await self.im.set_subscriber_profile(
            change.account_id, self.inventory, encode_record(INTERRUPTED_RECORD)
        )
        self.progress(1)
        self.result.adopted += 1
        report.applied.append("adopt (created by an interrupted apply, no longer declared)")

    # -- the inventory ledger ------------------------------------------------------------------

    def open_ledger(self, writes: Iterable[LedgerWrite]) -> None:
        """Which slot records which create (call inside the running loop)."""
        loop = asyncio.get_running_loop()
        for write in writes:
            if write.add:
                done: asyncio.Future[str | None] = loop.create_future()
                for account_id in write.add:
                    self.recorded[account_id] = done

    async def _recorded(self, account_id: str) -> str | None:
        """None once a slot this run claimed holds `account_id`, within `SEND_WINDOW` of the
        claim; else why its create must not be sent (`reconciler.ledger`, items 1 and 4)."""
        done = self.recorded.get(account_id)
        if done is None:
            return "not sent: the plan records it in no inventory ledger slot"
        why = await asyncio.shield(done)
        if why is None and self.clock() - self.claimed[account_id] > SEND_WINDOW:
            return "not sent: its inventory ledger slot was claimed too long ago (retried next run)"
        return why

    async def ledger_write(self, write: LedgerWrite) -> None:
        """Claim the slot recording `write.add` before their creates go; they wait for this."""
        done = self.recorded[min(write.add)]
        try:
            why = await self._write_slot(write)
        except BaseException:
            done.set_result("not sent: its inventory ledger slot could not be written")
            raise
        self.slot_written[write.slot] = why is None
        done.set_result(why)

    async def _write_slot(self, write: LedgerWrite) -> str | None:
        report = self.result.report(LEDGER)
        what = f"ledger slot {write.slot_id}"
        if self.inventory in self.missing_users:
            report.skipped.append(f"{what}: the inventory user could not be imported")
            return "not sent: the inventory ledger cannot be written without the inventory user"
        why = "not sent: its inventory ledger slot could not be written (the next run retries)"
        if slot_index(self.inventory, write.slot_id) != write.slot:  # a plan for another inventory
            message = f"not slot {write.slot} of the inventory user {self.inventory}"
            report.failed.append(Failure(what, None, message))
            return why
        if write.exists:  # a plan made by a version that added ids to a slot that exists
            message = "the plan adds to a slot that exists (made by an older version): plan again"
            report.failed.append(Failure(what, None, message))
            return why
        claim = Claim(int(self.wall()), secrets.token_hex(8))
        try:
            fields: dict[ProfileField, ProfileValue] = {
                ProfileField.CUSTOM_STRING: encode_slot(write.add, claim)
            }
        except ValueError as exc:
            report.failed.append(Failure(what, None, str(exc)))
            return why
        started = self.clock()
        try:
            # The slot at the planned index may exist, claimed by another run at the same moment
            # or left unsubscribed (invisible) by a run killed right after claiming it: never
            # written by this run (reconciler.ledger, item 4). Random indices are tried next
            # (the low ones may be held by killed runs' slots this run's read did not show).
            probes = [write.slot, *(secrets.randbelow(SLOT_RANGE) for _ in range(SLOT_PROBES - 1))]
            for index in probes:
                slot = slot_id(self.inventory, index)
                created = await self.im.create_account(
                    slot, self.inventory, {ProfileField.NAME: SLOT_NAME, **fields}
                )
                self.progress(1)
                if created is CreateOutcome.CREATED or await self._ours(slot, claim):
                    break
            else:
                report.failed.append(Failure(what, None, "claimed by other runs: not used"))
                return why
            results = await self.im.add_subscribers(slot, [self.inventory])
            self.progress(1)
        except ProviderError as exc:
            report.failed.append(_failure(what, exc))
            return why
        if results.failed:  # unsubscribed, the slot is invisible to the next run
            report.failed.extend(_item_failures(f"{what}: inventory subscription", results))
            return why
        if self.clock() - started > SUBSCRIBE_WINDOW:
            report.failed.append(Failure(what, None, "subscribed too late after its claim"))
            return why
        self.claims[write.slot] = claim
        self.slot_ids[write.slot] = slot
        for account_id in write.add:
            self.claimed[account_id] = started
        return None

    async def _ours(self, slot: str, claim: Claim) -> bool:
        """Whether the slot that exists is the one this run claimed (a create answered 130008
        after its first attempt's answer was lost). One that is not, and was claimed longer
        than `ABANDONED` ago, is destroyed: its run sent nothing it records."""
        info = (await self.im.get_accounts([slot])).get(slot)
        if info is None:
            return False
        read = read_slot(info.custom_string)
        found = None if read is None else read[1]
        if found == claim:
            return True
        if found is None or self.wall() - found.at > ABANDONED:
            await self.im.destroy_account(slot)
        return False

    async def ledger_rewrite(self, write: LedgerWrite) -> None:
        """Keep only the ids whose create may have happened but still have no inventory
        subscription; a slot left with nothing is destroyed. A slot this run claimed keeps its
        claim; one whose claim failed is not this run's and is left as it is."""
        if write.add and not self.slot_written.get(write.slot, False):
            return
        keep = ((write.before - write.drop) | write.add) - self.settled
        report = self.result.report(LEDGER)
        slot = self.slot_ids.get(write.slot, write.slot_id)
        try:
            if keep:
                content = encode_slot(keep, self.claims.get(write.slot))
                await self.im.modify_account(slot, {ProfileField.CUSTOM_STRING: content})
            else:
                await self.im.destroy_account(slot)
        except ProviderError as exc:
            report.failed.append(_failure(f"ledger slot {slot}", exc))
        except ValueError as exc:
            report.failed.append(Failure(f"ledger slot {slot}", None, str(exc)))
        self.progress(1)

    # -- after the accounts --------------------------------------------------------------------

    async def destroy(self, change: DestroyAccount) -> None:
        report = self.result.report(change.account_id)
        if change.protected:  # the safety check refuses this; never rely on one line of defence
            report.skipped.append("destroy: the account is protected")
            return
        try:
            await self.im.destroy_account(change.account_id)
        except ProviderError as exc:
            report.failed.append(_failure("destroy", exc))
        else:
            self.settled.add(change.account_id)
            self.result.destroyed += 1
            report.applied.append("destroy")
        self.progress(1)

    async def mass_speed(self, change: SetMassSpeed) -> None:
        report = self.result.report(GLOBAL)
        if self.wechat is None:
            report.failed.append(
                Failure("set mass speed", None, "the target has no WeChat credentials")
            )
            return
        try:
            await self.wechat.set_mass_speed(change.new)
        except ProviderError as exc:
            report.failed.append(_failure("set mass speed", exc))
        else:
            self.result.mass_speed_set = True
            report.applied.append(f"set mass speed {change.name} to {change.new}")
        self.progress(1)

    # -- verification --------------------------------------------------------------------------

    async def verify(self, *, full: bool) -> None:
        """Re-read the touched accounts' info (50 per call) and compare; `full` re-reads
        memberships of the accounts whose subscribers changed."""
        touched = sorted(
            a
            for a, r in self.result.reports.items()
            if a not in (GLOBAL, LEDGER) and r.applied and a not in self._destroyed()
        )
        if not touched:
            return
        infos = await self.im.get_accounts(touched)
        self.progress(-(-len(touched) // 50))
        for account_id in touched:
            info = infos.get(account_id)
            problems: list[str] = []
            if info is None:
                problems.append("the account cannot be read back")
            else:
                for f, wanted in self.expected.get(account_id, {}).items():
                    got = info.profile[f]
                    if got != wanted:
                        problems.append(f"{f.value} reads {got!r}, expected {wanted!r}")
                before = self._count_before(account_id)
                if before is not None:
                    added = len(self.added.get(account_id, ()))
                    removed = len(self.removed.get(account_id, ()))
                    expected = before + added - removed
                    # a failed change may have been applied before its answer was lost: the
                    # count may then be off by up to the number of failed items, either way
                    low = expected - len(self.maybe_removed.get(account_id, ()))
                    high = expected + len(self.maybe_added.get(account_id, ()))
                    if not low <= info.subscriber_num <= high:
                        wanted = f"{low}" if low == high else f"{low} to {high}"
                        problems.append(f"{info.subscriber_num} subscribers, expected {wanted}")
            if (
                full
                and info is not None
                and (account_id in self.added or account_id in self.removed)
            ):
                page = await self.im.get_subscribers(account_id)
                live = {s.user_id for s in page.subscribers}
                lost = self.added.get(account_id, set()) - live
                kept = self.removed.get(account_id, set()) & live
                if lost:
                    problems.append(f"{len(lost)} added subscribers are missing")
                if kept:
                    problems.append(f"{len(kept)} removed subscribers are still there")
            if problems:
                self.result.unverified[account_id] = problems

    def _destroyed(self) -> set[str]:
        return {c.account_id for c in self.plan.changes if isinstance(c, DestroyAccount)}

    def _count_before(self, account_id: str) -> int | None:
        if any(
            isinstance(c, CreateAccount) and c.account_id == account_id for c in self.plan.changes
        ):
            return 0
        fingerprint = self.plan.fingerprints.get(account_id)
        return None if fingerprint is None else fingerprint.subscriber_count


def _by_account(changes: Iterable[Change]) -> dict[str, list[Change]]:
    grouped: dict[str, list[Change]] = {}
    for change in changes:
        if isinstance(
            change,
            CreateAccount
            | ModifyAccount
            | AddSubscribers
            | SetSubscriberProfiles
            | RemoveSubscribers
            | AdoptOrphan,
        ):
            grouped.setdefault(change.account_id, []).append(change)
    for change in changes:  # bookkeeping right after the account's own changes
        if isinstance(change, Record):
            grouped.setdefault(change.account_id, []).append(change)
    return grouped


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
    """Carry out `plan` (already checked: safe, fresh, without problems); never raises for a
    vendor failure: every outcome is in the result.

    `stop` is the providers' (`reconciler.interrupt`): once a signal sets it, no call starts (a
    task about to make one ends with `Stopped`), the calls in flight finish and are counted, the
    phases after it are not run, and the result says which signal stopped it.
    """
    started = clock()
    before: Counter[str] = Counter(providers.im.calls)
    wechat_before: Counter[str] = Counter(providers.wechat.calls) if providers.wechat else Counter()
    run = _Run(plan, providers, inventory_user, progress, clock, wall)
    stop = stop or StopSignal()
    with contextlib.suppress(Stopped):
        await _phases(run, plan, verify_full=verify_full, stop=stop)
    result = run.result
    result.interrupted = stop.signum
    result.calls = Counter(providers.im.calls) - before
    if providers.wechat is not None:
        result.calls += Counter(providers.wechat.calls) - wechat_before
    result.seconds = clock() - started
    return result


async def _phases(run: _Run, plan: Plan, *, verify_full: bool, stop: StopSignal) -> None:
    """The phases in order; none starts once `stop` is set."""
    writes = [c for c in plan.changes if isinstance(c, LedgerWrite)]

    async def users() -> None:
        await run.import_users(
            c for c in plan.changes if isinstance(c, ImportUsers | ImportInventoryUser)
        )

    async def accounts() -> None:
        run.open_ledger(writes)
        async with asyncio.TaskGroup() as group:
            for write in writes:
                if write.add:
                    group.create_task(run.ledger_write(write))
            for account_id, changes in _by_account(plan.changes).items():
                group.create_task(run.account(account_id, changes))

    async def destroy() -> None:
        async with asyncio.TaskGroup() as group:
            for change in plan.changes:
                if isinstance(change, DestroyAccount):
                    group.create_task(run.destroy(change))

    async def ledger() -> None:
        async with asyncio.TaskGroup() as group:
            for write in writes:
                group.create_task(run.ledger_rewrite(write))

    async def mass_speed() -> None:
        for change in plan.changes:
            if isinstance(change, SetMassSpeed):
                await run.mass_speed(change)

    async def verify() -> None:
        try:
            await run.verify(full=verify_full)
        except ProviderError as exc:
            run.result.report(GLOBAL).failed.append(_failure("verify", exc))

    steps = (users, accounts, destroy, ledger, mass_speed, verify)
    for name, step in zip(PHASES, steps, strict=True):
        if stop.stopping:
            return
        run.progress.phase(name)
        await step()


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
        for failure in report.failed:
            lines.append(f"failed  {account}: {failure}")
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
