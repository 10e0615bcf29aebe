"""End-to-end scenarios of issue 5: apply through the real CLI against a sandbox served over real
HTTP — membership churn, saved plans (fresh, stale, tampered, applied twice), safety refusals and
their exact overrides, confirmation without a terminal, and a partial apply whose next plan holds
exactly the remainder. Final state is read back with raw vendor calls.
"""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
import time

import pytest
from test_e2e_common import (
    ENV,
    INVENTORY,
    Project,
    Vendor,
    account_doc,
    apply,
    assert_lines,
    config_text,
    converged,
    no_changes,
    summary,
    users,
)

from reconciler.config import TencentTarget
from reconciler.lock import lock_path
from reconciler.secret import Secret


def member_file(project: Project, name: str, members: list[str]) -> None:
    project.write(f"m/{name}", "".join(m + "\n" for m in members))


def set_doc(name: str, files: list[str]) -> str:
    body = {
        "apiVersion": "reconciler/v1",
        "kind": "SubscriberSet",
        "metadata": {"name": name},
        "spec": {"files": files},
    }
    return json.dumps(body)


USERS_OF_SET = (
    "apiVersion: reconciler/v1\nkind: UserAccounts\nmetadata: {name: staff-users}\n"
    "spec: {sets: [staff], members: [ops_admin]}"
)


def test_membership_churn_exact_in_batches(project: Project, vendor: Vendor) -> None:
    first = [f"u{i:03d}" for i in range(250)]
    member_file(project, "staff.txt", first)
    news = account_doc("news", name="News", subscribers={"policy": "exact", "sets": ["staff"]})
    project.manifests(news, set_doc("staff", ["staff.txt"]), USERS_OF_SET)
    result = apply(project)
    assert result.code == 0, result.text
    assert summary(result) == (
        "Applied: 1 created, 0 adopted, 0 modified, 250 subscribers added, 0 removed,"
        " 0 subscriber profiles set, 251 users imported, 0 destroyed; 0 failed, 0 skipped"
    )
    assert vendor.members("@TOA#_news") == set(first)
    converged(project)
    # 120 leave, 130 join: removals are 48% of the account, over the 10% threshold
    second = first[120:] + [f"v{i:03d}" for i in range(130)]
    member_file(project, "staff.txt", second)
    plan = project.cli("plan", "m", "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert_lines(
        plan,
        "+ users to import: 130",
        "~ account @TOA#_news will be updated in place",
        "    + subscribers: 130 to add: v000, v001, v002, v003, v004, v005, v006, v007, v008,"
        " v009, … (120 more)",
        "    - subscribers: 120 to remove, exact: u000, u001, u002, u003, u004, u005, u006, u007,"
        " u008, u009, … (110 more)",
        "  maxSubscriberRemovalPercent: 48.0% of subscribers removed on @TOA#_news, over 10%"
        " (to allow it: --allow-removals 120)",
    )
    refused = apply(project, "--allow-removals", "119")
    assert refused.code == 1
    assert refused.err == (
        "error: the plan breaks the safety rules, nothing was applied:\n"
        "  allowRemovals: 120 subscriber removals in total, over 119"
        " (to allow it: --allow-removals 120)\n"
    )
    assert vendor.members("@TOA#_news") == set(first)
    before = vendor.log()
    result = apply(project, "--allow-removals", "120", "--verify", "full")
    assert result.code == 0, result.text
    assert_lines(
        result,
        "Safety: apply will refuse this plan unless overridden (1):",
        "Safety: overridden by --allow-removals 120.",
    )
    assert summary(result) == (
        "Applied: 0 created, 0 adopted, 0 modified, 130 subscribers added, 120 removed,"
        " 0 subscriber profiles set, 130 users imported, 0 destroyed; 0 failed, 0 skipped"
    )
    calls = [e["api"].rsplit("/", 1)[1] for e in vendor.log()[len(before) :]]
    assert vendor.members("@TOA#_news") == set(second)
    # at most 100 per membership call (reference 5.6): 2 adds and 2 removals
    assert calls.count("add_subscriber") == 2
    assert calls.count("delete_subscriber") == 2
    # --verify full re-reads the changed membership after the last write (2 pages of 200)
    last_write = max(i for i, c in enumerate(calls) if c.endswith("_subscriber"))
    assert calls[last_write + 1 :] == [
        "get_official_account_info",
        "get_subscriber_info",
        "get_subscriber_info",
    ]
    converged(project)


def test_force_lifts_every_threshold_but_never_protect(project: Project, vendor: Vendor) -> None:
    keep = account_doc("keep", name="Keep", subscribers={"policy": "exact", "members": ["a"]})
    old = account_doc("old", name="Old")
    vault = account_doc("vault", name="Vault", protect=True)
    project.manifests(keep, old, vault, users("ops_admin", "a", "b"))
    assert apply(project).code == 0
    vendor.add("@TOA#_keep", "b")
    project.manifests(keep, users("ops_admin", "a", "b"))
    refused = apply(project, "--prune")
    assert refused.code == 1
    assert refused.err == (
        "error: the plan breaks the safety rules, nothing was applied:\n"
        "  maxDestroys: 1 destroy in total, over 0 (to allow it: --allow-destroys 1)\n"
        "  maxSubscriberRemovalPercent: 50.0% of subscribers removed on @TOA#_keep, over 10%"
        " (to allow it: --allow-removals 1)\n"
    )
    result = apply(project, "--prune", "--force")
    assert result.code == 0, result.text
    assert "Safety: overridden by --force." in result.lines
    assert vendor.account("@TOA#_old") is None
    assert vendor.account("@TOA#_vault") is not None
    assert vendor.members("@TOA#_keep") == {"a"}
    no_changes(project.cli("plan", "m", "--prune", "--detailed-exitcode"))


NEWS = account_doc(
    "news", name="News", subscribers={"members": ["alice"], "profiles": {"alice": "vip"}}
)


def test_saved_plan_is_applied_as_made(project: Project, vendor: Vendor) -> None:
    project.manifests(NEWS, users("ops_admin", "alice"))
    plan = project.cli("plan", "m", "--out", "p.json")
    assert plan.code == 0, plan.text
    # the manifests change after the plan: the saved plan is what is applied
    project.manifests(account_doc("news", name="Other"), users("ops_admin"))
    result = project.cli("apply", "p.json")
    assert result.code == 0, result.text
    assert summary(result).startswith("Applied: 1 created,")
    assert vendor.profile("@TOA#_news")["Name"] == "News"
    assert vendor.subscribers("@TOA#_news") == {"alice": "vip"}
    project.manifests(NEWS, users("ops_admin", "alice"))
    converged(project)


def test_saved_plan_applied_twice_is_refused_the_second_time(
    project: Project, vendor: Vendor
) -> None:
    project.manifests(NEWS, users("ops_admin", "alice"))
    assert project.cli("plan", "m", "--out", "p.json").code == 0
    assert project.cli("apply", "p.json").code == 0
    before = vendor.effects()
    again = project.cli("apply", "p.json")
    assert again.code == 1
    assert again.err == (
        # the slot the plan claimed was destroyed by its apply: as the plan read it
        "error: stale plan: 1 account(s) changed since the plan was made: @TOA#_news (created);"
        " make the plan again\n"
    )
    assert vendor.effects() == before


def test_stale_saved_plan_names_the_account_and_applies_nothing(
    project: Project, vendor: Vendor
) -> None:
    other = account_doc("other", name="Other")
    project.manifests(NEWS, other, users("ops_admin", "alice", "eve"))
    assert apply(project).code == 0
    project.manifests(
        account_doc("news", name="News 2", subscribers={"members": ["alice"]}),
        account_doc("other", name="Other 2"),
        users("ops_admin", "alice", "eve"),
    )
    assert project.cli("plan", "m", "--out", "p.json").code == 0
    vendor.add("@TOA#_news", "eve")  # by hand, between plan and apply
    before = vendor.effects()
    stale = project.cli("apply", "p.json")
    assert stale.code == 1
    assert stale.err == (
        "error: stale plan: 1 account(s) changed since the plan was made:"
        " @TOA#_news (subscribers 2 → 3);"
        " make the plan again\n"
    )
    assert vendor.effects() == before
    assert vendor.profile("@TOA#_other")["Name"] == "Other"


def test_stale_saved_plan_when_the_mass_speed_changed(project: Project, vendor: Vendor) -> None:
    speed = "apiVersion: reconciler/v1\nkind: MassSpeed\nmetadata: {name: wx}\nspec: {speed: 4}"
    project.manifests(speed)
    assert project.cli("plan", "m", "--out", "p.json").code == 0
    vendor.set_speed(1)
    stale = project.cli("apply", "p.json")
    assert stale.code == 1
    assert stale.err == (
        "error: stale plan: the mass speed changed since the plan was made (0 → 1);"
        " make the plan again\n"
    )
    assert vendor.speed() == 1


def test_tampered_saved_plan_is_refused(project: Project, vendor: Vendor) -> None:
    project.manifests(NEWS, users("ops_admin", "alice"))
    assert project.cli("plan", "m", "--out", "p.json").code == 0
    text = (project.root / "p.json").read_text(encoding="utf-8")
    assert text.count('"News"') == 1
    project.write("p.json", text.replace('"News"', '"Hacked"'))
    refused = project.cli("apply", "p.json")
    assert refused.code == 1
    assert refused.err == (
        "error: p.json was modified after it was written (integrity digest mismatch);"
        " make the plan again\n"
    )
    project.write("p.json", text[: len(text) // 2])
    assert project.cli("apply", "p.json").code == 1
    assert vendor.account("@TOA#_news") is None
    assert vendor.effects() == {}  # not even a user import


def test_saved_plan_over_the_thresholds_needs_the_exact_override(
    project: Project, vendor: Vendor
) -> None:
    exact = account_doc("news", name="News", subscribers={"policy": "exact", "members": ["a"]})
    project.manifests(exact, users("ops_admin", "a", "b", "c"))
    assert apply(project).code == 0
    vendor.add("@TOA#_news", "b", "c")
    assert project.cli("plan", "m", "--out", "p.json").code == 0
    refused = project.cli("apply", "p.json", "--allow-removals", "1")
    assert refused.code == 1
    assert "allowRemovals: 2 subscriber removals in total, over 1" in refused.err
    assert vendor.members("@TOA#_news") == {"a", "b", "c"}
    result = project.cli("apply", "p.json", "--allow-removals", "2")
    assert result.code == 0, result.text
    assert vendor.members("@TOA#_news") == {"a"}
    converged(project)


def test_apply_without_a_terminal_or_auto_approve_refuses(project: Project, vendor: Vendor) -> None:
    """With no answer on stdin (closed or empty), apply refuses; `yes` from a pipe applies, as
    Terraform's `echo yes | terraform apply` does (issue 14)."""
    project.manifests(NEWS, users("ops_admin", "alice"))
    refused = project.run("apply", "m", stdin="")
    assert refused.code == 1
    assert refused.err == (
        "error: apply needs confirmation and standard input gave no answer (closed or empty):"
        " review the plan and answer 'yes', or pass --auto-approve (nothing was applied)\n"
    )
    assert "+ account @TOA#_news will be created" in refused.lines  # the plan was shown
    assert vendor.effects() == {}
    piped = project.run("apply", "m", stdin="yes\n")
    assert piped.code == 0, piped.text
    assert vendor.profile("@TOA#_news")["Name"] == "News"
    converged(project)


def test_partial_apply_exits_3_and_the_next_plan_holds_exactly_the_rest(
    project: Project, vendor: Vendor
) -> None:
    """A user deleted by hand between `plan --out` and `apply`: its subscription fails per item
    (add_subscriber Result 0), everything else is applied, and the next plan is the remainder."""
    news = account_doc("news", name="News", subscribers={"members": ["alice", "bob"]})
    project.manifests(account_doc("news", name="News"), users("ops_admin", "alice", "bob"))
    assert apply(project).code == 0
    project.manifests(news, users("ops_admin", "alice", "bob"))
    assert project.cli("plan", "m", "--out", "p.json").code == 0
    vendor.delete_users("bob")
    partial = project.cli("apply", "p.json")
    assert partial.code == 3, partial.text
    assert_lines(
        partial,
        "@TOA#_news                  2       1        0",
        "failed  @TOA#_news: add subscriber bob: add_subscriber result 0 for bob",
        "Partly applied: run plan again to see exactly what remains.",
    )
    assert vendor.members("@TOA#_news") == {"alice"}
    rest = project.cli("plan", "m", "--detailed-exitcode")
    assert rest.code == 2, rest.text
    assert_lines(
        rest,
        "+ users to import: 1",
        "    bob",
        "~ account @TOA#_news will be updated in place",
        "    + subscribers: 1 to add: bob",
        "Plan: 0 to create, 0 to modify, 0 to destroy, 0 to adopt; subscribers: 1 to add,"
        " 0 to remove; 1 user to import.",
    )
    assert apply(project).code == 0
    assert vendor.members("@TOA#_news") == {"alice", "bob"}
    converged(project)


@pytest.mark.parametrize(("answer", "code"), [("yes", 0), ("no", 1)])
def test_apply_on_a_terminal_asks_and_only_yes_applies(
    project: Project, vendor: Vendor, answer: str, code: int
) -> None:
    project.manifests(NEWS, users("ops_admin", "alice"))
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", "m"],
            cwd=project.root,
            env={**os.environ, **ENV, "NO_COLOR": "1"},
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(leader, f"{answer}\n".encode())
        out, err = process.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert process.returncode == code, out + err
    assert "Do you want to perform these actions? Only 'yes' will be accepted." in out
    if answer == "yes":
        assert vendor.profile("@TOA#_news")["Name"] == "News"
        converged(project)
    else:
        assert err == "error: apply cancelled, nothing was applied\n"
        assert vendor.account("@TOA#_news") is None


def test_a_failed_create_skips_what_depends_on_it_and_not_the_other_accounts(
    project: Project, vendor: Vendor
) -> None:
    """The owner is deleted by hand between `plan --out` and `apply`: the create fails with the
    vendor's code, that account's members, profiles and record are skipped, the other account is
    applied (exit 3), and the next plan is exactly what is left."""
    people = users("boss", "ops_admin", "alice")
    project.manifests(people)
    assert apply(project).code == 0
    news = account_doc(
        "news",
        owner="boss",
        name="News",
        subscribers={"members": ["alice"], "profiles": {"alice": "vip"}},
    )
    sports = account_doc("sports", name="Sports", subscribers={"members": ["alice"]})
    project.manifests(news, sports, people)
    assert project.cli("plan", "m", "--out", "p.json").code == 0
    vendor.delete_users("boss")
    partial = project.cli("apply", "p.json")
    assert partial.code == 3, partial.text
    assert_lines(
        partial,
        "account               applied  failed  skipped",
        "(users and settings)        1       0        0",
        "@TOA#_news                  0       1        3",
        "@TOA#_sports                3       0        0",
        "failed  @TOA#_news: createAccount: tencent (create_official_account) on @TOA#_news:"
        " Owner_Account has not been imported [vendor code 70107]",
        "skipped @TOA#_news: addSubscribers: the account was not created",
        "skipped @TOA#_news: setSubscriberProfiles: the account was not created",
        "skipped @TOA#_news: record: the account was not created",
        "Partly applied: run plan again to see exactly what remains.",
    )
    assert vendor.account("@TOA#_news") is None
    assert vendor.members("@TOA#_sports") == {"alice"}
    rest = project.cli("plan", "m", "--detailed-exitcode")
    assert rest.code == 2, rest.text
    assert_lines(
        rest,
        "+ users to import: 1",
        "    boss",
        "+ account @TOA#_news will be created",
        "Plan: 1 to create, 0 to modify, 0 to destroy, 0 to adopt; subscribers: 1 to add,"
        " 0 to remove; 1 subscriber profile to set; 1 user to import.",
    )
    assert "@TOA#_sports" not in rest.out
    assert apply(project).code == 0
    assert vendor.subscribers("@TOA#_news") == {"alice": "vip"}
    converged(project)


def test_a_second_apply_on_the_same_target_refuses_while_the_first_runs(
    project: Project, vendor: Vendor
) -> None:
    """Two applies would read the same state and plan the same creates: the second refuses at
    once, before reading (lock.py); the first finishes and the state converges."""
    members = [f"p{i:02d}" for i in range(40)]
    slow = account_doc(
        "news",
        name="News",
        subscribers={"members": members, "profiles": {m: "x" for m in members}},
    )
    project.manifests(slow, users("ops_admin", *members))
    project.write(
        "slow.yaml", config_text(project.base_url, limits={"callsPerSecond": 20, "concurrency": 2})
    )
    target = TencentTarget("local", project.base_url, 1400000000, "administrator", Secret("k"))
    lock = lock_path(target)  # per user, keyed by SDKAppID and endpoint (reconciler/lock.py)
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "apply",
            "m",
            "--auto-approve",
            "--config",
            "slow.yaml",
        ],
        cwd=project.root,
        env={**os.environ, **ENV},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        held = f"pid {first.pid} on {socket.gethostname()}\n"
        while not (lock.is_file() and lock.read_text().startswith(held)):
            assert time.monotonic() < deadline and first.poll() is None, "no lock taken"
            time.sleep(0.02)
        second = apply(project)
        assert second.code == 1
        assert second.out == ""
        assert second.err == (
            f"error: another reconciler run (pid {first.pid} on {socket.gethostname()}) holds"
            f" the lock on tencent 1400000000 {project.base_url}, retry when it finishes\n"
        )
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, out + err
    assert vendor.subscribers("@TOA#_news") == dict.fromkeys(members, "x")
    check_effects_once(vendor)
    converged(project)


def check_effects_once(vendor: Vendor) -> None:
    """Every state change in the call log happened once (nothing was done twice)."""
    effects = vendor.effects()
    assert [e for e, n in effects.items() if n > 1] == []


def test_saved_prune_plan_needs_its_exact_destroy_override(
    project: Project, vendor: Vendor
) -> None:
    news, old = account_doc("news", name="News"), account_doc("old", name="Old")
    project.manifests(news, old, users("ops_admin"))
    assert apply(project).code == 0
    project.manifests(news, users("ops_admin"))
    plan = project.cli("plan", "m", "--prune", "--out", "p.json")
    assert plan.code == 0, plan.text
    assert "- account @TOA#_old will be destroyed" in plan.lines
    refused = project.cli("apply", "p.json")
    assert refused.code == 1
    assert refused.err == (
        "error: the plan breaks the safety rules, nothing was applied:\n"
        "  maxDestroys: 1 destroy in total, over 0 (to allow it: --allow-destroys 1)\n"
    )
    flags = project.cli("apply", "p.json", "--prune")
    assert flags.code == 1
    assert flags.err == (
        "error: --selector, --exclude and --prune shape a plan; a saved plan is applied as made\n"
    )
    assert vendor.account("@TOA#_old") is not None
    result = project.cli("apply", "p.json", "--allow-destroys", "1")
    assert result.code == 0, result.text
    assert "Safety: overridden by --allow-destroys 1." in result.lines
    assert vendor.account("@TOA#_old") is None
    assert vendor.owned() == {"@TOA#_news"}
    no_changes(project.cli("plan", "m", "--prune", "--detailed-exitcode"))


def test_inventory_user_deleted_by_hand_is_recovered_by_adoption(
    project: Project, vendor: Vendor
) -> None:
    """Ownership lives in the inventory user's subscriptions (DESIGN section 5): deleted by hand,
    the declared accounts are found by id and adopted again; nothing else changes."""
    news = account_doc("news", name="News", subscribers={"members": ["alice"]})
    project.manifests(news, users("ops_admin", "alice"))
    assert apply(project).code == 0
    vendor.delete_users(INVENTORY)
    assert vendor.owned() == set()
    plan = project.cli("plan", "m", "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert "<= account @TOA#_news will be adopted into this repo's inventory" in plan.lines
    result = apply(project)
    assert result.code == 0, result.text
    assert summary(result) == (
        "Applied: 0 created, 1 adopted, 0 modified, 0 subscribers added, 0 removed,"
        " 0 subscriber profiles set, 0 users imported, 0 destroyed; 0 failed, 0 skipped"
    )
    assert vendor.owned() == {"@TOA#_news"}
    assert vendor.members("@TOA#_news") == {"alice"}
    converged(project)


def test_an_inventory_user_deleted_after_the_plan_stops_the_creates_before_they_are_sent(
    project: Project, vendor: Vendor
) -> None:
    """Deleted by hand after `plan --out`, the inventory user can own no ledger slot: the slot's
    create fails (reported once), so the account's create is not sent (an account created
    without a record anywhere could be lost by a kill): exit 1, nothing applied. The next plan
    imports the inventory user again and creates the account. (The inventory user's item failing
    in a new account's member batch, after its create: tests/test_apply.py.)"""
    vendor.import_users(INVENTORY, "ops_admin", "alice")
    news = account_doc("news", name="News", subscribers={"members": ["alice"]})
    project.manifests(news, users("ops_admin", "alice"))
    assert project.cli("plan", "m", "--out", "p.json").code == 0
    vendor.delete_users(INVENTORY)
    refused = project.cli("apply", "p.json")
    assert refused.code == 1, refused.text
    assert_lines(
        refused,
        "(inventory ledger)          0       1        0",
        "@TOA#_news                  0       0        3",
        "failed  (inventory ledger): ledger slot @TOA#_rcl-f60a3fdba772-0: tencent"
        " (create_official_account) on @TOA#_rcl-f60a3fdba772-0: Owner_Account has not been"
        " imported [vendor code 70107]",
        "skipped @TOA#_news: create: not sent: its inventory ledger slot could not be written"
        " (the next run retries)",
        "Nothing was applied.",
    )
    assert vendor.account("@TOA#_news") is None
    rest = project.cli("plan", "m", "--detailed-exitcode")
    assert rest.code == 2, rest.text
    assert "+ account @TOA#_news will be created" in rest.lines
    assert apply(project).code == 0
    assert vendor.owned() == {"@TOA#_news"}
    assert vendor.ledger() == {}  # the run's slot, holding nothing any more, was destroyed
    converged(project)
