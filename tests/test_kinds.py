"""The registry of kinds: every registered change type brings every behaviour the core stages
dispatch to, and every one survives the plan file; plan files written before still load."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from plan_scenarios import INVENTORY, F, account, desired

from reconciler.apply import apply_plan
from reconciler.changes import (
    PHASE_SPEED,
    Action,
    ApplyRun,
    Change,
    DriftItem,
    Notice,
    PlanProblem,
    Schedule,
    Wire,
)
from reconciler.config import Limits, SandboxTarget
from reconciler.connect import connect
from reconciler.diff import diff
from reconciler.errors import StalePlanError
from reconciler.kinds import REGISTRY, change_types, missing_behaviours, wire_types
from reconciler.kinds.broadcast import RecallBroadcast, SendBroadcast
from reconciler.kinds.inventory import ImportInventoryUser, LedgerWrite
from reconciler.kinds.mass_message.changes import (
    ClearMassRecord,
    DeleteMassMessage,
    SendMassMessage,
)
from reconciler.kinds.mass_message.model import Audience, Target
from reconciler.kinds.mass_speed import SetMassSpeed
from reconciler.kinds.official_account import (
    AddSubscribers,
    AdoptOrphan,
    CreateAccount,
    DestroyAccount,
    FieldChange,
    ModifyAccount,
    ProfileChange,
    Record,
    RemoveSubscribers,
    SetSubscriberProfiles,
)
from reconciler.kinds.sending import Window
from reconciler.kinds.user_accounts import ImportUsers
from reconciler.plan import TargetIdentity, plan_from_read
from reconciler.planfile import decode_change, dump_plan, load_plan
from reconciler.read import read_live
from reconciler.record import record_for

GOLDEN = Path(__file__).parent / "golden"


def mass_messages() -> list[Change]:
    window = Window(None, dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
    openids = frozenset(f"o{n:027d}" for n in range(3))
    return [
        SendMassMessage(
            "m",
            "text",
            {"content": "hi"},
            Target(Audience.OPENIDS, openids=openids),
            window,
            False,
            "sha256:x",
            None,
            (0,),
            False,
            "",
            "1 of 100",
        ),
        DeleteMassMessage("n", "news", {0: 7, 1: 8}, (2,), "reconciler-mass/v1"),
        ClearMassRecord("n", "@TOA#_rcm-0123456789abcdef01234567", "reconciler-mass/v1"),
    ]


def one_of_each() -> list[Change]:
    return [
        ImportUsers(frozenset({"a", "b"})),
        ImportInventoryUser(INVENTORY),
        LedgerWrite(0, "@TOA#_slot", False, frozenset({"x"}), frozenset({"y"}), frozenset()),
        CreateAccount("@TOA#_n", "o", ((F.NAME, "N"), (F.MAX_SUBSCRIBER_NUM, 5))),
        ModifyAccount("@TOA#_n", (FieldChange(F.FACE_URL, "u", "", cleared=True),)),
        AddSubscribers("@TOA#_n", frozenset({"a"})),
        SetSubscriberProfiles("@TOA#_n", (ProfileChange("a", None, "v"),)),
        RemoveSubscribers("@TOA#_n", frozenset({"c"}), 3, "absent"),
        Record("@TOA#_n", record_for(account("n")), subscribe=True, adopt=True),
        AdoptOrphan("@TOA#_l", "o", 2),
        DestroyAccount("@TOA#_o", "o", 4, protected=True),
        SetMassSpeed("main", None, 3),
        *mass_messages(),
        SendBroadcast(
            "@TOA#_n",
            "hello",
            ({"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}},),
            7,
            Window.from_data({"notBefore": None, "notAfter": "2030-01-01T00:00:00Z"}),
            3,
            "n: 0 sent in the last hour; this makes 1/2",
            "Asia/Shanghai",
            "c",
            {"Title": "t"},
            True,
        ),
        RecallBroadcast("@TOA#_n", "hello", "5_1_9", 9, "oops"),
    ]


@pytest.mark.parametrize("change", sorted(change_types().values(), key=lambda c: c.kind))
def test_every_registered_change_type_brings_every_behaviour(change: type[Change]) -> None:
    assert missing_behaviours(change) == []


def test_a_change_type_without_a_behaviour_is_found_out() -> None:
    class SpeedWire(Wire, frozen=True, tag="setSpeedTwice"):
        new: int

    @dataclass(frozen=True, slots=True)
    class Incomplete(Change):
        """A kind that forgot its drift and its apply."""

        kind: ClassVar[str] = "setSpeedTwice"
        phase: ClassVar[int] = PHASE_SPEED
        wire_type: ClassVar[type[Wire]] = SpeedWire
        new: int

        def wire(self) -> SpeedWire:
            return SpeedWire(self.new)

        def actions(self, schedule: Schedule) -> list[Action]:
            return []

        def apply_phase(self, action: Action) -> str:
            return "mass speed"

        def count(self, summary: dict[str, int]) -> None:
            pass

        def headline(self) -> tuple[int, str, str] | None:
            return None

        def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
            return []

    assert missing_behaviours(Incomplete) == ["drift", "run"]

    @dataclass(frozen=True, slots=True)
    class Complete(Incomplete):
        def drift(self) -> list[DriftItem]:
            return []

        async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
            pass

    assert missing_behaviours(Complete) == []


def test_the_registry_lists_each_change_type_and_summary_count_once() -> None:
    types = [c for kind in REGISTRY for c in kind.changes]
    assert len(types) == len(set(types)) == len(change_types())
    keys = [k for kind in REGISTRY for k in kind.summary_keys]
    assert len(keys) == len(set(keys))
    assert {type(c) for c in one_of_each()} == set(change_types().values())
    tags = sorted(w.__struct_config__.tag for w in wire_types())
    assert tags == sorted([*change_types(), "notice", "problem"])


def test_every_change_notice_and_problem_decodes_from_its_data() -> None:
    for item in [*one_of_each(), Notice("@TOA#_o", "kept", "orphan"), PlanProblem("", "bad")]:
        assert decode_change(json.loads(json.dumps(item.data))) == item


@pytest.mark.parametrize("name", ["plan_rich_file_v1.json", "plan_interrupted_file_v1.json"])
def test_a_plan_file_written_before_the_registry_loads_and_writes_the_same_bytes(
    name: str,
) -> None:
    # written by the reconciler before the per-kind modules (commit 385223a)
    text = (GOLDEN / name).read_text(encoding="utf-8")
    assert dump_plan(load_plan(text)) == text


@pytest.mark.parametrize(
    ("version", "made_by"),
    [
        (0, "made by an older version of reconciler"),
        (2, "made by a newer version"),
        ("1", "made by an unknown version of reconciler"),
        (True, "made by an unknown version of reconciler"),
    ],
)
def test_a_plan_file_of_another_format_says_which_version_made_it(
    version: object, made_by: str
) -> None:
    document = json.loads((GOLDEN / "plan_rich_file_v1.json").read_text(encoding="utf-8"))
    document["formatVersion"] = version
    with pytest.raises(StalePlanError) as caught:
        load_plan(json.dumps(document), source="plan.json")
    assert str(caught.value) == (
        f"plan.json has plan format {version!r}, {made_by}; this reconciler reads format 1:"
        " make the plan again with this version"
    )


def test_apply_makes_exactly_the_calls_the_plan_schedules(tmp_path: Path) -> None:
    """The plan is what apply runs: per API, the calls apply makes are the plan's actions (every
    batch one call), and a second plan after it has nothing to do."""
    users = [f"u{i:03d}" for i in range(250)]
    news = account("news", members=users, profiles={"u001": "vip", "u002": "x"})
    sports = account("sports", members=users[:100])
    d = desired(news, sports, users=[*users, "ops_admin"], speed=3)
    target = SandboxTarget("sandbox", tmp_path / "s.db")
    identity = TargetIdentity.from_target(target)

    async def main() -> None:
        async with connect(target, Limits()) as providers:
            live = await read_live(d, providers.im, inventory_user=INVENTORY, mass=providers.wechat)
            found = diff(d, live, prune=False, inventory_user=INVENTORY)
            plan = plan_from_read(found, desired=d, live=live, target=identity)
            result = await apply_plan(plan, providers, inventory_user=INVENTORY)
            assert result.exit_code == 0
            scheduled = Counter(a.api for a in plan.actions)
            # news: 3 batches, the inventory user in the last; sports: a full batch, then the
            # inventory user alone; the ledger slot's inventory subscription
            assert scheduled["add_subscriber"] == 3 + 2 + 1
            calls = Counter({api: n for api, n in result.calls.items() if api != "token"})
            assert calls == scheduled
            again = await read_live(
                d, providers.im, inventory_user=INVENTORY, mass=providers.wechat
            )
            assert diff(d, again, prune=False, inventory_user=INVENTORY).changes == ()

    asyncio.run(main())
