"""`reconciler drift`: differences from git after out-of-band changes, and the ignore file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from plan_scenarios import (
    INVENTORY,
    SANDBOX,
    F,
    account,
    check_golden,
    desired,
    execute,
    live,
    on_sandbox,
    plan_on,
    simulate_apply,
)

from reconciler.diff import Diff, diff
from reconciler.drift import DriftItem, DriftReport, IgnoreEntry, build_drift, parse_ignore
from reconciler.errors import ConfigError
from reconciler.live import LiveState
from reconciler.model import DesiredState, SubscriberPolicy
from reconciler.providers import TencentClient, WeChatClient
from reconciler.read import read_live
from reconciler.render import render_drift_json, render_drift_markdown, render_drift_text
from reconciler.sandbox.server import Sandbox

TODAY = dt.date(2026, 11, 23)


def applied() -> tuple[DesiredState, LiveState]:
    """A project applied to an empty sandbox: the state drift starts from."""
    news = account(
        "news",
        profile={F.NAME: "Daily News", F.INTRODUCTION: "Morning"},
        members=["alice", "bob"],
        profiles={"alice": "vip"},
    )
    sports = account("sports", members=["alice", "carol"], policy=SubscriberPolicy.EXACT)
    d = desired(news, sports, users=["ops_admin", "alice", "bob", "carol"], speed=2)
    start = live(users=["ops_admin"])
    state = simulate_apply(diff(d, start, prune=False, inventory_user=INVENTORY).findings(), start)
    return d, state


def out_of_band(state: LiveState) -> LiveState:
    """What someone did by hand with vendor calls: edits, members, a profile, the speed."""
    accounts = dict(state.accounts)
    news, sports = accounts["@TOA#_news"], accounts["@TOA#_sports"]
    assert news.subscribers is not None and sports.subscribers is not None
    accounts["@TOA#_news"] = dataclasses.replace(
        news,
        profile={**news.profile, F.NAME: "Daily News!!", F.FACE_URL: "https://x/y.png"},
        subscribers=news.subscribers - {"bob"},
        subscriber_profiles={"alice": "regular"},
    )
    accounts["@TOA#_sports"] = dataclasses.replace(
        sports, subscribers=(sports.subscribers | {"eve", "zed"}) - {"carol"}
    )
    return dataclasses.replace(
        state, accounts=accounts, existing_users=state.existing_users | {"eve", "zed"}, mass_speed=0
    )


def changes(d: DesiredState, state: LiveState) -> Diff:
    return diff(d, state, prune=False, inventory_user=INVENTORY)


def test_no_drift_right_after_apply() -> None:
    d, state = applied()
    report = build_drift(changes(d, state), target=SANDBOX, today=TODAY)
    assert report.items == () and report.exit_code == 0
    assert render_drift_text(report) == (
        "Target: sandbox 'sandbox', embedded sandbox at .reconciler/sandbox.db\n\n"
        "No drift: the live system matches git.\n"
        "Blind spot: only accounts declared here or owned by this repo's inventory were read;"
        " other accounts of the app are invisible to this run.\n"
    )


def test_out_of_band_changes_are_reported_field_by_field() -> None:
    d, state = applied()
    report = build_drift(changes(d, out_of_band(state)), target=SANDBOX, today=TODAY)
    assert report.items == (
        DriftItem("@TOA#_news", "name", "Daily News", "Daily News!!"),
        DriftItem("@TOA#_news", "subscribers", removed_by_hand=frozenset({"bob"})),
        DriftItem("@TOA#_news", "subscriberProfiles", {"alice": "vip"}, {"alice": "regular"}),
        DriftItem(
            "@TOA#_sports",
            "subscribers",
            added_by_hand=frozenset({"eve", "zed"}),
            removed_by_hand=frozenset({"carol"}),
        ),
        DriftItem("MassSpeed/wechat-main", "speed", 2, 0),
    )  # faceUrl was never managed: not drift
    assert report.exit_code == 2


def test_deleted_account_orphan_and_missing_users_are_drift() -> None:
    d, state = applied()
    accounts = dict(state.accounts)
    del accounts["@TOA#_sports"]
    orphan = dataclasses.replace(accounts["@TOA#_news"], id="@TOA#_old")
    accounts["@TOA#_old"] = orphan
    moved = dataclasses.replace(
        state, accounts=accounts, existing_users=state.existing_users - {"carol"}
    )
    report = build_drift(changes(d, moved), target=SANDBOX, today=TODAY)
    assert [(i.account, i.field, i.git, i.live) for i in report.items] == [
        ("@TOA#_old", "account", "not declared", "exists"),
        ("@TOA#_sports", "account", "declared", "missing"),
        ("@TOA#_sports", "subscribers", None, None),
        ("UserAccounts", "users", None, None),
    ]
    assert report.items[3].removed_by_hand == {"carol"}


def ignore_file() -> list[IgnoreEntry]:
    return parse_ignore(
        {
            "ignore": [
                {
                    "account": "news",
                    "field": "name",
                    "reason": "marketing renames it for the campaign",
                    "owner": "alice",
                    "expires": dt.date(2026, 12, 31),
                },
                {
                    "account": "@TOA#_sports",
                    "field": "subscribers",
                    "reason": "support adds testers by hand",
                    "owner": "bob",
                    "expires": "2026-11-01",
                },
                {
                    "account": "MassSpeed/wechat-main",
                    "field": "speed",
                    "reason": "ops throttles during sales",
                    "owner": "carol",
                    "expires": dt.datetime(2026, 11, 23, 8, 0),
                },
            ]
        }
    )


def test_ignore_entries_silence_until_they_expire() -> None:
    d, state = applied()
    report = build_drift(
        changes(d, out_of_band(state)), target=SANDBOX, ignores=ignore_file(), today=TODAY
    )
    assert [(i.account, i.field) for i, _ in report.silenced] == [
        ("@TOA#_news", "name"),
        ("MassSpeed/wechat-main", "speed"),  # expires today: still silenced today
    ]
    assert [(i.account, i.field, i.note) for i in report.items] == [
        ("@TOA#_news", "subscribers", ""),
        ("@TOA#_news", "subscriberProfiles", ""),
        (
            "@TOA#_sports",
            "subscribers",
            "ignore entry expired: @TOA#_sports subscribers (owner bob, until 2026-11-01:"
            " support adds testers by hand)",
        ),
    ]
    assert [e.owner for e in report.expired] == ["bob"]
    tomorrow = build_drift(
        changes(d, out_of_band(state)),
        target=SANDBOX,
        ignores=ignore_file(),
        today=TODAY + dt.timedelta(days=1),
    )
    assert "MassSpeed/wechat-main" in {i.account for i in tomorrow.items}


def test_bad_ignore_files_report_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_ignore(
            [
                {"account": "news", "field": "name", "reason": "r", "owner": "o"},
                "news",
                {
                    "account": "news",
                    "field": "name",
                    "reason": "r",
                    "owner": "o",
                    "expires": "soon",
                },
                {
                    "account": "news",
                    "field": "name",
                    "reason": "r",
                    "owner": "o",
                    "expires": "2026-01-01",
                    "by": "x",
                },
            ],
            source="drift-ignore.yaml",
        )
    assert str(caught.value) == (
        "drift-ignore.yaml: entry 1: missing expires\n"
        "drift-ignore.yaml: entry 2: expected a mapping with account, field, reason, owner,"
        " expires\n"
        "drift-ignore.yaml: entry 3: expires 'soon' is not a date (YYYY-MM-DD)\n"
        "drift-ignore.yaml: entry 4: unknown key(s) by"
    )
    with pytest.raises(ConfigError, match="expected a list of entries"):
        parse_ignore("nope")
    assert parse_ignore(None) == [] and parse_ignore({"ignore": None}) == []


def test_problems_make_drift_an_error() -> None:
    d, state = applied()
    moved = dataclasses.replace(
        state,
        accounts={
            **state.accounts,
            "@TOA#_news": dataclasses.replace(state.accounts["@TOA#_news"], owner="someone"),
        },
    )
    report = build_drift(changes(d, moved), target=SANDBOX, today=TODAY)
    assert report.exit_code == 1
    assert render_drift_text(report).splitlines()[2] == (
        "Error: the drift check is incomplete (1 problem):"
    )


def drifted() -> DriftReport:
    d, state = applied()
    return build_drift(
        changes(d, out_of_band(state)), target=SANDBOX, ignores=ignore_file(), today=TODAY
    )


@pytest.mark.parametrize(
    ("name", "render"),
    [
        ("drift.txt", lambda: render_drift_text(drifted())),
        ("drift.md", lambda: render_drift_markdown(drifted())),
        ("drift.json", lambda: render_drift_json(drifted())),
    ],
)
def test_golden(name: str, render: object) -> None:
    check_golden(name, render())  # type: ignore[operator]


def test_drift_json_is_sorted_and_versioned() -> None:
    data = json.loads(render_drift_json(drifted()))
    assert data["formatVersion"] == 1 and data["drift"] is True
    assert list(data) == sorted(data)


def test_huge_drift_markdown_stays_under_the_comment_limit() -> None:
    items = tuple(
        DriftItem(f"@TOA#_a{n:05d}", "customString", "g" * 3000, "l" * 3000) for n in range(2000)
    )
    text = render_drift_markdown(DriftReport(SANDBOX, items))
    assert len(text) < 65536
    assert "more differences not shown" in text


def test_sandbox_drift_made_by_out_of_band_vendor_calls(sandbox: Sandbox) -> None:
    news = account(
        "news", profile={F.NAME: "Daily News"}, members=["alice", "bob"], profiles={"alice": "vip"}
    )
    sports = account("sports", members=["alice"], policy=SubscriberPolicy.EXACT)
    d = desired(news, sports, users=["ops_admin", "alice", "bob", "eve"], speed=2)

    async def report(im: TencentClient, wx: WeChatClient) -> DriftReport:
        state = await read_live(d, im, inventory_user=INVENTORY, mass=wx)
        return build_drift(changes(d, state), target=SANDBOX, today=TODAY)

    async def body(im: TencentClient, wx: WeChatClient) -> None:
        await execute(await plan_on(im, wx, d), im, wx)
        assert (await report(im, wx)).exit_code == 0
        # someone with the admin key, by hand:
        await im.modify_account(news.id, {F.NAME: "Daily News!!", F.FACE_URL: "https://x/y.png"})
        await im.remove_subscribers(news.id, ["bob"])
        await im.set_subscriber_profile(news.id, "alice", "regular")
        await im.add_subscribers(sports.id, ["eve"])
        await wx.set_mass_speed(4)
        drift = await report(im, wx)
        assert render_drift_text(drift).splitlines()[2:8] == [
            "Drift: 5 differences from git.",
            '  @TOA#_news name: git "Daily News", live "Daily News!!"',
            "  @TOA#_news subscribers: 1 removed by hand (bob)",
            '  @TOA#_news subscriberProfiles: git {"alice": "vip"}, live {"alice": "regular"}',
            "  @TOA#_sports subscribers: 1 added by hand (eve)",
            "  MassSpeed/wechat-main speed: git 2, live 4",
        ]
        assert drift.exit_code == 2

    on_sandbox(sandbox, body)
