"""The desired state: frozen records that validation produces and the diff consumes.

After validation, dicts stop. `reconciler.validate.load_desired_state()` (through
`reconciler.resolve`) is the only way raw manifest documents become these records; everything
downstream (read, diff, plan, apply) takes them as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, TypeVar

#: Prefix of every official account id; `news` in a manifest means `@TOA#_news`.
ACCOUNT_ID_PREFIX: Final = "@TOA#_"
#: Ids starting with this are assigned by the vendor and cannot be chosen.
RESERVED_ACCOUNT_ID_PREFIX: Final = "@TOA#_@TOA#"
#: The one shape of a vendor-assigned id a manifest may name (to adopt an account made in the
#: console, never to create one): the reserved prefix and 8 hex digits, as `create_official_account`
#: without `OfficialAccountUserID` returns it (reference 4.2 and 5.1; `@TOA#_@TOA#00000001`).
VENDOR_ACCOUNT_ID: Final = re.compile(r"@TOA#_@TOA#[0-9A-Fa-f]{8}")
#: The IM user that records what this repo owns (DESIGN section 5); `inventory` may name another.
DEFAULT_INVENTORY_USER: Final = "reconciler-inventory"


class ProfileField(Enum):
    """A writable official-account profile field: manifest (camelCase) name → vendor field name."""

    NAME = "name"
    INTRODUCTION = "introduction"
    FACE_URL = "faceUrl"
    ORGANIZATION = "organization"
    CUSTOM_STRING = "customString"
    MAX_SUBSCRIBER_NUM = "maxSubscriberNum"

    @property
    def vendor(self) -> str:
        return _VENDOR_FIELD[self]


_VENDOR_FIELD: Final = {
    ProfileField.NAME: "Name",
    ProfileField.INTRODUCTION: "Introduction",
    ProfileField.FACE_URL: "FaceUrl",
    ProfileField.ORGANIZATION: "Organization",
    ProfileField.CUSTOM_STRING: "CustomString",
    ProfileField.MAX_SUBSCRIBER_NUM: "MaxSubscriberNum",
}

ProfileValue = str | int

T = TypeVar("T")


class SubscriberPolicy(Enum):
    """How declared subscribers relate to live ones."""

    ADDITIVE = "additive"  # add the declared, remove only `absent`
    EXACT = "exact"  # remove every subscriber not declared


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record came from, for `file:line:col` messages (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Subscribers:
    """An account's declared subscribers, sets already expanded and de-duplicated."""

    policy: SubscriberPolicy
    members: frozenset[str]
    absent: frozenset[str] = frozenset()
    #: subscriber UserID → the subscriber's CustomString on this account
    profiles: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Account:
    """One declared official account."""

    id: str  # canonical, always starting with ACCOUNT_ID_PREFIX
    owner: str
    #: only the profile fields the manifest sets
    profile: Mapping[ProfileField, ProfileValue]
    position: Position
    #: where `metadata.id` is written (a plan's problem with the id points there)
    id_position: Position | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    protect: bool = False
    ignore_changes: frozenset[ProfileField] = frozenset()
    #: None when the manifest says nothing about subscribers (they are then not read at all)
    subscribers: Subscribers | None = None
    #: where `owner:` is written (a plan's problem with the owner points there)
    owner_position: Position | None = None


@dataclass(frozen=True, slots=True)
class MassSpeed:
    """The WeChat official account's mass-send speed, 0 (fastest) to 4 (slowest)."""

    name: str
    speed: int
    position: Position


@dataclass(frozen=True, slots=True)
class DesiredState:
    """Everything the manifests declare, resolved."""

    #: account id → account, in sorted id order
    accounts: Mapping[str, Account]
    #: IM users that must exist: the union of every `UserAccounts` document, sets expanded
    users: frozenset[str]
    mass_speed: MassSpeed | None = None
    #: number of documents loaded (for "N documents valid")
    documents: int = 0
    #: what the kinds that resolve their own documents declared (`Kind.resolve`)
    records: tuple[object, ...] = ()

    def of(self, record_type: type[T]) -> tuple[T, ...]:
        """The declared records of one type (a kind's own, `Kind.resolve`)."""
        return tuple(r for r in self.records if isinstance(r, record_type))


def is_vendor_assigned(account_id: str) -> bool:
    """Whether `account_id` (canonical) is an id the vendor assigned, in its exact shape."""
    return VENDOR_ACCOUNT_ID.fullmatch(account_id) is not None


def canonical_account_id(raw: str) -> str:
    """`news` → `@TOA#_news`; an id that already has the prefix is returned unchanged."""
    return raw if raw.startswith(ACCOUNT_ID_PREFIX) else ACCOUNT_ID_PREFIX + raw
