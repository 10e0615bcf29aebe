"""`kind: UserAccounts`: IM users that must exist (owners, subscribers), imported when missing."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from reconciler.changes import (
    PHASE_IMPORT,
    Action,
    ApplyRun,
    Change,
    DiffOptions,
    DriftItem,
    Finding,
    Kind,
    Schedule,
    Wire,
    batched,
    members_summary,
    plural,
    show_ids,
)
from reconciler.errors import ProviderError
from reconciler.live import LiveState
from reconciler.model import DesiredState
from reconciler.outcome import GLOBAL, failure, item_failures
from reconciler.providers import ItemResults
from reconciler.providers.calls import API_MULTIACCOUNT_IMPORT, IMPORT_BATCH

#: Where drift reports the users (`--ignore` entries name it as their account).
USER_ACCOUNTS = "UserAccounts"


class ImportUsersWire(Wire, frozen=True, tag="importUsers"):
    """The plan-file form of `ImportUsers`."""

    users: list[str]

    def change(self) -> ImportUsers:
        return ImportUsers(frozenset(self.users))


@dataclass(frozen=True, slots=True)
class ImportUsers(Change):
    """IM users declared in `UserAccounts` that do not exist yet (multiaccount_import)."""

    kind: ClassVar[str] = "importUsers"
    phase: ClassVar[int] = PHASE_IMPORT
    wire_type: ClassVar[type[Wire]] = ImportUsersWire
    users: frozenset[str]

    def wire(self) -> ImportUsersWire:
        return ImportUsersWire(sorted(self.users))

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        return {"type": self.kind, "users": members_summary(self.users, first=first)}

    def actions(self, schedule: Schedule) -> list[Action]:
        return [
            Action(f"{self.kind}/-/{n}", API_MULTIACCOUNT_IMPORT, self, batch)
            for n, batch in enumerate(batched(self.users, IMPORT_BATCH))
        ]

    def apply_phase(self, action: Action) -> str:
        return "users"

    def count(self, summary: dict[str, int]) -> None:
        summary["importUsers"] += len(self.users)

    def headline(self) -> tuple[int, str, str] | None:
        return None

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return []

    def block(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        ids = sorted(self.users) if show_all else [show_ids(self.users, first)]
        return [("+", f"+ users to import: {len(self.users):,}"), *((" ", f"    {u}") for u in ids)]

    def markdown(self, *, first: int) -> list[str]:
        ids = html.escape(show_ids(self.users, first), quote=False)
        return [f"Users to import ({len(self.users):,}): {ids}", ""]

    def drift(self) -> list[DriftItem]:
        return [DriftItem(USER_ACCOUNTS, "users", removed_by_hand=self.users)]

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        report = run.result.report(GLOBAL)

        parts: list[ItemResults] = []

        async def one(batch: tuple[str, ...]) -> None:
            parts.append(await run.im.import_accounts(batch))
            run.progress(1)

        errors: list[ProviderError] = []
        try:
            # a task group: a batch refused on a signal (`Stopped`) ends alone, the others finish
            async with asyncio.TaskGroup() as group:
                for action in actions:
                    group.create_task(one(action.items))
        except* ProviderError as group:  # a provider that raises rather than reporting items
            errors.extend(e for e in group.exceptions if isinstance(e, ProviderError))
        if errors:
            report.failed.append(failure(f"import {len(self.users)} users", errors[0]))
            run.missing_users.update(self.users)
            return
        results = ItemResults.merged(parts)
        done = len(self.users) - len(results.failed)
        run.result.users_imported += done
        if done:
            report.applied.append(f"import {done} users")
        report.failed.extend(item_failures("import user", results))
        run.missing_users.update(results.failed)


def diff_users(desired: DesiredState, live: LiveState, options: DiffOptions) -> Iterable[Finding]:
    """The declared users that do not exist yet (the inventory user is bookkeeping's)."""
    to_import = desired.users - live.existing_users - {options.inventory_user}
    return [ImportUsers(frozenset(to_import))] if to_import else []


def _summary_text(s: Mapping[str, int]) -> list[str]:
    return [f"{plural(s['importUsers'], 'user')} to import"] if s["importUsers"] else []


def _summary_rows(s: Mapping[str, int]) -> list[tuple[str, int]]:
    return [("users to import", s["importUsers"])]


KIND = Kind(
    name=USER_ACCOUNTS,
    changes=(ImportUsers,),
    diff=diff_users,
    summary_keys=("importUsers",),
    summary_text=_summary_text,
    summary_rows=_summary_rows,
)
