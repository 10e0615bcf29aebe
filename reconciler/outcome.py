"""What an apply reports: per-account outcome, failures with vendor codes, totals and progress.

Each change's `run` (in its kind's module) writes what happened into the run's `ApplyResult`
(`reconciler.changes.ApplyRun`); `reconciler.apply` renders it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.errors import ProviderError
from reconciler.providers import ItemResults

#: where changes that belong to no account are reported
GLOBAL = "(users and settings)"
#: where the inventory ledger's writes are reported (only when one fails)
LEDGER = "(inventory ledger)"


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
    messages_sent: int = 0
    messages_recalled: int = 0
    #: sends that failed or whose answer was lost: the run is never "nothing applied" (exit 3)
    uncertain: int = 0
    #: accounts whose verification found a difference: id → what
    unverified: dict[str, list[str]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    #: the signal that stopped the run (no call started after it), None when it ran to the end
    interrupted: int | None = None

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
        return 3 if self.applied or self.uncertain else 1


class Progress(Protocol):
    """Told which phase runs and how many calls it has made (`reconciler.progress.Phases`)."""

    def phase(self, name: str) -> None: ...

    def __call__(self, n: int) -> None: ...


class NoProgress:
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
