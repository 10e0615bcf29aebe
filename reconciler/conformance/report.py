"""Compare the target's observations with the sandbox's; render the differences as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from reconciler.conformance.battery import Observations
from reconciler.conformance.wire import NO_ANSWER, NO_CODE
from reconciler.plan import TargetIdentity

FORMAT_VERSION: Final = 1
#: What a side shows for an observation it did not make (a field it does not have).
ABSENT: Final = "absent"
#: Values that say an observation has no value: shown as words, not as JSON strings.
MARKERS: Final = frozenset({ABSENT, NO_ANSWER, NO_CODE})


@dataclass(frozen=True, slots=True)
class Row:
    """One observation, on both sides."""

    probe: str
    aspect: str
    target: Any
    sandbox: Any

    @property
    def differs(self) -> bool:
        return bool(self.target != self.sandbox)

    @property
    def data(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "observation": self.aspect,
            "target": self.target,
            "sandbox": self.sandbox,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """A conformance run: every observation of both sides, and how it ended."""

    target: TargetIdentity
    rows: tuple[Row, ...]
    writes: bool
    #: the signal that stopped the battery early, if one did
    interrupted: str | None = None
    #: per probe, the vendors' own words where a code was not 0 (`target`, `sandbox`)
    info: Mapping[str, Mapping[str, str]] | None = None
    #: the throw-away account when it could not be destroyed
    left_behind: str | None = None
    #: why the target's first call got no answer (the battery stopped there)
    unanswered: str | None = None

    @property
    def differences(self) -> list[Row]:
        return [row for row in self.rows if row.differs]

    @property
    def exit_code(self) -> int:
        """0 none differ, 2 some do (as `drift`), 1 the target did not answer."""
        if self.unanswered is not None:
            return 1
        return 2 if self.differences else 0


def compare(
    target: TargetIdentity,
    seen: Observations,
    expected: Observations,
    *,
    writes: bool,
    interrupted: str | None = None,
    info: Mapping[str, Mapping[str, str]] | None = None,
    left_behind: str | None = None,
    unanswered: str | None = None,
) -> Report:
    """Pair the target's observations (`seen`) with the sandbox's (`expected`), probe by probe in
    the battery's order. A probe the target never reached (the run stopped) is left out; a probe
    that got no answer on one side is only its code."""
    rows: list[Row] = []
    probes = list(expected) + [p for p in seen if p not in expected]
    for probe in probes:
        if probe not in seen and (interrupted or unanswered):
            continue
        mine, theirs = seen.get(probe, {}), expected.get(probe, {})
        aspects = list(theirs) + [a for a in mine if a not in theirs]
        if NO_ANSWER in (mine.get("code"), theirs.get("code")):
            aspects = ["code"]  # the rest is absent because no answer came, not for itself
        for aspect in aspects:
            rows.append(Row(probe, aspect, mine.get(aspect, ABSENT), theirs.get(aspect, ABSENT)))
    return Report(target, tuple(rows), writes, interrupted, info, left_behind, unanswered)


def _cell(value: Any) -> str:
    """A value as JSON writes it (`""`, `null`, `[1]`); the markers of a missing one as words."""
    if isinstance(value, str) and value in MARKERS:
        return str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def render_text(report: Report) -> str:
    """The summary line, then a table of every observation that differs."""
    scope = "reads and writes" if report.writes else "reads only (--allow-writes adds the writes)"
    counted = len(report.rows)
    differing = report.differences
    head = f"Target: {report.target.label}\nConformance, {scope}: {counted} observations, " + (
        f"{len(differing)} {'differs' if len(differing) == 1 else 'differ'} from the sandbox"
        if differing
        else "none differ from the sandbox"
    )
    if report.interrupted:
        head += f" (stopped early by {report.interrupted})"
    lines = [head]
    if differing:
        table = [("probe", "observation", "target", "sandbox")] + [
            (r.probe, r.aspect, _cell(r.target), _cell(r.sandbox)) for r in differing
        ]
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        for row in table:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append("  ".join([*cells, row[3]]).rstrip())
    return "\n".join(lines) + "\n"


def render_json(report: Report, *, version: str) -> str:
    """The bug-report form: every observation (the differing ones also listed apart), what the
    vendor said where it refused, the target's identity (never a credential)."""
    doc = {
        "formatVersion": FORMAT_VERSION,
        "reconcilerVersion": version,
        "target": {k: v for k, v in report.target.data.items() if v is not None},
        "writes": report.writes,
        "interrupted": report.interrupted,
        "leftBehind": report.left_behind,
        "unanswered": report.unanswered,
        "differences": [row.data for row in report.differences],
        "observations": [row.data for row in report.rows],
        "vendorMessages": {
            probe: dict(said)
            for probe, said in (report.info or {}).items()
            if any(row.probe == probe for row in report.differences)
        },
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
