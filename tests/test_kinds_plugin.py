"""A kind plugged in from outside the core: its own documents, its own live state, its changes
planned, rendered, saved, applied, drifted; nothing in the core stages names it.

`Greeting` declares the introduction an (undeclared) official account must show. Its desired
records come from its own documents (`Kind.resolve`), its live state from its own read
(`Kind.read`, not the accounts' read): what a Broadcast needs (its live state is an account's
message history, not an account).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from plan_scenarios import INVENTORY

from reconciler.apply import apply_plan, render_result
from reconciler.changes import (
    PHASE_MODIFY,
    Action,
    ApplyRun,
    Change,
    DiffOptions,
    DriftItem,
    Finding,
    Kind,
    Schedule,
    Wire,
    show_value,
)
from reconciler.config import Limits, SandboxTarget
from reconciler.connect import connect
from reconciler.diff import diff
from reconciler.drift import build_drift
from reconciler.errors import Problem
from reconciler.kinds import missing_behaviours, plugged
from reconciler.live import LiveState
from reconciler.load import Document, load_text
from reconciler.model import DesiredState, ProfileField, canonical_account_id
from reconciler.plan import TargetIdentity, desired_digest, plan_from_read
from reconciler.planfile import dump_plan, load_plan
from reconciler.providers import AccountInfo, IMProvider, MassSpeedProvider
from reconciler.providers.calls import API_MODIFY
from reconciler.read import read_live
from reconciler.render import render_json, render_text
from reconciler.resolve import Resolver


@dataclass(frozen=True)
class Greeting:
    """Desired: the introduction `account` shows."""

    account: str
    text: str


@dataclass(frozen=True)
class LiveGreeting:
    """Live: the introduction it shows."""

    account: str
    text: str


class SetGreetingWire(Wire, frozen=True, tag="setGreeting"):
    account: str
    old: str
    new: str

    def change(self) -> SetGreeting:
        return SetGreeting(self.account, self.old, self.new)


@dataclass(frozen=True, slots=True)
class SetGreeting(Change):
    kind: ClassVar[str] = "setGreeting"
    phase: ClassVar[int] = PHASE_MODIFY
    wire_type: ClassVar[type[Wire]] = SetGreetingWire
    account_id: str
    old: str
    new: str

    @property
    def account(self) -> str:
        return self.account_id

    def wire(self) -> SetGreetingWire:
        return SetGreetingWire(self.account_id, self.old, self.new)

    def actions(self, schedule: Schedule) -> list[Action]:
        return [Action(f"{self.kind}/{self.account_id}/0", API_MODIFY, self)]

    def apply_phase(self, action: Action) -> str:
        return "accounts"

    def count(self, summary: dict[str, int]) -> None:
        summary["greetings"] += 1

    def headline(self) -> tuple[int, str, str] | None:
        return (4, "~", "will be updated in place")

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return [("~", f"greeting: {show_value(self.old)} → {show_value(self.new)}")]

    def drift(self) -> list[DriftItem]:
        return [DriftItem(self.account_id, "greeting", self.new, self.old)]

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        report = run.result.report(self.account_id)
        await run.im.modify_account(self.account_id, {ProfileField.INTRODUCTION: self.new})
        run.progress(1)
        report.applied.append("greeting")


def resolve(docs: Sequence[Document]) -> tuple[list[Greeting], list[Problem]]:
    greetings: list[Greeting] = []
    problems: list[Problem] = []
    for doc in docs:
        spec = doc.data["spec"]
        if not spec.get("text"):
            pos = doc.position
            problems.append(
                Problem(pos.file, pos.line, pos.col, "spec.text: a greeting says something")
            )
            continue
        greetings.append(Greeting(canonical_account_id(spec["account"]), spec["text"]))
    return greetings, problems


async def read(
    desired: DesiredState,
    im: IMProvider,
    mass: MassSpeedProvider | None,
    recorded: Sequence[AccountInfo],
) -> list[LiveGreeting]:
    wanted = sorted({g.account for g in desired.of(Greeting)})
    infos = await im.get_accounts(wanted) if wanted else {}
    return [LiveGreeting(i.id, i.introduction) for i in infos.values()]


def find(desired: DesiredState, live: LiveState, options: DiffOptions) -> list[Finding]:
    shown = {g.account: g.text for g in live.of(LiveGreeting)}
    return [
        SetGreeting(g.account, shown.get(g.account, ""), g.text)
        for g in desired.of(Greeting)
        if shown.get(g.account) != g.text
    ]


def digest(desired: DesiredState) -> str:
    text = "\n".join(sorted(f"{g.account} {g.text}" for g in desired.of(Greeting)))
    return hashlib.sha256(text.encode()).hexdigest()


def _summary(s: Mapping[str, int]) -> list[str]:
    return [f"{s['greetings']} greeting(s) to set"] if s["greetings"] else []


GREETING = Kind(
    name="Greeting",
    changes=(SetGreeting,),
    resolve=resolve,
    read=read,
    digest=digest,
    diff=find,
    summary_keys=("greetings",),
    summary_text=_summary,
    summary_rows=lambda s: [("greetings to set", s["greetings"])],
)

DOCS = """\
apiVersion: reconciler/v1
kind: Greeting
metadata: {name: hello}
spec: {account: lobby, text: Welcome}
"""


@pytest.fixture
def greeting() -> Iterator[Kind]:
    with plugged(GREETING) as kind:
        yield kind


def desired_from(text: str) -> tuple[DesiredState | None, list[Problem]]:
    loaded = load_text(text, "greetings.yaml")
    return Resolver({}).resolve([("Greeting", d) for d in loaded.documents], [])


def test_the_plugged_kind_brings_every_behaviour(greeting: Kind) -> None:
    assert missing_behaviours(SetGreeting) == []


def test_its_documents_resolve_into_its_own_records(greeting: Kind) -> None:
    state, problems = desired_from(DOCS)
    assert problems == [] and state is not None
    assert state.of(Greeting) == (Greeting("@TOA#_lobby", "Welcome"),)
    other, _ = desired_from(DOCS.replace("Welcome", "Hello"))
    assert other is not None and desired_digest(other) != desired_digest(state)
    broken, problems = desired_from(DOCS.replace("text: Welcome", "text: ''"))
    assert broken is None
    assert [str(p) for p in problems] == [
        "greetings.yaml:1:1: spec.text: a greeting says something"
    ]


def test_read_plan_save_apply_and_converge(greeting: Kind, tmp_path: Path) -> None:
    state, _ = desired_from(DOCS)
    assert state is not None
    target = SandboxTarget("sandbox", tmp_path / "s.db")
    identity = TargetIdentity.from_target(target)

    async def main() -> None:
        async with connect(target, Limits()) as providers:
            im = providers.im
            await im.import_accounts(["boss"])
            await im.create_account("@TOA#_lobby", "boss", {ProfileField.NAME: "Lobby"})
            live = await read_live(state, im, inventory_user=INVENTORY)
            assert live.of(LiveGreeting) == (LiveGreeting("@TOA#_lobby", ""),)
            found = diff(state, live, prune=False, inventory_user=INVENTORY)
            assert found.changes == (SetGreeting("@TOA#_lobby", "", "Welcome"),)
            plan = plan_from_read(found, desired=state, live=live, target=identity)
            text = render_text(plan)
            assert text.splitlines()[2:6] == [
                "~ account @TOA#_lobby will be updated in place",
                '    ~ greeting: "" → "Welcome"',
                "",
                "Plan: 0 to create, 0 to modify, 0 to destroy, 0 to adopt; 1 greeting(s) to set.",
            ]
            assert '"greetings": 1' in render_json(plan)
            # the account kind reads back every account a change touched
            assert [a.id for a in plan.actions] == ["setGreeting/@TOA#_lobby/0", "verify/-/0"]
            report = build_drift(found, target=identity, today=dt.date(2026, 12, 7))
            assert [(i.account, i.field, i.git, i.live) for i in report.items] == [
                ("@TOA#_lobby", "greeting", "Welcome", "")
            ]
            saved = load_plan(dump_plan(plan))
            assert saved == plan
            result = await apply_plan(saved, providers, inventory_user=INVENTORY)
            assert result.exit_code == 0, render_result(result)
            again = await read_live(state, im, inventory_user=INVENTORY)
            assert diff(state, again, prune=False, inventory_user=INVENTORY).changes == ()

    asyncio.run(main())
