"""The saved-plan file (`plan --out FILE`, `apply FILE`) and the staleness check.

The file is JSON: `{"formatVersion", "kind", "body", "integrity"}`. `body` holds the target's
identity (never a secret), the digest of the desired state, a fingerprint of every account read, the
live mass speed, limits, thresholds and every change in full (every id; the actions are rebuilt from
the changes, deterministically, and their ids are checked). `integrity` is `sha256:` over the
canonical JSON of `body` (sorted keys, no whitespace, UTF-8).

What the integrity digest covers: accidental or careless edits (a hand-edited id, a truncated
upload, a merge that mangled the file, a tool that rewrote it) are detected and the plan refused.
What it does not cover: someone who edits the file on purpose and recomputes the digest; it is a
checksum, not a signature (no key is involved, so none can leak into the file). Protect plan
files from deliberate tampering the way CI artifacts are protected (who can write them), or sign
them outside reconciler.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from reconciler.changes import Finding, Wire
from reconciler.config import Limits, Safety
from reconciler.diff import Diff
from reconciler.digest import canonical_json, json_digest
from reconciler.errors import StalePlanError
from reconciler.kinds import registered, wire_types
from reconciler.kinds.inventory import stale_slots
from reconciler.live import LiveAccount, LiveState
from reconciler.load import FileRefused, FileTooLarge, read_regular
from reconciler.model import DesiredState
from reconciler.plan import Fingerprint, Plan, TargetIdentity, assemble_plan, desired_digest
from reconciler.providers import IMProvider

PLAN_FILE_VERSION: Final = 1
PLAN_FILE_KIND: Final = "ReconcilerPlan"
#: A plan file larger than this is refused before it is read. The largest plan at the scale
#: DESIGN.md section 9 and BENCHMARKS.md document (1,000,000 subscribers added and 1,000,000
#: removed over 10 accounts, 1,000,000 users imported, every UserID 32 bytes, and 2,000 accounts
#: created with every profile field at its byte limit) is 116,648,305 bytes and loads at 683 MB;
#: twice that leaves room, and a padded file at the cap loads in less memory than that plan.
MAX_PLAN_BYTES: Final = 256 * 1024 * 1024


def read_plan_file(path: Path, *, source: str = "plan file") -> str:
    """The text of the plan file `path`: a regular file of at most `MAX_PLAN_BYTES` in UTF-8,
    checked before it is read (a FIFO would hang, /dev/zero never ends); else `StalePlanError`."""
    try:
        data = read_regular(path, MAX_PLAN_BYTES)
        return data.decode("utf-8")
    except FileTooLarge as exc:
        raise StalePlanError(_too_large(source, exc.size)) from None
    except FileRefused as exc:
        raise StalePlanError(f"{source} {exc.reason}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StalePlanError(f"cannot read the plan file {source}: {exc}") from exc


def _too_large(source: str, size: int) -> str:
    return (
        f"{source} is larger than the {MAX_PLAN_BYTES:,}-byte limit for plan files"
        f" ({size:,} bytes or more)"
    )


class _Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class TargetData(_Struct, frozen=True):
    """The plan file's form of a target record."""

    type: str
    name: str
    sdkappid: int | None = None
    endpoint: str | None = None
    appid: str | None = None
    path: str | None = None


class FingerprintData(_Struct, frozen=True):
    """The plan file's form of a fingerprint record."""

    profile: str
    subscriberCount: int
    members: str | None


class LimitsData(_Struct, frozen=True):
    """The plan file's form of a limits record."""

    callsPerSecond: float
    concurrency: int


class SafetyData(_Struct, frozen=True, omit_defaults=True):
    """The plan file's form of a safety record (the send caps only when configured, so that a
    plan made without them keeps its bytes)."""

    maxDestroys: int
    maxSubscriberRemovals: int
    maxSubscriberRemovalPercent: float
    sendCaps: dict[str, int] = {}


class PlanBody(_Struct, frozen=True):
    """Everything a saved plan holds; `changes` are decoded on their own (tagged union)."""

    target: TargetData
    desiredDigest: str
    fingerprints: dict[str, FingerprintData | None]
    liveMassSpeed: int | None
    limits: LimitsData
    safety: SafetyData
    prune: bool
    readCalls: dict[str, int]
    changes: list[dict[str, Any]]
    actionIds: list[str]
    configPath: str | None = None
    #: the kinds' pins of their own live state (`Kind.pins`), only when there are some
    pins: dict[str, str] = {}


def plan_body(plan: Plan) -> dict[str, Any]:
    """Everything a saved plan holds, as JSON data (changes, notices and problems in one list)."""
    t = plan.target
    body = PlanBody(
        target=TargetData(t.type, t.name, t.sdkappid, t.endpoint, t.appid, t.path),
        desiredDigest=plan.desired_digest,
        fingerprints={
            k: None if v is None else FingerprintData(v.profile, v.subscriber_count, v.members)
            for k, v in sorted(plan.fingerprints.items())
        },
        liveMassSpeed=plan.live_mass_speed,
        limits=LimitsData(plan.limits.calls_per_second, plan.limits.concurrency),
        safety=SafetyData(
            plan.safety.max_destroys,
            plan.safety.max_subscriber_removals,
            plan.safety.max_subscriber_removal_percent,
            dict(plan.safety.max_sends),
        ),
        prune=plan.prune,
        configPath=plan.config_path,
        readCalls=dict(sorted(plan.cost.read_calls.items())),
        changes=[c.data for c in sorted(plan.findings(), key=lambda c: c.sort_key)],
        actionIds=[a.id for a in plan.actions],
        pins=dict(plan.pins),
    )
    data: dict[str, Any] = msgspec.to_builtins(body)
    if not plan.pins:  # a plan without them keeps the bytes it had before they existed
        del data["pins"]
    return data


def dump_plan(plan: Plan) -> str:
    """The plan file's text (one line of JSON and a newline)."""
    body = plan_body(plan)
    document = {
        "formatVersion": PLAN_FILE_VERSION,
        "kind": PLAN_FILE_KIND,
        "body": body,
        "integrity": json_digest(body),
    }
    return canonical_json(document) + "\n"


def _made_by(version: object) -> str:
    if type(version) is not int:  # `true` and `1.0` equal 1
        return "an unknown version of reconciler"
    return "an older version of reconciler" if version < PLAN_FILE_VERSION else "a newer version"


def load_plan(text: str, *, source: str = "plan file") -> Plan:
    """Read a plan file; a file that is not one, or was edited, raises `StalePlanError`."""
    if len(text) > MAX_PLAN_BYTES:  # characters: at least as many bytes
        raise StalePlanError(_too_large(source, len(text)))
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StalePlanError(f"{source} is not a reconciler plan (not JSON: {exc})") from exc
    except RecursionError:  # arrays nested thousands deep
        raise StalePlanError(f"{source} is not a reconciler plan (nested too deeply)") from None
    if not isinstance(document, dict) or document.get("kind") != PLAN_FILE_KIND:
        raise StalePlanError(f"{source} is not a reconciler plan file")
    version = document.get("formatVersion")
    if type(version) is not int or version != PLAN_FILE_VERSION:
        raise StalePlanError(
            f"{source} has plan format {version!r}, made by {_made_by(version)}; this reconciler"
            f" reads format {PLAN_FILE_VERSION}: make the plan again with this version"
        )
    body = document.get("body")
    if not isinstance(body, dict) or document.get("integrity") != json_digest(body):
        raise StalePlanError(
            f"{source} was modified after it was written (integrity digest mismatch);"
            " make the plan again"
        )
    try:
        plan = _plan_from_body(msgspec.convert(body, PlanBody))
    except (ValueError, RecursionError) as exc:  # msgspec.ValidationError is a ValueError
        raise StalePlanError(f"{source} is not a valid reconciler plan: {exc!r}") from exc
    if [a.id for a in plan.actions] != body.get("actionIds"):
        raise StalePlanError(
            f"{source} was written by a reconciler that batches differently; make the plan again"
        )
    return plan


def decode_change(data: Any) -> Finding:
    """A change, notice or problem from its full `.data` form; ValueError when it is not one."""
    wire: Wire = msgspec.convert(data, _union(wire_types()))
    return wire.change()


@functools.cache
def _union(types: tuple[type[Wire], ...]) -> Any:
    """Any change, notice or problem as the file holds it: msgspec picks the Struct by `type`."""
    return functools.reduce(operator.or_, types)


def _plan_from_body(body: PlanBody) -> Plan:
    t, limits, safety = body.target, body.limits, body.safety
    return assemble_plan(
        Diff.of(decode_change(c) for c in body.changes),
        target=TargetIdentity(t.type, t.name, t.sdkappid, t.endpoint, t.appid, t.path),
        desired_digest=body.desiredDigest,
        fingerprints={
            k: None if v is None else Fingerprint(v.profile, v.subscriberCount, v.members)
            for k, v in body.fingerprints.items()
        },
        live_mass_speed=body.liveMassSpeed,
        limits=Limits(float(limits.callsPerSecond), limits.concurrency),
        safety=Safety(
            safety.maxDestroys,
            safety.maxSubscriberRemovals,
            float(safety.maxSubscriberRemovalPercent),
            tuple(sorted(safety.sendCaps.items())),
        ),
        prune=body.prune,
        read_calls=body.readCalls,
        config_path=body.configPath,
        pins=body.pins,
    )


def stale_accounts(plan: Plan, live: LiveState) -> list[str]:
    """Accounts whose fingerprint changed since the plan was made (appeared, vanished, edited)."""
    changed = []
    for account_id, saved in sorted(plan.fingerprints.items()):
        now = live.accounts.get(account_id)
        current = None if now is None else Fingerprint.of(now)
        if current != saved:
            changed.append(account_id)
    return changed


def _what_changed(saved: Fingerprint | None, now: LiveAccount | None) -> str:
    """What changed of one stale account, in the words of a plan: its profile, its subscriber
    count, its members (issue 14: a stale plan named the accounts only)."""
    if saved is None:
        return "created"
    if now is None:
        return "gone"
    current = Fingerprint.of(now)
    parts = []
    if current.profile != saved.profile:
        parts.append("profile")
    if current.subscriber_count != saved.subscriber_count:
        parts.append(f"subscribers {saved.subscriber_count:,} → {current.subscriber_count:,}")
    elif current.members != saved.members:
        parts.append("members")
    return ", ".join(parts)


async def repin(plan: Plan, im: IMProvider) -> tuple[dict[str, str], list[str]]:
    """The kinds' pins of a saved plan read afresh, and why some of its changes cannot run."""
    pins: dict[str, str] = {}
    expired: list[str] = []
    for kind in registered():
        if kind.repin is not None:
            found, why = await kind.repin(plan.changes, plan.pins, im)
            pins.update(found)
            expired.extend(why)
    return pins, expired


def check_fresh(
    plan: Plan,
    *,
    target: TargetIdentity,
    live: LiveState,
    desired: DesiredState | None = None,
    pins: Mapping[str, str] | None = None,
    expired: Sequence[str] = (),
) -> None:
    """Refuse a plan made for another target, from other manifests, or over a changed live state.

    `live` is a fresh read of the accounts the plan names; `desired`, when given (apply with
    manifests beside the plan), must digest to what the plan was made from; `pins`, the kinds'
    pins read afresh (`Kind.repin`), must be the plan's; `expired` says which of its changes can
    no longer run (a send whose window closed).
    """
    if target != plan.target:
        raise StalePlanError(f"the plan was made for {plan.target.label}, not for {target.label}")
    if desired is not None and desired_digest(desired) != plan.desired_digest:
        raise StalePlanError("the manifests changed since the plan was made; make the plan again")
    reasons = []
    changed = stale_accounts(plan, live)
    if changed:
        what = {a: _what_changed(plan.fingerprints[a], live.accounts.get(a)) for a in changed[:20]}
        shown = ", ".join(f"{a} ({how})" for a, how in what.items()) + (
            f" and {len(changed) - 20} more" if len(changed) > 20 else ""
        )
        reasons.append(f"{len(changed)} account(s) changed since the plan was made: {shown}")
    slots = stale_slots(plan.changes, live)
    if slots:
        reasons.append(
            "the inventory ledger changed since the plan was made (slot"
            f" {', '.join(str(k) for k in slots)})"
        )
    if live.mass_speed != plan.live_mass_speed:
        reasons.append(
            f"the mass speed changed since the plan was made ({plan.live_mass_speed} →"
            f" {live.mass_speed})"
        )
    moved = sorted(k for k in plan.pins if (pins or {}).get(k) != plan.pins[k])
    if moved:
        reasons.append(f"{', '.join(moved)} changed since the plan was made")
    reasons.extend(expired)
    if reasons:
        raise StalePlanError("stale plan: " + "; ".join(reasons) + "; make the plan again")
