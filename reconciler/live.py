"""The live state as read from the vendor: plain data the read stage produces and the diff consumes.

Each owned account carries its last-applied record (`reconciler.record`), decoded from the inventory
subscription's CustomString.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

from reconciler.ledger import EMPTY_LEDGER, Ledger
from reconciler.model import DEFAULT_INVENTORY_USER, ProfileField, ProfileValue
from reconciler.record import UNKNOWN_RECORD, LastApplied

#: The vendor's default MaxSubscriberNum (reference section 4.2); clearing the field restores it.
DEFAULT_MAX_SUBSCRIBER_NUM: Final = 100000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LiveAccount:
    """One official account as read from the vendor."""

    id: str
    owner: str
    #: every profile field as read (vendor values); fields the read did not return are absent
    profile: Mapping[ProfileField, ProfileValue]
    #: the vendor's SubscriberNum, the inventory user included when the account is owned
    subscriber_count: int
    #: None when the subscriber list was not read (the manifest declares no subscribers)
    subscribers: frozenset[str] | None = None
    #: subscriber → CustomString on this account, when the subscriber list was read
    subscriber_profiles: Mapping[str, str] | None = None
    #: True when the inventory user subscribes to it (this repo owns it)
    owned: bool = False
    #: the inventory subscription's record; `UNKNOWN_RECORD` when not owned
    last_applied: LastApplied = UNKNOWN_RECORD
    #: not owned, but held by the inventory ledger: created by an apply that was interrupted
    #: before the inventory subscribed to it (`reconciler.ledger`)
    pending: bool = False


@dataclass(frozen=True, slots=True)
class LiveState:
    """Everything one read saw: accounts, users known to exist, the mass speed."""

    #: account id → account: every owned account plus every declared account that exists
    accounts: Mapping[str, LiveAccount]
    #: IM users known to exist. The reader must check every user the desired state names (owners,
    #: members, `UserAccounts`) and may add every subscriber it read; a declared user missing here
    #: is planned for import (or is a problem when not in `UserAccounts`).
    existing_users: frozenset[str]
    #: the IM user that records what this repo owns (DESIGN section 5)
    inventory_user: str = DEFAULT_INVENTORY_USER
    #: whether the inventory user itself exists (it is imported when missing)
    inventory_exists: bool = True
    #: None when the target has no WeChat side or the speed was not read
    mass_speed: int | None = None
    #: API calls the read made, per endpoint (for the plan's cost line); empty when unknown
    read_calls: Mapping[str, int] = field(default_factory=dict)
    #: the inventory ledger of pending creates, its slots left out of `accounts`
    ledger: Ledger = EMPTY_LEDGER
    #: what the kinds that read their own live state read (`Kind.read`)
    records: tuple[object, ...] = ()

    def of(self, record_type: type[T]) -> tuple[T, ...]:
        """The live records of one type (a kind's own, `Kind.read`)."""
        return tuple(r for r in self.records if isinstance(r, record_type))
