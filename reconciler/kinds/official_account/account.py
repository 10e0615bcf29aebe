"""The changes of an account itself: create, modify its profile, record its ownership, adopt it,
destroy it; each with its plan-file form."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import msgspec

from reconciler.changes import (
    PHASE_CREATE,
    PHASE_DESTROY,
    PHASE_MODIFY,
    PHASE_RECORD,
    Action,
    ApplyRun,
    DriftItem,
    Schedule,
    Wire,
    plural,
    show_value,
)
from reconciler.errors import ProviderError
from reconciler.kinds.inventory import Ledger
from reconciler.kinds.official_account.base import AccountChange, InLane, accounts_of, ridden
from reconciler.kinds.official_account.run import (
    Lane,
    subscribe_inventory,
)
from reconciler.model import ProfileField, ProfileValue
from reconciler.outcome import (
    AccountReport,
    failure,
)
from reconciler.providers import CreateOutcome
from reconciler.providers.calls import (
    API_ADD,
    API_CREATE,
    API_DESTROY,
    API_MODIFY,
    API_SUBSCRIBER_INFO,
)
from reconciler.record import INTERRUPTED_RECORD, LastApplied, decode_record, encode_record

_FIELD_BY_NAME = {f.value: f for f in ProfileField}


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


class CreateAccountWire(Wire, frozen=True, tag="createAccount"):
    """The plan-file form of `CreateAccount`."""

    account: str
    owner: str
    profile: dict[str, str | int]

    def change(self) -> CreateAccount:
        unknown = sorted(set(self.profile) - set(_FIELD_BY_NAME))
        if unknown:
            raise ValueError(f"unknown profile field {unknown[0]!r}")
        profile = tuple((f, self.profile[f.value]) for f in ProfileField if f.value in self.profile)
        return CreateAccount(self.account, self.owner, profile)


class FieldWire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One item of a change's plan-file form (FieldChange)."""

    field: ProfileField
    old: str | int | None
    new: str | int
    cleared: bool


class ModifyAccountWire(Wire, frozen=True, tag="modifyAccount"):
    """The plan-file form of `ModifyAccount`."""

    account: str
    fields: list[FieldWire]

    def change(self) -> ModifyAccount:
        return ModifyAccount(
            self.account, tuple(FieldChange(f.field, f.old, f.new, f.cleared) for f in self.fields)
        )


#: The account settings a record holds that a plan shows like attributes (`RecordAttr`).
RECORD_ATTRIBUTES: Final = ("protect", "policy", "ignoreChanges")
RecordValue = bool | str | list[str] | None


@dataclass(frozen=True, slots=True)
class RecordAttr:
    """One setting the record update changes: `protect`, `policy` or `ignoreChanges`, old → new
    (a policy of None: the manifest said nothing about subscribers)."""

    attribute: str
    old: RecordValue
    new: RecordValue

    def line(self) -> tuple[str, str]:
        return ("~", f"{self.attribute}: {show_value(self.old)} → {show_value(self.new)}")


class RecordAttrWire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One item of a record change's plan-file form (RecordAttr)."""

    attribute: str
    old: RecordValue
    new: RecordValue


class RecordWire(Wire, frozen=True, tag="record", omit_defaults=True):
    """The plan-file form of `Record`; `changes` is absent from plan files written before it."""

    account: str
    record: str
    subscribe: bool
    adopt: bool
    changes: list[RecordAttrWire] = msgspec.field(default_factory=list)

    def change(self) -> Record:
        record = decode_record(self.record)
        if not record.known:
            raise ValueError("unreadable record")
        unknown = [c.attribute for c in self.changes if c.attribute not in RECORD_ATTRIBUTES]
        if unknown:
            raise ValueError(f"unknown record attribute {unknown[0]!r}")
        attrs = tuple(RecordAttr(c.attribute, c.old, c.new) for c in self.changes)
        return Record(self.account, record, self.subscribe, self.adopt, attrs)


class AdoptOrphanWire(Wire, frozen=True, tag="adoptOrphan"):
    """The plan-file form of `AdoptOrphan`."""

    account: str
    owner: str
    subscriberCount: int

    def change(self) -> AdoptOrphan:
        return AdoptOrphan(self.account, self.owner, self.subscriberCount)


class DestroyAccountWire(Wire, frozen=True, tag="destroyAccount"):
    """The plan-file form of `DestroyAccount`."""

    account: str
    owner: str
    subscriberCount: int
    protected: bool

    def change(self) -> DestroyAccount:
        return DestroyAccount(self.account, self.owner, self.subscriberCount, self.protected)


@dataclass(frozen=True, slots=True)
class CreateAccount(InLane):
    """A declared account that does not exist (create_official_account)."""

    kind: ClassVar[str] = "createAccount"
    phase: ClassVar[int] = PHASE_CREATE
    wire_type: ClassVar[type[Wire]] = CreateAccountWire
    account_id: str
    owner: str
    #: every profile field the manifest sets, in `ProfileField` order
    profile: tuple[tuple[ProfileField, ProfileValue], ...]

    @property
    def ride_role(self) -> str | None:
        return "create"

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
class ModifyAccount(InLane):
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


@dataclass(frozen=True, slots=True)
class Record(InLane):
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
    #: the settings this update changes (`protect`, `policy`, `ignoreChanges`), shown as attributes
    attrs: tuple[RecordAttr, ...] = ()

    @property
    def ride_role(self) -> str | None:
        return "record" if self.subscribe else None

    def wire(self) -> RecordWire:
        return RecordWire(
            self.account_id,
            encode_record(self.record),
            self.subscribe,
            self.adopt,
            [RecordAttrWire(a.attribute, a.old, a.new) for a in self.attrs],
        )

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
        if self.adopt:
            return (3, "<=", "will be adopted into this repo's inventory")
        if self.attrs:  # after a profile change's "will be updated in place" (rank 4)
            return (5, "~", "will be updated in place (this repo's inventory record only)")
        return None

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return [a.line() for a in self.attrs]

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
class AdoptOrphan(InLane):
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
class DestroyAccount(AccountChange):
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
