"""The live state as read from the vendor, and the last-applied record kept in the inventory.

Reading is someone else's stage; this module is the plain data it produces and the diff consumes,
plus the last-applied RECORD (DESIGN section 5): the CustomString of the inventory user's
subscription to an account. The record holds the names of the spec fields the manifest set,
`protect`, the subscriber policy and a digest of the spec, never the values, so it stays a few
hundred bytes whatever the account holds (the vendor caps a subscriber CustomString at 3,000 bytes,
reference section 4.3).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

from reconciler.ledger import EMPTY_LEDGER, Ledger
from reconciler.model import (
    DEFAULT_INVENTORY_USER,
    Account,
    ProfileField,
    ProfileValue,
    SubscriberPolicy,
)

#: The vendor's cap on a subscriber's CustomString (reference section 4.3).
RECORD_MAX_BYTES: Final = 3000
#: Every record starts with this, so a CustomString written by another tool is seen as foreign.
RECORD_PREFIX: Final = "reconciler/v1:"
#: The vendor's default MaxSubscriberNum (reference section 4.2); clearing the field restores it.
DEFAULT_MAX_SUBSCRIBER_NUM: Final = 100000

T = TypeVar("T")

_FIELD_BY_NAME: Final = {f.value: f for f in ProfileField}
_POLICY_BY_NAME: Final = {p.value: p for p in SubscriberPolicy}


@dataclass(frozen=True, slots=True)
class LastApplied:
    """What the last apply managed on an account: field names, `protect`, policy, spec digest.

    `known` is False for a record that is missing, garbled or written by another tool: the diff then
    clears nothing (it cannot know what was managed) and never destroys the account.
    """

    fields: frozenset[ProfileField] = frozenset()
    protect: bool = False
    #: None when the manifest said nothing about subscribers
    policy: SubscriberPolicy | None = None
    #: digest of the account's settings as last applied (`account_digest(members=False)`)
    digest: str = ""
    known: bool = True


#: The record of an account whose CustomString is not ours (or unreadable).
UNKNOWN_RECORD: Final = LastApplied(known=False)
#: The record of an account an interrupted apply created and the manifests no longer declare,
#: adopted from the inventory ledger: nothing managed, not protected (`--prune` destroys it).
INTERRUPTED_RECORD: Final = LastApplied()


def record_for(account: Account) -> LastApplied:
    """The record an apply of `account` leaves behind."""
    return LastApplied(
        fields=frozenset(account.profile),
        protect=account.protect,
        policy=account.subscribers.policy if account.subscribers is not None else None,
        digest=account_digest(account, members=False),
    )


def encode_record(record: LastApplied) -> str:
    """The record as the inventory subscription's CustomString: compact JSON behind a prefix.

    Its size is bounded by the six field names, a policy name and a 64-character digest (about
    200 bytes), far below the vendor's 3,000 bytes whatever the account holds.
    """
    body = {
        "d": record.digest,
        "f": sorted(f.value for f in record.fields),
        "p": 1 if record.protect else 0,
        "s": record.policy.value if record.policy is not None else None,
    }
    return RECORD_PREFIX + json.dumps(body, sort_keys=True, separators=(",", ":"))


def decode_record(text: str | None) -> LastApplied:
    """Parse a CustomString; anything that is not a well-formed record is `UNKNOWN_RECORD`."""
    if not text or not text.startswith(RECORD_PREFIX):
        return UNKNOWN_RECORD
    try:
        body = json.loads(text[len(RECORD_PREFIX) :])
    except ValueError:
        return UNKNOWN_RECORD
    if not isinstance(body, dict):
        return UNKNOWN_RECORD
    names, protect, policy, digest = body.get("f"), body.get("p"), body.get("s"), body.get("d")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return UNKNOWN_RECORD
    if any(n not in _FIELD_BY_NAME for n in names):
        return UNKNOWN_RECORD
    if protect not in (0, 1) or isinstance(protect, bool) or not isinstance(digest, str):
        return UNKNOWN_RECORD
    if policy is not None and policy not in _POLICY_BY_NAME:
        return UNKNOWN_RECORD
    return LastApplied(
        fields=frozenset(_FIELD_BY_NAME[n] for n in names),
        protect=protect == 1,
        policy=_POLICY_BY_NAME[policy] if policy is not None else None,
        digest=digest,
    )


def members_digest(members: Iterable[str]) -> str:
    """An order-independent digest of a set of user ids: SHA-256 over the sorted ids."""
    if isinstance(members, frozenset):
        return _frozenset_digest(members)
    return _digest_sorted(sorted(members))


# The diff, the record and the plan's digests see the same frozensets; sorting 100,000 ids costs
# tens of milliseconds, so each set is sorted once per process. A frozenset caches its own hash.
@functools.lru_cache(maxsize=64)
def _frozenset_digest(members: frozenset[str]) -> str:
    return _digest_sorted(sorted(members))


def _digest_sorted(ordered: list[str]) -> str:
    text = "\n".join(ordered) + "\n" if ordered else ""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def profile_digest(owner: str, profile: Mapping[ProfileField, ProfileValue]) -> str:
    """Digest of an owner and profile fields (canonical JSON, vendor field names)."""
    body = {"owner": owner, "profile": {f.vendor: v for f, v in profile.items()}}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def account_digest(account: Account, *, members: bool = True) -> str:
    """Digest of an account's spec (values included); position and labels excluded.

    With `members=False` (the last-applied record's digest) the membership is left out: hashing
    100,000 ids means sorting them, which the diff should not pay for on every run; the plan
    file's digest of the desired state covers memberships.
    """
    subscribers = account.subscribers
    body: dict[str, object] = {
        "id": account.id,
        "profile": profile_digest(account.owner, account.profile),
        "protect": account.protect,
        "ignoreChanges": sorted(f.value for f in account.ignore_changes),
    }
    if subscribers is not None:
        subs: dict[str, object] = {
            "policy": subscribers.policy.value,
            "profiles": dict(sorted(subscribers.profiles.items())),
        }
        if members:
            subs["members"] = members_digest(subscribers.members)
            subs["absent"] = members_digest(subscribers.absent)
        body["subscribers"] = subs
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


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
