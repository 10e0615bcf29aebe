"""Scenarios of the scale benchmark (issue 6) and what their runs must cost at the least.

Pure data, no I/O but `write_project`: `bench/scale.py` drives the real CLI with these scenarios and
`tests/test_scale_smoke.py` runs a small one in CI. A `World` is what the manifests declare (and,
after an apply, what the vendor holds, since every account is then owned by this repository).

`minimal_calls` counts, per API, the calls that no correct tool can avoid: each batch API's items
over its per-call maximum (reference section 6), computed from the scenario's sets, not from the
tool's code. `floor` turns them into the least wall time: phases that depend on each other run one
after the other; within a phase the APIs run concurrently, each at its vendor rate (reference 1.5),
so a phase lasts its slowest API plus one round trip, or its longest chain of dependent calls
(sequential pages of one account) times the round trip, whichever is longer.

The least calls include the inventory ledger's (issue 7): a create that is sent before anything
records it can be lost for good by a kill between the create and the inventory subscription (the
vendor cannot list an app's accounts), so a correct tool records the ids it is about to create
first and clears them once they are owned. Recording them costs a write of one official account's
CustomString per `LEDGER_SLOT_IDS` creates (3,000 bytes, reference 4.2; ids ≤ 48 bytes, 4.4), the
slot account claimed (created) and subscribed by the inventory user for each apply (so the
inventory walk returns it with its content: reading it costs no call of its own, only its place
on a walk page), and one rewrite per slot used after the creates. A plan, or an apply without
creates, costs nothing more. A `World` made by one apply from nothing holds the slots that apply
needed, `ledger_slots(world)`; a world adopted rather than created (S5) holds none.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

INVENTORY: Final = "reconciler-inventory"
PREFIX: Final = "@TOA#_"

#: Vendor rate per API (reference 1.5): 200/s, 100/s for these three account APIs.
SLOW_APIS: Final = frozenset({"multiaccount_import", "account_check", "account_delete"})
#: The vendor's default MaxSubscriberNum (reference 4.2); the inventory subscription counts too.
DEFAULT_MAX_SUBSCRIBERS: Final = 100000
#: Per-call maxima (reference 3.2, 3.3, 5.4, 5.6 and the paging table of section 6).
IMPORT_MAX: Final = 100
CHECK_MAX: Final = 100
INFO_MAX: Final = 50
MEMBERS_MAX: Final = 100
PAGE_MAX: Final = 200
WALK_MAX: Final = 200
#: ids per ledger slot: a 20-byte header and at most 60 ids of 48 bytes, one a line, in 3,000 bytes
LEDGER_SLOT_IDS: Final = 60

READ_APIS: Final = (
    "get_subscribed_official_account_list",
    "get_official_account_info",
    "get_subscriber_info",
    "account_check",
)


def rate_of(api: str) -> float:
    return 100.0 if api in SLOW_APIS else 200.0


@dataclass(frozen=True, slots=True)
class Acct:
    """One declared official account (ids are canonical, `@TOA#_…`)."""

    id: str
    owner: str
    name: str
    introduction: str
    members: frozenset[str]
    #: subscriber → CustomString; only declared members carry one
    profiles: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class World:
    """Declared accounts and the IM users that must exist (every subscriber and owner)."""

    accounts: Mapping[str, Acct]
    users: frozenset[str]
    #: the inventory ledger's slots on a vendor holding this world; None: made by one apply from
    #: nothing (so as many as its creates needed); 0 for a world adopted, never created
    slots: int | None = None

    @property
    def memberships(self) -> int:
        return sum(len(a.members) for a in self.accounts.values())


def _ceil(items: int, size: int) -> int:
    return math.ceil(items / size)


def fleet(
    accounts: int, members: int, pool: int, *, owners: int = 10, profiles: int = 5, seed: int = 1
) -> World:
    """`accounts` accounts of `members` subscribers each, drawn from `pool` users, deterministic.

    Account ids `@TOA#_s0000…`, users `u000000…`, owners `owner00…` (not subscribers). Each account
    gives `profiles` of its members a CustomString.
    """
    rng = random.Random(seed)
    users = [f"u{i:06d}" for i in range(pool)]
    owner_ids = [f"owner{i:02d}" for i in range(owners)]
    out: dict[str, Acct] = {}
    for j in range(accounts):
        chosen = frozenset(users if members >= pool else rng.sample(users, members))
        first = sorted(chosen)[:profiles]
        account_id = f"{PREFIX}s{j:04d}"
        out[account_id] = Acct(
            id=account_id,
            owner=owner_ids[j % owners],
            name=f"Account {j:04d}",
            introduction=f"Scale benchmark account {j}",
            members=chosen,
            profiles=dict.fromkeys(first, "tier=vip"),
        )
    subscribers = set().union(*(a.members for a in out.values())) if out else set()
    return World(out, frozenset(subscribers | set(owner_ids)))


def churn(world: World, fraction: float = 0.1, *, seed: int = 2) -> World:
    """About `fraction` churn: each account loses and gains `fraction` of its members (half the
    gains are users new to the app), every tenth account edits its introduction and another
    tenth changes its subscriber profiles."""
    rng = random.Random(seed)
    pool = sorted(set().union(*(a.members for a in world.accounts.values())))
    out: dict[str, Acct] = {}
    new_users: set[str] = set()
    for j, (account_id, acct) in enumerate(sorted(world.accounts.items())):
        k = int(len(acct.members) * fraction)
        removable = sorted(acct.members - set(acct.profiles))
        removed = set(rng.sample(removable, k))
        outside = sorted(set(pool) - acct.members) if len(pool) > len(acct.members) else []
        from_pool = set(rng.sample(outside, min(len(outside), k // 2)))
        fresh = {f"n{j:04d}x{i:05d}" for i in range(k - len(from_pool))}
        new_users |= fresh
        members = (acct.members - removed) | from_pool | fresh
        introduction = acct.introduction + " (edited)" if j % 10 == 0 else acct.introduction
        profiles = dict.fromkeys(acct.profiles, "tier=gold") if j % 10 == 5 else dict(acct.profiles)
        out[account_id] = replace(
            acct, members=frozenset(members), introduction=introduction, profiles=profiles
        )
    return World(out, world.users | frozenset(new_users), world.slots)


# -- what a run must cost ----------------------------------------------------------------------


def ledger_slots(live: World | None) -> int:
    """The inventory ledger's slots on a vendor holding `live` (`World.slots`)."""
    if live is None:
        return 0
    if live.slots is not None:
        return live.slots
    return 0  # the apply that made it destroyed the slots it claimed (reconciler/ledger.py)


def read_calls(desired: World, live: World | None) -> Counter[str]:
    """The least calls of a plan's read of `desired` when the vendor holds `live` (all owned)."""
    owned = live.accounts if live is not None else {}
    calls: Counter[str] = Counter()
    # The inventory walk: one paged list of the accounts the inventory user subscribes to (the
    # ledger's slots among them).
    calls["get_subscribed_official_account_list"] = walk_pages(live)
    elsewhere = set(desired.accounts) - set(owned)
    calls["get_official_account_info"] = _ceil(len(elsewhere), INFO_MAX)
    seen: set[str] = set()
    for account_id in desired.accounts:
        old = owned.get(account_id)
        if old is None:
            continue
        # +1: the inventory user is a subscriber of every owned account.
        calls["get_subscriber_info"] += max(1, _ceil(len(old.members) + 1, PAGE_MAX))
        seen |= old.members
        seen.add(old.owner)
    needed = set(desired.users)
    for acct in desired.accounts.values():
        needed.add(acct.owner)
        old = owned.get(acct.id)
        needed |= acct.members - (old.members if old is not None else frozenset())
    unknown = needed - seen - {INVENTORY}
    if not owned:
        unknown.add(INVENTORY)  # owning nothing, the inventory user may not exist yet
    calls["account_check"] = _ceil(len(unknown), CHECK_MAX)
    return +calls


@dataclass(frozen=True, slots=True)
class ApplyWork:
    """The least calls of an apply's writes and verification, and its per-account chain."""

    calls: Counter[str]
    #: the longest run of dependent steps of one account (ledger, create, modify, add, profiles,
    #: remove, record), each one round trip at least
    chain: int
    touched: int
    #: ledger slots rewritten after the accounts' work
    rewrites: int = 0


def apply_work(desired: World, live: World | None) -> ApplyWork:
    owned = live.accounts if live is not None else {}
    calls: Counter[str] = Counter()
    if live is None:
        calls["account_import"] = 1  # the inventory user (reference 3.1)
    existing = live.users if live is not None else frozenset()
    calls["multiaccount_import"] = _ceil(len(desired.users - existing), IMPORT_MAX)
    # the ledger: the creates recorded before they are sent, in slots the run claims (a create
    # and the inventory user's subscription each), destroyed after (reconciler/ledger.py)
    creates = sum(1 for a in desired.accounts if a not in owned)
    used = _ceil(creates, LEDGER_SLOT_IDS)
    calls["destroy_official_account"] += used
    calls["create_official_account"] += used
    calls["add_subscriber"] += used
    ledger_chain = 0 if not used else 2
    chain = 0
    touched = 0
    for acct in desired.accounts.values():
        old = owned.get(acct.id)
        steps = 0
        if old is None:
            calls["create_official_account"] += 1
            # the members and the inventory user (whose subscription records ownership)
            calls["add_subscriber"] += _ceil(len(acct.members) + 1, MEMBERS_MAX)
            profile_sets = sum(1 for v in acct.profiles.values() if v)
            calls["modify_subscriber_info"] += profile_sets + 1  # + the last-applied record
            # the ledger, create, add, profiles, record
            steps = ledger_chain + 2 + (1 if profile_sets else 0) + 1
        else:
            edited = (old.name, old.introduction) != (acct.name, acct.introduction)
            added = acct.members - old.members
            removed = old.members - acct.members
            profile_sets = sum(1 for u, v in acct.profiles.items() if old.profiles.get(u, "") != v)
            record = edited or dict(old.profiles) != dict(acct.profiles)
            calls["modify_official_account_base_info"] += int(edited)
            calls["add_subscriber"] += _ceil(len(added), MEMBERS_MAX)
            calls["delete_subscriber"] += _ceil(len(removed), MEMBERS_MAX)
            calls["modify_subscriber_info"] += profile_sets + int(record)
            steps = sum(map(bool, (edited, added, profile_sets, removed, record)))
        if steps:
            touched += 1
        chain = max(chain, steps)
    # verification re-reads the touched accounts' info, 50 per call (DESIGN section 7)
    calls["get_official_account_info"] += _ceil(touched, INFO_MAX)
    return ApplyWork(+calls, chain, touched, used)


def longest_page_chain(desired: World, live: World | None) -> int:
    """The most sequential `get_subscriber_info` pages of one account (its cursor is opaque)."""
    owned = live.accounts if live is not None else {}
    return max(
        (_ceil(len(owned[a].members) + 1, PAGE_MAX) for a in desired.accounts if a in owned),
        default=0,
    )


def walk_pages(live: World | None) -> int:
    held = len(live.accounts) + ledger_slots(live) if live is not None else 0
    return max(1, _ceil(held, WALK_MAX))


def phase(calls: Mapping[str, int], chain: int, rtt: float) -> float:
    """Least time of one phase: its slowest API at its rate plus a round trip, or its chain."""
    if not any(calls.values()):
        return 0.0
    rate_bound = max(n / rate_of(api) for api, n in calls.items()) + rtt
    return max(rate_bound, chain * rtt)


def _pick(calls: Mapping[str, int], apis: Iterable[str]) -> dict[str, int]:
    return {a: calls[a] for a in apis if calls.get(a)}


def plan_floor(desired: World, live: World | None, rtt: float) -> float:
    """Read phases: the inventory walk; account info and subscriber pages; user checks."""
    calls = read_calls(desired, live)
    walk = phase(_pick(calls, ["get_subscribed_official_account_list"]), walk_pages(live), rtt)
    pages = phase(
        _pick(calls, ["get_official_account_info", "get_subscriber_info"]),
        longest_page_chain(desired, live),
        rtt,
    )
    check = phase(_pick(calls, ["account_check"]), 1, rtt)
    return walk + pages + check


def apply_floor(desired: World, live: World | None, rtt: float) -> float:
    """The plan's read, then user imports, then every account's changes (after their ledger
    write), then the ledger's rewrite, then verification."""
    work = apply_work(desired, live)
    accounts_calls = dict(work.calls)
    if work.rewrites:  # the slots' destroys are a phase of their own, after the accounts
        accounts_calls["destroy_official_account"] -= work.rewrites
    imports = phase(_pick(work.calls, ["account_import", "multiaccount_import"]), 1, rtt)
    accounts = phase(
        _pick(
            accounts_calls,
            [
                "create_official_account",
                "modify_official_account_base_info",
                "add_subscriber",
                "modify_subscriber_info",
                "delete_subscriber",
            ],
        ),
        work.chain,
        rtt,
    )
    ledger = phase({"destroy_official_account": work.rewrites}, 1, rtt)
    verify = phase(_pick(work.calls, ["get_official_account_info"]), 1, rtt)
    return plan_floor(desired, live, rtt) + imports + accounts + ledger + verify


def minimal_calls(command: str, desired: World, live: World | None) -> Counter[str]:
    """The least calls per API of `plan` or `apply --auto-approve` (read included)."""
    calls = read_calls(desired, live)
    if command == "apply":
        calls.update(apply_work(desired, live).calls)
    return calls


def floor(command: str, desired: World, live: World | None, rtt: float) -> float:
    return apply_floor(desired, live, rtt) if command == "apply" else plan_floor(desired, live, rtt)


# -- manifests ---------------------------------------------------------------------------------


def config_text(base_url: str, *, concurrency: int = 16, key_var: str = "SCALE_IM_KEY") -> str:
    """reconciler.yaml: a `tencent` target at a local sandbox, thresholds out of the way."""
    return "\n".join(
        [
            "defaultTarget: bench",
            "targets:",
            "  bench:",
            "    type: tencent",
            f"    endpoint: {base_url}",
            "    sdkAppId: 1400000000",
            "    identifier: administrator",
            f"    secretKey: ${{{key_var}}}",
            f"inventory: {INVENTORY}",
            "safety: {maxDestroys: 0, maxSubscriberRemovals: 100000000,"
            " maxSubscriberRemovalPercent: 100}",
            f"limits: {{callsPerSecond: 200, concurrency: {concurrency}}}",
            "",
        ]
    )


def _doc(kind: str, metadata: Mapping[str, object], spec: Mapping[str, object]) -> str:
    body = {"apiVersion": "reconciler/v1", "kind": kind, "metadata": metadata, "spec": spec}
    return json.dumps(body, ensure_ascii=False, sort_keys=True)


def write_project(root: Path, world: World, base_url: str, *, concurrency: int = 16) -> None:
    """Write reconciler.yaml and the manifests of `world` into `root` (members in files)."""
    members_dir = root / "members"
    members_dir.mkdir(parents=True, exist_ok=True)
    for old in members_dir.glob("*.txt"):
        old.unlink()
    (root / "reconciler.yaml").write_text(
        config_text(base_url, concurrency=concurrency), encoding="utf-8"
    )
    (members_dir / "users.txt").write_text(
        "".join(u + "\n" for u in sorted(world.users)), encoding="utf-8"
    )
    docs = [
        _doc("SubscriberSet", {"name": "all-users"}, {"files": ["members/users.txt"]}),
        _doc("UserAccounts", {"name": "everyone"}, {"sets": ["all-users"]}),
    ]
    for acct in world.accounts.values():
        short = acct.id[len(PREFIX) :]
        (members_dir / f"{short}.txt").write_text(
            "".join(u + "\n" for u in sorted(acct.members)), encoding="utf-8"
        )
        docs.append(
            _doc("SubscriberSet", {"name": f"m-{short}"}, {"files": [f"members/{short}.txt"]})
        )
        spec: dict[str, object] = {
            "owner": acct.owner,
            "name": acct.name,
            "introduction": acct.introduction,
            "subscribers": {
                "policy": "exact",
                "sets": [f"m-{short}"],
                "profiles": dict(sorted(acct.profiles.items())),
            },
        }
        if len(acct.members) + 1 > DEFAULT_MAX_SUBSCRIBERS:
            spec["maxSubscriberNum"] = len(acct.members) + 1
        docs.append(_doc("OfficialAccount", {"id": short}, spec))
    (root / "accounts.yaml").write_text("\n---\n".join(docs) + "\n", encoding="utf-8")
