"""The OfficialAccount kind's diff: desired accounts + live accounts → its changes.

Profile fields are compared one by one (six scalar fields: a dict comparison says everything a deep
diff would, so deepdiff does not earn its place here). Memberships are `frozenset` operations,
linear in their size. The three-way merge uses the last-applied record (DESIGN section 5): a field
the manifest set last time and no longer sets is cleared; a field never managed is left alone;
`ignoreChanges` fields are only set at create. An account an interrupted apply created (the
inventory ledger names it) and the manifests no longer declare is adopted (`AdoptOrphan`) or, with
`--prune`, destroyed. Pure: no I/O, no logging.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.changes import DiffOptions, Finding, Notice, PlanProblem, first_ids
from reconciler.kinds.official_account.account import (
    AdoptOrphan,
    CreateAccount,
    DestroyAccount,
    FieldChange,
    ModifyAccount,
    Record,
)
from reconciler.kinds.official_account.members import (
    AddSubscribers,
    ProfileChange,
    RemoveSubscribers,
    SetSubscriberProfiles,
)
from reconciler.kinds.official_account.settings import record_attrs
from reconciler.ledger import slot_index
from reconciler.live import DEFAULT_MAX_SUBSCRIBER_NUM, LiveAccount, LiveState
from reconciler.model import (
    Account,
    DesiredState,
    ProfileField,
    ProfileValue,
    SubscriberPolicy,
    is_vendor_assigned,
)
from reconciler.record import UNKNOWN_RECORD, LastApplied, record_for

#: How many ids a problem message names before "and N more".
PROBLEM_IDS = 10


def _cleared_value(field: ProfileField) -> ProfileValue:
    # An unset string field reads back as "" and MaxSubscriberNum defaults to 100000 (ref. 4.2).
    return DEFAULT_MAX_SUBSCRIBER_NUM if field is ProfileField.MAX_SUBSCRIBER_NUM else ""


def _some(ids: frozenset[str]) -> str:
    shown = ", ".join(first_ids(ids, PROBLEM_IDS))
    return shown + (f" and {len(ids) - PROBLEM_IDS} more" if len(ids) > PROBLEM_IDS else "")


class _Differ:
    """One diff run; collects changes in a list, sorted once at the end."""

    def __init__(self, desired: DesiredState, live: LiveState, inventory_user: str) -> None:
        self.desired = desired
        self.live = live
        self.inventory = inventory_user
        self.changes: list[Finding] = []

    def run(self, *, prune: bool) -> list[Finding]:
        for account in self.desired.accounts.values():
            self._account(account, self.live.accounts.get(account.id))
        for live_account in self.live.accounts.values():
            if live_account.id in self.desired.accounts:
                continue
            if live_account.owned:
                self._orphan(live_account, prune=prune)
            elif live_account.pending:
                self._interrupted(live_account, prune=prune)
        return self.changes

    def _problem(self, account: Account, message: str) -> None:
        self.changes.append(PlanProblem(account.id, message))

    def _account(self, account: Account, live: LiveAccount | None) -> None:
        if slot_index(self.inventory, account.id) is not None:
            self._problem(
                account,
                f"the id is reserved for the inventory ledger of {self.inventory!r}"
                " (reconciler's own bookkeeping); choose another id",
            )
            return
        if live is None:
            self._create(account)
            return
        if account.owner != live.owner:
            self._problem(
                account,
                f"owner changed from {live.owner!r} to {account.owner!r}, but the vendor cannot"
                f" change the owner of an existing account (reference section 4.2); declare a new"
                f" account id with the new owner instead, e.g. {account.id + '_v2'!r}",
            )
        last = live.last_applied if live.owned else UNKNOWN_RECORD
        fields = self._fields(account, live, last)
        if fields:
            self.changes.append(ModifyAccount(account.id, tuple(fields)))
        record = record_for(account)
        if not live.owned or record != live.last_applied:
            attrs = record_attrs(account, last, fields)
            self.changes.append(
                Record(account.id, record, not live.owned, adopt=not live.owned, attrs=attrs)
            )
        self._subscribers(account, live)

    def _create(self, account: Account) -> None:
        if is_vendor_assigned(account.id):
            self._problem(
                account,
                f"{account.id_position or account.position}: metadata.id: the vendor assigns ids"
                " of this shape, so a manifest can only adopt an existing account with one, and"
                " the target has none; declare a custom id to create an account (reference"
                " section 4.4)",
            )
            return
        if (
            account.owner not in self.live.existing_users
            and account.owner not in self.desired.users
        ):
            self._problem(
                account,
                f"owner {account.owner!r} does not exist and is not declared in UserAccounts"
                + (f" (spec.owner at {account.owner_position})" if account.owner_position else ""),
            )
        if ProfileField.NAME not in account.profile:
            self._problem(account, "name is required to create an account (reference 5.1)")
        profile = tuple((f, account.profile[f]) for f in ProfileField if f in account.profile)
        self.changes.append(CreateAccount(account.id, account.owner, profile))
        self.changes.append(Record(account.id, record_for(account), subscribe=True))
        self._subscribers(account, None)

    def _fields(self, account: Account, live: LiveAccount, last: LastApplied) -> list[FieldChange]:
        changes = []
        for field in ProfileField:
            current = live.profile.get(field)
            if field in account.ignore_changes:
                continue  # set at create, then left alone
            if field in account.profile:
                wanted = account.profile[field]
                if current != wanted:
                    changes.append(FieldChange(field, current, wanted))
            elif last.known and field in last.fields:
                if field is ProfileField.NAME:
                    self.changes.append(
                        Notice(
                            account.id,
                            "name is no longer in the manifest but the vendor cannot clear it"
                            f" (a name is required); it stays {current!r}",
                            "field",
                        )
                    )
                    continue
                cleared = _cleared_value(field)
                if current != cleared:
                    changes.append(FieldChange(field, current, cleared, cleared=True))
        return changes

    def _subscribers(self, account: Account, live: LiveAccount | None) -> None:
        declared_subs = account.subscribers
        if declared_subs is None:
            if live is None:
                self._check_capacity(account, live, 1)
            return
        if live is not None and live.subscribers is None:
            self._problem(account, "its subscribers were not read; cannot plan them")
            return
        current = frozenset() if live is None else live.subscribers or frozenset()
        # copies of 100,000-member sets cost; only make them when something is to be taken out
        if self.inventory in current:
            current = current - {self.inventory}
        declared = declared_subs.members
        if declared_subs.absent or self.inventory in declared:
            declared = declared - declared_subs.absent - {self.inventory}
        add = declared - current
        if declared_subs.policy is SubscriberPolicy.EXACT:
            remove, reason = current - declared, "exact"
        else:
            remove, reason = current & declared_subs.absent, "absent"
        missing = add - self.live.existing_users - self.desired.users if add else add
        if missing:
            self._problem(
                account,
                f"{len(missing)} subscriber(s) do not exist and are not declared in"
                f" UserAccounts: {_some(missing)}",
            )
        if add:
            self.changes.append(AddSubscribers(account.id, add))
        if remove:
            self.changes.append(RemoveSubscribers(account.id, remove, len(current), reason))
        live_profiles: Mapping[str, str] = {} if live is None else live.subscriber_profiles or {}
        profiles = []
        for user, wanted in sorted(declared_subs.profiles.items()):
            if user not in declared:
                continue  # only declared members carry profiles
            old = live_profiles.get(user, "") if user in current else None
            if old != wanted and not (old is None and wanted == ""):
                profiles.append(ProfileChange(user, old, wanted))
        if profiles:
            self.changes.append(SetSubscriberProfiles(account.id, tuple(profiles)))
        # the inventory user's own subscription counts against MaxSubscriberNum too
        self._check_capacity(account, live, len(current) + len(add) - len(remove) + 1)

    def _check_capacity(self, account: Account, live: LiveAccount | None, needed: int) -> None:
        field = ProfileField.MAX_SUBSCRIBER_NUM
        limit: ProfileValue | None
        if field in account.profile and (live is None or field not in account.ignore_changes):
            limit = account.profile[field]
        elif live is not None:
            limit = live.profile.get(field, DEFAULT_MAX_SUBSCRIBER_NUM)
        else:
            limit = DEFAULT_MAX_SUBSCRIBER_NUM
        # 0 is what a read that did not return MaxSubscriberNum gives: unknown, not a limit of 0
        if isinstance(limit, int) and 0 < limit < needed:
            self._problem(
                account,
                f"maxSubscriberNum {limit} is below the declared membership: {needed} subscribers"
                f" after this plan (the inventory subscription included); raise maxSubscriberNum"
                f" to at least {needed}",
            )

    def _orphan(self, live: LiveAccount, *, prune: bool) -> None:
        record = live.last_applied
        # a protected or unreadable orphan is kept whatever the flags: without --prune too the
        # plan says so, never "would destroy with --prune"
        if not prune and record.known and not record.protect:
            self.changes.append(
                Notice(
                    live.id, "owned but no longer declared: would destroy with --prune", "orphan"
                )
            )
        elif not record.known:
            self.changes.append(
                Notice(
                    live.id,
                    "owned but no longer declared, and its inventory record is unreadable:"
                    " not destroyed (declare it again or destroy it by hand)",
                    "protected",
                )
            )
        elif record.protect:
            self.changes.append(
                Notice(
                    live.id, "owned but no longer declared; protected: not destroyed", "protected"
                )
            )
        else:
            count = (
                len(live.subscribers - {self.inventory})
                if live.subscribers is not None
                else (max(live.subscriber_count - 1, 0))
            )
            self.changes.append(DestroyAccount(live.id, live.owner, count))

    def _interrupted(self, live: LiveAccount, *, prune: bool) -> None:
        """Created by an apply interrupted before the inventory subscribed to it (the ledger
        names it), and no longer declared: ours, so adopted, or destroyed with --prune. Nothing
        ever said it was protected: an unknown record means protected only for an account some
        record may have marked so."""
        if prune:
            self.changes.append(DestroyAccount(live.id, live.owner, live.subscriber_count))
        else:
            self.changes.append(AdoptOrphan(live.id, live.owner, live.subscriber_count))


def diff_accounts(desired: DesiredState, live: LiveState, options: DiffOptions) -> list[Finding]:
    """The accounts' changes, notices and problems, in the order found (the caller sorts)."""
    return _Differ(desired, live, options.inventory_user).run(prune=options.prune)
