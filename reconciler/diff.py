"""desired + live → a `Diff`: changes, notices and problems. Pure: no I/O, no logging, sorted once.

Each registered kind (`reconciler.kinds.REGISTRY`) finds its own changes; then the inventory's
bookkeeping is laid out over them (`reconciler.kinds.inventory.bookkeeping`): every create is
recorded in the inventory ledger first, and the inventory user is imported when it is missing
and needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.changes import Change, DiffOptions, Finding, Notice, PlanProblem, sort_key
from reconciler.kinds import registered
from reconciler.kinds.inventory import bookkeeping
from reconciler.live import LiveState
from reconciler.model import DesiredState


@dataclass(frozen=True, slots=True)
class Diff:
    """What a diff found, each part sorted in the DESIGN order (section 6)."""

    changes: tuple[Change, ...] = ()
    #: things the reader of a plan should know (an orphan left alone, ...)
    notices: tuple[Notice, ...] = ()
    #: things that would make apply fail: a plan with any is an error
    problems: tuple[PlanProblem, ...] = ()

    @classmethod
    def of(cls, findings: Iterable[Finding]) -> Diff:
        """Sort `findings` once and part them into changes, notices and problems."""
        changes: list[Change] = []
        notices: list[Notice] = []
        problems: list[PlanProblem] = []
        for item in sorted(findings, key=sort_key):
            if isinstance(item, Notice):
                notices.append(item)
            elif isinstance(item, PlanProblem):
                problems.append(item)
            else:
                changes.append(item)
        return cls(tuple(changes), tuple(notices), tuple(problems))

    def findings(self) -> list[Finding]:
        """Everything, in the order a plan lists it: problems, changes, notices."""
        return [*self.problems, *self.changes, *self.notices]


def diff(
    desired: DesiredState,
    live: LiveState,
    *,
    prune: bool,
    inventory_user: str,
    wechat_missing: str | None = None,
    history_days: int = 7,
    time_zone: str = "UTC",
    wechat_account_type: str | None = None,
) -> Diff:
    """Every change that makes `live` match `desired`, with notices and problems.

    The inventory user is never shown, counted or removed: it is dropped from every membership
    before comparing and only appears in bookkeeping (`Record`, `ImportInventoryUser`).
    `wechat_missing` names a target without WeChat credentials (a declared MassSpeed is then a
    problem).
    """
    options = DiffOptions(
        prune, inventory_user, wechat_missing, history_days, time_zone, wechat_account_type
    )
    found: list[Finding] = []
    for kind in registered():
        if kind.diff is not None:
            found.extend(kind.diff(desired, live, options))
    changes = [f for f in found if isinstance(f, Change)]
    found.extend(bookkeeping(changes, live, inventory_user=inventory_user))
    return Diff.of(found)
