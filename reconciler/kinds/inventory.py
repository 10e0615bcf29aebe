"""Bookkeeping that belongs to no manifest kind: the inventory user and the inventory ledger.

Ownership of everything this repo manages lives in one IM user's subscriptions (DESIGN section
5), and every create is recorded in the inventory ledger before it is sent (`reconciler.ledger`).
Both serve every kind that creates or owns something, so they are not any kind's own: this module
is registered like a kind (`reconciler.kinds.REGISTRY`), holds the two bookkeeping changes, lays
out the ledger's writes from what the other kinds' changes create or take over (`bookkeeping`),
and keeps the ledger's state during an apply (`Ledger`), which a create waits on.

`ImportInventoryUser` runs with the user imports; `LedgerWrite` records the creates in a slot
this run claims by creating it before they are sent, and rewrites it after (or destroys it when
it is left holding nothing).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from reconciler.changes import (
    PHASE_IMPORT,
    PHASE_LEDGER,
    Action,
    ApplyRun,
    Change,
    DriftItem,
    Kind,
    Schedule,
    Wire,
    plural,
)
from reconciler.errors import ProviderError
from reconciler.ledger import (
    ABANDONED,
    SEND_WINDOW,
    SLOT_NAME,
    SUBSCRIBE_WINDOW,
    Claim,
    encode_slot,
    layout,
    read_slot,
    slot_id,
    slot_index,
)
from reconciler.live import LiveState
from reconciler.model import ProfileField, ProfileValue
from reconciler.outcome import GLOBAL, LEDGER, Failure, failure, item_failures
from reconciler.providers import CreateOutcome
from reconciler.providers.calls import (
    API_ACCOUNT_IMPORT,
    API_ADD,
    API_CREATE,
    API_DESTROY,
    API_MODIFY,
)

#: slot indices tried, from the planned one, before a slot's creates are given up for this run
SLOT_PROBES: Final = 4
#: where the indices tried after the planned one are drawn from (a slot id stays within the 48
#: bytes of a custom id, reference 4.4)
SLOT_RANGE: Final = 10**9


class ImportInventoryUserWire(Wire, frozen=True, tag="importInventoryUser"):
    """The plan-file form of `ImportInventoryUser`."""

    user: str

    def change(self) -> ImportInventoryUser:
        return ImportInventoryUser(self.user)


class _Bookkeeping(Change):
    """A change this repo makes for itself (`bookkeeping`): never counted in the summary (its own
    line says what it does), no line under an account, never drift."""

    __slots__ = ()
    bookkeeping: ClassVar[bool] = True

    def count(self, summary: dict[str, int]) -> None:
        pass

    def headline(self) -> tuple[int, str, str] | None:
        return None

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return []

    def drift(self) -> list[DriftItem]:
        return []


@dataclass(frozen=True, slots=True)
class ImportInventoryUser(_Bookkeeping):
    """Bookkeeping: the inventory user does not exist yet (account_import)."""

    kind: ClassVar[str] = "importInventoryUser"
    phase: ClassVar[int] = PHASE_IMPORT
    wire_type: ClassVar[type[Wire]] = ImportInventoryUserWire
    user: str

    def wire(self) -> ImportInventoryUserWire:
        return ImportInventoryUserWire(self.user)

    def actions(self, schedule: Schedule) -> list[Action]:
        return [Action(f"{self.kind}/-/0", API_ACCOUNT_IMPORT, self, (self.user,))]

    def apply_phase(self, action: Action) -> str:
        return "users"

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        report = run.result.report(GLOBAL)
        try:
            await run.im.import_account(self.user)
        except ProviderError as exc:
            report.failed.append(failure("import inventory user", exc))
            run.missing_users.add(self.user)
        else:
            report.applied.append(f"import inventory user {self.user}")
        run.progress(1)


class LedgerWriteWire(Wire, frozen=True, tag="ledgerWrite"):
    """The plan-file form of `LedgerWrite`."""

    slot: int
    slotId: str
    exists: bool
    before: list[str]
    add: list[str]
    drop: list[str]

    def change(self) -> LedgerWrite:
        if self.slot < 0:
            raise ValueError("a ledger slot is a number from 0")
        return LedgerWrite(
            self.slot,
            self.slotId,
            self.exists,
            frozenset(self.before),
            frozenset(self.add),
            frozenset(self.drop),
        )


@dataclass(frozen=True, slots=True)
class LedgerWrite(_Bookkeeping):
    """Bookkeeping: one slot of the inventory ledger (`reconciler.ledger`).

    Before any create, `add` (the creates this slot records) is written into the slot, which is
    created first (owner and subscriber: the inventory user) when it does not `exist`; a create
    waits for its slot. After every account's work, the slot is rewritten to hold only the ids
    whose create may have happened but which still have no inventory subscription. `before` is
    the content the plan read (a saved plan whose slot changed since is stale); `drop` the ids
    it held that need no record any more.
    """

    kind: ClassVar[str] = "ledgerWrite"
    phase: ClassVar[int] = PHASE_LEDGER
    wire_type: ClassVar[type[Wire]] = LedgerWriteWire
    needs_inventory_user: ClassVar[bool] = True
    slot: int
    slot_id: str
    exists: bool
    before: frozenset[str]
    add: frozenset[str]
    drop: frozenset[str]

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (self.phase, f"{self.slot:09d}", self.kind)

    @property
    def lane(self) -> str:
        return f"{self.kind}/{self.slot}"  # the slots are written together

    def wire(self) -> LedgerWriteWire:
        return LedgerWriteWire(
            self.slot,
            self.slot_id,
            self.exists,
            sorted(self.before),
            sorted(self.add),
            sorted(self.drop),
        )

    def actions(self, schedule: Schedule) -> list[Action]:
        """A slot's calls: claimed before the creates it records (created holding them, and
        subscribed by the inventory user), then rewritten after every account's work, or
        destroyed when it is left holding nothing (as when every create it records is answered)."""
        key = f"{self.kind}/{self.slot}"
        actions = []
        if self.add and self.exists:  # a plan of an older version: refused by apply
            actions.append(Action(f"{key}/write", API_MODIFY, self))
        elif self.add:
            actions.append(Action(f"{key}/create", API_CREATE, self))
            actions.append(Action(f"{key}/subscribe", API_ADD, self))
        kept = self.before - self.drop
        actions.append(Action(f"{key}/rewrite", API_MODIFY if kept else API_DESTROY, self))
        return actions

    def apply_phase(self, action: Action) -> str:
        return "ledger" if action.id.endswith("/rewrite") else "accounts"

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        ledger = run.state(Ledger)
        if any(a.id.endswith("/rewrite") for a in actions):
            await ledger.rewrite(self)
        else:
            await ledger.write(self)


def ledger_line(changes: Sequence[Change]) -> str | None:
    """`Inventory ledger (bookkeeping): ...`, or None when the plan writes no slot."""
    writes = [c for c in changes if isinstance(c, LedgerWrite)]
    if not writes:
        return None
    creates = sum(len(w.add) for w in writes)
    used = sum(1 for w in writes if w.add)
    text = "Inventory ledger (bookkeeping): "
    if creates:
        they = "it is" if creates == 1 else "they are"
        text += (
            f"{plural(creates, 'create')} recorded in {plural(used, 'slot')} before {they} sent; "
        )
    return text + f"{plural(len(writes), 'slot')} cleared after."


def stale_slots(changes: Sequence[Change], live: LiveState) -> list[int]:
    """Ledger slots a saved plan writes whose existence or content changed since it was made: its
    writes are computed from what it read, and would drop what another run recorded since."""
    changed = []
    for change in changes:
        if isinstance(change, LedgerWrite):
            slot = live.ledger.slots.get(change.slot)
            now = (slot is not None, slot.ids if slot is not None else frozenset())
            if now != (change.exists, change.before):
                changed.append(change.slot)
    return changed


def bookkeeping(changes: Sequence[Change], live: LiveState, *, inventory_user: str) -> list[Change]:
    """The ledger slots a plan of `changes` writes (its creates recorded before they are sent,
    the ids it acts on or that need no record any more cleared after), and the inventory user's
    import when it does not exist and something needs it."""
    ledger = live.ledger
    creates: list[str] = []
    handled: set[str] = set()
    for change in changes:
        created, took = change.ledger_ids()
        if created is not None:
            creates.append(created)
        if took is not None:
            handled.add(took)
    owned = {i for i, a in live.accounts.items() if a.owned}
    droppable = (ledger.pending & owned) | (ledger.missing - set(creates))
    added: list[Change] = [
        LedgerWrite(
            slot.index,
            slot_id(inventory_user, slot.index),
            slot.exists,
            slot.before,
            slot.add,
            slot.drop,
        )
        for slot in layout(
            ledger, creates, handled=handled, droppable=droppable, tidy=bool(changes)
        )
    ]
    if not live.inventory_exists and any(c.needs_inventory_user for c in [*changes, *added]):
        added.append(ImportInventoryUser(inventory_user))
    return added


class Ledger:
    """The inventory ledger during one apply: which slot records which create, the slots this run
    claimed; a create waits for its slot's claim and is not sent when it failed."""

    def __init__(self, run: ApplyRun) -> None:
        self.run = run
        loop = asyncio.get_running_loop()
        #: create id → its slot's claim: None once recorded, else why it was not
        self.recorded: dict[str, asyncio.Future[str | None]] = {}
        #: create id → when (this run's clock) the claim of the slot recording it was sent
        self.claimed: dict[str, float] = {}
        #: slot → this run's claim of it, and the id of the slot claimed (the planned one or,
        #: when that existed, one of the next)
        self.claims: dict[int, Claim] = {}
        self.slot_ids: dict[int, str] = {}
        #: slot → whether its claim before the creates succeeded
        self.slot_written: dict[int, bool] = {}
        for write in run.changes:
            if isinstance(write, LedgerWrite) and write.add:
                done: asyncio.Future[str | None] = loop.create_future()
                for account_id in write.add:
                    self.recorded[account_id] = done

    async def holds(self, account_id: str) -> str | None:
        """None once a slot this run claimed holds `account_id`, within `SEND_WINDOW` of the
        claim; else why its create must not be sent (`reconciler.ledger`, items 1 and 4)."""
        done = self.recorded.get(account_id)
        if done is None:
            return "not sent: the plan records it in no inventory ledger slot"
        why = await asyncio.shield(done)
        if why is None and self.run.clock() - self.claimed[account_id] > SEND_WINDOW:
            return "not sent: its inventory ledger slot was claimed too long ago (retried next run)"
        return why

    async def write(self, write: LedgerWrite) -> None:
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
        run = self.run
        report = run.result.report(LEDGER)
        what = f"ledger slot {write.slot_id}"
        if run.inventory in run.missing_users:
            report.skipped.append(f"{what}: the inventory user could not be imported")
            return "not sent: the inventory ledger cannot be written without the inventory user"
        why = "not sent: its inventory ledger slot could not be written (the next run retries)"
        if slot_index(run.inventory, write.slot_id) != write.slot:  # a plan for another inventory
            message = f"not slot {write.slot} of the inventory user {run.inventory}"
            report.failed.append(Failure(what, None, message))
            return why
        if write.exists:  # a plan made by a version that added ids to a slot that exists
            message = "the plan adds to a slot that exists (made by an older version): plan again"
            report.failed.append(Failure(what, None, message))
            return why
        claim = Claim(int(run.wall()), secrets.token_hex(8))
        try:
            fields: dict[ProfileField, ProfileValue] = {
                ProfileField.CUSTOM_STRING: encode_slot(write.add, claim)
            }
        except ValueError as exc:
            report.failed.append(Failure(what, None, str(exc)))
            return why
        started = run.clock()
        try:
            # The slot at the planned index may exist, claimed by another run at the same moment
            # or left unsubscribed (invisible) by a run killed right after claiming it: never
            # written by this run (reconciler.ledger, item 4). Random indices are tried next
            # (the low ones may be held by killed runs' slots this run's read did not show).
            probes = [write.slot, *(secrets.randbelow(SLOT_RANGE) for _ in range(SLOT_PROBES - 1))]
            for index in probes:
                slot = slot_id(run.inventory, index)
                created = await run.im.create_account(
                    slot, run.inventory, {ProfileField.NAME: SLOT_NAME, **fields}
                )
                run.progress(1)
                if created is CreateOutcome.CREATED or await self._ours(slot, claim):
                    break
            else:
                report.failed.append(Failure(what, None, "claimed by other runs: not used"))
                return why
            results = await run.im.add_subscribers(slot, [run.inventory])
            run.progress(1)
        except ProviderError as exc:
            report.failed.append(failure(what, exc))
            return why
        if results.failed:  # unsubscribed, the slot is invisible to the next run
            report.failed.extend(item_failures(f"{what}: inventory subscription", results))
            return why
        if run.clock() - started > SUBSCRIBE_WINDOW:
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
        info = (await self.run.im.get_accounts([slot])).get(slot)
        if info is None:
            return False
        read = read_slot(info.custom_string)
        found = None if read is None else read[1]
        if found == claim:
            return True
        if found is None or self.run.wall() - found.at > ABANDONED:
            await self.run.im.destroy_account(slot)
        return False

    async def rewrite(self, write: LedgerWrite) -> None:
        """Keep only the ids whose create may have happened but still have no inventory
        subscription; a slot left with nothing is destroyed. A slot this run claimed keeps its
        claim; one whose claim failed is not this run's and is left as it is."""
        if write.add and not self.slot_written.get(write.slot, False):
            return
        run = self.run
        keep = ((write.before - write.drop) | write.add) - run.settled
        report = run.result.report(LEDGER)
        slot = self.slot_ids.get(write.slot, write.slot_id)
        try:
            if keep:
                content = encode_slot(keep, self.claims.get(write.slot))
                await run.im.modify_account(slot, {ProfileField.CUSTOM_STRING: content})
            else:
                await run.im.destroy_account(slot)
        except ProviderError as exc:
            report.failed.append(failure(f"ledger slot {slot}", exc))
        except ValueError as exc:
            report.failed.append(Failure(f"ledger slot {slot}", None, str(exc)))
        run.progress(1)


KIND = Kind(name="inventory", changes=(ImportInventoryUser, LedgerWrite))
