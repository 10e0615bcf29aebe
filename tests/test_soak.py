"""Soak: seeded rounds of random manifest mutations against ONE long-lived faulty sandbox.

`reconciler sandbox serve --fail-rate 0.1 --latency-ms 2 --seed S` runs for the whole soak; each
round mutates the manifests at random (accounts added, renamed = one removed and one added,
removed with `--prune`, a protected one taken out of the manifests and put back, members churned,
policies flipped additive <-> exact, profile fields set, changed and removed, subscriber profiles
set, changed and dropped, `absent` lists) and applies them (again while the apply exits 1 or 3,
bounded). After EVERY round:

- the live state equals a model of what the manifests say it must be, read with raw vendor calls
  through a fault-free in-process sandbox over the same database (profiles, exact memberships with
  every subscriber's CustomString, the inventory's owned set, destroyed accounts gone);
- a fresh `plan --prune --detailed-exitcode` says no changes;
- the persistent call log shows no account created twice, no subscriber added twice (replayed
  effects: a retried add answered "already subscribed" adds nothing) and no protected account
  destroyed;
- every account the sandbox's store holds is owned by the inventory user or a slot of its
  ledger: nothing is left unowned.

CI runs 30 rounds; `RECONCILER_SOAK_ROUNDS=200` is the nightly size (`RECONCILER_SOAK_SEED` and
`RECONCILER_SOAK_FAIL_RATE` vary it).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_e2e_common import (
    ENV,
    Project,
    Result,
    Vendor,
    account_doc,
    docs,
    no_changes,
    sandbox_options,
    secrets_absent,
    served_sandbox,
    unowned,
    users,
)
from test_e2e_faults import check_log

from reconciler.sandbox.server import Sandbox

ROUNDS = int(os.environ.get("RECONCILER_SOAK_ROUNDS", "30"))
SEED = int(os.environ.get("RECONCILER_SOAK_SEED", "20261123"))
FAIL_RATE = os.environ.get("RECONCILER_SOAK_FAIL_RATE", "0.1")
#: the users the accounts draw their members from; nightly `RECONCILER_SOAK_POOL=600` makes
#: memberships of 50-200, several 100-item add_subscriber batches (reference: add_subscriber)
POOL_SIZE = int(os.environ.get("RECONCILER_SOAK_POOL", "24"))
POOL = tuple(f"s{n:03d}" for n in range(POOL_SIZE))
PROTECTED = "@TOA#_soak_keep"
#: manifest key -> the vendor's profile field (reference: official account base info)
FIELDS = {
    "introduction": "Introduction",
    "organization": "Organization",
    "customString": "CustomString",
    "faceUrl": "FaceUrl",
}
#: attempts of one round's apply: 10% faults and 5 attempts per call rarely need a third
APPLY_ATTEMPTS = 6


@dataclass
class Spec:
    """What the manifests declare for one account."""

    name: str
    fields: dict[str, str] = field(default_factory=dict)
    policy: str = "additive"
    members: set[str] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)
    profiles: dict[str, str] = field(default_factory=dict)
    protect: bool = False

    def document(self, account_id: str) -> str:
        subscribers = {
            "policy": self.policy,
            "members": sorted(self.members),
            "absent": sorted(self.absent),
            "profiles": dict(sorted(self.profiles.items())),
        }
        extra: dict[str, Any] = {"protect": True} if self.protect else {}
        return account_doc(
            account_id, name=self.name, subscribers=subscribers, **self.fields, **extra
        )


@dataclass
class Live:
    """What the live system must hold for one account: profile fields and subscriber profiles
    (every subscriber, inventory left out, with its CustomString)."""

    name: str
    fields: dict[str, str]
    subscribers: dict[str, str]


@dataclass
class World:
    """The manifests and the model of the live state they lead to."""

    rng: random.Random
    declared: dict[str, Spec] = field(default_factory=dict)
    live: dict[str, Live] = field(default_factory=dict)
    ever: set[str] = field(default_factory=set)
    counter: int = 0

    # -- the model of an apply -------------------------------------------------------------------

    def applied(self) -> None:
        """What an apply with `--prune` makes of the live state."""
        for account_id in list(self.live):
            if account_id not in self.declared and account_id != PROTECTED:
                del self.live[account_id]  # pruned; the protected one survives undeclared
        for account_id, spec in self.declared.items():
            before = self.live.get(account_id)
            current = dict(before.subscribers) if before else {}
            if spec.policy == "exact":
                keep = spec.members
            else:
                keep = (set(current) | spec.members) - spec.absent
            subscribers = {m: current.get(m, "") for m in keep}  # removed then re-added: ""
            for member, value in spec.profiles.items():
                subscribers[member] = value  # only declared members carry profiles
            self.live[account_id] = Live(spec.name, dict(spec.fields), subscribers)

    # -- mutations -------------------------------------------------------------------------------

    def _sample(self, population: set[str] | tuple[str, ...], low: int, high: int) -> set[str]:
        items = sorted(population)
        return set(self.rng.sample(items, min(len(items), self.rng.randint(low, high))))

    def _new_spec(self, *, protect: bool = False) -> Spec:
        members = self._sample(POOL, max(2, POOL_SIZE // 12), max(8, POOL_SIZE // 3))
        spec = Spec(
            name=f"Soak {self.counter}",
            policy=self.rng.choice(["additive", "exact"]),
            members=members,
            protect=protect,
        )
        for key in self._sample(set(FIELDS), 0, 2):
            spec.fields[key] = self._value(key)
        for member in self._sample(members, 0, 2):
            spec.profiles[member] = f"p{self.rng.randint(0, 99)}"
        return spec

    def _value(self, key: str) -> str:
        self.counter += 1
        if key == "faceUrl":
            return f"https://example.com/{self.counter}.png"
        return f"{key} {self.counter}"

    def _new_id(self) -> str:
        self.counter += 1
        return f"@TOA#_soak{self.counter}"

    def _unprotected(self) -> list[str]:
        return sorted(a for a in self.declared if a != PROTECTED)

    def mutate(self) -> list[str]:
        """One round's random mutations; returns their names (for failure messages)."""
        done: list[str] = []
        for _ in range(self.rng.randint(1, 3)):
            op = self.rng.choice(
                [
                    "add",
                    "rename",
                    "remove",
                    "protected",
                    "churn",
                    "churn",
                    "flip",
                    "field",
                    "field",
                    "title",
                    "profiles",
                    "absent",
                ]
            )
            unprotected = self._unprotected()
            if op == "add" or (op in ("rename", "remove") and not unprotected):
                if len(self.declared) >= 5:
                    continue
                account_id = self._new_id()
                self.declared[account_id] = self._new_spec()
            elif op == "rename":
                old = self.rng.choice(unprotected)
                account_id = self._new_id()
                self.declared[account_id] = self.declared.pop(old)
            elif op == "remove":
                account_id = self.rng.choice(unprotected)
                del self.declared[account_id]
            elif op == "protected":
                account_id = PROTECTED
                if PROTECTED in self.declared:
                    del self.declared[PROTECTED]
                else:
                    self.declared[PROTECTED] = self._new_spec(protect=True)
            else:
                if not self.declared:
                    continue
                account_id = self.rng.choice(sorted(self.declared))
                self._change(op, self.declared[account_id])
            self.ever.add(account_id)
            done.append(f"{op} {account_id}")
        return done

    def _change(self, op: str, spec: Spec) -> None:
        if op == "churn":
            churn = max(3, POOL_SIZE // 8)
            gone = self._sample(spec.members, 0, churn)
            spec.members = (spec.members - gone) | self._sample(
                set(POOL) - spec.members, 1, churn + 1
            )
            spec.profiles = {m: v for m, v in spec.profiles.items() if m in spec.members}
            spec.absent -= spec.members
        elif op == "flip":
            spec.policy = "exact" if spec.policy == "additive" else "additive"
        elif op == "field":
            key = self.rng.choice(sorted(FIELDS))
            if key in spec.fields and self.rng.random() < 0.5:
                del spec.fields[key]  # cleared through the last-applied record
            else:
                spec.fields[key] = self._value(key)
        elif op == "title":
            spec.name = f"Soak {self.counter} {self.rng.randint(0, 999)}"
        elif op == "profiles":
            for member in self._sample(spec.members, 1, 3):
                if member in spec.profiles and self.rng.random() < 0.3:
                    del spec.profiles[member]  # undeclared: the live value is left alone
                else:
                    spec.profiles[member] = f"p{self.rng.randint(0, 99)}"
        elif op == "absent":
            spec.absent = self._sample(set(POOL) - spec.members, 0, 3)

    def manifests(self) -> str:
        documents = [spec.document(a) for a, spec in sorted(self.declared.items())]
        return docs(*documents, users("ops_admin", *POOL))


def check_live(vendor: Vendor, world: World) -> None:
    """The live state is exactly the model: raw vendor reads, no reconciler code."""
    for account_id, expected in sorted(world.live.items()):
        profile = vendor.profile(account_id)
        assert profile["Owner_Account"] == "ops_admin"
        assert profile["Name"] == expected.name, account_id
        for key, vendor_key in FIELDS.items():
            assert profile[vendor_key] == expected.fields.get(key, ""), (account_id, key)
        assert vendor.subscribers(account_id) == expected.subscribers, account_id
    assert vendor.owned() == set(world.live)
    for gone in sorted(world.ever - set(world.live)):
        assert vendor.account(gone) is None, gone


def check_protected(vendor: Vendor) -> None:
    destroyed = [
        entry["id"]
        for entry in vendor.log()
        for effect in entry["effects"]
        if effect == ["account_destroyed", PROTECTED]
    ]
    assert destroyed == []


@contextlib.contextmanager
def clean_vendor(db_path: Path) -> Iterator[Vendor]:
    """Raw vendor calls through a fault-free in-process sandbox over the same database (the
    served one may be faulty; WAL lets both use the file)."""
    clean = Sandbox(sandbox_options(db_path))
    vendor = Vendor("http://sandbox", db_path, transport=clean.transport())
    try:
        yield vendor
    finally:
        vendor.close()
        clean.close()


@pytest.fixture
def soak_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)  # the CLI runs in-process, for speed
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NO_COLOR", "1")
    db = tmp_path / "sandbox.db"
    flags = ("--fail-rate", FAIL_RATE, "--latency-ms", "2", "--seed", str(SEED))
    with served_sandbox(db, *flags) as server:
        project = Project(root, server.base_url, db)
        project.configure()
        yield project


def converge(project: Project) -> list[int]:
    """Apply while it exits 3 (partly applied) or 1 after a read gave up (5 faulted attempts of
    one call: nothing applied); the exit codes in order."""
    codes: list[int] = []
    for _ in range(APPLY_ATTEMPTS):
        result = project.cli("apply", "m", "--auto-approve", "--prune", "--force")
        codes.append(result.code)
        secrets_absent([result.out, result.err])
        assert not [x for x in result.lines if x.startswith("unverified")], result.out
        if result.code == 0:
            return codes
        if result.code == 1:
            assert "gave up after 5 attempts" in result.err, result.text
        else:
            assert result.code == 3, result.text
    raise AssertionError(f"no convergence: exit codes {codes}")


def fresh_plan(project: Project) -> Result:
    """`plan --detailed-exitcode` through the faulty server (again if a read gave up)."""
    for _ in range(3):
        result = project.cli("plan", "m", "--prune", "--detailed-exitcode")
        if not (result.code == 1 and "gave up after 5 attempts" in result.err):
            return result
    raise AssertionError(f"plan gave up three times: {result.text}")


def test_soak_random_mutations_under_faults_stay_exact(soak_project: Project) -> None:
    project = soak_project
    world = World(random.Random(SEED))
    world.declared[PROTECTED] = world._new_spec(protect=True)
    world.ever.add(PROTECTED)
    for round_ in range(ROUNDS):
        ops = world.mutate() if round_ else ["initial"]
        project.write("m/accounts.yaml", world.manifests())
        codes = converge(project)
        world.applied()
        no_changes(fresh_plan(project))
        with clean_vendor(project.db_path) as vendor:
            try:
                check_live(vendor, world)
            except AssertionError as exc:
                raise AssertionError(f"round {round_} ({ops}, applies {codes}): {exc}") from exc
            check_log(vendor)
            check_protected(vendor)
            log = vendor.log()
        # every account on the vendor is owned or a slot of the inventory ledger (the store)
        assert unowned(project.db_path) == set(), round_
    faults = {e["fault"] for e in log}
    # the soak really met every kind of fault, answers lost after an applied write included
    assert {"vendor", "http_before", "http_after"} <= faults, faults
    # every kind of change happened at least once
    effects = {e[0] for entry in log for e in entry["effects"]}
    assert {"account_created", "account_destroyed", "subscriber_added"} <= effects
    assert "subscriber_removed" in effects


def test_the_model_is_not_vacuous() -> None:
    """The mutations reach every op within the CI rounds (a soak that never renames or flips a
    policy proves nothing about them)."""
    world = World(random.Random(SEED))
    world.declared[PROTECTED] = world._new_spec(protect=True)
    seen: set[str] = set()
    for _ in range(ROUNDS - 1):
        seen |= {op.split()[0] for op in world.mutate()}
        world.applied()
    assert seen == {
        "add",
        "rename",
        "remove",
        "protected",
        "churn",
        "flip",
        "field",
        "title",
        "profiles",
        "absent",
    }
