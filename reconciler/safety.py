"""Safety thresholds over a plan (DESIGN section 6): evaluated for every plan, enforced at apply.

Thresholds never block planning: `evaluate_safety` returns the violations for the plan to show;
`check_safety` raises `UnsafePlanError` with all of them. Overrides are exact, not blanket:
`--allow-removals N` passes only a plan with at most N removals (in place of both removal rules),
`--allow-destroys N` likewise for destroys, and each send cap (`safety.maxBroadcasts`, default 1
per apply) with its own exact flag (`--allow-broadcasts N`; the table is
`reconciler.kinds.sending.SEND_CAPS`); `--force` lifts every threshold. A destroy of a protected
account is refused whatever the flags.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.caps import SEND_CAPS, count_sends, send_cap, send_limit
from reconciler.changes import Change, plural
from reconciler.config import Safety
from reconciler.errors import UnsafePlanError
from reconciler.kinds.official_account import destroys_and_removals

TOTAL = "total"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: where (an account id or "total"), the numbers, the override that passes."""

    rule: str
    scope: str
    actual: float
    limit: float
    #: the flag that would let this plan pass; "" when none can (protect)
    override: str

    def __str__(self) -> str:
        where = "in total" if self.scope == TOTAL else f"on {self.scope}"
        if self.rule == "protect":
            return f"{self.scope} is protected and is never destroyed (no override)"
        if self.rule == "maxSubscriberRemovalPercent":
            numbers = f"{self.actual:.1f}% of subscribers removed {where}, over {self.limit:g}%"
        else:
            what = "destroy" if "Destroys" in self.rule else "subscriber removal"
            if self.rule.removeprefix("allow") not in ("Destroys", "Removals"):
                what = _send_noun(self.rule) or what
            numbers = f"{plural(int(self.actual), what)} {where}, over {self.limit:,.0f}"
        return f"{self.rule}: {numbers} (to allow it: {self.override})"

    @property
    def data(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "scope": self.scope,
            "actual": self.actual,
            "limit": self.limit,
            "override": self.override,
            "message": str(self),
        }


def _send_noun(rule: str) -> str:
    try:
        return send_cap(rule).noun
    except KeyError:
        return ""


def send_violations(
    changes: Iterable[Change],
    safety: Safety,
    allow_sends: Mapping[str, int | None] | None = None,
    force: bool = False,
) -> list[Violation]:
    """The send caps these changes break: each cap's configured limit, or its exact override
    (`allow_sends`, keyed by the cap's rule) in its place; none under `force`."""
    if force:
        return []
    counts = count_sends(changes)
    out = []
    for cap in SEND_CAPS:
        n = counts.get(cap.rule, 0)
        allowed = (allow_sends or {}).get(cap.rule)
        flag = f"{cap.flag} {n}"
        if allowed is not None:
            if n > allowed:
                out.append(Violation(cap.allow_rule, TOTAL, n, allowed, flag))
        elif n > (limit := send_limit(safety.max_sends, cap.rule)):
            out.append(Violation(cap.rule, TOTAL, n, limit, flag))
    return out


def evaluate_safety(
    changes: Iterable[Change],
    safety: Safety,
    *,
    allow_removals: int | None = None,
    allow_destroys: int | None = None,
    force: bool = False,
    allow_sends: Mapping[str, int | None] | None = None,
) -> list[Violation]:
    """Every violation of `safety` by these changes under the given overrides, in a stable order.

    The total removal percentage is taken over the accounts that lose subscribers (the
    conservative reading: removing 5% of one account is never diluted by untouched accounts).
    """
    changes = list(changes)
    return [
        *_threshold_violations(changes, safety, allow_removals, allow_destroys, force),
        *send_violations(changes, safety, allow_sends, force),
    ]


def _threshold_violations(
    changes: list[Change],
    safety: Safety,
    allow_removals: int | None,
    allow_destroys: int | None,
    force: bool,
) -> list[Violation]:
    destroys, removals = destroys_and_removals(changes)
    violations = [Violation("protect", d.account_id, 1, 0, "") for d in destroys if d.protected]
    if force:
        return violations
    n_destroys = len(destroys)
    destroy_flag = f"--allow-destroys {n_destroys}"
    if allow_destroys is not None:
        if n_destroys > allow_destroys:
            violations.append(
                Violation("allowDestroys", TOTAL, n_destroys, allow_destroys, destroy_flag)
            )
    elif n_destroys > safety.max_destroys:
        violations.append(
            Violation("maxDestroys", TOTAL, n_destroys, safety.max_destroys, destroy_flag)
        )
    total = sum(len(r.users) for r in removals)
    removal_flag = f"--allow-removals {total}"
    if allow_removals is not None:
        if total > allow_removals:
            violations.append(
                Violation("allowRemovals", TOTAL, total, allow_removals, removal_flag)
            )
        return violations
    max_n, max_pct = safety.max_subscriber_removals, safety.max_subscriber_removal_percent
    for r in removals:
        if len(r.users) > max_n:
            violations.append(
                Violation("maxSubscriberRemovals", r.account_id, len(r.users), max_n, removal_flag)
            )
        if r.percent > max_pct:
            violations.append(
                Violation(
                    "maxSubscriberRemovalPercent", r.account_id, r.percent, max_pct, removal_flag
                )
            )
    if len(removals) > 1:
        if total > max_n:
            violations.append(Violation("maxSubscriberRemovals", TOTAL, total, max_n, removal_flag))
        live = sum(r.live_count for r in removals)
        percent = 100.0 * total / live if live else 0.0
        if percent > max_pct:
            violations.append(
                Violation("maxSubscriberRemovalPercent", TOTAL, percent, max_pct, removal_flag)
            )
    return violations


def check_safety(
    changes: Iterable[Change],
    safety: Safety,
    *,
    allow_removals: int | None = None,
    allow_destroys: int | None = None,
    force: bool = False,
    allow_sends: Mapping[str, int | None] | None = None,
) -> None:
    """Raise `UnsafePlanError` naming every violation; return quietly when the plan is safe."""
    violations = evaluate_safety(
        changes,
        safety,
        allow_removals=allow_removals,
        allow_destroys=allow_destroys,
        force=force,
        allow_sends=allow_sends,
    )
    if violations:
        lines = "\n".join(f"  {v}" for v in violations)
        raise UnsafePlanError(f"the plan breaks the safety rules, nothing was applied:\n{lines}")
