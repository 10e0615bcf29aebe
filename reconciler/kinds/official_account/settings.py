"""What a record update changes in an account's own settings, shown like attributes in a plan.

The last-applied record (`reconciler.record`) holds `protect` and the subscriber policy, so their
old values are read from it. It holds no `ignoreChanges`, only the digest of the spec as applied
(which covers it): the old list is found by trying each of the 64 subsets of the profile fields on
the manifest as it was (`protect`, policy and the profile values put back as the record and the
live profile tell), and is shown only when one of them gives the recorded digest. When something
else the digest covers changed as well (a subscriber profile, say), the old list is not known and
no `ignoreChanges` line is shown: the record update is then still listed as bookkeeping.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from itertools import combinations

from reconciler.digest import account_digest_body, canonical_json
from reconciler.kinds.official_account.account import FieldChange, RecordAttr
from reconciler.model import Account, ProfileField, ProfileValue
from reconciler.record import LastApplied

#: Stands for the `ignoreChanges` list in an account's digest body; only `id` sorts before that key,
#: so its first occurrence in the canonical JSON is the list's place.
_SLOT = "\x00ignoreChanges\x00"


def record_attrs(
    account: Account, last: LastApplied, fields: Sequence[FieldChange]
) -> tuple[RecordAttr, ...]:
    """`protect`, `policy` and `ignoreChanges` of `account` that differ from the record `last`."""
    if not last.known:
        return ()
    attrs = []
    if account.protect != last.protect:
        attrs.append(RecordAttr("protect", last.protect, account.protect))
    policy = account.subscribers.policy if account.subscribers is not None else None
    if policy != last.policy:
        attrs.append(
            RecordAttr(
                "policy",
                last.policy.value if last.policy is not None else None,
                policy.value if policy is not None else None,
            )
        )
    old_ignored = _old_ignore_changes(account, last, fields)
    if old_ignored is not None and old_ignored != account.ignore_changes:
        attrs.append(
            RecordAttr("ignoreChanges", _names(old_ignored), _names(account.ignore_changes))
        )
    return tuple(attrs)


def recover_ignore_changes(account: Account, last: LastApplied) -> frozenset[ProfileField]:
    """The `ignoreChanges` the record `last` was applied with, for `account` as the live system
    holds it (import writes what the record knows); empty when none or not recoverable."""
    found = _old_ignore_changes(account, last, ()) if last.known else None
    return found or frozenset()


def _names(fields: frozenset[ProfileField]) -> list[str]:
    return [f.value for f in ProfileField if f in fields]


def _old_ignore_changes(
    account: Account, last: LastApplied, fields: Sequence[FieldChange]
) -> frozenset[ProfileField] | None:
    """The `ignoreChanges` the record's digest was made with, or None when it cannot be found."""
    before = _as_applied(account, last, fields)
    if before is None:
        return None
    # the rest of the body (a subscriber profile per member) is serialised once, not 64 times
    body = account_digest_body(before, members=False)
    body["ignoreChanges"] = _SLOT
    head, _, tail = canonical_json(body).partition(canonical_json(_SLOT))
    for ignored in _subsets():
        names = canonical_json(sorted(f.value for f in ignored))
        if _sha256(head + names + tail) == last.digest:
            return ignored
    return None


def _as_applied(
    account: Account, last: LastApplied, fields: Sequence[FieldChange]
) -> Account | None:
    """`account` with what the record and the live profile tell of the manifest as applied."""
    profile: dict[ProfileField, ProfileValue] = dict(account.profile)
    for change in fields:  # the live value is what the last apply set, if it set the field
        if change.old is None or change.field not in last.fields:
            profile.pop(change.field, None)
        else:
            profile[change.field] = change.old
    subscribers = account.subscribers
    if last.policy is None:
        subscribers = None
    elif subscribers is None:
        return None  # the block's profiles as applied are not known
    else:
        subscribers = dataclasses.replace(subscribers, policy=last.policy)
    return dataclasses.replace(
        account, profile=profile, protect=last.protect, subscribers=subscribers
    )


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _subsets() -> Iterator[frozenset[ProfileField]]:
    every = list(ProfileField)
    for size in range(len(every) + 1):
        for chosen in combinations(every, size):
            yield frozenset(chosen)
