"""What an apply is made of while it runs: the run's shared state and its per-account outcome.

`reconciler.apply` runs a plan's actions phase by phase; each change's `run` (in its kind's
module) makes its calls through the `ApplyRun` it is given and writes what happened into the run's
`ApplyResult`. State that one kind keeps for the length of a run (which accounts were created,
which ledger slots were written) is a small object of that kind's own, made on first use by
`ApplyRun.state`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from reconciler.errors import ProviderError
from reconciler.providers import IMProvider, ItemFailure, ItemResults, MassSpeedProvider

if TYPE_CHECKING:
    from reconciler.plan import Plan

#: where changes that belong to no account are reported
GLOBAL = "(users and settings)"
#: where the inventory ledger's writes are reported (only when one fails)
LEDGER = "(inventory ledger)"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed change: what, the vendor code when there is one, and why."""

    what: str
    code: int | None
    message: str

    def __str__(self) -> str:
        # a ProviderError's message already ends with its "[vendor code N]"
        tag = f"[vendor code {self.code}]"
        code = f" {tag}" if self.code is not None and tag not in self.message else ""
        return f"{self.what}: {self.message}{code}"


@dataclass(slots=True)
class AccountReport:
    """What happened to one account (or to the global changes)."""

    applied: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ApplyResult:
    """Per-account outcome, totals, calls made and duration."""

    reports: dict[str, AccountReport] = field(default_factory=dict)
    created: int = 0
    adopted: int = 0
    modified: int = 0
    destroyed: int = 0
    users_imported: int = 0
    subscribers_added: int = 0
    subscribers_removed: int = 0
    profiles_set: int = 0
    mass_speed_set: bool = False
    #: accounts whose verification found a difference: id → what
    unverified: dict[str, list[str]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def report(self, account: str) -> AccountReport:
        return self.reports.setdefault(account, AccountReport())

    @property
    def failures(self) -> int:
        return sum(len(r.failed) for r in self.reports.values()) + len(self.unverified)

    @property
    def applied(self) -> int:
        return sum(len(r.applied) for r in self.reports.values())

    @property
    def skipped(self) -> int:
        return sum(len(r.skipped) for r in self.reports.values())

    @property
    def exit_code(self) -> int:
        """0 all applied and verified; 3 partly applied; 1 nothing applied and something failed."""
        if not self.failures and not self.skipped:
            return 0
        return 3 if self.applied else 1


class Progress(Protocol):
    """Told which phase runs and how many calls it has made (`reconciler.progress.Phases`)."""

    def phase(self, name: str) -> None: ...

    def __call__(self, n: int) -> None: ...


class _NoProgress:
    def phase(self, name: str) -> None:
        del name

    def __call__(self, n: int) -> None:
        del n


def failure(what: str, exc: ProviderError) -> Failure:
    return Failure(what, exc.code, str(exc))


def item_failures(what: str, results: ItemResults) -> list[Failure]:
    return [
        Failure(f"{what} {user}", item.code, item.message)
        for user, item in sorted(results.failed.items())
    ]


def merged(parts: Iterable[ItemResults]) -> ItemResults:
    """The results of several batches of one change as one."""
    changed: set[str] = set()
    unchanged: set[str] = set()
    failed: dict[str, ItemFailure] = {}
    for part in parts:
        changed |= part.changed
        unchanged |= part.unchanged
        failed.update(part.failed)
    return ItemResults(frozenset(changed), frozenset(unchanged), dict(sorted(failed.items())))


class ApplyRun:
    """One apply: the plan, the vendor clients, the result, and each kind's state."""

    def __init__(
        self,
        plan: Plan,
        im: IMProvider,
        wechat: MassSpeedProvider | None,
        inventory_user: str,
        progress: Progress | None,
    ) -> None:
        self.plan = plan
        self.im = im
        self.wechat = wechat
        self.inventory = inventory_user
        self.result = ApplyResult()
        self.result.report(GLOBAL)  # always a row of the summary: its width includes it
        self.progress: Progress = progress or _NoProgress()
        #: users whose import failed: what needs them is skipped
        self.missing_users: set[str] = set()
        #: accounts that need no inventory ledger entry any more: subscribed by the inventory
        #: user in this run, destroyed, or whose create surely never happened
        self.settled: set[str] = set()
        #: verify re-reads the memberships that changed, not only the accounts' info
        self.verify_full = False
        self._states: dict[Callable[..., Any], Any] = {}

    def state(self, factory: Callable[[ApplyRun], T]) -> T:
        """The one `factory(self)` of this run (a kind's own state), made on first use."""
        if factory not in self._states:
            self._states[factory] = factory(self)
        made: T = self._states[factory]
        return made
