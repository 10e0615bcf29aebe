"""A diff → a Plan: ordered, batched actions with stable ids, safety, cost, digests, fingerprints.

Like octoDNS's `Plan`, it sorts once and owns the safety check; unlike it, a membership is one
attribute per account (counts, first ids, digest), never thousands of resources. Everything here is
pure: the plan is built from the diff and the live state that was read, nothing is called.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from reconciler.changes import (
    Action,
    Change,
    Notice,
    PlanProblem,
    Schedule,
    plural,
)
from reconciler.config import Limits, Safety, SandboxTarget, Target, TencentTarget
from reconciler.diff import Diff
from reconciler.digest import account_digest, members_digest, profile_digest
from reconciler.kinds import registered, summary_keys
from reconciler.live import LiveAccount, LiveState
from reconciler.model import DesiredState
from reconciler.providers.calls import vendor_rate
from reconciler.safety import Violation, evaluate_safety

BLIND_SPOT: Final = (
    "Blind spot: only accounts declared here or owned by this repo's inventory were read;"
    " other accounts of the app are invisible to this run."
)


@dataclass(frozen=True, slots=True)
class TargetIdentity:
    """Who a plan is for, without any secret: type, name, sdkappid/appid, endpoint or path."""

    type: str
    name: str
    sdkappid: int | None = None
    endpoint: str | None = None
    appid: str | None = None
    path: str | None = None

    @classmethod
    def from_target(cls, target: Target) -> TargetIdentity:
        if isinstance(target, SandboxTarget):
            return cls("sandbox", target.name, path=str(target.path))
        assert isinstance(target, TencentTarget)
        appid = target.wechat.app_id if target.wechat is not None else None
        return cls("tencent", target.name, target.sdkappid, target.endpoint, appid)

    @property
    def label(self) -> str:
        """`sandbox 'sandbox', embedded sandbox at .reconciler/sandbox.db` or the vendor's ids."""
        if self.type == "sandbox":
            return f"sandbox {self.name!r}, embedded sandbox at {self.path}"
        text = f"{self.type} {self.name!r}, sdkappid {self.sdkappid} at {self.endpoint}"
        return text + (f", WeChat appid {self.appid}" if self.appid else "")

    def describe(self) -> str:
        """The first line of every plan and drift report."""
        return f"Target: {self.label}"

    @property
    def data(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "sdkappid": self.sdkappid,
            "endpoint": self.endpoint,
            "appid": self.appid,
            "path": self.path,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TargetIdentity:
        sdkappid = data.get("sdkappid")
        return cls(
            str(data["type"]),
            str(data["name"]),
            None if sdkappid is None else int(sdkappid),
            _opt_str(data.get("endpoint")),
            _opt_str(data.get("appid")),
            _opt_str(data.get("path")),
        )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """An account as planned: profile digest, subscriber count, membership digest."""

    profile: str
    subscriber_count: int
    #: None when the subscriber list was not read
    members: str | None

    @classmethod
    def of(cls, account: LiveAccount) -> Fingerprint:
        members = None if account.subscribers is None else members_digest(account.subscribers)
        return cls(
            profile_digest(account.owner, account.profile), account.subscriber_count, members
        )

    @property
    def data(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "subscriberCount": self.subscriber_count,
            "members": self.members,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Fingerprint:
        members = data["members"]
        return cls(
            str(data["profile"]),
            int(data["subscriberCount"]),
            None if members is None else str(members),
        )


@dataclass(frozen=True, slots=True)
class Cost:
    """API calls per endpoint and the time they take at the configured rate."""

    calls: Mapping[str, int]
    rate: float
    seconds: float
    #: calls the read that preceded the plan made, when the reader said
    read_calls: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def describe(self) -> str:
        """`Cost: ≈ 1,240 calls, ≈ 6.2 s at 200/s` (plus the read, when known)."""
        text = f"Cost: ≈ {self.total:,} calls, ≈ {self.seconds:,.1f} s at {self.rate:g}/s"
        if self.read_calls:
            text += f" (the read took {plural(sum(self.read_calls.values()), 'call')})"
        return text

    def breakdown(self) -> str:
        """`add_subscriber 1,237, create_official_account 1, ...`: most calls first."""
        ranked = sorted(self.calls.items(), key=lambda kv: (-kv[1], kv[0]))
        return ", ".join(f"{api} {n:,}" for api, n in ranked)

    @property
    def data(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "total": self.total,
            "rate": self.rate,
            "seconds": round(self.seconds, 3),
            "readCalls": dict(sorted(self.read_calls.items())),
        }


def schedule(changes: Sequence[Change]) -> list[Action]:
    """The vendor calls that carry out `changes` (already sorted), batched, with stable ids: each
    change's own, then each kind's closing calls (the verification reads).

    An id is `<change type>/<account or ->/<n>` (a ledger slot's: `ledgerWrite/<slot>/<step>`):
    the same changes always give the same ids. Apply runs exactly these calls, one each.
    """
    laid_out = Schedule(changes)
    actions = [action for change in changes for action in change.actions(laid_out)]
    for kind in registered():
        actions.extend(kind.closing_actions(changes))
    return actions


def phase_of(action: Action) -> str:
    """The apply phase `action` runs in (DESIGN section 7): phases follow one another, and the
    calls of one phase run together. "ledger" is the slots rewritten after the accounts."""
    return "verify" if action.change is None else action.change.apply_phase(action)


def cost_of(actions: Iterable[Action], limits: Limits, read_calls: Mapping[str, int]) -> Cost:
    """Calls per endpoint, and the time they take: within a phase the APIs run together, so a
    phase lasts as long as its busiest API's calls at min(configured, vendor) rate; the phases
    follow one another. (Summing every API's time overstated an apply that adds subscribers and
    sets their profiles at once.)"""
    calls: dict[str, int] = {}
    per_phase: dict[tuple[str, str], int] = {}
    for action in actions:
        calls[action.api] = calls.get(action.api, 0) + 1
        key = (phase_of(action), action.api)
        per_phase[key] = per_phase.get(key, 0) + 1
    phases: dict[str, float] = {}
    for (phase, api), n in per_phase.items():
        took = n / min(limits.calls_per_second, vendor_rate(api))
        phases[phase] = max(phases.get(phase, 0.0), took)
    return Cost(calls, limits.calls_per_second, sum(phases.values()), dict(read_calls))


def desired_digest(desired: DesiredState) -> str:
    """A digest of the whole desired state: accounts, users and mass speed (positions excluded)."""
    hasher = hashlib.sha256()
    for account_id in sorted(desired.accounts):
        hasher.update(f"account {account_digest(desired.accounts[account_id])}\n".encode())
    hasher.update(f"users {members_digest(desired.users)}\n".encode())
    speed = desired.mass_speed
    hasher.update(
        f"massSpeed {json.dumps(None if speed is None else [speed.name, speed.speed])}\n".encode()
    )
    for kind in registered():  # the kinds with desired records of their own ("": none)
        part = "" if kind.digest is None else kind.digest(desired)
        if part:
            hasher.update(f"{kind.name} {part}\n".encode())
    return "sha256:" + hasher.hexdigest()


def fingerprints(desired: DesiredState, live: LiveState) -> dict[str, Fingerprint | None]:
    """A fingerprint of every account read; None for a declared account found missing."""
    result: dict[str, Fingerprint | None] = {
        account_id: None for account_id in desired.accounts if account_id not in live.accounts
    }
    for account_id, account in live.accounts.items():
        result[account_id] = Fingerprint.of(account)
    return dict(sorted(result.items()))


@dataclass(frozen=True, slots=True)
class Plan:
    """An ordered, batched, costed plan, pinned by digests so that a stale plan is refused."""

    target: TargetIdentity
    #: every change, sorted once in the DESIGN order
    changes: tuple[Change, ...]
    #: the vendor calls apply makes, in order (`schedule`)
    actions: tuple[Action, ...]
    cost: Cost
    #: violations of the configured thresholds, with no override (shown in the plan)
    violations: tuple[Violation, ...]
    desired_digest: str
    fingerprints: Mapping[str, Fingerprint | None]
    live_mass_speed: int | None
    limits: Limits
    safety: Safety
    prune: bool = False
    #: the reconciler.yaml the plan was made with (None: none, or not recorded); a saved plan is
    #: applied with it unless `--config` names another or the current directory holds one
    config_path: str | None = None
    notices: tuple[Notice, ...] = ()
    problems: tuple[PlanProblem, ...] = ()
    #: "N accounts selected of M (...)" while `--selector`/`--exclude` is in effect (not saved)
    targeting: str | None = None
    #: the kinds' pins of their own live state (`Kind.pins`), checked by `apply PLANFILE`
    pins: Mapping[str, str] = field(default_factory=dict)

    def findings(self) -> list[Change | Notice | PlanProblem]:
        """Problems, changes and notices, in the order a plan lists them."""
        return [*self.problems, *self.changes, *self.notices]

    @property
    def resource_changes(self) -> list[Change]:
        """Changes the users of the live system see (bookkeeping left out)."""
        return [c for c in self.changes if not c.bookkeeping]

    @property
    def has_changes(self) -> bool:
        """True when apply has anything to do (bookkeeping included); False means "No changes."."""
        return bool(self.changes)

    def exit_code(self, *, detailed: bool = False) -> int:
        """Exit status: 1 with problems; with `--detailed-exitcode` 2 when it has changes."""
        if self.problems:
            return 1
        return 2 if detailed and self.has_changes else 0

    @property
    def summary(self) -> dict[str, int]:
        counts = summary_keys()
        for change in self.changes:
            change.count(counts)
        return counts


def assemble_plan(
    found: Diff,
    *,
    target: TargetIdentity,
    desired_digest: str,
    fingerprints: Mapping[str, Fingerprint | None],
    live_mass_speed: int | None,
    limits: Limits,
    safety: Safety,
    prune: bool = False,
    read_calls: Mapping[str, int] | None = None,
    config_path: str | None = None,
    pins: Mapping[str, str] | None = None,
) -> Plan:
    """A plan from a diff and the digests of what was read: how a saved plan is rebuilt too."""
    actions = tuple(schedule(found.changes))
    return Plan(
        target=target,
        changes=found.changes,
        actions=actions,
        cost=cost_of(actions, limits, read_calls or {}),
        violations=tuple(evaluate_safety(found.changes, safety)),
        desired_digest=desired_digest,
        fingerprints=dict(fingerprints),
        live_mass_speed=live_mass_speed,
        limits=limits,
        safety=safety,
        prune=prune,
        config_path=config_path,
        notices=found.notices,
        problems=found.problems,
        pins=dict(pins or {}),
    )


def plan_from_read(
    found: Diff,
    *,
    desired: DesiredState,
    live: LiveState,
    target: TargetIdentity,
    limits: Limits | None = None,
    safety: Safety | None = None,
    prune: bool = False,
) -> Plan:
    """The plan for `found = diff(desired, live, ...)`: digests and fingerprints from the two."""
    return assemble_plan(
        found,
        target=target,
        desired_digest=desired_digest(desired),
        fingerprints=fingerprints(desired, live),
        live_mass_speed=live.mass_speed,
        limits=limits or Limits(),
        safety=safety or Safety(),
        prune=prune,
        read_calls=live.read_calls,
        pins=kind_pins(found.changes, live),
    )


def kind_pins(changes: Sequence[Change], live: LiveState) -> dict[str, str]:
    """Every kind's pins of its own live state for these changes (`Kind.pins`), sorted."""
    pins: dict[str, str] = {}
    for kind in registered():
        if kind.pins is not None:
            pins.update(kind.pins(changes, live))
    return dict(sorted(pins.items()))
