"""The plan: batching and ids, cost, safety, digests and fingerprints, the saved-plan file."""

from __future__ import annotations

import json
import re

import pytest
from plan_scenarios import (
    INVENTORY,
    PROD,
    SANDBOX,
    F,
    account,
    desired,
    execute,
    live,
    live_account,
    on_sandbox,
    plan_on,
)

from reconciler.changes import Change, Notice, PlanProblem
from reconciler.config import Limits, Safety
from reconciler.diff import Diff, diff
from reconciler.errors import StalePlanError, UnsafePlanError
from reconciler.kinds.inventory import ImportInventoryUser
from reconciler.kinds.mass_speed import SetMassSpeed
from reconciler.kinds.official_account import (
    AddSubscribers,
    CreateAccount,
    DestroyAccount,
    FieldChange,
    ModifyAccount,
    ProfileChange,
    Record,
    RemoveSubscribers,
    SetSubscriberProfiles,
)
from reconciler.kinds.user_accounts import ImportUsers
from reconciler.live import LiveState
from reconciler.model import DesiredState, SubscriberPolicy
from reconciler.plan import Plan, desired_digest, plan_from_read
from reconciler.planfile import check_fresh, decode_change, dump_plan, load_plan, stale_accounts
from reconciler.providers import TencentClient, WeChatClient
from reconciler.providers.calls import (
    API_ADD,
    API_CREATE,
    API_DESTROY,
    API_INFO,
    API_MULTIACCOUNT_IMPORT,
    API_SUBSCRIBER_INFO,
)
from reconciler.read import read_live
from reconciler.record import record_for
from reconciler.render import render_json, render_markdown, render_text
from reconciler.safety import check_safety, evaluate_safety
from reconciler.sandbox import defaults
from reconciler.sandbox.server import Sandbox


def plan_for(d: DesiredState, state: LiveState, *, prune: bool = False, **kw: object) -> Plan:
    changes = diff(d, state, prune=prune, inventory_user=INVENTORY)
    return plan_from_read(changes, desired=d, live=state, target=SANDBOX, prune=prune, **kw)  # type: ignore[arg-type]


def test_memberships_are_batched_to_100_with_stable_ids() -> None:
    news = account("news", members=[f"u{i:03d}" for i in range(250)])
    plan = plan_for(desired(news, users=[f"u{i:03d}" for i in range(250)]), live())
    assert [(a.id, a.api, len(a.items)) for a in plan.actions] == [
        ("importUsers/-/0", API_MULTIACCOUNT_IMPORT, 100),
        ("importUsers/-/1", API_MULTIACCOUNT_IMPORT, 100),
        ("importUsers/-/2", API_MULTIACCOUNT_IMPORT, 50),
        # the inventory ledger's first slot, claimed to record the create before it is sent,
        # destroyed once it holds nothing
        ("ledgerWrite/0/create", API_CREATE, 0),
        ("ledgerWrite/0/subscribe", API_ADD, 0),
        ("ledgerWrite/0/rewrite", API_DESTROY, 0),
        ("createAccount/@TOA#_news/0", API_CREATE, 0),
        ("addSubscribers/@TOA#_news/0", API_ADD, 100),
        ("addSubscribers/@TOA#_news/1", API_ADD, 100),
        ("addSubscribers/@TOA#_news/2", API_ADD, 50),  # the inventory user rides in it
        ("record/@TOA#_news/write", API_SUBSCRIBER_INFO, 0),
        ("verify/-/0", API_INFO, 1),
    ]
    add = [a for a in plan.actions if a.id.startswith("addSubscribers")]
    assert add[0].items[:2] == ("u000", "u001") and add[2].items[-1] == "u249"


def test_verification_reads_are_batched_to_50() -> None:
    accounts = [account(f"a{n:02d}") for n in range(120)]
    plan = plan_for(desired(*accounts), live())
    verify = [a for a in plan.actions if a.api == API_INFO]
    assert [len(a.items) for a in verify] == [50, 50, 20]


def test_cost_line_matches_the_design_example() -> None:
    # DESIGN's example: 1 create + 2 bookkeeping + 1,236 add_subscriber batches + 1 verification
    # read = 1,240; plus the inventory ledger's first slot (create, subscribe, destroy) = 1,243.
    users = [f"u{i:06d}" for i in range(123_600)]
    plan = plan_for(desired(account("news", members=users)), live(users=[*users, "ops_admin"]))
    assert plan.cost.describe() == "Cost: ≈ 1,243 calls, ≈ 6.2 s at 200/s"
    assert plan.cost.calls == {
        API_CREATE: 2,
        API_ADD: 1238,
        API_DESTROY: 1,
        API_SUBSCRIBER_INFO: 1,
        API_INFO: 1,
    }


def test_cost_uses_the_vendor_ceiling_of_the_account_apis() -> None:
    users = [f"u{i:04d}" for i in range(1000)]
    plan = plan_for(desired(users=users), live(users=()), limits=Limits(calls_per_second=400))
    # 10 multiaccount_import calls at the vendor's 100/s, not the configured 400/s
    assert plan.cost.describe() == "Cost: ≈ 10 calls, ≈ 0.1 s at 400/s"


def test_read_calls_are_shown_when_the_reader_counted_them() -> None:
    state = live()
    state = LiveState(state.accounts, state.existing_users, read_calls={"x/y": 3, "x/z": 4})
    assert plan_for(desired(), state).cost.describe() == (
        "Cost: ≈ 0 calls, ≈ 0.0 s at 200/s (the read took 7 calls)"
    )


def removals(account_id: str, n: int, live_count: int) -> RemoveSubscribers:
    return RemoveSubscribers(account_id, frozenset(f"u{i}" for i in range(n)), live_count, "exact")


def destroy(account_id: str, *, protected: bool = False) -> DestroyAccount:
    return DestroyAccount(account_id, "ops_admin", 3, protected)


def test_safety_thresholds_per_account_and_in_total() -> None:
    safety = Safety(max_destroys=1, max_subscriber_removals=100, max_subscriber_removal_percent=10)
    changes = [
        removals("@TOA#_a", 60, 1000),
        removals("@TOA#_b", 150, 10_000),
        destroy("@TOA#_c"),
        destroy("@TOA#_d"),
    ]
    assert [str(v) for v in evaluate_safety(changes, safety)] == [
        "maxDestroys: 2 destroys in total, over 1 (to allow it: --allow-destroys 2)",
        "maxSubscriberRemovals: 150 subscriber removals on @TOA#_b, over 100"
        " (to allow it: --allow-removals 210)",
        "maxSubscriberRemovals: 210 subscriber removals in total, over 100"
        " (to allow it: --allow-removals 210)",
    ]
    assert [str(v) for v in evaluate_safety([removals("@TOA#_a", 20, 100)], safety)] == [
        "maxSubscriberRemovalPercent: 20.0% of subscribers removed on @TOA#_a, over 10%"
        " (to allow it: --allow-removals 20)"
    ]


def test_overrides_are_exact_not_blanket() -> None:
    changes = [removals("@TOA#_a", 1500, 2000), destroy("@TOA#_c")]
    safety = Safety()
    assert evaluate_safety(changes, safety, allow_removals=1500, allow_destroys=1) == []
    assert [
        v.rule for v in evaluate_safety(changes, safety, allow_removals=1499, allow_destroys=1)
    ] == ["allowRemovals"]
    assert [
        v.rule for v in evaluate_safety(changes, safety, allow_removals=1500, allow_destroys=0)
    ] == ["allowDestroys"]
    assert evaluate_safety(changes, safety, force=True) == []
    with pytest.raises(UnsafePlanError) as caught:
        check_safety(changes, safety)
    assert str(caught.value) == (
        "the plan breaks the safety rules, nothing was applied:\n"
        "  maxDestroys: 1 destroy in total, over 0 (to allow it: --allow-destroys 1)\n"
        "  maxSubscriberRemovals: 1,500 subscriber removals on @TOA#_a, over 1,000"
        " (to allow it: --allow-removals 1500)\n"
        "  maxSubscriberRemovalPercent: 75.0% of subscribers removed on @TOA#_a, over 10%"
        " (to allow it: --allow-removals 1500)"
    )
    check_safety(changes, safety, allow_removals=1500, allow_destroys=1)


def test_protect_is_never_overridden() -> None:
    violations = evaluate_safety([destroy("@TOA#_v", protected=True)], Safety(), force=True)
    assert [str(v) for v in violations] == [
        "@TOA#_v is protected and is never destroyed (no override)"
    ]


def test_plan_shows_safety_violations_but_is_still_a_plan() -> None:
    keep = account("news", members=["a"], policy=SubscriberPolicy.EXACT)
    state = live(live_account("news", members=["a", "b", "c"], owned_by=keep), users=["ops_admin"])
    plan = plan_for(desired(keep), state)
    assert [v.rule for v in plan.violations] == ["maxSubscriberRemovalPercent"]
    assert plan.has_changes


def test_desired_digest_changes_with_the_manifests() -> None:
    a = desired(account("news", members=["a"]), users=["a"], speed=1)
    assert desired_digest(a) == desired_digest(
        desired(account("news", members=["a"]), users=["a"], speed=1)
    )
    assert desired_digest(a) != desired_digest(
        desired(account("news", members=["a"]), users=["a"], speed=2)
    )
    assert desired_digest(a) != desired_digest(
        desired(account("news", members=["b"]), users=["a"], speed=1)
    )
    assert desired_digest(a) != desired_digest(
        desired(account("news", members=["a"]), users=["b"], speed=1)
    )


def sample() -> tuple[DesiredState, LiveState, Plan]:
    news = account("news", profile={F.NAME: "News", F.INTRODUCTION: "new"}, members=["a", "b"])
    d = desired(news, account("fresh"), users=["a", "b"], speed=2)
    state = live(
        live_account(
            "news",
            profile={F.NAME: "News", F.INTRODUCTION: "old"},
            members=["a", "z"],
            owned_by=news,
        ),
        live_account("gone", owned_by=account("gone")),
        users=["ops_admin", "a", "b"],
        speed=1,
    )
    return d, state, plan_for(d, state, prune=True)


def test_plan_file_round_trips_exactly() -> None:
    _, _, plan = sample()
    text = dump_plan(plan)
    loaded = load_plan(text)
    assert loaded == plan
    assert dump_plan(loaded) == text
    body = json.loads(text)["body"]
    assert sorted(body["fingerprints"]) == ["@TOA#_fresh", "@TOA#_gone", "@TOA#_news"]
    assert body["fingerprints"]["@TOA#_fresh"] is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('"old"', '"odd"', 1), "was modified after it was written"),
        (lambda t: t.replace("@TOA#_gone", "@TOA#_prod", 1), "was modified after it was written"),
        (lambda t: t[: len(t) // 2], "is not a reconciler plan (not JSON"),
        (lambda t: "[]", "is not a reconciler plan file"),
        (lambda t: t.replace('"formatVersion":1', '"formatVersion":9'), "has plan format 9"),
    ],
)
def test_an_edited_or_foreign_plan_file_is_refused(edit: object, message: str) -> None:
    _, _, plan = sample()
    text = dump_plan(plan)
    edited = edit(text)  # type: ignore[operator]
    assert edited != text
    with pytest.raises(StalePlanError, match=re.escape(message)):
        load_plan(edited, source="plan.json")


def test_a_plan_with_a_recomputed_digest_but_a_bad_body_is_still_refused() -> None:
    from reconciler.digest import json_digest

    _, _, plan = sample()
    document = json.loads(dump_plan(plan))
    document["body"]["changes"][0]["type"] = "launchMissiles"
    document["integrity"] = json_digest(document["body"])
    with pytest.raises(StalePlanError, match="is not a valid reconciler plan"):
        load_plan(json.dumps(document))


def test_fresh_plan_passes_and_stale_plan_names_the_accounts() -> None:
    d, state, plan = sample()
    check_fresh(plan, target=SANDBOX, live=state, desired=d)
    changed = dict(state.accounts)
    changed["@TOA#_news"] = live_account("news", profile={F.NAME: "Edited"}, members=["a", "z"])
    changed["@TOA#_fresh"] = live_account("fresh")
    moved = LiveState(changed, state.existing_users, mass_speed=1)
    assert stale_accounts(plan, moved) == ["@TOA#_fresh", "@TOA#_news"]
    with pytest.raises(StalePlanError) as caught:
        check_fresh(plan, target=SANDBOX, live=moved)
    assert str(caught.value) == (
        "stale plan: 2 account(s) changed since the plan was made: @TOA#_fresh (created),"
        " @TOA#_news (profile, subscribers 3 → 2);"
        " make the plan again"
    )
    speed = LiveState(state.accounts, state.existing_users, mass_speed=4)
    with pytest.raises(
        StalePlanError, match=r"the mass speed changed since the plan was made \(1 → 4\)"
    ):
        check_fresh(plan, target=SANDBOX, live=speed)


def test_plan_for_another_target_or_other_manifests_is_refused() -> None:
    _d, state, plan = sample()
    with pytest.raises(StalePlanError) as caught:
        check_fresh(plan, target=PROD, live=state)
    assert str(caught.value) == (
        "the plan was made for sandbox 'sandbox', embedded sandbox at .reconciler/sandbox.db, not"
        " for tencent 'prod', sdkappid 1400123456 at https://console.tim.qq.com, WeChat appid"
        " wx1234567890abcdef"
    )
    with pytest.raises(StalePlanError, match="the manifests changed"):
        check_fresh(plan, target=SANDBOX, live=state, desired=desired())


def test_summary_and_has_changes() -> None:
    _, _, plan = sample()
    assert plan.summary == {
        "adopt": 0,
        "create": 1,
        "modify": 1,
        "destroy": 1,
        "importUsers": 0,
        "subscribersAdded": 1,
        "subscribersRemoved": 0,
        "subscriberProfiles": 0,
        "massSpeed": 1,
        "records": 1,
    }
    assert plan.has_changes
    assert ImportUsers not in {type(c) for c in plan.changes}
    assert AddSubscribers in {type(c) for c in plan.changes}
    empty = plan_for(desired(), live())
    assert not empty.has_changes and empty.cost.total == 0


def every_change() -> list[Change]:
    return [
        ImportUsers(frozenset({"a", "b"})),
        ImportInventoryUser(INVENTORY),
        CreateAccount("@TOA#_n", "o", ((F.NAME, "N"), (F.MAX_SUBSCRIBER_NUM, 5))),
        Record("@TOA#_n", record_for(account("n", members=["a"])), subscribe=True, adopt=True),
        ModifyAccount(
            "@TOA#_n",
            (FieldChange(F.NAME, None, "N"), FieldChange(F.FACE_URL, "u", "", cleared=True)),
        ),
        AddSubscribers("@TOA#_n", frozenset({"a"})),
        SetSubscriberProfiles(
            "@TOA#_n", (ProfileChange("a", None, "v"), ProfileChange("b", "x", ""))
        ),
        RemoveSubscribers("@TOA#_n", frozenset({"c"}), 3, "absent"),
        DestroyAccount("@TOA#_o", "o", 4, protected=True),
        SetMassSpeed("main", None, 3),
        Notice("@TOA#_o", "kept", "orphan"),
        PlanProblem("@TOA#_p", "bad"),
    ]


def test_every_change_round_trips_through_its_data() -> None:
    for change in every_change():
        assert decode_change(json.loads(json.dumps(change.data))) == change


@pytest.mark.parametrize(
    "data",
    [
        {"type": "launchMissiles"},
        {"type": "importUsers", "users": "a"},
        {"type": "importUsers", "users": [1]},
        {"type": "record", "account": "x", "record": "garbled", "subscribe": True, "adopt": False},
        {
            "type": "modifyAccount",
            "account": "x",
            "fields": [{"field": "name", "old": None, "new": None, "cleared": False}],
        },
        {
            "type": "modifyAccount",
            "account": "x",
            "fields": [{"field": "name", "old": [], "new": "n", "cleared": False}],
        },
        {
            "type": "modifyAccount",
            "account": "x",
            "fields": [{"field": "nick", "old": None, "new": "n", "cleared": False}],
        },
    ],
)
def test_bad_change_data_is_refused(data: dict[str, object]) -> None:
    with pytest.raises((ValueError, KeyError)):
        decode_change(data)


def test_total_removal_percentage_over_several_accounts() -> None:
    safety = Safety(max_subscriber_removals=10_000, max_subscriber_removal_percent=10)
    changes = [
        removals("@TOA#_a", 9, 100),
        removals("@TOA#_b", 9, 100),
        removals("@TOA#_c", 50, 300),
    ]
    assert [str(v) for v in evaluate_safety(changes, safety)] == [
        "maxSubscriberRemovalPercent: 16.7% of subscribers removed on @TOA#_c, over 10%"
        " (to allow it: --allow-removals 68)",
        "maxSubscriberRemovalPercent: 13.6% of subscribers removed in total, over 10%"
        " (to allow it: --allow-removals 68)",
    ]


def test_plan_actions_for_bookkeeping_profiles_removals_destroys_and_speed() -> None:
    plan = plan_from_read(Diff.of(every_change()), desired=desired(), live=live(), target=SANDBOX)
    assert [a.id for a in plan.actions] == [
        "importInventoryUser/-/0",
        "importUsers/-/0",
        "createAccount/@TOA#_n/0",
        "modifyAccount/@TOA#_n/0",
        "addSubscribers/@TOA#_n/0",
        "setSubscriberProfiles/@TOA#_n/0",
        "setSubscriberProfiles/@TOA#_n/1",
        "removeSubscribers/@TOA#_n/0",
        "record/@TOA#_n/write",  # a new account's inventory subscription rides in its adds
        "destroyAccount/@TOA#_o/0",
        "setMassSpeed/-/0",
        "verify/-/0",
    ]
    assert [v.rule for v in plan.violations] == [
        "protect",
        "maxDestroys",
        "maxSubscriberRemovalPercent",
    ]


def test_exit_codes() -> None:
    _, _, plan = sample()
    assert (plan.exit_code(), plan.exit_code(detailed=True)) == (0, 2)
    empty = plan_for(desired(), live())
    assert (empty.exit_code(), empty.exit_code(detailed=True)) == (0, 0)
    broken = plan_for(desired(account("news", owner="ghost")), live())
    assert (broken.exit_code(), broken.exit_code(detailed=True)) == (1, 1)


def test_a_plan_whose_action_ids_do_not_match_is_refused() -> None:
    from reconciler.digest import json_digest

    _, _, plan = sample()
    document = json.loads(dump_plan(plan))
    document["body"]["actionIds"] = document["body"]["actionIds"][:-1]
    document["integrity"] = json_digest(document["body"])
    with pytest.raises(StalePlanError, match="batches differently"):
        load_plan(json.dumps(document))


# -- scenarios against the in-process sandbox: read → diff → plan, carried out, planned again ----

NEWS = account(
    "news",
    profile={F.NAME: "Daily News", F.INTRODUCTION: "Morning", F.CUSTOM_STRING: "tier=gold"},
    members=["alice", "bob"],
    profiles={"alice": "vip"},
    ignore=[F.CUSTOM_STRING],
)
SPORTS = account("sports", members=["alice", "carol"], policy=SubscriberPolicy.EXACT)
USERS = ["ops_admin", "alice", "bob", "carol"]


def kinds(plan: Plan) -> list[tuple[str, str]]:
    return [(c.kind, c.account) for c in plan.findings()]


def test_sandbox_fresh_project_then_no_changes(sandbox: Sandbox) -> None:
    d = desired(NEWS, SPORTS, users=USERS, speed=2)

    async def body(im: TencentClient, wx: WeChatClient) -> None:
        first = await plan_on(im, wx, d)
        assert kinds(first) == [
            ("importInventoryUser", ""),
            ("importUsers", ""),
            ("ledgerWrite", ""),
            ("createAccount", "@TOA#_news"),
            ("createAccount", "@TOA#_sports"),
            ("addSubscribers", "@TOA#_news"),
            ("addSubscribers", "@TOA#_sports"),
            ("setSubscriberProfiles", "@TOA#_news"),
            ("record", "@TOA#_news"),
            ("record", "@TOA#_sports"),
            ("setMassSpeed", ""),
        ]
        assert first.exit_code(detailed=True) == 2
        token = (await wx.access_token()).reveal()
        secrets = [defaults.SECRET_KEY, defaults.WECHAT_SECRET, token]
        for text in (
            render_text(first, show_all=True),
            render_markdown(first),
            render_json(first, show_all=True),
            dump_plan(first),
        ):
            assert not [s for s in secrets if s in text]
        await execute(first, im, wx)
        again = await plan_on(im, wx, d)
        assert again.changes == () and again.exit_code(detailed=True) == 0
        assert "No changes." in render_text(again)

    on_sandbox(sandbox, body)


def test_sandbox_manual_setup_that_matches_is_only_adopted(sandbox: Sandbox) -> None:
    d = desired(NEWS, users=USERS)

    async def body(im: TencentClient, wx: WeChatClient) -> None:
        await im.import_accounts([*USERS, INVENTORY])
        await im.create_account(NEWS.id, "ops_admin", NEWS.profile)
        await im.add_subscribers(NEWS.id, ["alice", "bob"])
        await im.set_subscriber_profile(NEWS.id, "alice", "vip")
        plan = await plan_on(im, wx, d)
        assert kinds(plan) == [("record", "@TOA#_news")]
        assert plan.summary["adopt"] == 1
        await execute(plan, im, wx)
        assert (await plan_on(im, wx, d)).changes == ()

    on_sandbox(sandbox, body)


def test_sandbox_field_changes_clears_ignore_changes_and_memberships(sandbox: Sandbox) -> None:
    async def body(im: TencentClient, wx: WeChatClient) -> None:
        await execute(await plan_on(im, wx, desired(NEWS, SPORTS, users=USERS)), im, wx)
        # the manifest drops `introduction`, changes the name and the custom string (ignored),
        # makes news exact with bob absent... and sports additive with carol absent
        news = account(
            "news",
            profile={F.NAME: "News", F.CUSTOM_STRING: "tier=silver"},
            members=["alice"],
            absent=["bob"],
            profiles={"alice": "vip+"},
            ignore=[F.CUSTOM_STRING],
        )
        sports = account("sports", members=["alice"], absent=["carol"])
        await im.modify_account(NEWS.id, {F.ORGANIZATION: "set by hand"})  # never managed
        plan = await plan_on(im, wx, desired(news, sports, users=USERS))
        assert [c for c in plan.changes if isinstance(c, ModifyAccount)] == [
            ModifyAccount(
                "@TOA#_news",
                (
                    FieldChange(F.NAME, "Daily News", "News"),
                    FieldChange(F.INTRODUCTION, "Morning", "", cleared=True),
                ),
            )
        ]
        assert [c for c in plan.changes if isinstance(c, RemoveSubscribers)] == [
            RemoveSubscribers("@TOA#_news", frozenset({"bob"}), 2, "absent"),
            RemoveSubscribers("@TOA#_sports", frozenset({"carol"}), 2, "absent"),
        ]
        await execute(plan, im, wx)
        assert (await plan_on(im, wx, desired(news, sports, users=USERS))).changes == ()
        info = (await im.get_accounts([NEWS.id]))[NEWS.id]
        assert (info.organization, info.custom_string) == ("set by hand", "tier=gold")

    on_sandbox(sandbox, body)


def test_sandbox_orphans_with_and_without_prune_and_protected(sandbox: Sandbox) -> None:
    vault = account("vault", protect=True)

    async def body(im: TencentClient, wx: WeChatClient) -> None:
        await execute(await plan_on(im, wx, desired(NEWS, SPORTS, vault, users=USERS)), im, wx)
        d = desired(NEWS, users=USERS)
        kept = await plan_on(im, wx, d)
        assert [str(n.message) for n in kept.notices] == [
            "owned but no longer declared: would destroy with --prune",
            "owned but no longer declared; protected: not destroyed",
        ]
        pruned = await plan_on(im, wx, d, prune=True)
        assert kinds(pruned) == [("destroyAccount", "@TOA#_sports"), ("notice", "@TOA#_vault")]
        assert [v.rule for v in pruned.violations] == ["maxDestroys"]
        await execute(pruned, im, wx)
        after = await plan_on(im, wx, d, prune=True)
        assert kinds(after) == [("notice", "@TOA#_vault")] and not after.has_changes

    on_sandbox(sandbox, body)


def test_sandbox_problems_are_listed_together(sandbox: Sandbox) -> None:
    async def body(im: TencentClient, wx: WeChatClient) -> None:
        await execute(await plan_on(im, wx, desired(SPORTS, users=USERS)), im, wx)
        ghost = account("ghost", owner="nobody", members=["alice", "zed"])
        moved = account("sports", owner="carol", members=["alice", "carol"])
        tiny = account(
            "tiny", profile={F.NAME: "T", F.MAX_SUBSCRIBER_NUM: 2}, members=["alice", "bob"]
        )
        plan = await plan_on(im, wx, desired(ghost, moved, tiny, users=USERS))
        assert [str(p) for p in plan.problems] == [
            "@TOA#_ghost: owner 'nobody' does not exist and is not declared in UserAccounts",
            "@TOA#_ghost: 1 subscriber(s) do not exist and are not declared in UserAccounts: zed",
            "@TOA#_sports: owner changed from 'ops_admin' to 'carol', but the vendor cannot change"
            " the owner of an existing account (reference section 4.2); declare a new account id"
            " with the new owner instead, e.g. '@TOA#_sports_v2'",
            "@TOA#_tiny: maxSubscriberNum 2 is below the declared membership: 3 subscribers after"
            " this plan (the inventory subscription included); raise maxSubscriberNum to at"
            " least 3",
        ]
        assert plan.exit_code() == 1

    on_sandbox(sandbox, body)


def test_sandbox_saved_plan_goes_stale_when_an_account_changes(sandbox: Sandbox) -> None:
    d = desired(NEWS, SPORTS, users=USERS)

    async def body(im: TencentClient, wx: WeChatClient) -> None:
        await execute(await plan_on(im, wx, desired(NEWS, users=USERS)), im, wx)
        saved = load_plan(dump_plan(await plan_on(im, wx, d)))
        fresh = await read_live(d, im, inventory_user=INVENTORY, mass=wx)
        check_fresh(saved, target=SANDBOX, live=fresh, desired=d)
        await im.add_subscribers(NEWS.id, ["carol"])  # by hand, after the plan was made
        await im.create_account(SPORTS.id, "ops_admin", SPORTS.profile)
        moved = await read_live(d, im, inventory_user=INVENTORY, mass=wx)
        with pytest.raises(StalePlanError) as caught:
            check_fresh(saved, target=SANDBOX, live=moved, desired=d)
        assert str(caught.value) == (
            "stale plan: 2 account(s) changed since the plan was made:"
            " @TOA#_news (subscribers 3 → 4), @TOA#_sports (created);"
            " make the plan again"
        )

    on_sandbox(sandbox, body)


def test_cost_runs_the_apis_of_a_phase_together_and_the_phases_in_turn() -> None:
    from reconciler.plan import Action, cost_of
    from reconciler.providers.calls import (
        API_ADD,
        API_DESTROY,
        API_MULTIACCOUNT_IMPORT,
        API_SUBSCRIBER_INFO,
    )

    adds = AddSubscribers("@TOA#_a", frozenset())
    profiles = SetSubscriberProfiles("@TOA#_a", ())
    users = ImportUsers(frozenset())
    destroy = DestroyAccount("@TOA#_d", "owner", 0)
    actions = (
        [Action(f"a{i}", API_ADD, adds) for i in range(400)]
        + [Action(f"p{i}", API_SUBSCRIBER_INFO, profiles) for i in range(300)]
        + [Action(f"u{i}", API_MULTIACCOUNT_IMPORT, users) for i in range(50)]
        + [Action(f"d{i}", API_DESTROY, destroy) for i in range(20)]
    )
    cost = cost_of(actions, Limits(calls_per_second=200), {})
    # accounts: adds and profiles together, 400 at 200/s; users: 50 at the vendor's 100/s;
    # destroy: 20 at 200/s
    assert cost.seconds == pytest.approx(2.0 + 0.5 + 0.1)
    assert cost.total == 770
