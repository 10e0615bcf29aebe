"""What every change of an account shares: its lane in an apply, and the ride of a new account's
inventory subscription in its add batches."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.changes import (
    Action,
    ApplyRun,
    Change,
    required,
)
from reconciler.errors import ProviderError
from reconciler.kinds.official_account.run import (
    AccountsRun,
    Lane,
)
from reconciler.outcome import (
    AccountReport,
    failure,
)


def accounts_of(run: ApplyRun) -> AccountsRun:
    """The accounts' state of this apply run."""
    return run.state(_accounts)


def _accounts(run: ApplyRun) -> AccountsRun:
    return AccountsRun(run, ridden(run.changes))


#: The roles that make a new account's inventory subscription ride in its add batches.
_RIDE: frozenset[str] = frozenset({"create", "add", "record"})


def ridden(changes: Sequence[Change]) -> frozenset[str]:
    """New accounts with members (created, added to, and recorded with a subscription in this
    plan): their inventory subscription rides in their add batches."""
    roles: dict[str, set[str]] = {}
    for change in changes:
        if isinstance(change, AccountChange) and change.ride_role is not None:
            roles.setdefault(change.account_id, set()).add(change.ride_role)
    return frozenset(account for account, found in roles.items() if found >= _RIDE)


class AccountChange(Change):
    """A change of one account, applied in the account's lane of the "accounts" phase."""

    __slots__ = ()
    account_id: str

    @property
    def account(self) -> str:
        return self.account_id

    @property
    def ride_role(self) -> str | None:
        """Its part in a new account's ride (`ridden`): "create", "add", "record" or None."""
        return None

    def apply_phase(self, action: Action) -> str:
        return "accounts"

    def headline(self) -> tuple[int, str, str] | None:
        return (4, "~", "will be updated in place")

    def _key(self) -> str:
        return f"{self.kind}/{self.account_id}"


class InLane(AccountChange):
    """An account change that runs after the account's earlier ones, skipped when its create
    failed; a vendor error is recorded against the account and stops nothing else."""

    __slots__ = ()

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        state = accounts_of(run).lane(self.account_id)
        report = run.result.report(self.account_id)
        if not state.exists:
            report.skipped.append(f"{self.kind}: the account was not created")
            return
        try:
            await self._run(run, state, report, actions)
        except ProviderError as exc:
            report.failed.append(failure(self.kind, exc))
            self._failed(run, state, exc)

    @required
    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        """This change's calls, in its account's lane (skipped when the create failed)."""
        raise NotImplementedError

    def _failed(self, run: ApplyRun, state: Lane, exc: ProviderError) -> None:
        del run, state, exc
