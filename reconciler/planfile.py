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

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from reconciler.changes import LedgerWrite, change_from_data
from reconciler.config import Limits, Safety
from reconciler.digest import canonical_json, json_digest
from reconciler.errors import StalePlanError
from reconciler.live import LiveState
from reconciler.load import FileRefused, FileTooLarge, read_regular
from reconciler.model import DesiredState
from reconciler.plan import Fingerprint, Plan, TargetIdentity, desired_digest, make_plan

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


def plan_body(plan: Plan) -> dict[str, Any]:
    """Everything a saved plan holds, as JSON data."""
    return {
        "target": plan.target.data,
        "desiredDigest": plan.desired_digest,
        "fingerprints": {
            k: (None if v is None else v.data) for k, v in sorted(plan.fingerprints.items())
        },
        "liveMassSpeed": plan.live_mass_speed,
        "limits": {
            "callsPerSecond": plan.limits.calls_per_second,
            "concurrency": plan.limits.concurrency,
        },
        "safety": {
            "maxDestroys": plan.safety.max_destroys,
            "maxSubscriberRemovals": plan.safety.max_subscriber_removals,
            "maxSubscriberRemovalPercent": plan.safety.max_subscriber_removal_percent,
        },
        "prune": plan.prune,
        "configPath": plan.config_path,
        "readCalls": dict(sorted(plan.cost.read_calls.items())),
        "changes": [c.data for c in plan.changes],
        "actionIds": [a.id for a in plan.actions],
    }


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
    if type(version) is not int or version != PLAN_FILE_VERSION:  # `true` and `1.0` equal 1
        raise StalePlanError(
            f"{source} has plan format {version!r}; this reconciler reads"
            f" format {PLAN_FILE_VERSION}: make the plan again with this version"
        )
    body = document.get("body")
    if not isinstance(body, dict) or document.get("integrity") != json_digest(body):
        raise StalePlanError(
            f"{source} was modified after it was written (integrity digest mismatch);"
            " make the plan again"
        )
    try:
        plan = _plan_from_body(body)
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
        ArithmeticError,  # int(inf) (JSON's Infinity, 1e999), a rate of 0 in the cost
        RecursionError,
    ) as exc:
        raise StalePlanError(f"{source} is not a valid reconciler plan: {exc!r}") from exc
    if [a.id for a in plan.actions] != body.get("actionIds"):
        raise StalePlanError(
            f"{source} was written by a reconciler that batches differently; make the plan again"
        )
    return plan


def _plan_from_body(body: Mapping[str, Any]) -> Plan:
    limits, safety = body["limits"], body["safety"]
    return make_plan(
        [change_from_data(c) for c in body["changes"]],
        target=TargetIdentity.from_data(body["target"]),
        desired_digest=str(body["desiredDigest"]),
        fingerprints={
            str(k): (None if v is None else Fingerprint.from_data(v))
            for k, v in body["fingerprints"].items()
        },
        live_mass_speed=None if body["liveMassSpeed"] is None else int(body["liveMassSpeed"]),
        limits=Limits(float(limits["callsPerSecond"]), int(limits["concurrency"])),
        safety=Safety(
            int(safety["maxDestroys"]),
            int(safety["maxSubscriberRemovals"]),
            float(safety["maxSubscriberRemovalPercent"]),
        ),
        prune=bool(body["prune"]),
        read_calls={str(k): int(v) for k, v in body["readCalls"].items()},
        config_path=None if body.get("configPath") is None else str(body["configPath"]),
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


def stale_slots(plan: Plan, live: LiveState) -> list[int]:
    """Ledger slots the plan writes whose existence or content changed since it was made: its
    writes are computed from what it read, and would drop what another run recorded since."""
    changed = []
    for change in plan.changes:
        if isinstance(change, LedgerWrite):
            slot = live.ledger.slots.get(change.slot)
            now = (slot is not None, slot.ids if slot is not None else frozenset())
            if now != (change.exists, change.before):
                changed.append(change.slot)
    return changed


def check_fresh(
    plan: Plan,
    *,
    target: TargetIdentity,
    live: LiveState,
    desired: DesiredState | None = None,
) -> None:
    """Refuse a plan made for another target, from other manifests, or over a changed live state.

    `live` is a fresh read of the accounts the plan names; `desired`, when given (apply with
    manifests beside the plan), must digest to what the plan was made from.
    """
    if target != plan.target:
        raise StalePlanError(f"the plan was made for {plan.target.label}, not for {target.label}")
    if desired is not None and desired_digest(desired) != plan.desired_digest:
        raise StalePlanError("the manifests changed since the plan was made; make the plan again")
    reasons = []
    changed = stale_accounts(plan, live)
    if changed:
        shown = ", ".join(changed[:20]) + (
            f" and {len(changed) - 20} more" if len(changed) > 20 else ""
        )
        reasons.append(f"{len(changed)} account(s) changed since the plan was made: {shown}")
    slots = stale_slots(plan, live)
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
    if reasons:
        raise StalePlanError("stale plan: " + "; ".join(reasons) + "; make the plan again")
