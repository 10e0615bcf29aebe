"""changes → a Plan: ordered, batched actions with stable ids, safety, cost, digests, fingerprints.

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
    ACTION_KINDS,
    BOOKKEEPING_KINDS,
    AddSubscribers,
    AdoptOrphan,
    Change,
    CreateAccount,
    DestroyAccount,
    ImportInventoryUser,
    ImportUsers,
    LedgerWrite,
    ModifyAccount,
    Notice,
    PlanProblem,
    Record,
    RemoveSubscribers,
    SetMassSpeed,
    SetSubscriberProfiles,
    plural,
)
from reconciler.config import Limits, Safety, SandboxTarget, Target, TencentTarget
from reconciler.digest import account_digest, members_digest, profile_digest
from reconciler.live import LiveAccount, LiveState
from reconciler.model import DesiredState
from reconciler.safety import Violation, evaluate_safety

# Endpoints are named by their command, as the providers count their calls (`.calls`), so a
# plan's cost and a read's `read_calls` use the same names.
API_MULTIACCOUNT_IMPORT: Final = "multiaccount_import"
API_ACCOUNT_IMPORT: Final = "account_import"
API_CREATE: Final = "create_official_account"
API_MODIFY: Final = "modify_official_account_base_info"
API_ADD: Final = "add_subscriber"
API_SUBSCRIBER_INFO: Final = "modify_subscriber_info"
API_DELETE: Final = "delete_subscriber"
API_DESTROY: Final = "destroy_official_account"
API_INFO: Final = "get_official_account_info"
API_SPEED_SET: Final = "mass_speed_set"

#: Per-call maxima (reference sections 3.2, 5.4, 5.6; delete_subscriber's is not documented, so
#: add_subscriber's 100 is used as the safe bound, section 5.7).
IMPORT_BATCH: Final = 100
SUBSCRIBER_BATCH: Final = 100
INFO_BATCH: Final = 50
#: The vendor's per-API ceilings (reference section 1.5): 100/s for the batch account APIs.
VENDOR_RATE: Final = {"multiaccount_import": 100.0, "account_check": 100.0, "account_delete": 100.0}
DEFAULT_VENDOR_RATE: Final = 200.0

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
class Action:
    """One vendor call: its stable id, the API, the change it serves and its batch of ids."""

    id: str
    api: str
    #: None for the verification reads that follow an apply
    change: Change | None
    #: the batch (users to import, add or remove; one subscriber for a profile) or empty
    items: tuple[str, ...] = ()


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


def _batches(users: Iterable[str], size: int) -> list[tuple[str, ...]]:
    ordered = sorted(users)
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), size)]


def actions_for(changes: Sequence[Change]) -> list[Action]:
    """The vendor calls that carry out `changes` (already sorted), batched, with stable ids.

    An id is `<change type>/<account or ->/<n>` (a ledger slot's: `ledgerWrite/<slot>/<step>`):
    the same changes always give the same ids.
    """
    actions: list[Action] = []
    touched: set[str] = set()
    # apply subscribes a new account's inventory user in that account's own add batches
    # (apply.py, `_Run.account`): no call of its own, and an extra batch only on a full one
    created = {c.account_id for c in changes if isinstance(c, CreateAccount)}
    ridden = created & {c.account_id for c in changes if isinstance(c, AddSubscribers)}
    for change in changes:
        key = f"{change.kind}/{change.account or '-'}"
        if isinstance(change, ImportUsers):
            for n, batch in enumerate(_batches(change.users, IMPORT_BATCH)):
                actions.append(Action(f"{key}/{n}", API_MULTIACCOUNT_IMPORT, change, batch))
        elif isinstance(change, ImportInventoryUser):
            actions.append(Action(f"{key}/0", API_ACCOUNT_IMPORT, change, (change.user,)))
        elif isinstance(change, LedgerWrite):
            actions.extend(ledger_actions(change))
        elif isinstance(change, AdoptOrphan):
            actions.append(Action(f"{key}/subscribe", API_ADD, change))
            actions.append(Action(f"{key}/write", API_SUBSCRIBER_INFO, change))
        elif isinstance(change, CreateAccount):
            actions.append(Action(f"{key}/0", API_CREATE, change))
        elif isinstance(change, Record):
            if change.subscribe and change.account_id not in ridden:
                actions.append(Action(f"{key}/subscribe", API_ADD, change))
            actions.append(Action(f"{key}/write", API_SUBSCRIBER_INFO, change))
        elif isinstance(change, ModifyAccount):
            actions.append(Action(f"{key}/0", API_MODIFY, change))
        elif isinstance(change, AddSubscribers | RemoveSubscribers):
            api = API_ADD if isinstance(change, AddSubscribers) else API_DELETE
            batches = _batches(change.users, SUBSCRIBER_BATCH)
            ride = isinstance(change, AddSubscribers) and change.account_id in ridden
            if ride and len(change.users) % SUBSCRIBER_BATCH == 0:
                batches.append(())  # the inventory user's subscription, alone
            for n, batch in enumerate(batches):
                actions.append(Action(f"{key}/{n}", api, change, batch))
        elif isinstance(change, SetSubscriberProfiles):
            for n, profile in enumerate(change.profiles):
                actions.append(Action(f"{key}/{n}", API_SUBSCRIBER_INFO, change, (profile.user,)))
        elif isinstance(change, DestroyAccount):
            actions.append(Action(f"{key}/0", API_DESTROY, change))
        elif isinstance(change, SetMassSpeed):
            actions.append(Action(f"{key}/0", API_SPEED_SET, change))
        if change.account and change.kind in ACTION_KINDS and change.kind != "destroyAccount":
            touched.add(change.account)
    # After apply the touched accounts' info is re-read in batches of 50 (DESIGN section 7).
    for n, batch in enumerate(_batches(touched, INFO_BATCH)):
        actions.append(Action(f"verify/-/{n}", API_INFO, None, batch))
    return actions


def ledger_actions(change: LedgerWrite) -> list[Action]:
    """A slot's calls: claimed before the creates it records (created holding them, and
    subscribed by the inventory user), then rewritten after every account's work, or destroyed
    when it is left holding nothing (as when every create it records is answered)."""
    key = f"{change.kind}/{change.slot}"
    actions = []
    if change.add and change.exists:  # a plan of an older version: refused by apply
        actions.append(Action(f"{key}/write", API_MODIFY, change))
    elif change.add:
        actions.append(Action(f"{key}/create", API_CREATE, change))
        actions.append(Action(f"{key}/subscribe", API_ADD, change))
    kept = change.before - change.drop
    actions.append(Action(f"{key}/rewrite", API_MODIFY if kept else API_DESTROY, change))
    return actions


def phase_of(action: Action) -> str:
    """The apply phase `action` runs in (DESIGN section 7): phases follow one another, and the
    calls of one phase run together. "ledger" is the slots rewritten after the accounts."""
    change = action.change
    if change is None:
        return "verify"
    if isinstance(change, ImportUsers | ImportInventoryUser):
        return "users"
    if isinstance(change, DestroyAccount):
        return "destroy"
    if isinstance(change, SetMassSpeed):
        return "mass speed"
    if isinstance(change, LedgerWrite) and action.id.endswith("/rewrite"):
        return "ledger"
    return "accounts"


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
        took = n / min(limits.calls_per_second, VENDOR_RATE.get(api, DEFAULT_VENDOR_RATE))
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
    #: every change, notices and problems included, sorted once in the DESIGN order
    changes: tuple[Change, ...]
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

    @property
    def problems(self) -> list[PlanProblem]:
        return [c for c in self.changes if isinstance(c, PlanProblem)]

    @property
    def notices(self) -> list[Notice]:
        return [c for c in self.changes if isinstance(c, Notice)]

    @property
    def resource_changes(self) -> list[Change]:
        """Changes the users of the live system see (bookkeeping, notices, problems left out)."""
        return [
            c for c in self.changes if c.kind in ACTION_KINDS and c.kind not in BOOKKEEPING_KINDS
        ]

    @property
    def has_changes(self) -> bool:
        """True when apply has anything to do (bookkeeping included); False means "No changes."."""
        return any(c.kind in ACTION_KINDS for c in self.changes)

    def exit_code(self, *, detailed: bool = False) -> int:
        """Exit status: 1 with problems; with `--detailed-exitcode` 2 when it has changes."""
        if self.problems:
            return 1
        return 2 if detailed and self.has_changes else 0

    @property
    def summary(self) -> dict[str, int]:
        counts = {
            "adopt": 0,
            "create": 0,
            "modify": 0,
            "destroy": 0,
            "importUsers": 0,
            "subscribersAdded": 0,
            "subscribersRemoved": 0,
            "subscriberProfiles": 0,
            "massSpeed": 0,
            "records": 0,
        }
        for c in self.changes:
            if isinstance(c, Record):
                counts["records"] += 1
                counts["adopt"] += c.adopt
            elif isinstance(c, AdoptOrphan):
                counts["adopt"] += 1
            elif isinstance(c, CreateAccount):
                counts["create"] += 1
            elif isinstance(c, ModifyAccount):
                counts["modify"] += 1
            elif isinstance(c, DestroyAccount):
                counts["destroy"] += 1
            elif isinstance(c, ImportUsers):
                counts["importUsers"] += len(c.users)
            elif isinstance(c, AddSubscribers):
                counts["subscribersAdded"] += len(c.users)
            elif isinstance(c, RemoveSubscribers):
                counts["subscribersRemoved"] += len(c.users)
            elif isinstance(c, SetSubscriberProfiles):
                counts["subscriberProfiles"] += len(c.profiles)
            elif isinstance(c, SetMassSpeed):
                counts["massSpeed"] += 1
        return counts


def make_plan(
    changes: Iterable[Change],
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
) -> Plan:
    """Assemble a plan from changes and what was read; also how a saved plan is rebuilt."""
    ordered = tuple(sorted(changes, key=lambda c: c.sort_key))
    actions = tuple(actions_for(ordered))
    return Plan(
        target=target,
        changes=ordered,
        actions=actions,
        cost=cost_of(actions, limits, read_calls or {}),
        violations=tuple(evaluate_safety(ordered, safety)),
        desired_digest=desired_digest,
        fingerprints=dict(fingerprints),
        live_mass_speed=live_mass_speed,
        limits=limits,
        safety=safety,
        prune=prune,
        config_path=config_path,
    )


def build_plan(
    changes: Iterable[Change],
    *,
    desired: DesiredState,
    live: LiveState,
    target: TargetIdentity,
    limits: Limits | None = None,
    safety: Safety | None = None,
    prune: bool = False,
) -> Plan:
    """The plan for `changes = diff(desired, live, ...)`."""
    return make_plan(
        changes,
        target=target,
        desired_digest=desired_digest(desired),
        fingerprints=fingerprints(desired, live),
        live_mass_speed=live.mass_speed,
        limits=limits or Limits(),
        safety=safety or Safety(),
        prune=prune,
        read_calls=live.read_calls,
    )
