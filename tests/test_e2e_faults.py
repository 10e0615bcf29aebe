"""End-to-end scenarios under faults and crashes: `reconciler sandbox serve` in a subprocess with
`--fail-rate` (seeded) or `--latency-ms`, the CLI in a subprocess, killed with SIGKILL at seeded
random points. Every run must converge to exactly the manifests (checked with raw vendor calls on a
fault-free server over the same database), and the sandbox's persistent call log must show no
account created twice and no subscriber added twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_e2e_common import (
    ENV,
    IM_SECRET,
    INVENTORY,
    Project,
    Vendor,
    account_doc,
    config_text,
    docs,
    no_changes,
    sandbox_options,
    secrets_absent,
    served_sandbox,
    users,
)

from reconciler.apply import ApplyResult, apply_plan
from reconciler.config import Safety, SandboxTarget
from reconciler.connect import Providers
from reconciler.diff import diff
from reconciler.plan import TargetIdentity, plan_from_read
from reconciler.providers import Pacer, TencentClient
from reconciler.read import read_live
from reconciler.safety import check_safety
from reconciler.sandbox import defaults
from reconciler.sandbox.server import Sandbox
from reconciler.secret import Secret
from reconciler.validate import load_desired_state

MEMBERS_PER_ACCOUNT = 60
LOCAL = TargetIdentity.from_target(SandboxTarget("local", Path("sandbox.db")))
PROFILES_PER_ACCOUNT = 12


def generation(
    gen: str, accounts: int = 4, *, tag: str = "", profiles: int = PROFILES_PER_ACCOUNT
) -> dict[str, dict[str, Any]]:
    """What generation "A" or "B" declares: per account its profile, members and profiles.

    B keeps half of A's members, drops the other half (exact policy) and adds as many new ones,
    renames every account and re-labels every profile; A also declares an account B drops.
    `tag` makes every name and profile differ from another round's."""
    gen_tag = gen + tag
    offset = 0 if gen == "A" else MEMBERS_PER_ACCOUNT // 2
    wanted: dict[str, dict[str, Any]] = {}
    for i in range(accounts):
        members = [f"u{i}_{n:03d}" for n in range(offset, offset + MEMBERS_PER_ACCOUNT)]
        wanted[f"@TOA#_crash{i}"] = {
            "name": f"Crash {i} {gen_tag}",
            "customString": f"gen={gen}",
            "members": members,
            "profiles": {m: f"{gen_tag}-{m}" for m in members[:profiles]},
        }
    if gen == "A":
        wanted["@TOA#_extra"] = {
            "name": "Extra",
            "customString": "gen=A",
            "members": ["u0_000"],
            "profiles": {},
        }
    return wanted


def manifests(wanted: dict[str, dict[str, Any]], speed: int) -> str:
    documents = []
    everyone = sorted({m for spec in wanted.values() for m in spec["members"]} | {"ops_admin"})
    for account_id, spec in wanted.items():
        documents.append(
            {
                "apiVersion": "reconciler/v1",
                "kind": "OfficialAccount",
                "metadata": {"id": account_id},
                "spec": {
                    "owner": "ops_admin",
                    "name": spec["name"],
                    "customString": spec["customString"],
                    "subscribers": {
                        "policy": "exact",
                        "members": spec["members"],
                        "profiles": spec["profiles"],
                    },
                },
            }
        )
    documents.append(
        {
            "apiVersion": "reconciler/v1",
            "kind": "UserAccounts",
            "metadata": {"name": "everyone"},
            "spec": {"members": everyone},
        }
    )
    documents.append(
        {
            "apiVersion": "reconciler/v1",
            "kind": "MassSpeed",
            "metadata": {"name": "wx"},
            "spec": {"speed": speed},
        }
    )
    return "\n---\n".join(json.dumps(d) for d in documents) + "\n"


def check_exact(vendor: Vendor, wanted: dict[str, dict[str, Any]], speed: int) -> None:
    """The live state is exactly `wanted`: profiles, members, member profiles, ownership."""
    for account_id, spec in wanted.items():
        profile = vendor.profile(account_id)
        assert (profile["Name"], profile["CustomString"]) == (spec["name"], spec["customString"])
        expected = {m: spec["profiles"].get(m, "") for m in spec["members"]}
        live = vendor.subscribers(account_id)
        # members outside the profiles map keep whatever profile they had: only the set matters
        assert set(live) == set(expected), account_id
        assert {m: live[m] for m in spec["profiles"]} == spec["profiles"], account_id
    assert vendor.owned() == set(wanted)
    for gone in set(generation("A")) - set(wanted):
        assert vendor.account(gone) is None
    assert vendor.speed() == speed


def check_log(vendor: Vendor) -> None:
    """Replay the call log's effects: an account is never created while it exists, a subscriber
    never added while subscribed (a retried call that was applied before its answer was lost must
    not apply twice)."""
    accounts: set[str] = set()
    subscriptions: set[tuple[str, str]] = set()
    doubles: list[tuple[Any, ...]] = []
    for entry in vendor.log():
        for effect in entry["effects"]:
            kind, *args = effect
            if kind == "account_created":
                if args[0] in accounts:
                    doubles.append((entry["id"], *effect))
                accounts.add(args[0])
            elif kind == "account_destroyed":
                accounts.discard(args[0])
                subscriptions = {s for s in subscriptions if s[0] != args[0]}
            elif kind == "subscriber_added":
                key = (args[0], args[1])
                if key in subscriptions:
                    doubles.append((entry["id"], *effect))
                subscriptions.add(key)
            elif kind == "subscriber_removed":
                subscriptions.discard((args[0], args[1]))
    assert doubles == []


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    return Project(root, "", tmp_path / "sandbox.db")


@contextlib.contextmanager
def serving(project: Project, *flags: str) -> Iterator[Vendor]:
    """Serve the project's database (faults and latency as `flags` say) and point the project's
    reconciler.yaml at it; yields a raw vendor client of that server."""
    with served_sandbox(project.db_path, *flags) as server:
        project.base_url = server.base_url
        project.configure()
        vendor = project.vendor()
        try:
            yield vendor
        finally:
            vendor.close()


def apply_until_done(project: Project, *flags: str, runs: int = 4) -> list[int]:
    """Apply again while it reports a partial apply (exit 3); the exit codes in order.

    Exit 1 is accepted only for a read that gave up (5 attempts of one call all faulted: the
    "error before the first change" of DESIGN section 4); a user would run it again too.
    """
    codes = []
    for _ in range(runs):
        result = project.run("apply", "m", "--auto-approve", *flags)
        codes.append(result.code)
        secrets_absent([result.out, result.err])
        # under faults a partial apply names failed calls (with their codes), never an account
        # that applied but reads back wrong
        assert not [x for x in result.lines if x.startswith("unverified")], result.out
        if result.code == 0:
            return codes
        if result.code == 3:
            assert "Partly applied: run plan again to see exactly what remains." in result.lines
        else:
            assert result.code == 1 and "gave up after 5 attempts" in result.err, result.text
    raise AssertionError(f"no convergence under faults: exit codes {codes}")


def test_apply_under_faults_converges_to_exactly_the_manifests(project: Project) -> None:
    fail_rate, seed = "0.2", "7"
    first = generation("A", accounts=2, profiles=4)
    second = generation("B", accounts=2, profiles=4)
    with serving(project, "--fail-rate", fail_rate, "--seed", seed):
        project.write("m/all.yaml", manifests(first, 3))
        apply_until_done(project)
        project.write("m/all.yaml", manifests(second, 1))
        apply_until_done(project, "--prune", "--force")
    with serving(project) as vendor:  # faults off, same database: check the result exactly
        no_changes(project.run("plan", "m", "--prune", "--detailed-exitcode"))
        check_exact(vendor, second, 1)
        check_log(vendor)
        faults = Counter(e["fault"] for e in vendor.log())
        # the run really met every kind of fault, lost answers to applied writes included
        assert faults["vendor"] and faults["http_before"] and faults["http_after"], faults


def test_sigkill_at_random_points_then_a_rerun_converges(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.root)  # the re-runs and plans run in-process, for speed
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    rng = random.Random(20261123)
    killed = midway = 0
    with serving(project, "--latency-ms", "2") as vendor:
        # the killed runs are slow (a second or two of paced calls); the re-runs are not
        project.write(
            "slow.yaml",
            config_text(project.base_url, limits={"callsPerSecond": 40, "concurrency": 4}),
        )
        for round_ in range(10):
            wanted, speed = generation("AB"[round_ % 2], tag=str(round_)), round_ % 5
            project.write("m/all.yaml", manifests(wanted, speed))
            before = vendor.effects().total()
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reconciler",
                    "apply",
                    "m",
                    "--auto-approve",
                    "--prune",
                    "--force",
                    "--config",
                    "slow.yaml",
                ],
                cwd=project.root,
                env={**os.environ, **ENV},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                process.wait(timeout=rng.uniform(0.45, 1.5))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                killed += 1
            at_kill = vendor.effects().total()
            rerun = project.cli("apply", "m", "--auto-approve", "--prune", "--force")
            assert rerun.code == 0, rerun.text
            no_changes(project.cli("plan", "m", "--prune", "--detailed-exitcode"))
            check_exact(vendor, wanted, speed)
            # killed in the middle: the killed run changed something and left something to do
            midway += before < at_kill < vendor.effects().total()
        check_log(vendor)
    assert killed == 10
    assert midway >= 5


async def _no_sleep(seconds: float) -> None:
    return None


def _apply_in_process(box: Sandbox, manifest: Path, *, force: bool = False) -> ApplyResult:
    """read → diff → plan → apply against the in-process `box`, one call in flight and no
    retry pauses, so a seeded fault sequence is the same on every run and costs no time."""

    async def main() -> ApplyResult:
        async with httpx.AsyncClient(transport=box.async_transport()) as http:
            pacer = Pacer(1_000_000, 1, sleep=_no_sleep)
            im = TencentClient(
                http,
                sdkappid=defaults.SDKAPPID,
                identifier=defaults.ADMIN,
                secret_key=Secret(IM_SECRET),
                pacer=pacer,
                endpoint="https://console.tim.qq.com",
                rng=random.Random(0),
                sleep=_no_sleep,
            )
            desired = load_desired_state([str(manifest)])
            live = await read_live(desired, im, inventory_user=INVENTORY)
            changes = diff(desired, live, prune=False, inventory_user=INVENTORY)
            plan = plan_from_read(changes, desired=desired, live=live, target=LOCAL)
            assert not plan.problems
            check_safety(plan.changes, Safety(), force=force)
            return await apply_plan(plan, Providers(im, None, pacer), inventory_user=INVENTORY)

    return asyncio.run(main())


@pytest.mark.parametrize("api", ["add_subscriber", "delete_subscriber"])
def test_a_lost_answer_to_an_applied_membership_change_still_verifies(
    tmp_path: Path, api: str
) -> None:
    """`http_after`: the sandbox applies an add or delete and loses the answer; the retry reads
    "already subscribed" / "was not subscribed". That is done, not a verification failure (it was
    `unverified ...: 151 subscribers, expected 150`, exit 3). The first seed whose faults hit
    `api` that way is searched for: a change in the number of calls moves the faults, never the
    point of the test."""
    members = [f"m{i:03d}" for i in range(150)]
    manifest = tmp_path / "m.yaml"
    people = users("ops_admin", *members)
    every = {"policy": "exact", "members": members}
    kept = {"policy": "exact", "members": members[:50]}
    for seed in range(100):
        db = tmp_path / f"seed{seed}.db"
        box = Sandbox(sandbox_options(db, fail_rate=0.3, seed=seed))
        try:
            manifest.write_text(docs(account_doc("news", name="N", subscribers=every), people))
            first = _apply_in_process(box, manifest)
            manifest.write_text(docs(account_doc("news", name="N", subscribers=kept), people))
            second = _apply_in_process(box, manifest, force=True)
        finally:
            box.close()
        clean = Sandbox(sandbox_options(db))  # the same state, no faults
        try:
            vendor = Vendor("http://sandbox", db, transport=clean.transport())
            lost = [
                e for e in vendor.log() if e["fault"] == "http_after" and e["api"].endswith(api)
            ]
            if not lost or first.failures or second.failures:
                # a call can also exhaust its retries here (exit 3): not the case looked for
                assert not (first.unverified or second.unverified) or not lost
                continue
            assert (first.exit_code, second.exit_code) == (0, 0)
            assert (first.subscribers_added, second.subscribers_removed) == (150, 100)
            assert vendor.members("@TOA#_news") == set(members[:50])
            check_log(vendor)
            vendor.close()
            return
        finally:
            clean.close()
    raise AssertionError(f"no seed below 100 lost an answer of {api}")
