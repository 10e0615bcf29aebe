"""The OfficialAccount kind's changes: their calls, lines, drift and apply."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from reconciler.changes import (
    PHASE_ADD,
    PHASE_CREATE,
    PHASE_DESTROY,
    PHASE_MODIFY,
    PHASE_PROFILE,
    PHASE_RECORD,
    PHASE_REMOVE,
    Action,
    ApplyRun,
    Change,
    DriftItem,
    Schedule,
    Wire,
    batched,
    members_summary,
    plural,
    required,
    show_ids,
    show_value,
)
from reconciler.errors import ProviderError
from reconciler.kinds.inventory import Ledger
from reconciler.kinds.official_account.run import (
    AccountsRun,
    Lane,
    send_members,
    subscribe_inventory,
)
from reconciler.live import INTERRUPTED_RECORD, LastApplied, decode_record, encode_record
from reconciler.model import ProfileField, ProfileValue
from reconciler.outcome import (
    AccountReport,
    failure,
)
from reconciler.providers import CreateOutcome
from reconciler.providers.calls import (
    API_ADD,
    API_CREATE,
    API_DELETE,
    API_DESTROY,
    API_MODIFY,
    API_SUBSCRIBER_INFO,
    SUBSCRIBER_BATCH,
)

_FIELD_BY_NAME = {f.value: f for f in ProfileField}
SUBSCRIBERS = "subscribers"


def _users(users: frozenset[str], first: int) -> dict[str, Any]:
    return members_summary(users, first=first)


# -- value types -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One profile field: old (None when unset) → new; `cleared` when removed from the manifest."""

    field: ProfileField
    old: ProfileValue | None
    new: ProfileValue
    cleared: bool = False

    @property
    def data(self) -> dict[str, Any]:
        built: dict[str, Any] = msgspec.to_builtins(self.wire())
        return built

    def wire(self) -> FieldWire:
        return FieldWire(self.field, self.old, self.new, self.cleared)


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """A subscriber's CustomString on one account: old (None for a new subscriber) → new."""

    user: str
    old: str | None
    new: str


# -- plan-file forms ---------------------------------------------------------------------------


class CreateAccountWire(Wire, frozen=True, tag="createAccount"):
    account: str
    owner: str
    profile: dict[str, str | int]

    def change(self) -> CreateAccount:
        unknown = sorted(set(self.profile) - set(_FIELD_BY_NAME))
        if unknown:
            raise ValueError(f"unknown profile field {unknown[0]!r}")
        profile = tuple((f, self.profile[f.value]) for f in ProfileField if f.value in self.profile)
        return CreateAccount(self.account, self.owner, profile)


class RecordWire(Wire, frozen=True, tag="record"):
    account: str
    record: str
    subscribe: bool
    adopt: bool

    def change(self) -> Record:
        record = decode_record(self.record)
        if not record.known:
            raise ValueError("unreadable record")
        return Record(self.account, record, self.subscribe, self.adopt)


class FieldWire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    field: ProfileField
    old: str | int | None
    new: str | int
    cleared: bool


class ModifyAccountWire(Wire, frozen=True, tag="modifyAccount"):
    account: str
    fields: list[FieldWire]

    def change(self) -> ModifyAccount:
        return ModifyAccount(
            self.account, tuple(FieldChange(f.field, f.old, f.new, f.cleared) for f in self.fields)
        )


class AddSubscribersWire(Wire, frozen=True, tag="addSubscribers"):
    account: str
    users: list[str]

    def change(self) -> AddSubscribers:
        return AddSubscribers(self.account, frozenset(self.users))


class ProfileWire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user: str
    old: str | None
    new: str


class SetSubscriberProfilesWire(Wire, frozen=True, tag="setSubscriberProfiles"):
    account: str
    profiles: list[ProfileWire]

    def change(self) -> SetSubscriberProfiles:
        return SetSubscriberProfiles(
            self.account, tuple(ProfileChange(p.user, p.old, p.new) for p in self.profiles)
        )


class RemoveSubscribersWire(Wire, frozen=True, tag="removeSubscribers"):
    account: str
    users: list[str]
    liveCount: int
    reason: str

    def change(self) -> RemoveSubscribers:
        return RemoveSubscribers(self.account, frozenset(self.users), self.liveCount, self.reason)


class DestroyAccountWire(Wire, frozen=True, tag="destroyAccount"):
    account: str
    owner: str
    subscriberCount: int
    protected: bool

    def change(self) -> DestroyAccount:
        return DestroyAccount(self.account, self.owner, self.subscriberCount, self.protected)


class AdoptOrphanWire(Wire, frozen=True, tag="adoptOrphan"):
    account: str
    owner: str
    subscriberCount: int

    def change(self) -> AdoptOrphan:
        return AdoptOrphan(self.account, self.owner, self.subscriberCount)


# -- the changes -------------------------------------------------------------------------------


def accounts_of(run: ApplyRun) -> AccountsRun:
    """The accounts' state of this apply run."""
    return run.state(_accounts)


def _accounts(run: ApplyRun) -> AccountsRun:
    return AccountsRun(run, ridden(run.changes))


def ridden(changes: Sequence[Change]) -> frozenset[str]:
    """New accounts with members: their inventory subscription rides in their add batches."""
    created = {c.account_id for c in changes if isinstance(c, CreateAccount)}
    added = {c.account_id for c in changes if isinstance(c, AddSubscribers)}
    recorded = {c.account_id for c in changes if isinstance(c, Record) and c.subscribe}
    return frozenset(created & added & recorded)


class _AccountChange(Change):
    """A change of one account, applied in the account's lane of the "accounts" phase."""

    __slots__ = ()
    account_id: str

    @property
    def account(self) -> str:
        return self.account_id

    def apply_phase(self, action: Action) -> str:
        return "accounts"

    def headline(self) -> tuple[int, str, str] | None:
        return (4, "~", "will be updated in place")

    def _key(self) -> str:
        return f"{self.kind}/{self.account_id}"


class _InLane(_AccountChange):
    """An account change that runs after the account's earlier ones, skipped when its create
    failed; a vendor error is recorded against the account and stops nothing else."""

    __slots__ = ()

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        state = accounts_of(run).lane(self.account_id)
        report = run.result.report(self.account_id)
        if not state.exists:
            report.skipped.append(f"{self.kind}: the account was not created")
            return
        try:
            await self._run(run, state, report, actions)
        except ProviderError as exc:
            report.failed.append(failure(self.kind, exc))
            self._failed(run, state, exc)

    @required
    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        """This change's calls, in its account's lane (skipped when the create failed)."""
        raise NotImplementedError

    def _failed(self, run: ApplyRun, state: Lane, exc: ProviderError) -> None:
        del run, state, exc


@dataclass(frozen=True, slots=True)
class CreateAccount(_InLane):
    """A declared account that does not exist (create_official_account)."""

    kind: ClassVar[str] = "createAccount"
    phase: ClassVar[int] = PHASE_CREATE
    wire_type: ClassVar[type[Wire]] = CreateAccountWire
    account_id: str
    owner: str
    #: every profile field the manifest sets, in `ProfileField` order
    profile: tuple[tuple[ProfileField, ProfileValue], ...]

    def wire(self) -> CreateAccountWire:
        return CreateAccountWire(self.account_id, self.owner, {f.value: v for f, v in self.profile})

    def actions(self, schedule: Schedule) -> list[Action]:
        return [Action(f"{self._key()}/0", API_CREATE, self)]

    def count(self, summary: dict[str, int]) -> None:
        summary["create"] += 1

    def ledger_ids(self) -> tuple[str | None, str | None]:
        return self.account_id, self.account_id

    def headline(self) -> tuple[int, str, str] | None:
        return (0, "+", "will be created")

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return [
            ("+", f"owner: {show_value(self.owner)}"),
            *(("+", f"{f.value}: {show_value(v)}") for f, v in self.profile),
        ]

    def drift(self) -> list[DriftItem]:
        return [DriftItem(self.account_id, "account", "declared", "missing")]

    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        state.exists = state.profile_ok = await self._create(run, report)

    async def _create(self, run: ApplyRun, report: AccountReport) -> bool:
        if self.owner in run.missing_users:
            report.skipped.append(f"create: its owner {self.owner} could not be imported")
            run.settled.add(self.account_id)
            return False
        unrecorded = await run.state(Ledger).holds(self.account_id)
        if unrecorded is not None:
            report.skipped.append(f"create: {unrecorded}")
            run.settled.add(self.account_id)
            return False
        profile = dict(self.profile)
        outcome = await run.im.create_account(self.account_id, self.owner, profile)
        run.progress(1)
        accounts = accounts_of(run)
        accounts.expected[self.account_id] = dict(profile)
        if outcome is CreateOutcome.EXISTED:
            # 130008: our own id exists (a create whose answer was lost, or a crash before the
            # record): adopt it and make its profile what the create would have made it
            if profile:
                await run.im.modify_account(self.account_id, profile)
            run.result.adopted += 1
            report.applied.append("adopt (the id already existed)")
        else:
            run.result.created += 1
            report.applied.append("create")
        return True

    def _failed(self, run: ApplyRun, state: Lane, exc: ProviderError) -> None:
        state.profile_ok = state.exists = False
        if not exc.maybe_applied:
            run.settled.add(self.account_id)  # a definite error: nothing was created


@dataclass(frozen=True, slots=True)
class ModifyAccount(_InLane):
    """Profile fields of an existing account (modify_official_account_base_info, one call)."""

    kind: ClassVar[str] = "modifyAccount"
    phase: ClassVar[int] = PHASE_MODIFY
    wire_type: ClassVar[type[Wire]] = ModifyAccountWire
    account_id: str
    fields: tuple[FieldChange, ...]

    def wire(self) -> ModifyAccountWire:
        return ModifyAccountWire(self.account_id, [f.wire() for f in self.fields])

    def actions(self, schedule: Schedule) -> list[Action]:
        return [Action(f"{self._key()}/0", API_MODIFY, self)]

    def count(self, summary: dict[str, int]) -> None:
        summary["modify"] += 1

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        lines = []
        for f in self.fields:
            note = " (removed from the manifest)" if f.cleared else ""
            symbol = "-" if f.cleared else "~"
            lines.append(
                (symbol, f"{f.field.value}: {show_value(f.old)} → {show_value(f.new)}{note}")
            )
        return lines

    def drift(self) -> list[DriftItem]:
        return [
            DriftItem(self.account_id, f.field.value, None if f.cleared else f.new, f.old)
            for f in self.fields
        ]

    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        fields = {f.field: f.new for f in self.fields}
        await run.im.modify_account(self.account_id, fields)
        accounts_of(run).expected.setdefault(self.account_id, {}).update(fields)
        run.result.modified += 1
        report.applied.append(f"modify {', '.join(f.value for f in fields)}")
        run.progress(1)

    def _failed(self, run: ApplyRun, state: Lane, exc: ProviderError) -> None:
        state.profile_ok = False


def _membership_lines(
    symbol: str, text: str, users: frozenset[str], *, show_all: bool, first: int
) -> list[tuple[str, str]]:
    if show_all:
        return [(symbol, text), *((symbol, f"  {u}") for u in sorted(users))]
    lines = [(symbol, f"{text}: {show_ids(users, first)}")]
    if len(users) > first:
        lines.append((" ", f"  all {len(users):,}: {members_summary(users)['digest']}"))
    return lines


@dataclass(frozen=True, slots=True)
class AddSubscribers(_InLane):
    """Declared subscribers not subscribed yet (add_subscriber, 100 per call)."""

    kind: ClassVar[str] = "addSubscribers"
    phase: ClassVar[int] = PHASE_ADD
    wire_type: ClassVar[type[Wire]] = AddSubscribersWire
    account_id: str
    users: frozenset[str]

    def wire(self) -> AddSubscribersWire:
        return AddSubscribersWire(self.account_id, sorted(self.users))

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        return {"type": self.kind, "account": self.account_id, "users": _users(self.users, first)}

    def actions(self, schedule: Schedule) -> list[Action]:
        batches = batched(self.users, SUBSCRIBER_BATCH)
        if self.account_id in schedule.derived(ridden) and len(self.users) % SUBSCRIBER_BATCH == 0:
            batches.append(())  # the inventory user's subscription, alone
        return [Action(f"{self._key()}/{n}", API_ADD, self, b) for n, b in enumerate(batches)]

    def count(self, summary: dict[str, int]) -> None:
        summary["subscribersAdded"] += len(self.users)

    def member_items(self) -> Iterable[tuple[str, str, str]]:
        return ((self.account_id, "add", user) for user in sorted(self.users))

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        text = f"subscribers: {len(self.users):,} to add"
        return _membership_lines("+", text, self.users, show_all=show_all, first=first)

    def drift(self) -> list[DriftItem]:
        return [DriftItem(self.account_id, SUBSCRIBERS, removed_by_hand=self.users)]

    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        # the inventory user rides in the last batch (planned with room for it, or alone)
        ride = accounts_of(run).rides(self.account_id)
        state.inventory = await send_members(
            run, accounts_of(run), self.account_id, actions, report, add=True, inventory=ride
        )


@dataclass(frozen=True, slots=True)
class SetSubscriberProfiles(_InLane):
    """Subscriber CustomStrings to set (modify_subscriber_info, one call each)."""

    kind: ClassVar[str] = "setSubscriberProfiles"
    phase: ClassVar[int] = PHASE_PROFILE
    wire_type: ClassVar[type[Wire]] = SetSubscriberProfilesWire
    account_id: str
    profiles: tuple[ProfileChange, ...]

    def wire(self) -> SetSubscriberProfilesWire:
        return SetSubscriberProfilesWire(
            self.account_id, [ProfileWire(p.user, p.old, p.new) for p in self.profiles]
        )

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        return {
            "type": self.kind,
            "account": self.account_id,
            "profiles": [
                {"user": p.user, "old": p.old, "new": p.new} for p in self.profiles[:first]
            ],
            "count": len(self.profiles),
        }

    def actions(self, schedule: Schedule) -> list[Action]:
        return [
            Action(f"{self._key()}/{n}", API_SUBSCRIBER_INFO, self, (p.user,))
            for n, p in enumerate(self.profiles)
        ]

    def count(self, summary: dict[str, int]) -> None:
        summary["subscriberProfiles"] += len(self.profiles)

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        shown = self.profiles if show_all else self.profiles[:first]
        lines = [("~", f"subscriber profiles: {len(self.profiles):,} to set")]
        lines.extend(
            (
                "~",
                f"  {p.user}: {show_value(p.new)}"
                if p.old is None
                else f"  {p.user}: {show_value(p.old)} → {show_value(p.new)}",
            )
            for p in shown
        )
        if len(shown) < len(self.profiles):
            lines.append(("~", f"  … ({len(self.profiles) - len(shown):,} more)"))
        return lines

    def drift(self) -> list[DriftItem]:
        return [
            DriftItem(
                self.account_id,
                "subscriberProfiles",
                {p.user: p.new for p in self.profiles},
                {p.user: p.old for p in self.profiles},
            )
        ]

    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        account_id = self.account_id
        unsubscribed = run.missing_users | accounts_of(run).failed_adds.get(account_id, set())
        wanted = {p.user: p.new for p in self.profiles if p.user not in unsubscribed}

        async def one(user: str, value: str) -> None:
            try:
                await run.im.set_subscriber_profile(account_id, user, value)
            except ProviderError as exc:
                report.failed.append(failure(f"subscriber profile {user}", exc))
            else:
                run.result.profiles_set += 1
            run.progress(1)

        for p in self.profiles:
            if p.user in unsubscribed:
                report.skipped.append(f"subscriber profile {p.user}: not subscribed")
        async with asyncio.TaskGroup() as group:
            for action in actions:
                (user,) = action.items
                if user in wanted:
                    group.create_task(one(user, wanted[user]))
        if wanted:
            report.applied.append(f"set {len(wanted)} subscriber profiles")


@dataclass(frozen=True, slots=True)
class RemoveSubscribers(_InLane):
    """Subscribers to remove (delete_subscriber, 100 per call); `live_count` for the percentage."""

    kind: ClassVar[str] = "removeSubscribers"
    phase: ClassVar[int] = PHASE_REMOVE
    wire_type: ClassVar[type[Wire]] = RemoveSubscribersWire
    account_id: str
    users: frozenset[str]
    #: subscribers before the plan, the inventory user not counted
    live_count: int
    #: "absent" (additive policy) or "exact"
    reason: str

    @property
    def percent(self) -> float:
        return 100.0 * len(self.users) / self.live_count if self.live_count else 0.0

    def wire(self) -> RemoveSubscribersWire:
        return RemoveSubscribersWire(
            self.account_id, sorted(self.users), self.live_count, self.reason
        )

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        return {
            "type": self.kind,
            "account": self.account_id,
            "users": _users(self.users, first),
            "liveCount": self.live_count,
            "reason": self.reason,
        }

    def actions(self, schedule: Schedule) -> list[Action]:
        batches = batched(self.users, SUBSCRIBER_BATCH)
        return [Action(f"{self._key()}/{n}", API_DELETE, self, b) for n, b in enumerate(batches)]

    def count(self, summary: dict[str, int]) -> None:
        summary["subscribersRemoved"] += len(self.users)

    def member_items(self) -> Iterable[tuple[str, str, str]]:
        return ((self.account_id, "remove", user) for user in sorted(self.users))

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        text = f"subscribers: {len(self.users):,} to remove, {self.reason}"
        return _membership_lines("-", text, self.users, show_all=show_all, first=first)

    def drift(self) -> list[DriftItem]:
        return [DriftItem(self.account_id, SUBSCRIBERS, added_by_hand=self.users)]

    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        await send_members(run, accounts_of(run), self.account_id, actions, report, add=False)


@dataclass(frozen=True, slots=True)
class Record(_InLane):
    """Bookkeeping: write the last-applied record (subscribing the inventory user first if needed).

    `adopt` is True for a declared account that exists but was not owned by this repo yet.
    """

    kind: ClassVar[str] = "record"
    phase: ClassVar[int] = PHASE_RECORD
    wire_type: ClassVar[type[Wire]] = RecordWire
    bookkeeping: ClassVar[bool] = True
    needs_inventory_user: ClassVar[bool] = True
    account_id: str
    record: LastApplied
    subscribe: bool
    adopt: bool = False

    def wire(self) -> RecordWire:
        return RecordWire(self.account_id, encode_record(self.record), self.subscribe, self.adopt)

    def actions(self, schedule: Schedule) -> list[Action]:
        key = self._key()
        actions = []
        if self.subscribe and self.account_id not in schedule.derived(ridden):
            actions.append(Action(f"{key}/subscribe", API_ADD, self))
        actions.append(Action(f"{key}/write", API_SUBSCRIBER_INFO, self))
        return actions

    def count(self, summary: dict[str, int]) -> None:
        summary["records"] += 1
        summary["adopt"] += self.adopt

    def ledger_ids(self) -> tuple[str | None, str | None]:
        return None, (self.account_id if self.subscribe else None)

    def headline(self) -> tuple[int, str, str] | None:
        return (3, "<=", "will be adopted into this repo's inventory") if self.adopt else None

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return []

    def drift(self) -> list[DriftItem]:
        return []

    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        if not state.profile_ok:
            report.skipped.append("record: a profile change failed")
            return
        if state.inventory is False:
            report.skipped.append("record: the inventory subscription failed")
            return
        if run.inventory in run.missing_users:
            report.skipped.append("record: the inventory user could not be imported")
            return
        subscribe = self.subscribe and state.inventory is not True
        if subscribe and not await subscribe_inventory(
            run, accounts_of(run), self.account_id, report
        ):
            return
        await run.im.set_subscriber_profile(
            self.account_id, run.inventory, encode_record(self.record)
        )
        run.progress(1)
        report.applied.append("record" + (" (adopted)" if self.adopt else ""))
        if self.adopt:  # the plan counts it as "to adopt"; so does the summary
            run.result.adopted += 1


@dataclass(frozen=True, slots=True)
class AdoptOrphan(_InLane):
    """An account the inventory ledger names, created by an apply interrupted before the
    inventory subscribed to it, and no longer declared: subscribe the inventory user with a
    record that manages nothing and protects nothing (a later `--prune` destroys it)."""

    kind: ClassVar[str] = "adoptOrphan"
    phase: ClassVar[int] = PHASE_RECORD
    wire_type: ClassVar[type[Wire]] = AdoptOrphanWire
    account_id: str
    owner: str
    #: its subscribers (the inventory user is not one yet)
    subscriber_count: int

    def wire(self) -> AdoptOrphanWire:
        return AdoptOrphanWire(self.account_id, self.owner, self.subscriber_count)

    def actions(self, schedule: Schedule) -> list[Action]:
        key = self._key()
        return [
            Action(f"{key}/subscribe", API_ADD, self),
            Action(f"{key}/write", API_SUBSCRIBER_INFO, self),
        ]

    def count(self, summary: dict[str, int]) -> None:
        summary["adopt"] += 1

    def ledger_ids(self) -> tuple[str | None, str | None]:
        return None, self.account_id

    def headline(self) -> tuple[int, str, str] | None:
        return (
            2,
            "<=",
            "will be adopted into this repo's inventory"
            " (created by an interrupted apply, no longer declared)",
        )

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return [
            (
                " ",
                f"owner: {show_value(self.owner)}, {plural(self.subscriber_count, 'subscriber')};"
                " `--prune` destroys it instead",
            )
        ]

    def drift(self) -> list[DriftItem]:
        return [DriftItem(self.account_id, "account", "not declared", "exists")]

    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        """Subscribe the inventory user with a record that manages and protects nothing."""
        if run.inventory in run.missing_users:
            report.skipped.append("adopt: the inventory user could not be imported")
            return
        if not await subscribe_inventory(run, accounts_of(run), self.account_id, report):
            return
        await run.im.set_subscriber_profile(
            self.account_id, run.inventory, encode_record(INTERRUPTED_RECORD)
        )
        run.progress(1)
        run.result.adopted += 1
        report.applied.append("adopt (created by an interrupted apply, no longer declared)")


@dataclass(frozen=True, slots=True)
class DestroyAccount(_AccountChange):
    """An owned account no longer declared, with `--prune` (destroy_official_account)."""

    kind: ClassVar[str] = "destroyAccount"
    phase: ClassVar[int] = PHASE_DESTROY
    wire_type: ClassVar[type[Wire]] = DestroyAccountWire
    account_id: str
    owner: str
    #: subscribers it loses, the inventory user not counted
    subscriber_count: int
    #: from its record; the safety check refuses a destroy of a protected account whatever the flags
    protected: bool = False

    def wire(self) -> DestroyAccountWire:
        return DestroyAccountWire(
            self.account_id, self.owner, self.subscriber_count, self.protected
        )

    def actions(self, schedule: Schedule) -> list[Action]:
        return [Action(f"{self._key()}/0", API_DESTROY, self)]

    def apply_phase(self, action: Action) -> str:
        return "destroy"

    def count(self, summary: dict[str, int]) -> None:
        summary["destroy"] += 1

    def ledger_ids(self) -> tuple[str | None, str | None]:
        return None, self.account_id

    def headline(self) -> tuple[int, str, str] | None:
        return (1, "-", "will be destroyed")

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        text = f"owner: {show_value(self.owner)}, {plural(self.subscriber_count, 'subscriber')}"
        return [("-", text)]

    def drift(self) -> list[DriftItem]:
        return [DriftItem(self.account_id, "account", "not declared", "exists")]

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        report = run.result.report(self.account_id)
        if self.protected:  # the safety check refuses this; never rely on one line of defence
            report.skipped.append("destroy: the account is protected")
            return
        try:
            await run.im.destroy_account(self.account_id)
        except ProviderError as exc:
            report.failed.append(failure("destroy", exc))
        else:
            run.settled.add(self.account_id)
            run.result.destroyed += 1
            report.applied.append("destroy")
        run.progress(1)
