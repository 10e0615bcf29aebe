"""`kind: MassSpeed`: the WeChat official account's mass-send speed (message/mass/speed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from reconciler.changes import (
    PHASE_SPEED,
    Action,
    ApplyRun,
    Change,
    DiffOptions,
    DriftItem,
    Finding,
    Kind,
    PlanProblem,
    Schedule,
    Wire,
    show_value,
)
from reconciler.errors import ProviderError
from reconciler.live import LiveState
from reconciler.model import DesiredState
from reconciler.outcome import GLOBAL, Failure, failure
from reconciler.providers.calls import API_SPEED_SET

#: Where drift reports the speed: `MassSpeed/<name>` (`--ignore` entries name it so).
MASS_SPEED_PREFIX = "MassSpeed/"


class SetMassSpeedWire(Wire, frozen=True, tag="setMassSpeed"):
    """The plan-file form of `SetMassSpeed`."""

    name: str
    old: int | None
    new: int

    def change(self) -> SetMassSpeed:
        return SetMassSpeed(self.name, self.old, self.new)


@dataclass(frozen=True, slots=True)
class SetMassSpeed(Change):
    """The WeChat mass-send speed (message/mass/speed/set)."""

    kind: ClassVar[str] = "setMassSpeed"
    phase: ClassVar[int] = PHASE_SPEED
    wire_type: ClassVar[type[Wire]] = SetMassSpeedWire
    name: str
    old: int | None
    new: int

    def wire(self) -> SetMassSpeedWire:
        return SetMassSpeedWire(self.name, self.old, self.new)

    def actions(self, schedule: Schedule) -> list[Action]:
        return [Action(f"{self.kind}/-/0", API_SPEED_SET, self)]

    def apply_phase(self, action: Action) -> str:
        return "mass speed"

    def count(self, summary: dict[str, int]) -> None:
        summary["massSpeed"] += 1

    def headline(self) -> tuple[int, str, str] | None:
        return None

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return []

    def block(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return [("~", f"~ mass speed {self.name}: {show_value(self.old)} → {self.new}")]

    def markdown(self, *, first: int) -> list[str]:
        return [f"Mass speed `{self.name}`: {show_value(self.old)} → {self.new}", ""]

    def drift(self) -> list[DriftItem]:
        return [DriftItem(MASS_SPEED_PREFIX + self.name, "speed", self.new, self.old)]

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        report = run.result.report(GLOBAL)
        if run.wechat is None:
            report.failed.append(
                Failure("set mass speed", None, "the target has no WeChat credentials")
            )
            return
        try:
            await run.wechat.set_mass_speed(self.new)
        except ProviderError as exc:
            report.failed.append(failure("set mass speed", exc))
        else:
            run.result.mass_speed_set = True
            report.applied.append(f"set mass speed {self.name} to {self.new}")
        run.progress(1)


def diff_speed(desired: DesiredState, live: LiveState, options: DiffOptions) -> Iterable[Finding]:
    """The speed to set; on a target without WeChat credentials a declared speed can be neither
    read nor set, so it is a problem of the plan (exit 1), not a change apply could only fail."""
    speed = desired.mass_speed
    if speed is not None and options.wechat_missing is not None:
        target = options.wechat_missing
        return [
            PlanProblem(
                "",
                f"{speed.position}: MassSpeed '{speed.name}' is declared but target '{target}'"
                f" has no WeChat credentials (targets.{target}.wechat: appId, secret)",
            )
        ]
    if speed is not None and live.mass_speed != speed.speed:
        return [SetMassSpeed(speed.name, live.mass_speed, speed.speed)]
    return []


def _summary_text(s: Mapping[str, int]) -> list[str]:
    return ["mass speed to set"] if s["massSpeed"] else []


def _summary_rows(s: Mapping[str, int]) -> list[tuple[str, int]]:
    # the number of speed settings changed (one per target), not a speed
    return [("mass speed setting changed", s["massSpeed"])]


KIND = Kind(
    name="MassSpeed",
    changes=(SetMassSpeed,),
    diff=diff_speed,
    summary_keys=("massSpeed",),
    summary_text=_summary_text,
    summary_rows=_summary_rows,
)
