"""The changes a diff finds: small immutable types with an ordering key and a `.data` form.

The phase numbers put every change in the DESIGN order (section 6): import users, create accounts,
modify profiles, add subscribers, set subscriber profiles, remove subscribers, destroy accounts, set
mass speed. Two kinds are not vendor changes: a `Notice` (an orphan left alone, a field the vendor
cannot clear) and a `PlanProblem` (something that would make apply fail; the plan is then an error).
Inventory bookkeeping: `ImportInventoryUser` runs with the imports; `LedgerWrite` records the
creates in the inventory ledger before they are sent and clears them after (`reconciler.ledger`);
`Record` (subscribe the inventory user, write the last-applied record) runs after an account's own
changes, because a record written before a field is cleared would mark the field unmanaged and
leave it set for good. An account created in a run that fails before its record is written is
still found next time: declared, it is read by id and adopted; no longer declared, the ledger
names it, and `AdoptOrphan` takes it into the inventory (or `--prune` destroys it).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from reconciler.digest import members_digest
from reconciler.model import ProfileField, ProfileValue
from reconciler.record import LastApplied, decode_record, encode_record

PHASE_PROBLEM: Final = -1
PHASE_IMPORT: Final = 0
PHASE_LEDGER: Final = 1
PHASE_CREATE: Final = 2
PHASE_MODIFY: Final = 3
PHASE_ADD: Final = 4
PHASE_PROFILE: Final = 5
PHASE_REMOVE: Final = 6
PHASE_RECORD: Final = 7
PHASE_DESTROY: Final = 8
PHASE_SPEED: Final = 9
PHASE_NOTICE: Final = 10

_FIELD_BY_NAME: Final = {f.value: f for f in ProfileField}


def plural(n: int, word: str) -> str:
    """`1 subscriber`, `2 subscribers`, `1,500 subscribers`."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def first_ids(users: frozenset[str], n: int) -> list[str]:
    """The `n` smallest ids, without sorting the whole set."""
    return heapq.nsmallest(n, users)


def members_summary(users: frozenset[str], *, first: int = 10) -> dict[str, Any]:
    """A large membership as one attribute: count, the first ids and a digest of the full set."""
    return {"count": len(users), "first": first_ids(users, first), "digest": members_digest(users)}


class _Change:
    """Common behaviour: ordering key and the JSON form."""

    __slots__ = ()
    kind: ClassVar[str]
    phase: ClassVar[int]

    @property
    def account(self) -> str:
        return ""

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (self.phase, self.account, self.kind)

    @property
    def data(self) -> dict[str, Any]:
        """The full JSON form (every id), as saved in a plan file."""
        return {"type": self.kind, **self._body(summary=False)}

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        """The JSON form for display: memberships as count, first ids and digest."""
        return {"type": self.kind, **self._body(summary=True, first=first)}

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        raise NotImplementedError


def _users(users: frozenset[str], summary: bool, first: int) -> Any:
    return members_summary(users, first=first) if summary else sorted(users)


@dataclass(frozen=True, slots=True)
class ImportUsers(_Change):
    """IM users declared in `UserAccounts` that do not exist yet (multiaccount_import)."""

    kind: ClassVar[str] = "importUsers"
    phase: ClassVar[int] = PHASE_IMPORT
    users: frozenset[str]

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {"users": _users(self.users, summary, first)}


@dataclass(frozen=True, slots=True)
class ImportInventoryUser(_Change):
    """Bookkeeping: the inventory user does not exist yet (account_import)."""

    kind: ClassVar[str] = "importInventoryUser"
    phase: ClassVar[int] = PHASE_IMPORT
    user: str

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {"user": self.user}


@dataclass(frozen=True, slots=True)
class LedgerWrite(_Change):
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
    slot: int
    slot_id: str
    exists: bool
    before: frozenset[str]
    add: frozenset[str]
    drop: frozenset[str]

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (self.phase, f"{self.slot:09d}", self.kind)

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "slotId": self.slot_id,
            "exists": self.exists,
            "before": sorted(self.before),
            "add": sorted(self.add),
            "drop": sorted(self.drop),
        }


@dataclass(frozen=True, slots=True)
class AdoptOrphan(_Change):
    """An account the inventory ledger names, created by an apply interrupted before the
    inventory subscribed to it, and no longer declared: subscribe the inventory user with a
    record that manages nothing and protects nothing (a later `--prune` destroys it)."""

    kind: ClassVar[str] = "adoptOrphan"
    phase: ClassVar[int] = PHASE_RECORD
    account_id: str
    owner: str
    #: its subscribers (the inventory user is not one yet)
    subscriber_count: int

    @property
    def account(self) -> str:
        return self.account_id

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {
            "account": self.account_id,
            "owner": self.owner,
            "subscriberCount": self.subscriber_count,
        }


@dataclass(frozen=True, slots=True)
class CreateAccount(_Change):
    """A declared account that does not exist (create_official_account)."""

    kind: ClassVar[str] = "createAccount"
    phase: ClassVar[int] = PHASE_CREATE
    account_id: str
    owner: str
    #: every profile field the manifest sets, in `ProfileField` order
    profile: tuple[tuple[ProfileField, ProfileValue], ...]

    @property
    def account(self) -> str:
        return self.account_id

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {
            "account": self.account_id,
            "owner": self.owner,
            "profile": {f.value: v for f, v in self.profile},
        }


@dataclass(frozen=True, slots=True)
class Record(_Change):
    """Bookkeeping: write the last-applied record (subscribing the inventory user first if needed).

    `adopt` is True for a declared account that exists but was not owned by this repo yet.
    """

    kind: ClassVar[str] = "record"
    phase: ClassVar[int] = PHASE_RECORD
    account_id: str
    record: LastApplied
    subscribe: bool
    adopt: bool = False

    @property
    def account(self) -> str:
        return self.account_id

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {
            "account": self.account_id,
            "record": encode_record(self.record),
            "subscribe": self.subscribe,
            "adopt": self.adopt,
        }


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One profile field: old (None when unset) → new; `cleared` when removed from the manifest."""

    field: ProfileField
    old: ProfileValue | None
    new: ProfileValue
    cleared: bool = False

    @property
    def data(self) -> dict[str, Any]:
        return {
            "field": self.field.value,
            "old": self.old,
            "new": self.new,
            "cleared": self.cleared,
        }


@dataclass(frozen=True, slots=True)
class ModifyAccount(_Change):
    """Profile fields of an existing account (modify_official_account_base_info, one call)."""

    kind: ClassVar[str] = "modifyAccount"
    phase: ClassVar[int] = PHASE_MODIFY
    account_id: str
    fields: tuple[FieldChange, ...]

    @property
    def account(self) -> str:
        return self.account_id

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {"account": self.account_id, "fields": [c.data for c in self.fields]}


@dataclass(frozen=True, slots=True)
class AddSubscribers(_Change):
    """Declared subscribers not subscribed yet (add_subscriber, 100 per call)."""

    kind: ClassVar[str] = "addSubscribers"
    phase: ClassVar[int] = PHASE_ADD
    account_id: str
    users: frozenset[str]

    @property
    def account(self) -> str:
        return self.account_id

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {"account": self.account_id, "users": _users(self.users, summary, first)}


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """A subscriber's CustomString on one account: old (None for a new subscriber) → new."""

    user: str
    old: str | None
    new: str


@dataclass(frozen=True, slots=True)
class SetSubscriberProfiles(_Change):
    """Subscriber CustomStrings to set (modify_subscriber_info, one call each)."""

    kind: ClassVar[str] = "setSubscriberProfiles"
    phase: ClassVar[int] = PHASE_PROFILE
    account_id: str
    profiles: tuple[ProfileChange, ...]

    @property
    def account(self) -> str:
        return self.account_id

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        shown = self.profiles[:first] if summary else self.profiles
        body: dict[str, Any] = {
            "account": self.account_id,
            "profiles": [{"user": p.user, "old": p.old, "new": p.new} for p in shown],
        }
        if summary:
            body["count"] = len(self.profiles)
        return body


@dataclass(frozen=True, slots=True)
class RemoveSubscribers(_Change):
    """Subscribers to remove (delete_subscriber, 100 per call); `live_count` for the percentage."""

    kind: ClassVar[str] = "removeSubscribers"
    phase: ClassVar[int] = PHASE_REMOVE
    account_id: str
    users: frozenset[str]
    #: subscribers before the plan, the inventory user not counted
    live_count: int
    #: "absent" (additive policy) or "exact"
    reason: str

    @property
    def account(self) -> str:
        return self.account_id

    @property
    def percent(self) -> float:
        return 100.0 * len(self.users) / self.live_count if self.live_count else 0.0

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {
            "account": self.account_id,
            "users": _users(self.users, summary, first),
            "liveCount": self.live_count,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class DestroyAccount(_Change):
    """An owned account no longer declared, with `--prune` (destroy_official_account)."""

    kind: ClassVar[str] = "destroyAccount"
    phase: ClassVar[int] = PHASE_DESTROY
    account_id: str
    owner: str
    #: subscribers it loses, the inventory user not counted
    subscriber_count: int
    #: from its record; the safety check refuses a destroy of a protected account whatever the flags
    protected: bool = False

    @property
    def account(self) -> str:
        return self.account_id

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {
            "account": self.account_id,
            "owner": self.owner,
            "subscriberCount": self.subscriber_count,
            "protected": self.protected,
        }


@dataclass(frozen=True, slots=True)
class SetMassSpeed(_Change):
    """The WeChat mass-send speed (message/mass/speed/set)."""

    kind: ClassVar[str] = "setMassSpeed"
    phase: ClassVar[int] = PHASE_SPEED
    name: str
    old: int | None
    new: int

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {"name": self.name, "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class Notice(_Change):
    """Not a change: something the reader of a plan should know (an orphan left alone, ...)."""

    kind: ClassVar[str] = "notice"
    phase: ClassVar[int] = PHASE_NOTICE
    account_id: str
    message: str
    #: "orphan" (owned, not declared, kept), "protected" (orphan kept by protect) or "field"
    reason: str

    @property
    def account(self) -> str:
        return self.account_id

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {"account": self.account_id, "message": self.message, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class PlanProblem(_Change):
    """Something that would make apply fail; a plan with problems is an error (exit 1)."""

    kind: ClassVar[str] = "problem"
    phase: ClassVar[int] = PHASE_PROBLEM
    account_id: str
    message: str

    @property
    def account(self) -> str:
        return self.account_id

    def __str__(self) -> str:
        return f"{self.account_id}: {self.message}" if self.account_id else self.message

    def _body(self, *, summary: bool, first: int = 10) -> dict[str, Any]:
        return {"account": self.account_id, "message": self.message}


Change = (
    ImportUsers
    | ImportInventoryUser
    | LedgerWrite
    | AdoptOrphan
    | CreateAccount
    | Record
    | ModifyAccount
    | AddSubscribers
    | SetSubscriberProfiles
    | RemoveSubscribers
    | DestroyAccount
    | SetMassSpeed
    | Notice
    | PlanProblem
)

#: Changes that do something on the vendor side (notices and problems do not).
ACTION_KINDS: Final = frozenset(
    {
        "importUsers",
        "importInventoryUser",
        "ledgerWrite",
        "adoptOrphan",
        "createAccount",
        "record",
        "modifyAccount",
        "addSubscribers",
        "setSubscriberProfiles",
        "removeSubscribers",
        "destroyAccount",
        "setMassSpeed",
    }
)
#: Bookkeeping: needed for apply, invisible as a change to the live system's users.
BOOKKEEPING_KINDS: Final = frozenset({"importInventoryUser", "ledgerWrite", "record"})


def _value(raw: Any) -> ProfileValue | None:
    if raw is None or isinstance(raw, str | int):
        return raw
    raise ValueError(f"bad profile value {raw!r}")


def _str_set(raw: Any) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(u, str) for u in raw):
        raise ValueError("users must be a list of strings")
    return frozenset(raw)


def change_from_data(data: Mapping[str, Any]) -> Change:
    """Rebuild a change from its full `.data` form (a saved plan); ValueError/KeyError when bad."""
    kind = data["type"]
    if kind == "importUsers":
        return ImportUsers(_str_set(data["users"]))
    if kind == "importInventoryUser":
        return ImportInventoryUser(str(data["user"]))
    if kind == "ledgerWrite":
        slot = data["slot"]
        if type(slot) is not int or slot < 0:
            raise ValueError("a ledger slot is a number from 0")
        return LedgerWrite(
            slot,
            str(data["slotId"]),
            bool(data["exists"]),
            _str_set(data["before"]),
            _str_set(data["add"]),
            _str_set(data["drop"]),
        )
    if kind == "adoptOrphan":
        return AdoptOrphan(str(data["account"]), str(data["owner"]), int(data["subscriberCount"]))
    if kind == "createAccount":
        profile = tuple(
            (f, v)
            for f in ProfileField
            if f.value in data["profile"] and (v := _value(data["profile"][f.value])) is not None
        )
        return CreateAccount(str(data["account"]), str(data["owner"]), profile)
    if kind == "record":
        record = decode_record(str(data["record"]))
        if not record.known:
            raise ValueError("unreadable record")
        return Record(str(data["account"]), record, bool(data["subscribe"]), bool(data["adopt"]))
    if kind == "modifyAccount":
        fields = []
        for item in data["fields"]:
            new = _value(item["new"])
            if new is None:
                raise ValueError("a field change needs a new value")
            fields.append(
                FieldChange(
                    _FIELD_BY_NAME[item["field"]], _value(item["old"]), new, bool(item["cleared"])
                )
            )
        return ModifyAccount(str(data["account"]), tuple(fields))
    if kind == "addSubscribers":
        return AddSubscribers(str(data["account"]), _str_set(data["users"]))
    if kind == "setSubscriberProfiles":
        profiles = tuple(
            ProfileChange(
                str(p["user"]), None if p["old"] is None else str(p["old"]), str(p["new"])
            )
            for p in data["profiles"]
        )
        return SetSubscriberProfiles(str(data["account"]), profiles)
    if kind == "removeSubscribers":
        return RemoveSubscribers(
            str(data["account"]),
            _str_set(data["users"]),
            int(data["liveCount"]),
            str(data["reason"]),
        )
    if kind == "destroyAccount":
        return DestroyAccount(
            str(data["account"]),
            str(data["owner"]),
            int(data["subscriberCount"]),
            bool(data["protected"]),
        )
    if kind == "setMassSpeed":
        old = data["old"]
        return SetMassSpeed(str(data["name"]), None if old is None else int(old), int(data["new"]))
    if kind == "notice":
        return Notice(str(data["account"]), str(data["message"]), str(data["reason"]))
    if kind == "problem":
        return PlanProblem(str(data["account"]), str(data["message"]))
    raise ValueError(f"unknown change type {kind!r}")
