"""End-to-end scenarios of issue 4: plan, apply and drift through the real CLI (in-process
`cli.main`) against a sandbox served over real HTTP on 127.0.0.1, final state read back with raw
vendor calls. After every apply comes the Terraform acceptance check: a fresh
`plan --detailed-exitcode` exits 0.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import httpx
import jsonschema
import pytest
from test_e2e_common import (
    Project,
    Vendor,
    account_doc,
    apply,
    assert_lines,
    converged,
    no_changes,
    secrets_absent,
    summary,
    users,
)

from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.server import Sandbox, SandboxOptions

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SPEED = "apiVersion: reconciler/v1\nkind: MassSpeed\nmetadata: {name: wx}\nspec: {speed: %d}"


NEWS = account_doc(
    "news",
    name="Daily News",
    introduction="Morning headlines",
    faceUrl="https://example.com/news.png",
    organization="Example Media",
    customString="tier=gold",
    maxSubscriberNum=500,
    subscribers={"members": ["alice", "bob"], "profiles": {"alice": "vip"}},
)
NEWS_PROFILE = {
    "Owner_Account": "ops_admin",
    "Name": "Daily News",
    "Introduction": "Morning headlines",
    "FaceUrl": "https://example.com/news.png",
    "Organization": "Example Media",
    "CustomString": "tier=gold",
    "MaxSubscriberNum": 500,
}


def test_fresh_project_is_created_exactly_and_then_plans_no_changes(
    project: Project, vendor: Vendor
) -> None:
    project.manifests(NEWS, users("ops_admin", "alice", "bob", "carol"), SPEED % 3)
    plan = project.cli("plan", "m", "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert_lines(
        plan,
        "+ users to import: 4",
        "    alice, bob, carol, ops_admin",
        "+ account @TOA#_news will be created",
        '    + owner: "ops_admin"',
        '    + name: "Daily News"',
        "    + maxSubscriberNum: 500",
        "    + subscribers: 2 to add: alice, bob",
        "~ mass speed wx: 0 → 3",
        "Plan: 1 to create, 0 to modify, 0 to destroy, 0 to adopt; subscribers: 2 to add,"
        " 0 to remove; 1 subscriber profile to set; 4 users to import; mass speed to set.",
    )
    assert project.cli("plan", "m").code == 0  # changes, but no --detailed-exitcode
    before = len(vendor.log())
    result = apply(project)
    assert result.code == 0, result.text
    # the plan's cost is what apply called, endpoint by endpoint (reads aside)
    (per_endpoint,) = [x for x in plan.lines if x.startswith("  per endpoint: ")]
    planned = dict(
        (api, int(n)) for api, n in (p.rsplit(" ", 1) for p in per_endpoint[16:].split(", "))
    )
    made = Counter(e["api"].rsplit("/", 1)[1] for e in vendor.log()[before:])
    made["mass_speed_set"] = made.pop("set", 0)  # cgi-bin/message/mass/speed/set
    writes = {api: n for api, n in made.items() if api in planned and not api.startswith("get_")}
    assert writes == {api: n for api, n in planned.items() if not api.startswith("get_")}
    assert summary(result) == (
        "Applied: 1 created, 0 adopted, 0 modified, 2 subscribers added, 0 removed,"
        " 1 subscriber profile set, 4 users imported, 0 destroyed, mass speed set;"
        " 0 failed, 0 skipped"
    )
    assert vendor.profile("@TOA#_news") == NEWS_PROFILE
    assert vendor.subscribers("@TOA#_news") == {"alice": "vip", "bob": ""}
    assert vendor.owned() == {"@TOA#_news"}
    assert vendor.imported(["ops_admin", "alice", "bob", "carol"]) == dict.fromkeys(
        ["alice", "bob", "carol", "ops_admin"], True
    )
    assert vendor.speed() == 3
    converged(project)


def test_manual_setup_that_matches_is_adopted_without_touching_it(
    project: Project, vendor: Vendor
) -> None:
    vendor.import_users("ops_admin", "alice", "bob")
    vendor.create(
        "@TOA#_news",
        "ops_admin",
        "Daily News",
        Introduction="Morning headlines",
        FaceUrl="https://example.com/news.png",
        Organization="Example Media",
        CustomString="tier=gold",
        MaxSubscriberNum=500,
    )
    vendor.add("@TOA#_news", "alice", "bob")
    vendor.set_profile("@TOA#_news", "alice", "vip")
    before = vendor.effects()
    project.manifests(NEWS, users("ops_admin", "alice", "bob"))
    plan = project.cli("plan", "m", "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert_lines(
        plan,
        "<= account @TOA#_news will be adopted into this repo's inventory",
        "No changes to accounts, subscribers or users; apply only updates this repo's inventory"
        " records.",
    )
    result = apply(project)
    assert result.code == 0, result.text
    assert summary(result) == (
        "Applied: 0 created, 1 adopted, 0 modified, 0 subscribers added, 0 removed,"
        " 0 subscriber profiles set, 0 users imported, 0 destroyed; 0 failed, 0 skipped"
    )
    made = vendor.effects() - before
    # bookkeeping only: the inventory user, its subscription and record; the account untouched
    assert sorted(k[0] for k in made) == [
        "subscriber_added",
        "subscriber_modified",
        "user_imported",
    ]
    assert vendor.profile("@TOA#_news") == NEWS_PROFILE
    assert vendor.subscribers("@TOA#_news") == {"alice": "vip", "bob": ""}
    assert vendor.owned() == {"@TOA#_news"}
    converged(project)


def test_field_change_removed_field_cleared_and_unmanaged_field_kept(
    project: Project, vendor: Vendor
) -> None:
    first = account_doc(
        "news", name="Daily News", faceUrl="https://example.com/a.png", organization="Example"
    )
    project.manifests(first, users("ops_admin"))
    assert apply(project).code == 0
    # customString was never in the manifest: whoever sets it by hand keeps it
    vendor.modify("@TOA#_news", CustomString="set-by-hand")
    changed = account_doc("news", name="Daily Newz", organization="Example")
    project.manifests(changed, users("ops_admin"))
    plan = project.cli("plan", "m", "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert_lines(
        plan,
        "~ account @TOA#_news will be updated in place",
        '    ~ name: "Daily News" → "Daily Newz"',
        '    - faceUrl: "https://example.com/a.png" → "" (removed from the manifest)',
        "Plan: 0 to create, 1 to modify, 0 to destroy, 0 to adopt.",
    )
    assert "customString" not in plan.out
    result = apply(project)
    assert result.code == 0, result.text
    assert summary(result).startswith("Applied: 0 created, 0 adopted, 1 modified,")
    profile = vendor.profile("@TOA#_news")
    assert (profile["Name"], profile["FaceUrl"], profile["Organization"]) == (
        "Daily Newz",
        "",
        "Example",
    )
    assert profile["CustomString"] == "set-by-hand"
    converged(project)


def test_ignore_changes_sets_at_create_then_leaves_the_field_alone(
    project: Project, vendor: Vendor
) -> None:
    doc = account_doc(
        "weather", name="Weather", customString="feed=v1", ignoreChanges=["customString"]
    )
    project.manifests(doc, users("ops_admin"))
    assert apply(project).code == 0
    assert vendor.profile("@TOA#_weather")["CustomString"] == "feed=v1"
    vendor.modify("@TOA#_weather", CustomString="feed=v2")
    converged(project)
    assert project.cli("drift", "m").code == 0
    assert apply(project).code == 0
    assert vendor.profile("@TOA#_weather")["CustomString"] == "feed=v2"


def test_additive_keeps_hand_added_subscribers_exact_removes_them_absent_removes_named(
    project: Project, vendor: Vendor
) -> None:
    additive = account_doc(
        "add", name="A", subscribers={"members": ["alice"], "absent": ["mallory"]}
    )
    exact = account_doc("exact", name="E", subscribers={"policy": "exact", "members": ["alice"]})
    project.manifests(additive, exact, users("ops_admin", "alice", "eve", "mallory"))
    assert apply(project).code == 0
    vendor.add("@TOA#_add", "eve", "mallory")
    vendor.add("@TOA#_exact", "eve")
    plan = project.cli("plan", "m", "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert_lines(
        plan,
        "~ account @TOA#_add will be updated in place",
        "    - subscribers: 1 to remove, absent: mallory",
        "~ account @TOA#_exact will be updated in place",
        "    - subscribers: 1 to remove, exact: eve",
    )
    assert apply(project).code == 1  # 2 of 5 subscribers is over the 10% threshold
    assert apply(project, "--allow-removals", "1").code == 1
    result = apply(project, "--allow-removals", "2")
    assert result.code == 0, result.text
    assert summary(result).startswith(
        "Applied: 0 created, 0 adopted, 0 modified, 0 subscribers added, 2 removed,"
    )
    assert vendor.members("@TOA#_add") == {"alice", "eve"}
    assert vendor.members("@TOA#_exact") == {"alice"}
    converged(project)


def test_subscriber_profiles_are_set_and_restored(project: Project, vendor: Vendor) -> None:
    doc = account_doc(
        "news",
        name="News",
        subscribers={"members": ["alice", "bob"], "profiles": {"alice": "vip", "bob": "std"}},
    )
    project.manifests(doc, users("ops_admin", "alice", "bob"))
    assert apply(project).code == 0
    assert vendor.subscribers("@TOA#_news") == {"alice": "vip", "bob": "std"}
    vendor.set_profile("@TOA#_news", "alice", "regular")
    plan = project.cli("plan", "m", "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert_lines(
        plan,
        "~ account @TOA#_news will be updated in place",
        "    ~ subscriber profiles: 1 to set",
        '    ~   alice: "regular" → "vip"',
    )
    assert apply(project).code == 0
    assert vendor.subscribers("@TOA#_news") == {"alice": "vip", "bob": "std"}
    converged(project)


def test_orphans_kept_without_prune_destroyed_with_it_protected_never(
    project: Project, vendor: Vendor
) -> None:
    keep = account_doc("keep", name="Keep")
    old = account_doc("old", name="Old")
    vault = account_doc("vault", name="Vault", protect=True)
    project.manifests(keep, old, vault, users("ops_admin"))
    assert apply(project).code == 0
    project.manifests(keep, users("ops_admin"))
    plan = project.cli("plan", "m", "--detailed-exitcode")
    assert plan.code == 0, plan.text
    assert_lines(
        plan,
        "Notices:",
        "  @TOA#_old: owned but no longer declared: would destroy with --prune",
        "  @TOA#_vault: owned but no longer declared; protected: not destroyed",
        "No changes. The live system matches the manifests.",
    )
    pruned = project.cli("plan", "m", "--prune", "--detailed-exitcode")
    assert pruned.code == 2, pruned.text
    assert_lines(
        pruned,
        "- account @TOA#_old will be destroyed",
        "Plan: 0 to create, 0 to modify, 1 to destroy, 0 to adopt.",
        "Safety: apply will refuse this plan unless overridden (1):",
        "  maxDestroys: 1 destroy in total, over 0 (to allow it: --allow-destroys 1)",
    )
    refused = apply(project, "--prune")
    assert refused.code == 1
    assert refused.err == (
        "error: the plan breaks the safety rules, nothing was applied:\n"
        "  maxDestroys: 1 destroy in total, over 0 (to allow it: --allow-destroys 1)\n"
    )
    assert vendor.account("@TOA#_old") is not None
    result = apply(project, "--prune", "--allow-destroys", "1")
    assert result.code == 0, result.text
    assert vendor.account("@TOA#_old") is None
    assert vendor.account("@TOA#_vault") is not None
    assert vendor.owned() == {"@TOA#_keep", "@TOA#_vault"}
    converged(project, "--prune")


def test_missing_users_are_a_problem_unless_declared_then_imported(
    project: Project, vendor: Vendor
) -> None:
    doc = account_doc("news", name="News", subscribers={"members": ["alice", "ghost"]})
    project.manifests(doc, users("ops_admin", "alice"))
    plan = project.cli("plan", "m", "--detailed-exitcode")
    assert plan.code == 1, plan.text
    assert_lines(
        plan,
        "Error: this plan cannot be applied (1 problem):",
        "  @TOA#_news: 1 subscriber(s) do not exist and are not declared in UserAccounts: ghost",
    )
    refused = apply(project)
    assert refused.code == 1
    assert vendor.account("@TOA#_news") is None
    project.manifests(doc, users("ops_admin", "alice", "ghost"))
    assert apply(project).code == 0
    assert vendor.members("@TOA#_news") == {"alice", "ghost"}
    converged(project)


def test_owner_change_is_a_problem_and_changes_nothing(project: Project, vendor: Vendor) -> None:
    project.manifests(account_doc("news", name="News"), users("ops_admin", "other"))
    assert apply(project).code == 0
    project.manifests(
        account_doc("news", owner="other", name="News 2"), users("ops_admin", "other")
    )
    plan = project.cli("plan", "m", "--detailed-exitcode")
    assert plan.code == 1, plan.text
    assert (
        "  @TOA#_news: owner changed from 'ops_admin' to 'other', but the vendor cannot change"
        " the owner of an existing account (reference section 4.2); declare a new account id"
        " with the new owner instead, e.g. '@TOA#_news_v2'" in plan.lines
    )
    assert apply(project).code == 1
    assert vendor.profile("@TOA#_news")["Name"] == "News"


def test_max_subscriber_num_overflow_is_refused_before_any_call(
    project: Project, vendor: Vendor
) -> None:
    doc = account_doc(
        "small", name="Small", maxSubscriberNum=2, subscribers={"members": ["a1", "a2"]}
    )
    project.manifests(doc, users("ops_admin", "a1", "a2"))
    plan = project.cli("plan", "m")
    assert plan.code == 1, plan.text
    assert_lines(
        plan,
        "Error: this plan cannot be applied (1 problem):",
        "  @TOA#_small: maxSubscriberNum 2 is below the declared membership: 3 subscribers after"
        " this plan (the inventory subscription included); raise maxSubscriberNum to at least 3",
    )
    assert apply(project).code == 1
    assert vendor.account("@TOA#_small") is None


DRIFT_SET = (
    account_doc("news", name="Daily News", subscribers={"members": ["alice", "bob"]}),
    account_doc("ops", name="Ops", subscribers={"policy": "exact", "members": ["alice"]}),
    users("ops_admin", "alice", "bob", "eve"),
    SPEED % 2,
)


def ignore_file(expires: str) -> str:
    return (
        "ignore:\n"
        f"  - {{account: news, field: name, reason: campaign rename, owner: alice,"
        f" expires: {expires}}}\n"
        f"  - {{account: ops, field: subscribers, reason: testers, owner: bob,"
        f" expires: {expires}}}\n"
        f"  - {{account: news, field: subscribers, reason: churn, owner: bob,"
        f" expires: 2099-12-31}}\n"
        f"  - {{account: MassSpeed/wx, field: speed, reason: sales, owner: carol,"
        f" expires: 2099-12-31}}\n"
    )


def test_drift_by_vendor_calls_then_silenced_then_expired(project: Project, vendor: Vendor) -> None:
    project.manifests(*DRIFT_SET)
    assert apply(project).code == 0
    assert project.cli("drift", "m").code == 0
    vendor.modify("@TOA#_news", Name="Daily News!!")
    vendor.remove("@TOA#_news", "bob")
    vendor.add("@TOA#_ops", "eve")
    vendor.set_speed(0)
    before = vendor.effects()
    drift = project.cli("drift", "m")
    assert drift.code == 2, drift.text
    assert_lines(
        drift,
        "Drift: 4 differences from git.",
        '  @TOA#_news name: git "Daily News", live "Daily News!!"',
        "  @TOA#_news subscribers: 1 removed by hand (bob)",
        "  @TOA#_ops subscribers: 1 added by hand (eve)",
        "  MassSpeed/wx speed: git 2, live 0",
    )
    assert vendor.effects() == before  # drift never writes
    project.write("ignore.yaml", ignore_file("2099-12-31"))
    silenced = project.cli("drift", "m", "--ignore", "ignore.yaml")
    assert silenced.code == 0, silenced.text
    assert_lines(silenced, "Silenced by the ignore file: 4")
    project.write("ignore.yaml", ignore_file("2020-01-31"))
    expired = project.cli("drift", "m", "--ignore", "ignore.yaml")
    assert expired.code == 2, expired.text
    assert_lines(
        expired,
        "Drift: 2 differences from git.",
        '  @TOA#_news name: git "Daily News", live "Daily News!!" [ignore entry expired:'
        " @TOA#_news name (owner alice, until 2020-01-31: campaign rename)]",
        "  @TOA#_ops subscribers: 1 added by hand (eve) [ignore entry expired: @TOA#_ops"
        " subscribers (owner bob, until 2020-01-31: testers)]",
        "Silenced by the ignore file: 2",
        "Expired ignore entries (renew or remove them): 2",
    )
    # apply puts everything back; drift is clean again
    assert apply(project, "--allow-removals", "1").code == 0
    assert project.cli("drift", "m").code == 0
    assert vendor.profile("@TOA#_news")["Name"] == "Daily News"
    assert vendor.members("@TOA#_news") == {"alice", "bob"}
    assert vendor.members("@TOA#_ops") == {"alice"}
    assert vendor.speed() == 2


def test_selector_and_exclude_narrow_plan_and_apply(project: Project, vendor: Vendor) -> None:
    a = account_doc("a", name="A", labels={"team": "content"})
    b = account_doc("b", name="B", labels={"team": "platform"})
    project.manifests(a, b, users("ops_admin"))
    plan = project.cli("plan", "m", "--selector", "team=content")
    assert plan.code == 0, plan.text
    assert "+ account @TOA#_a will be created" in plan.lines
    assert "@TOA#_b" not in plan.out
    result = apply(project, "--exclude", "a")
    assert result.code == 0, result.text
    assert vendor.account("@TOA#_a") is None
    assert vendor.account("@TOA#_b") is not None
    # an excluded or unselected account is not an orphan either
    converged(project, "--exclude", "a", "--prune")
    converged(project, "--selector", "team=platform", "--prune")
    assert project.cli("plan", "m", "--detailed-exitcode").code == 2
    assert apply(project, "--selector", "team=content").code == 0
    converged(project)
    assert vendor.owned() == {"@TOA#_a", "@TOA#_b"}
    # an owned account left out by --exclude or --selector is out of scope, never an orphan
    converged(project, "--exclude", "a", "--prune")
    converged(project, "--selector", "team=content", "--prune")
    assert apply(project, "--selector", "team=platform", "--prune", "--force").code == 0
    assert vendor.owned() == {"@TOA#_a", "@TOA#_b"}


def test_json_and_markdown_outputs_parse_and_validate(project: Project, vendor: Vendor) -> None:
    project.manifests(NEWS, users("ops_admin", "alice", "bob"), SPEED % 1)
    plan = project.cli("plan", "m", "--format", "json")
    assert plan.code == 0, plan.text
    document = json.loads(plan.out)
    schema = json.loads((SCHEMAS / "plan.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(document, schema)
    assert document["formatVersion"] == 1
    markdown = project.cli("plan", "m", "--format", "markdown")
    assert markdown.code == 0
    assert markdown.lines[0].startswith("**Target: tencent 'local', sdkappid 1400000000 at ")
    assert "<details><summary><code>+ @TOA#_news</code> will be created</summary>" in (
        markdown.lines
    )
    assert markdown.out.count("```") % 2 == 0 and len(markdown.out) < 65536
    assert apply(project).code == 0
    vendor.modify("@TOA#_news", Name="Renamed")
    drift = project.cli("drift", "m", "--format", "json")
    assert drift.code == 2
    report = json.loads(drift.out)
    assert report["formatVersion"] == 1
    items = [(i["account"], i["field"], i["git"], i["live"]) for i in report["items"]]
    assert items == [("@TOA#_news", "name", "Daily News", "Renamed")]
    drift_md = project.cli("drift", "m", "--format", "markdown")
    assert drift_md.code == 2 and "Renamed" in drift_md.out


def test_no_secret_in_any_output_log_or_plan_file(project: Project, vendor: Vendor) -> None:
    project.manifests(NEWS, users("ops_admin", "alice", "bob"), SPEED % 1)
    outputs = []
    for fmt in ("text", "json", "markdown"):
        run = project.run("plan", "m", "--format", fmt, "--out", f"plan-{fmt}.json", "-vv")
        assert run.code == 0, run.text
        outputs += [run.out, run.err, (project.root / f"plan-{fmt}.json").read_text()]
    applied = project.run("apply", "plan-text.json", "-vv")
    assert applied.code == 0, applied.text
    vendor.modify("@TOA#_news", Name="Renamed")
    drift = project.run("drift", "m", "-vv")
    assert drift.code == 2
    broken = project.run("plan", "m", "--target", "nope")
    assert broken.code == 1
    outputs += [applied.out, applied.err, drift.out, drift.err, broken.err]
    assert any("DEBUG" in text for text in outputs)  # the logs were really on
    secrets_absent(outputs)


def test_a_vendor_error_during_the_read_is_one_clean_line(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong secret key: the vendor refuses the UserSig (not retried); plan, drift and apply
    say so in one line and exit 1 (it was reported as a bug, wrapped in an ExceptionGroup)."""
    project.manifests(NEWS, users("ops_admin", "alice", "bob"))
    monkeypatch.setenv("E2E_IM_KEY", "not-the-key")
    for command in (["plan", "m"], ["drift", "m"], ["apply", "m", "--auto-approve"]):
        result = project.cli(*command)
        assert result.code == 1, result.text
        assert result.out == ""
        assert result.err == (
            "error: tencent (get_subscribed_official_account_list) on reconciler-inventory:"
            " usersig verification failed [vendor code 70009]\n"
        )


def test_newcomer_examples_on_the_embedded_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DESIGN section 1: `reconciler apply examples/` on the embedded sandbox, then no changes,
    from the project's root and from inside `examples/` alike: the database is the one beside
    examples/reconciler.yaml, named by its absolute path (issue 14, item 8)."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    db = tmp_path.resolve() / "examples" / ".reconciler" / "sandbox.db"
    project = Project(tmp_path, "", db)
    result = project.cli("apply", "examples", "--auto-approve")
    assert result.code == 0, result.text
    assert result.lines[0] == f"Target: sandbox 'sandbox', embedded sandbox at {db}"
    assert summary(result) == (
        "Applied: 3 created, 0 adopted, 0 modified, 1,008 subscribers added, 0 removed,"
        " 4 subscriber profiles set, 1,005 users imported, 0 destroyed, mass speed set;"
        " 0 failed, 0 skipped"
    )
    no_changes(project.cli("plan", "examples", "--detailed-exitcode"))
    assert project.cli("drift", "examples").code == 0
    monkeypatch.chdir(tmp_path / "examples")
    inside = project.cli("plan", ".", "--detailed-exitcode")
    no_changes(inside)
    assert inside.lines[0] == f"Target: sandbox 'sandbox', embedded sandbox at {db}"
    assert not (tmp_path / "examples" / "examples").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples"]  # no second database
    box = Sandbox(SandboxOptions(db_path=project.db_path))
    try:
        with httpx.Client(transport=box.transport(), base_url="http://sandbox") as http:
            raw = SandboxClient(http, box.options)
            doc = raw.oa(
                "get_official_account_info",
                {"OfficialAccountIdList": [{"Official_Account": "@TOA#_ops-alerts"}]},
            )
            (info,) = doc["OfficialAccountInfoList"]
            assert (info["Name"], info["MaxSubscriberNum"], info["SubscriberNum"]) == (
                "Ops Alerts",
                50,
                5,  # four declared and the inventory user
            )
    finally:
        box.close()


def test_drift_on_a_fresh_project_reports_and_writes_nothing(
    project: Project, vendor: Vendor
) -> None:
    project.manifests(NEWS, users("ops_admin", "alice", "bob"))
    drift = project.cli("drift", "m")
    assert drift.code == 2, drift.text
    assert_lines(
        drift,
        "Drift: 4 differences from git.",
        '  @TOA#_news account: git "declared", live "missing"',
        "  @TOA#_news subscribers: 2 removed by hand (alice, bob)",
        '  @TOA#_news subscriberProfiles: git {"alice": "vip"}, live {"alice": null}',
        "  UserAccounts users: 3 removed by hand (alice, bob, ops_admin)",
    )
    assert vendor.effects() == {}


def test_mass_speed_without_wechat_credentials_is_a_problem_of_the_plan(
    project: Project, vendor: Vendor
) -> None:
    """It was planned as `~ mass speed wx: (unset) → 2`, then apply failed on it."""
    config = (project.root / "reconciler.yaml").read_text(encoding="utf-8")
    project.write("reconciler.yaml", config.split("    wechat:")[0])
    project.manifests(NEWS, users("ops_admin", "alice", "bob"), SPEED % 2)
    problem = (
        "  m/accounts.yaml:8:1: MassSpeed 'wx' is declared but target 'local' has no WeChat"
        " credentials (targets.local.wechat: appId, secret)"
    )
    for command in (["plan", "m"], ["drift", "m"], ["apply", "m", "--auto-approve"]):
        result = project.cli(*command)
        assert result.code == 1, result.text
        assert problem in result.lines
        assert "mass speed" not in result.out
    assert vendor.effects() == {}
