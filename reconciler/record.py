"""The last-applied record: what the last apply managed on an account, kept in the inventory.

The record (DESIGN section 5) is the CustomString of the inventory user's subscription to an
account. It holds the names of the spec fields the manifest set, `protect`, the subscriber policy
and a digest of the spec, never the values, so it stays a few hundred bytes whatever the account
holds (the vendor caps a subscriber CustomString at 3,000 bytes, reference section 4.3).

Like kopf's diff-base (`kopf/_cogs/configs/diffbase.py`), it is one small object with its three
operations: build it from what was applied (`record_for`), store it as text (`encode_record`),
fetch it back from text (`decode_record`, which reads anything it does not recognise as
`UNKNOWN_RECORD`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from reconciler.digest import account_digest, canonical_json
from reconciler.model import Account, ProfileField, SubscriberPolicy

#: The vendor's cap on a subscriber's CustomString (reference section 4.3).
RECORD_MAX_BYTES: Final = 3000
#: Every record starts with this, so a CustomString written by another tool is seen as foreign.
RECORD_PREFIX: Final = "reconciler/v1:"

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
    return RECORD_PREFIX + canonical_json(body)


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
