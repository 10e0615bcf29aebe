"""The send caps: a safety threshold on sends per apply for each sending kind.

Defined apart from `reconciler.kinds.sending` (which re-exports it) so that the CLI can build its
`--allow-...` flags without importing the kinds. One entry per sending kind: issue 16 adds
`SendCap("maxMassMessages", "--allow-mass-messages", "mass message")` here and the same property
under `safety` in `schemas/reconciler.schema.json`; config, the flag, the plan file and the check
(`reconciler.safety.send_violations`) follow from the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

# -- send caps -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendCap:
    """A safety threshold on sends per apply: `safety.<rule>`, overridden by `<flag> N`."""

    #: `safety.maxBroadcasts`
    rule: str
    #: `--allow-broadcasts`
    flag: str
    #: `broadcast` (its plural adds `s`)
    noun: str
    default: int = 1

    @property
    def allow_rule(self) -> str:
        """The rule's name when the exact override is what failed: `allowBroadcasts`."""
        return "allow" + self.rule.removeprefix("max")

    @property
    def dest(self) -> str:
        """The argparse destination of the flag: `allow_broadcasts`."""
        return self.flag.removeprefix("--").replace("-", "_")


#: One entry per sending kind (issue 16 adds maxMassMessages).
SEND_CAPS: Final[tuple[SendCap, ...]] = (
    SendCap("maxBroadcasts", "--allow-broadcasts", "broadcast"),
    SendCap("maxMassMessages", "--allow-mass-messages", "mass message"),
)


def send_cap(rule: str) -> SendCap:
    """The cap of `rule`; KeyError when there is none."""
    for cap in SEND_CAPS:
        if cap.rule == rule or cap.allow_rule == rule:
            return cap
    raise KeyError(rule)


def send_limit(configured: Iterable[tuple[str, int]], rule: str) -> int:
    """The limit of `rule`: configured (`Safety.max_sends`) or its default."""
    return dict(configured).get(rule, send_cap(rule).default)


def count_sends(changes: Iterable[object]) -> dict[str, int]:
    """How many sends of each cap `changes` make (a change sends when its type names a cap)."""
    counts = {cap.rule: 0 for cap in SEND_CAPS}
    for change in changes:
        rule = getattr(type(change), "send_cap", "")
        if rule:
            counts[rule] = counts.get(rule, 0) + 1
    return counts
