"""Crash consistency: `reconciler apply` SIGKILLed at seeded random points, then run again.

The kill points are counted in vendor calls, not seconds: the test follows the sandbox's call log
(`/__sandbox/log`) while the apply runs in a subprocess and kills it right after the k-th call it
made (k seeded), so the points spread over the read, the creates, the membership batches, the
subscriber profiles, the inventory records, the destroys and the mass speed whatever the machine's
speed. Every re-run must converge to exactly the manifests (raw vendor reads), a fresh plan must
say no changes, and the call log must show no account created twice and no subscriber added twice.

After every kill, every account on the vendor is owned by the inventory user, a slot of the
inventory ledger, or named in a slot (`reconciler/ledger.py`: creates are recorded before they are
sent); after every re-run, every account is owned or a slot: nothing is left unowned.

The orphan case gets its own tests: an account created but killed before its inventory record was
written is found and adopted by the next run, declared or not (a kill during a create whose
answer was never seen; then `--prune` destroys the leftover), and a run killed at each point of the
ledger's protocol (before the ledger write, between it and the create, between the create and the
inventory subscription, before the ledger's rewrite; a scripted vendor holds the chosen call) is
followed by a run that converges with nothing unowned, whether the account is still declared or
not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hostile_vendor import Call, Misbehave, hostile_vendor
from test_e2e_common import (
    ENV,
    INVENTORY,
    LEDGER_SLOT,
    Project,
    Vendor,
    account_doc,
    config_text,
    docs,
    no_changes,
    sandbox_options,
    unowned,
    unrecorded,
    users,
    vendor_accounts,
)
from test_e2e_faults import check_log, serving
from test_soak import clean_vendor, converge

from reconciler.sandbox.server import Sandbox

logger = logging.getLogger(__name__)

RUNS = int(os.environ.get("RECONCILER_CRASH_RUNS", "30"))
SEED = int(os.environ.get("RECONCILER_CRASH_SEED", "20261124"))
#: nightly: kills under faults too (the re-runs then apply again while they exit 1 or 3)
FAIL_RATE = os.environ.get("RECONCILER_CRASH_FAIL_RATE", "0")
PEOPLE = tuple(f"c{n:02d}" for n in range(16))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)  # re-runs and plans run in-process, for speed
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NO_COLOR", "1")
    return Project(root, "", tmp_path / "sandbox.db")


def wanted_in_round(round_: int, rng: random.Random) -> dict[str, dict[str, Any]]:
    """Two long-lived accounts whose names, members and profiles change every round, and one new
    account per round (the previous round's is pruned): every run has a create, a destroy,
    membership changes both ways and profile changes to be killed in the middle of."""
    wanted: dict[str, dict[str, Any]] = {}
    for i in range(2):
        members = sorted(rng.sample(PEOPLE, 8))
        wanted[f"@TOA#_keep{i}"] = {
            "name": f"Keep {i} r{round_}",
            "members": members,
            "profiles": {m: f"r{round_}" for m in members[:3]},
        }
    wanted[f"@TOA#_new{round_}"] = {
        "name": f"New {round_}",
        "members": sorted(rng.sample(PEOPLE, 4)),
        "profiles": {},
    }
    return wanted


def manifests(wanted: dict[str, dict[str, Any]], speed: int) -> str:
    documents = [
        account_doc(
            account_id,
            name=spec["name"],
            subscribers={
                "policy": "exact",
                "members": spec["members"],
                "profiles": spec["profiles"],
            },
        )
        for account_id, spec in wanted.items()
    ]
    speed_doc = {
        "apiVersion": "reconciler/v1",
        "kind": "MassSpeed",
        "metadata": {"name": "wx"},
        "spec": {"speed": speed},
    }
    return docs(*documents, users("ops_admin", *PEOPLE), json.dumps(speed_doc))


def check_exact(vendor: Vendor, wanted: dict[str, dict[str, Any]], gone: set[str]) -> None:
    for account_id, spec in wanted.items():
        assert vendor.profile(account_id)["Name"] == spec["name"]
        live = vendor.subscribers(account_id)
        assert set(live) == set(spec["members"]), account_id
        assert {m: live[m] for m in spec["profiles"]} == spec["profiles"], account_id
    assert vendor.owned() == set(wanted)
    for account_id in gone:
        assert vendor.account(account_id) is None, account_id


def last_id(http: httpx.Client) -> int:
    since = 0
    while True:
        page = http.get("/__sandbox/log", params={"since": since, "limit": 5000}).json()
        if not page["entries"]:
            return since
        since = page["next"]


def apply_process(project: Project, *flags: str, what: str = "m") -> subprocess.Popen[bytes]:
    """`reconciler apply WHAT --auto-approve FLAGS` in a subprocess (to be killed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", what, "--auto-approve", *flags],
        cwd=project.root,
        env={**os.environ, **ENV},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_after(
    process: subprocess.Popen[bytes],
    http: httpx.Client,
    since: int,
    *,
    calls: int = 0,
    effects: int = 0,
    delay: float = 0,
    timeout: float = 30,
) -> list[dict[str, Any]]:
    """SIGKILL `process` `delay` seconds after the call log shows `calls` calls (or `effects`
    state changes) after `since`; the calls logged up to then. Returns early (not killed) when
    the process ends by itself first."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        page = http.get("/__sandbox/log", params={"since": since, "limit": 5000}).json()
        seen += page["entries"]
        since = page["next"] if page["entries"] else since
        hit = (calls and len(seen) >= calls) or (
            effects and sum(len(entry["effects"]) for entry in seen) >= effects
        )
        if hit:
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "the apply neither ended nor reached the kill point"
        time.sleep(0.003)
    process.wait()
    return seen


def phase(seen: list[dict[str, Any]]) -> str:
    """Where the kill landed: the API of the last call logged before it (reads included)."""
    if not seen:
        return "before the first call"
    return str(seen[-1]["api"]).rsplit("/", 1)[-1]


def test_sigkill_at_seeded_call_counts_then_a_rerun_converges(project: Project) -> None:
    rng = random.Random(SEED)
    killed = midway = 0
    phases: Counter[str] = Counter()
    everything: set[str] = set()
    faults = ("--fail-rate", FAIL_RATE, "--seed", str(SEED)) if float(FAIL_RATE) else ()
    with serving(project, "--latency-ms", "2", *faults) as served:
        # paced so that the poll of the call log (a few ms) sees each call before the next
        project.write(
            "slow.yaml",
            config_text(project.base_url, limits={"callsPerSecond": 100, "concurrency": 2}),
        )
        for round_ in range(RUNS):
            wanted = wanted_in_round(round_, rng)
            everything |= set(wanted)
            speed = round_ % 5
            project.write("m/all.yaml", manifests(wanted, speed))
            since = last_id(served.http)
            with clean_vendor(project.db_path) as vendor:
                before = vendor.effects().total()
            process = apply_process(project, "--prune", "--force", "--config", "slow.yaml")
            # an uninterrupted run makes about 29 calls: 7 reads (the WeChat token and speed
            # included), the ledger's write, the creates, profile and membership writes and
            # records, the destroy, the ledger's rewrite, the mass speed, the verification read
            seen = kill_after(process, served.http, since, calls=rng.randint(1, 29))
            if process.returncode == -signal.SIGKILL:
                killed += 1
                phases[phase(seen)] += 1
            assert unrecorded(project.db_path) == set()
            with clean_vendor(project.db_path) as vendor:
                at_kill = vendor.effects().total()
            converge(project)
            assert unowned(project.db_path) == set()
            for _ in range(3):  # a read may give up under faults: plan again
                plan = project.cli("plan", "m", "--prune", "--detailed-exitcode")
                if "gave up after 5 attempts" not in plan.err:
                    break
            no_changes(plan)
            with clean_vendor(project.db_path) as vendor:
                check_exact(vendor, wanted, everything - set(wanted))
                assert vendor.speed() == speed
                # killed in the middle: the killed run changed something and left something
                midway += before < at_kill < vendor.effects().total()
    with clean_vendor(project.db_path) as vendor:
        check_log(vendor)
    logger.info("crash: %d runs, %d killed, %d midway; phases %s", RUNS, killed, midway, phases)
    assert killed >= RUNS * 0.8
    assert midway >= RUNS // 3
    # the points spread over the reads and the writes
    # (right after a create is the orphan case, pinned down by the two tests below)
    assert len(phases) >= 6, phases
    assert {"add_subscriber", "delete_subscriber", "modify_subscriber_info"} & set(phases), phases
    assert {"get_official_account_info", "account_check"} & set(phases), phases


SLOT0 = LEDGER_SLOT + "0"


def kill_during_the_create(project: Project) -> None:
    """Run apply against a slow server (400 ms a call) and SIGKILL it 200 ms after its user
    imports (ops_admin, alice, bob and the inventory user: 4 effects) and the inventory ledger's
    first slot (created holding @TOA#_news, and subscribed: 2 effects) were answered: the create
    it sent right after is in flight and the server still applies it, but the run never sees the
    answer, so it never subscribes the inventory user nor writes the record (a crash between
    create and record; a create whose answer was lost is the same)."""
    with serving(project, "--latency-ms", "400") as vendor:
        process = apply_process(project)
        since = last_id(vendor.http)
        seen = kill_after(process, vendor.http, since, effects=6, delay=0.2)
        assert process.returncode == -signal.SIGKILL
        effects = sorted(tuple(e) for entry in seen for e in entry["effects"])
        assert effects == [
            ("account_created", SLOT0),
            ("subscriber_added", SLOT0, INVENTORY),
            *(("user_imported", u) for u in sorted(["alice", "bob", "ops_admin", INVENTORY])),
        ], seen
        time.sleep(0.6)  # the create still in the server's latency is applied meanwhile
        after = [entry["effects"] for entry in vendor.log()[-2:]]
        assert after[-1] == [["account_created", "@TOA#_news"]], after
        assert vendor.account("@TOA#_news") is not None
        assert vendor.owned() == set()
        assert vendor.subscribers("@TOA#_news", with_inventory=True) == {}
        assert vendor.ledger() == {SLOT0: ["@TOA#_news"]}  # what makes it findable
    assert unowned(project.db_path) == {"@TOA#_news"}
    assert unrecorded(project.db_path) == set()


def test_an_account_created_before_a_kill_is_adopted_by_the_next_run(project: Project) -> None:
    people = users("ops_admin", "alice", "bob")
    news = account_doc("news", name="News", subscribers={"members": ["alice", "bob"]})
    project.manifests(news, people)
    kill_during_the_create(project)
    with serving(project) as vendor:
        plan = project.cli("plan", "m")
        assert plan.code == 0, plan.text
        assert "<= account @TOA#_news will be adopted into this repo's inventory" in plan.lines
        applied = project.cli("apply", "m", "--auto-approve")
        assert applied.code == 0, applied.text
        assert "Applied: 0 created, 1 adopted" in applied.out, applied.out
        assert vendor.owned() == {"@TOA#_news"}
        assert vendor.subscribers("@TOA#_news", with_inventory=True).keys() == {
            "alice",
            "bob",
            INVENTORY,
        }
        # the killed run's slot is live (its run may still send creates, for all another run
        # knows): left as it is until it expires (reconciler/ledger.py)
        assert vendor.ledger() == {SLOT0: ["@TOA#_news"]}
        no_changes(project.cli("plan", "m", "--detailed-exitcode"))
        check_log(vendor)
        assert vendor.effects()[("account_created", "@TOA#_news")] == 1


def test_an_account_created_before_a_kill_and_no_longer_declared_is_adopted_then_pruned(
    project: Project,
) -> None:
    """Killed during the create, then the manifests drop the account before the next run. The
    inventory ledger names it, so the next plan finds it and adopts it (it was ours: created by
    the interrupted apply); once owned, `--prune` destroys it like any orphan. No double create,
    and nothing is left unowned. (Issue 7: "an account created but never recorded in the
    inventory must be found and adopted on the next run".)"""
    people = users("ops_admin", "alice", "bob")
    news = account_doc("news", name="News", subscribers={"members": ["alice", "bob"]})
    sports = account_doc("sports", name="Sports")
    project.manifests(news, people)
    kill_during_the_create(project)
    with serving(project) as vendor:
        project.manifests(sports, people)
        plan = project.cli("plan", "m")
        assert plan.code == 0, plan.text
        assert (
            "<= account @TOA#_news will be adopted into this repo's inventory"
            " (created by an interrupted apply, no longer declared)"
        ) in plan.lines, plan.out
        applied = project.cli("apply", "m", "--auto-approve")
        assert applied.code == 0, applied.text
        assert "Applied: 1 created, 1 adopted" in applied.out, applied.out
        assert vendor.owned() == {"@TOA#_news", "@TOA#_sports"}  # raw: the inventory subscribes
        assert vendor.ledger() == {SLOT0: ["@TOA#_news"]}  # live: left to expire
        assert unowned(project.db_path) == set()
        plan = project.cli("plan", "m", "--prune")
        assert "- account @TOA#_news will be destroyed" in plan.lines, plan.out
        pruned = project.cli("apply", "m", "--auto-approve", "--prune", "--allow-destroys", "1")
        assert pruned.code == 0, pruned.text
        assert vendor.account("@TOA#_news") is None
        assert vendor.owned() == {"@TOA#_sports"}
        no_changes(project.cli("plan", "m", "--prune", "--detailed-exitcode"))
        check_log(vendor)
        assert vendor.effects()[("account_created", "@TOA#_news")] == 1
    assert unowned(project.db_path) == set()


def test_with_prune_the_next_run_destroys_the_leftover_at_once(project: Project) -> None:
    people = users("ops_admin", "alice", "bob")
    news = account_doc("news", name="News", subscribers={"members": ["alice", "bob"]})
    project.manifests(news, people)
    kill_during_the_create(project)
    with serving(project) as vendor:
        project.manifests(people)
        plan = project.cli("plan", "m", "--prune")
        assert "- account @TOA#_news will be destroyed" in plan.lines, plan.out
        assert "Plan: 0 to create, 0 to modify, 1 to destroy, 0 to adopt." in plan.lines
        pruned = project.cli("apply", "m", "--auto-approve", "--prune", "--allow-destroys", "1")
        assert pruned.code == 0, pruned.text
        assert vendor.account("@TOA#_news") is None
        assert vendor.ledger() == {SLOT0: ["@TOA#_news"]}  # live: left to expire
        no_changes(project.cli("plan", "m", "--prune", "--detailed-exitcode"))
    assert vendor_accounts(project.db_path)[0] == {SLOT0}


#: The state each kill leaves: (the slot exists, what the ledger shows, news exists, news owned).
AT_KILL = {
    "before the ledger write": (False, {}, False, False),
    "between the slot's create and its subscription": (True, {}, False, False),
    "between the ledger write and the create": (True, {SLOT0: ["@TOA#_news"]}, False, False),
    "between the create and the inventory subscription": (
        True,
        {SLOT0: ["@TOA#_news"]},
        True,
        False,
    ),
    "before the ledger rewrite": (True, {SLOT0: ["@TOA#_news"]}, True, True),
}
#: Where the scripted vendor holds the apply (then SIGKILLed): the call, its account, and whether
#: the vendor applies it before holding its answer for ever.
LEDGER_POINTS = {
    "before the ledger write": ("create_official_account", SLOT0, False),
    "between the slot's create and its subscription": ("add_subscriber", SLOT0, False),
    "between the ledger write and the create": ("create_official_account", "@TOA#_news", False),
    "between the create and the inventory subscription": (
        "create_official_account",
        "@TOA#_news",
        True,
    ),
    # the slot, holding nothing once the create is recorded, is destroyed
    "before the ledger rewrite": ("destroy_official_account", SLOT0, False),
}


def _account_of(call: Call) -> str:
    body = call.json()
    return str(body.get("OfficialAccountUserID") or body.get("Official_Account") or "")


@contextlib.contextmanager
def holding(project: Project, command: str, account: str, apply_it: bool) -> Iterator[Vendor]:
    """A scripted vendor over the project's database that holds the first `command` on `account`
    (applied first when `apply_it`), never answering it; honest otherwise, and once `release` is
    set. Yields raw vendor calls through it, with `.held` (a threading.Event) set when it holds."""
    held = threading.Event()
    release = threading.Event()

    def script(call: Call) -> Misbehave | None:
        if release.is_set() or held.is_set() or call.command != command:
            return None
        if _account_of(call) != account:
            return None
        if apply_it:
            call.honest()
        held.set()
        return Misbehave(mode="silent")

    box = Sandbox(sandbox_options(project.db_path))
    try:
        with hostile_vendor(box, script) as server:
            project.base_url = server.base_url
            project.configure()
            vendor = Vendor(server.base_url, project.db_path)
            vendor.held = held  # type: ignore[attr-defined]
            vendor.release = release  # type: ignore[attr-defined]
            try:
                yield vendor
            finally:
                vendor.close()
    finally:
        box.close()


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "dropped"])
@pytest.mark.parametrize("point", list(LEDGER_POINTS))
def test_a_kill_at_each_point_of_the_ledger_protocol_converges_with_nothing_unowned(
    project: Project, point: str, declared: bool
) -> None:
    """The run that creates @TOA#_news is killed at `point`; the next run, with the account
    still declared or dropped from the manifests (and another to create), converges, and every
    account on the vendor is owned or a ledger slot; with `--prune` the leftover goes too."""
    command, account, apply_it = LEDGER_POINTS[point]
    people = users("ops_admin", "alice", "bob")
    news = account_doc("news", name="News", subscribers={"members": ["alice", "bob"]})
    sports = account_doc("sports", name="Sports")
    project.manifests(news, people)
    with holding(project, command, account, apply_it) as vendor:
        process = apply_process(project)
        assert vendor.held.wait(30), "the apply never reached the point"  # type: ignore[attr-defined]
        process.send_signal(signal.SIGKILL)
        process.wait()
        vendor.release.set()  # type: ignore[attr-defined]
        state = (
            vendor.account(SLOT0) is not None,
            vendor.ledger(),
            vendor.account("@TOA#_news") is not None,
            "@TOA#_news" in vendor.owned(),
        )
        assert state == AT_KILL[point]
        assert unrecorded(project.db_path) == set()
        if not declared:
            project.manifests(sports, people)
        applied = project.cli("apply", "m", "--auto-approve")
        assert applied.code == 0, applied.text
        assert unowned(project.db_path) == set()
        if declared:
            assert vendor.owned() == {"@TOA#_news"}
            assert vendor.members("@TOA#_news") == {"alice", "bob"}
            # cleared, or (killed before its rewrite, nothing created since) holding owned ids
            assert set().union(*vendor.ledger().values()) <= {"@TOA#_news"}
            no_changes(project.cli("plan", "m", "--detailed-exitcode"))
        else:
            leftover = vendor.account("@TOA#_news") is not None
            assert vendor.owned() == {"@TOA#_sports"} | ({"@TOA#_news"} if leftover else set())
            # the killed run's slot, if it subscribed to it, is left until it expires
            assert set().union(*vendor.ledger().values()) <= {"@TOA#_news"}
            pruned = project.cli("apply", "m", "--auto-approve", "--prune", "--force")
            assert pruned.code == 0, pruned.text
            assert vendor.account("@TOA#_news") is None
            assert vendor.owned() == {"@TOA#_sports"}
            no_changes(project.cli("plan", "m", "--prune", "--detailed-exitcode"))
        check_log(vendor)
        assert vendor.effects()[("account_created", "@TOA#_news")] <= 1
        assert vendor.effects()[("account_created", SLOT0)] == 1
    assert unowned(project.db_path) == set()


def test_a_kill_between_the_inventory_subscription_and_its_record_never_destroys(
    project: Project,
) -> None:
    """Killed while the new account's add batch (members and the inventory user) is in flight:
    the account is owned but its record (the inventory subscription's CustomString) was never
    written, so nothing says whether it is protected. Dropped from the manifests, `--prune` must
    keep it (an unreadable record counts as protected) and say why; declared again, it converges."""
    people = users("ops_admin", "alice", "bob")
    news = account_doc("news", name="News", protect=True, subscribers={"members": ["alice"]})
    sports = account_doc("sports", name="Sports")
    project.manifests(news, people)
    with serving(project, "--latency-ms", "400") as vendor:
        process = apply_process(project)
        # 4 users imported, the ledger's slot created and subscribed, then the create: kill
        # while the add batch that follows is in flight
        kill_after(process, vendor.http, last_id(vendor.http), effects=7, delay=0.2)
        assert process.returncode == -signal.SIGKILL
        time.sleep(0.6)
        assert vendor.subscribers("@TOA#_news", with_inventory=True) == {"alice": "", INVENTORY: ""}
    with serving(project) as vendor:
        project.manifests(sports, people)
        applied = project.cli("apply", "m", "--auto-approve", "--prune", "--force")
        assert applied.code == 0, applied.text
        assert vendor.account("@TOA#_news") is not None
        plan = project.cli("plan", "m", "--prune")
        assert (
            "owned but no longer declared, and its inventory record is unreadable:"
            " not destroyed (declare it again or destroy it by hand)"
        ) in plan.out, plan.out
        project.manifests(news, sports, people)
        again = project.cli("apply", "m", "--auto-approve", "--prune")
        assert again.code == 0, again.text
        no_changes(project.cli("plan", "m", "--prune", "--detailed-exitcode"))
        assert vendor.owned() == {"@TOA#_news", "@TOA#_sports"}
        destroyed = [e for e in vendor.effects() if e[0] == "account_destroyed"]
        assert [e for e in destroyed if not e[1].startswith(LEDGER_SLOT)] == []
        check_log(vendor)


def test_a_saved_plan_killed_midway_is_refused_as_stale_or_finished_never_doubled(
    project: Project,
) -> None:
    """`plan --out` then `apply PLANFILE` killed at seeded call counts; applying the same file
    again either refuses it as stale (the killed run changed what it fingerprinted: nothing is
    sent) or, killed before any fingerprinted change, applies it whole. A fresh plan and apply
    then converge exactly; no create or add happens twice."""
    rng = random.Random(SEED + 1)
    outcomes: Counter[str] = Counter()
    everything: set[str] = set()
    with serving(project, "--latency-ms", "2") as vendor:
        project.write(
            "slow.yaml",
            config_text(project.base_url, limits={"callsPerSecond": 100, "concurrency": 2}),
        )
        for round_ in range(6):
            wanted = wanted_in_round(round_, rng)
            everything |= set(wanted)
            project.write("m/all.yaml", manifests(wanted, round_ % 5))
            saved = project.cli("plan", "m", "--prune", "--out", "p.json", "--config", "slow.yaml")
            assert saved.code == 0, saved.text
            since = last_id(vendor.http)
            process = apply_process(project, "--force", what="p.json")
            kill_after(process, vendor.http, since, calls=rng.randint(6, 18))
            before = vendor.effects()
            again = project.cli("apply", "p.json", "--auto-approve", "--force")
            if again.code == 1:
                assert "stale" in again.err.lower(), again.text
                assert vendor.effects() == before  # refused before anything was sent
                outcomes["stale"] += 1
            else:
                assert again.code == 0, again.text
                outcomes["applied"] += 1
            rerun = project.cli("apply", "m", "--auto-approve", "--prune", "--force")
            assert rerun.code == 0, rerun.text
            no_changes(project.cli("plan", "m", "--prune", "--detailed-exitcode"))
            check_exact(vendor, wanted, everything - set(wanted))
        check_log(vendor)
    logger.info("saved plan killed: %s", dict(outcomes))
    assert outcomes["stale"] >= 3, outcomes


def log_until(
    http: httpx.Client,
    since: int,
    process: subprocess.Popen[bytes],
    done: Callable[[list[list[str]]], bool],
    timeout: float = 60,
) -> None:
    """Poll the call log after `since` until `done(effects so far)`, `process` still running."""
    effects: list[list[str]] = []
    deadline = time.monotonic() + timeout
    while not done(effects):
        assert process.poll() is None, "the run ended before the point"
        assert time.monotonic() < deadline, "the run never reached the point"
        page = http.get("/__sandbox/log", params={"since": since, "limit": 5000}).json()
        effects += [effect for entry in page["entries"] for effect in entry["effects"]]
        since = page["next"] if page["entries"] else since
        time.sleep(0.003)


def test_two_appliers_on_two_machines_sharing_an_inventory_one_killed_mid_create(
    project: Project, tmp_path: Path
) -> None:
    """Issue 12: two runs sharing an inventory user, on two machines (their run locks do not
    see each other: each its own lock directory), one SIGKILLed while its creates are in flight.
    Both used to write ledger slot 0 blindly: the second dropped the first's ids it read as
    "missing" (not created yet) and wrote its own over them, so the first's creates, killed
    before their inventory subscription, were left unowned and named nowhere. Now each run
    records its creates only in a slot it claims by creating it, and leaves a live slot of
    another run alone (reconciler/ledger.py): every account the store holds stays owned, a slot
    or named in one, and `apply --prune` finds and destroys the killed run's leftovers."""
    other = Project(tmp_path / "other", "", project.db_path)
    other.root.mkdir()
    slow = [account_doc(f"b{i:02d}", name=f"B{i}") for i in range(12)]
    quick = [account_doc(f"a{i}", name=f"A{i}", subscribers={"members": ["u1"]}) for i in range(4)]
    project.manifests(*slow, users("ops_admin", "u1"))
    other.manifests(*quick, users("ops_admin", "u1"))
    with serving(project, "--latency-ms", "200") as vendor:
        project.configure(limits={"concurrency": 1})
        other.base_url = project.base_url
        other.configure(limits={"concurrency": 2})
        since = last_id(vendor.http)

        def start(where: Project, machine: str) -> subprocess.Popen[bytes]:
            (tmp_path / machine).mkdir()
            return subprocess.Popen(
                [sys.executable, "-m", "reconciler", "apply", "m", "--auto-approve"],
                cwd=where.root,
                env={**os.environ, **ENV, "XDG_RUNTIME_DIR": str(tmp_path / machine)},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if machine == "machine-2" else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )

        def created(prefix: str) -> Callable[[list[list[str]]], bool]:
            return lambda effects: any(
                e[0] == "account_created" and e[1].startswith(prefix) for e in effects
            )

        first = start(project, "machine-1")
        second: subprocess.Popen[bytes] | None = None
        try:
            # the first run has claimed its slot and creates, one call at a time
            log_until(vendor.http, since, first, created("@TOA#_b"))
            second = start(other, "machine-2")
            # the second has read the ledger, recorded its creates and sent one
            log_until(vendor.http, since, second, created("@TOA#_a"))
            time.sleep(0.1)  # the first run's next create is in flight
            first.send_signal(signal.SIGKILL)
            first.wait()
            out, _ = second.communicate(timeout=120)
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.communicate()
        # 3 when it adopted an account of the killed run that run went on to subscribe to (an
        # inventory subscription it did not count): converged by the next run either way
        assert second.returncode in (0, 3), out.decode()
        time.sleep(0.5)  # the killed run's create in flight is applied meanwhile
        made = {f"@TOA#_b{i:02d}" for i in range(12)} & set(vendor_accounts(project.db_path)[0])
        leftovers = unowned(project.db_path)
        assert leftovers and leftovers <= made  # some of its creates never got their record
        assert unrecorded(project.db_path) == set()
        # found by the other checkout, which does not declare them: destroyed with --prune
        plan = other.run("plan", "m", "--prune")
        for account in leftovers:
            assert f"- account {account} will be destroyed" in plan.lines, plan.out
        pruned = other.run("apply", "m", "--auto-approve", "--prune", "--force")
        assert pruned.code == 0, pruned.text
        assert {a for a in leftovers if vendor.account(a) is not None} == set()
        assert unowned(project.db_path) == set()
        check_log(vendor)
