"""Renderers: golden text, markdown and json; the schema; the PR-comment limit; no secrets."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from plan_scenarios import (
    INVENTORY,
    PROD,
    PROD_SECRET,
    SANDBOX,
    WECHAT_SECRET,
    F,
    account,
    check_golden,
    desired,
    live,
    live_account,
)

from reconciler.diff import diff
from reconciler.live import LiveState
from reconciler.model import DesiredState, SubscriberPolicy
from reconciler.plan import BLIND_SPOT, Plan, TargetIdentity, plan_from_read
from reconciler.planfile import dump_plan
from reconciler.render import (
    GITHUB_COMMENT_LIMIT,
    members_ndjson,
    plan_data,
    render_json,
    render_markdown,
    render_text,
)

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "schemas" / "plan.schema.json").read_text(encoding="utf-8")
)


def make(
    d: DesiredState, state: LiveState, *, target: TargetIdentity = SANDBOX, prune: bool = False
) -> Plan:
    changes = diff(d, state, prune=prune, inventory_user=INVENTORY)
    return plan_from_read(changes, desired=d, live=state, target=target, prune=prune)


def rich(target: TargetIdentity = SANDBOX) -> Plan:
    """One of everything: import, create, adopt, modify and clear, members, profiles, destroy."""
    staff = [f"staff{i:02d}" for i in range(14)]
    news = account(
        "news",
        profile={F.NAME: "Daily News", F.INTRODUCTION: "Morning headlines"},
        members=["alice", "bob", *staff],
        absent=["mallory"],
        profiles={"alice": "vip", "bob": "tier=2", **{u: "staff" for u in staff}},
    )
    sports_before = account(
        "sports", profile={F.NAME: "Sports", F.FACE_URL: "https://example.com/s.png"}
    )
    sports = account(
        "sports",
        profile={F.NAME: "Sports Desk", F.ORGANIZATION: "Example Media"},
        members=["alice"],
        policy=SubscriberPolicy.EXACT,
    )
    legacy = account("legacy", profile={F.NAME: "Legacy", F.CUSTOM_STRING: "tier=gold"})
    weather = account("weather", protect=True)
    d = desired(news, sports, legacy, weather, users=["ops_admin", "alice", "bob", *staff], speed=2)
    state = live(
        live_account(
            "sports",
            profile={F.NAME: "Sports", F.FACE_URL: "https://example.com/s.png"},
            members=["alice", "carol", "dave"],
            owned_by=sports_before,
        ),
        live_account("legacy", profile={F.NAME: "Legacy", F.CUSTOM_STRING: "tier=silver"}),
        live_account("old", members=["erin"], owned_by=account("old")),
        live_account("vault", owned_by=account("vault", protect=True)),
        live_account("mallory-den", members=["mallory"]),
        live_account("weather", owned_by=account("weather")),
        users=["ops_admin", "alice", "carol", "dave", "erin", "mallory"],
        speed=1,
    )
    return make(d, state, target=target, prune=True)


def nothing() -> Plan:
    news = account("news", members=["alice"])
    state = live(
        live_account("news", members=["alice"], owned_by=news), users=["ops_admin", "alice"]
    )
    return make(desired(news, users=["alice"]), state)


def broken() -> Plan:
    news = account("news", owner="ghost", members=["alice", "zed"])
    renamed = account("sports", owner="new_admin")
    state = live(live_account("sports", owned_by=renamed), users=["ops_admin", "alice"])
    return make(desired(news, renamed), state, target=PROD)


@pytest.mark.parametrize(
    ("name", "render"),
    [
        ("plan_rich.txt", lambda: render_text(rich())),
        ("plan_rich_color.txt", lambda: render_text(rich(), color=True)),
        ("plan_rich_show_all.txt", lambda: render_text(rich(), show_all=True)),
        ("plan_rich.md", lambda: render_markdown(rich())),
        ("plan_rich_show_all.md", lambda: render_markdown(rich(), show_all=True)),
        ("plan_rich.json", lambda: render_json(rich())),
        ("plan_rich_prod.txt", lambda: render_text(rich(PROD))),
        ("plan_no_changes.txt", lambda: render_text(nothing())),
        ("plan_no_changes.md", lambda: render_markdown(nothing())),
        ("plan_no_changes.json", lambda: render_json(nothing())),
        ("plan_errors.txt", lambda: render_text(broken())),
        ("plan_errors.md", lambda: render_markdown(broken())),
        ("members_rich.ndjson", lambda: "".join(f"{line}\n" for line in members_ndjson(rich()))),
    ],
)
def test_golden(name: str, render: object) -> None:
    check_golden(name, render())  # type: ignore[operator]


def test_every_rendering_starts_with_the_target_and_states_cost_and_blind_spot() -> None:
    for plan in (rich(), nothing(), broken(), rich(PROD)):
        for text in (render_text(plan), render_markdown(plan)):
            assert plan.target.describe() in text.splitlines()[0].replace("**", "")
            assert "Cost: ≈ " in text and "Blind spot: " in text
        assert json.loads(render_json(plan))["targetLine"] == plan.target.describe()
    assert render_text(nothing()).splitlines()[0] == (
        "Target: sandbox 'sandbox', embedded sandbox at .reconciler/sandbox.db"
    )
    assert "No changes." in render_text(nothing())
    assert "No changes." not in render_text(rich())


@pytest.mark.parametrize("show_all", [False, True])
@pytest.mark.parametrize("make_plan", [rich, nothing, broken])
def test_json_output_validates_against_the_schema(make_plan: object, show_all: bool) -> None:
    data = json.loads(render_json(make_plan(), show_all=show_all))  # type: ignore[operator]
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["formatVersion"] == 1


def test_json_is_stable_and_sorted() -> None:
    text = render_json(rich())
    assert text == render_json(rich())
    assert list(json.loads(text)) == sorted(json.loads(text))


def test_huge_plan_markdown_stays_under_the_comment_limit() -> None:
    long_text = "x" * 3000
    accounts = [
        account(
            f"acct{n:04d}",
            profile={
                F.NAME: f"Account {n}",
                F.INTRODUCTION: long_text[:400],
                F.CUSTOM_STRING: long_text,
                F.FACE_URL: long_text[:500],
            },
            members=[f"u{n:04d}_{i:03d}" for i in range(30)],
        )
        for n in range(1500)
    ]
    users = [u for a in accounts for u in (a.subscribers.members if a.subscribers else ())]
    plan = make(desired(*accounts, users=users), live(users=[*users, "ops_admin"]))
    text = render_markdown(plan)
    assert len(text) < GITHUB_COMMENT_LIMIT
    assert "more accounts are not shown to stay under GitHub's comment limit" in text
    assert text.splitlines()[-1] == BLIND_SPOT and plan.cost.describe() in text.splitlines()[-4]
    assert len(render_markdown(plan, limit=20_000)) < 20_000


def test_huge_membership_is_one_attribute() -> None:
    users = [f"user{i:06d}" for i in range(100_000)]
    plan = make(
        desired(account("big", members=users), users=users), live(users=[*users, "ops_admin"])
    )
    text = render_text(plan)
    assert len(text) < 4000
    assert "+ subscribers: 100,000 to add: user000000, user000001," in text
    assert len(render_markdown(plan)) < 5000
    assert len(render_json(plan)) < 8000
    assert len(list(members_ndjson(plan))) == 100_000


def test_show_all_lists_every_id() -> None:
    text = render_text(rich(), show_all=True)
    for n in range(14):
        assert f"    +   staff{n:02d}\n" in text
    data = plan_data(rich(), show_all=True)
    add = next(c for c in data["changes"] if c["type"] == "addSubscribers")
    assert len(add["users"]) == 16
    markdown = render_markdown(rich(), show_all=True)
    assert all(f"staff{n:02d}" in markdown for n in range(14))
    assert "staff13" not in render_markdown(rich())


def test_no_secret_appears_in_any_output_or_plan_file() -> None:
    for plan in (rich(PROD), broken()):
        outputs = [
            render_text(plan),
            render_text(plan, color=True, show_all=True),
            render_markdown(plan),
            render_json(plan),
            render_json(plan, show_all=True),
            "".join(members_ndjson(plan)),
            dump_plan(plan),
        ]
        for text in outputs:
            assert PROD_SECRET not in text
            assert WECHAT_SECRET not in text
        assert "1400123456" in outputs[0] and "wx1234567890abcdef" in outputs[0]


def test_long_lists_in_markdown_are_summarised() -> None:
    orphans = [
        live_account(f"orphan{n:02d}", owned_by=account(f"orphan{n:02d}")) for n in range(25)
    ]
    text = render_markdown(make(desired(), live(*orphans)))
    assert "- @TOA#_orphan19: owned but no longer declared: would destroy with --prune\n" in text
    assert "- @TOA#_orphan20" not in text
    assert "- … and 5 more (see the text plan)\n" in text
    problems = [account(f"p{n:02d}", owner="ghost") for n in range(21)]
    assert "- … and 1 more (see the text plan)\n" in render_markdown(
        make(desired(*problems), live())
    )
    removals = [account(f"r{n:02d}", members=[], policy=SubscriberPolicy.EXACT) for n in range(21)]
    state = live(
        *(live_account(f"r{n:02d}", members=["a", "b"], owned_by=a) for n, a in enumerate(removals))
    )
    text = render_markdown(make(desired(*removals), state))
    assert "- … and 2 more\n" in text  # 21 per-account percent violations and 1 in total


def test_bookkeeping_only_plan_says_so() -> None:
    before = account("news", profile={F.NAME: "News"})
    # the manifest now also sets a field to the value it already has: only the record changes
    now = account("news", profile={F.NAME: "News", F.INTRODUCTION: ""})
    plan = make(desired(now), live(live_account("news", profile={F.NAME: "News"}, owned_by=before)))
    assert plan.has_changes and not plan.resource_changes
    text = render_text(plan)
    assert text.splitlines()[2:4] == [
        "Inventory records to update (bookkeeping only): 1: @TOA#_news",
        "No changes to accounts, subscribers or users; apply only updates this repo's inventory"
        " records.",
    ]
    assert "#### No changes to accounts, subscribers or users;" in render_markdown(plan)


def test_a_protect_change_is_shown_under_its_account_not_as_bookkeeping() -> None:
    before = account("news", profile={F.NAME: "News"})
    now = account("news", profile={F.NAME: "News"}, protect=True)
    plan = make(desired(now), live(live_account("news", owned_by=before)))
    assert plan.has_changes and not plan.resource_changes
    assert render_text(plan).splitlines()[2:6] == [
        "~ account @TOA#_news will be updated in place (this repo's inventory record only)",
        "    ~ protect: false → true",
        "",
        "No changes to accounts, subscribers or users; apply only updates this repo's inventory"
        " records.",
    ]
