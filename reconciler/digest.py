"""Digests: SHA-256 over canonical JSON, and the digests of memberships, profiles and accounts.

One canonical form (sorted keys, no whitespace, UTF-8 as it is) for everything reconciler pins by
digest: the last-applied record's spec digest, a saved plan's fingerprints and its integrity. A
digest reads `sha256:<64 hex digits>`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping

from reconciler.model import Account, ProfileField, ProfileValue


def canonical_json(value: object) -> str:
    """`value` as JSON with sorted keys, no whitespace and non-ASCII text as it is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def json_digest(value: object) -> str:
    """`sha256:` and the SHA-256 of `value`'s canonical JSON (UTF-8)."""
    return _sha256(canonical_json(value))


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


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
    return _sha256("\n".join(ordered) + "\n" if ordered else "")


def profile_digest(owner: str, profile: Mapping[ProfileField, ProfileValue]) -> str:
    """Digest of an owner and profile fields (canonical JSON, vendor field names)."""
    return json_digest({"owner": owner, "profile": {f.vendor: v for f, v in profile.items()}})


def account_digest(account: Account, *, members: bool = True) -> str:
    """Digest of an account's spec (values included); position and labels excluded.

    With `members=False` (the last-applied record's digest) the membership is left out: hashing
    100,000 ids means sorting them, which the diff should not pay for on every run; the plan
    file's digest of the desired state covers memberships.
    """
    return json_digest(account_digest_body(account, members=members))


def account_digest_body(account: Account, *, members: bool = True) -> dict[str, object]:
    """What `account_digest` hashes (its canonical JSON)."""
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
    return body
