"""`reconciler drift`: what differs from git, as pure functions over the diff, and the ignore file.

A drift report is the diff read the other way round: each difference is a field with its git value
and its live value, or members added or removed by hand. The `--ignore` file silences known
differences, each entry with a reason, an owner and an expiry date; after that date the difference
is reported again, with the expired entry named, so nobody forgets a silenced drift.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from reconciler.changes import DriftItem, Notice, PlanProblem
from reconciler.diff import Diff
from reconciler.errors import ConfigError
from reconciler.kinds.mass_speed import MASS_SPEED_PREFIX
from reconciler.kinds.official_account import SUBSCRIBERS
from reconciler.kinds.user_accounts import USER_ACCOUNTS
from reconciler.model import canonical_account_id
from reconciler.plan import TargetIdentity

__all__ = ["DriftItem", "DriftReport", "IgnoreEntry", "build_drift", "drift_items", "parse_ignore"]

_ENTRY_KEYS: Final = ("account", "field", "reason", "owner", "expires")


@dataclass(frozen=True, slots=True)
class IgnoreEntry:
    """A known difference, silenced until `expires` (inclusive)."""

    account: str
    field: str
    reason: str
    owner: str
    expires: dt.date

    def matches(self, item: DriftItem) -> bool:
        return self.account == item.account and self.field == item.field

    def __str__(self) -> str:
        return (
            f"{self.account} {self.field} (owner {self.owner}, until {self.expires.isoformat()}:"
            f" {self.reason})"
        )


def drift_items(found: Diff) -> list[DriftItem]:
    """The differences a diff (made without --prune) shows, account by account."""
    items = [item for change in found.changes for item in change.drift()]
    items += [_orphan(n) for n in found.notices if n.reason in ("orphan", "protected")]
    # a kind's notice that is a drift too (`drift:<field>`: a broadcast recalled by hand, ...)
    items += [
        DriftItem(n.account, n.reason.removeprefix("drift:"), None, n.message)
        for n in found.notices
        if n.reason.startswith("drift:")
    ]
    return _merge_subscribers(items)


def _orphan(notice: Notice) -> DriftItem:
    return DriftItem(notice.account, "account", "not declared", "exists")


def _merge_subscribers(items: list[DriftItem]) -> list[DriftItem]:
    # An account can both miss declared members and hold extra ones: one `subscribers` item.
    # The diff lists changes in apply order; a report reads better account by account.
    merged: dict[tuple[str, str], DriftItem] = {}
    for item in items:
        key = (item.account, item.field)
        seen = merged.get(key)
        if seen is not None and item.field == SUBSCRIBERS:
            merged[key] = replace(
                seen,
                added_by_hand=seen.added_by_hand | item.added_by_hand,
                removed_by_hand=seen.removed_by_hand | item.removed_by_hand,
            )
        else:
            merged[key] = item
    return sorted(merged.values(), key=lambda i: i.account)


def _entry_account(raw: str) -> str:
    if raw == USER_ACCOUNTS or raw.startswith((MASS_SPEED_PREFIX, "MassMessage/")):
        return raw
    return canonical_account_id(raw)


def parse_ignore(data: Any, *, source: str = "ignore file") -> list[IgnoreEntry]:
    """Entries from a loaded ignore file: a list of mappings, or `{ignore: [...]}`.

    Each entry needs `account`, `field` (a profile field, `subscribers`, ...), `reason`, `owner`
    and `expires` (a date, YYYY-MM-DD). Every problem is reported at once as a `ConfigError`.
    """
    if isinstance(data, Mapping) and set(data) == {"ignore"}:
        data = data["ignore"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(f"{source}: expected a list of entries (or 'ignore:' with a list)")
    entries, problems = [], []
    for n, raw in enumerate(data, start=1):
        where = f"{source}: entry {n}"
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: expected a mapping with {', '.join(_ENTRY_KEYS)}")
            continue
        missing = [k for k in _ENTRY_KEYS if raw.get(k) in (None, "")]
        unknown = sorted(str(k) for k in raw if k not in _ENTRY_KEYS)
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
        if missing or unknown:
            continue
        expires = raw["expires"]
        if isinstance(expires, dt.datetime):
            expires = expires.date()
        elif not isinstance(expires, dt.date):
            try:
                expires = dt.date.fromisoformat(str(expires))
            except ValueError:
                problems.append(f"{where}: expires {expires!r} is not a date (YYYY-MM-DD)")
                continue
        entries.append(
            IgnoreEntry(
                _entry_account(str(raw["account"])),
                str(raw["field"]),
                str(raw["reason"]),
                str(raw["owner"]),
                expires,
            )
        )
    if problems:
        raise ConfigError("\n".join(problems))
    return entries


@dataclass(frozen=True, slots=True)
class DriftReport:
    """What `reconciler drift` reports: differences, silenced ones, expired entries, problems."""

    target: TargetIdentity
    items: tuple[DriftItem, ...]
    silenced: tuple[tuple[DriftItem, IgnoreEntry], ...] = ()
    #: ignore entries whose date has passed (whatever they match; they should be renewed or removed)
    expired: tuple[IgnoreEntry, ...] = ()
    problems: tuple[PlanProblem, ...] = ()
    #: what a kind cannot see (`blindSpot` notices: mass sends made outside this tool), shown
    #: beside the accounts' blind spot
    blind_spots: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 in sync, 2 drift, 1 error (a problem made the read or diff incomplete)."""
        if self.problems:
            return 1
        return 2 if self.items else 0


def build_drift(
    found: Diff,
    *,
    target: TargetIdentity,
    ignores: Iterable[IgnoreEntry] = (),
    today: dt.date,
) -> DriftReport:
    """The drift report for `found = diff(desired, live, prune=False, ...)`."""
    entries = list(ignores)
    expired = tuple(e for e in entries if e.expires < today)
    reported: list[DriftItem] = []
    silenced: list[tuple[DriftItem, IgnoreEntry]] = []
    for item in drift_items(found):
        entry = next((e for e in entries if e.matches(item)), None)
        if entry is None:
            reported.append(item)
        elif entry.expires < today:
            reported.append(replace(item, note=f"ignore entry expired: {entry}"))
        else:
            silenced.append((item, entry))
    blind = tuple(f"{n.account}: {n.message}" for n in found.notices if n.reason == "blindSpot")
    return DriftReport(target, tuple(reported), tuple(silenced), expired, found.problems, blind)
