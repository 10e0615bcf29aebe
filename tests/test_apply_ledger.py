"""The apply engine and the inventory ledger, on hand-made plans against the in-process sandbox:
a create is sent only once its slot records it, and the slot keeps exactly the ids whose create
may have happened but which still have no inventory subscription."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from test_apply import INVENTORY, NAME, TOO_LONG, ledger_for, record, run, seed
from test_e2e_common import Vendor, sandbox_options

from reconciler.apply import LEDGER, ApplyResult, apply_plan, phase_totals, render_result
from reconciler.changes import Change
from reconciler.config import Limits, Safety, SandboxTarget
from reconciler.connect import connect
from reconciler.diff import Diff
from reconciler.kinds.inventory import ImportInventoryUser, LedgerWrite
from reconciler.kinds.official_account import (
    AddSubscribers,
    AdoptOrphan,
    CreateAccount,
    DestroyAccount,
    Record,
)
from reconciler.kinds.user_accounts import ImportUsers
from reconciler.ledger import (
    SEND_WINDOW,
    SUBSCRIBE_WINDOW,
    Claim,
    encode_slot,
    read_slot,
    slot_id,
)
from reconciler.model import ProfileField
from reconciler.plan import Fingerprint, TargetIdentity, assemble_plan
from reconciler.record import INTERRUPTED_RECORD, encode_record
from reconciler.sandbox.server import Sandbox

SLOT0 = slot_id(INVENTORY, 0)
EMPTY: frozenset[str] = frozenset()


@contextlib.contextmanager
def raw(db: Path) -> Iterator[Vendor]:
    """Raw vendor calls on the same database."""
    box = Sandbox(sandbox_options(db))
    vendor = Vendor("https://console.tim.qq.com", db, transport=box.transport())
    try:
        yield vendor
    finally:
        vendor.close()
        box.close()


def slot_content(db: Path, slot: str = SLOT0) -> list[str] | None:
    """The ids the slot holds (None when it does not exist: a slot left holding nothing is
    destroyed)."""
    with raw(db) as vendor:
        info = vendor.account(slot)
    if info is None:
        return None
    read = read_slot(str(info["CustomString"]))
    assert read is not None
    return sorted(read[0])


def claimed_slot(db: Path, *held: str, at: float, slot: str = SLOT0) -> None:
    """A slot another run claimed at `at` (unix seconds), not subscribed (yet)."""
    content = encode_slot(held, Claim(int(at), "0123456789abcdef"))
    with raw(db) as vendor:
        vendor.create(slot, INVENTORY, "reconciler ledger", CustomString=content)


def make_slot(db: Path, *held: str, subscribed: bool = True) -> None:
    with raw(db) as vendor:
        vendor.create(SLOT0, INVENTORY, "reconciler ledger", CustomString=encode_slot(held))
        if subscribed:
            vendor.add(SLOT0, INVENTORY)


def apis(db: Path) -> list[str]:
    with raw(db) as vendor:
        return [str(e["api"]).rsplit("/", 1)[-1] for e in vendor.log()]


def test_the_slot_records_a_create_before_it_is_sent_and_is_cleared_after(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed(db, "alice")
    start = len(apis(db))
    result = run(
        db,
        [
            ledger_for("@TOA#_new"),
            CreateAccount("@TOA#_new", "boss", ((NAME, "New"),)),
            AddSubscribers("@TOA#_new", frozenset({"alice"})),
            Record("@TOA#_new", record(), subscribe=True),
        ],
    )
    assert (result.exit_code, result.created) == (0, 1)
    assert apis(db)[start:] == [
        "create_official_account",  # the slot, holding @TOA#_new
        "add_subscriber",  # the inventory user's subscription to the slot
        "create_official_account",  # @TOA#_new
        "add_subscriber",  # alice and the inventory user
        "modify_subscriber_info",  # the record
        "destroy_official_account",  # the slot, holding nothing any more
        "get_official_account_info",  # verification
    ]
    assert slot_content(db) is None
    assert LEDGER not in {a for a, r in result.reports.items() if r.applied or r.failed}


def test_a_create_whose_slot_could_not_be_written_is_not_sent(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed(db)
    with raw(db) as vendor:
        vendor.delete_users(INVENTORY)  # a slot's owner must exist
    result = run(
        db,
        [
            ledger_for("@TOA#_new"),
            CreateAccount("@TOA#_new", "boss", ((NAME, "New"),)),
            Record("@TOA#_new", record(), subscribe=True),
        ],
    )
    assert result.exit_code == 1
    assert [f.code for f in result.reports[LEDGER].failed] == [70107]
    assert result.reports["@TOA#_new"].skipped == [
        "create: not sent: its inventory ledger slot could not be written (the next run retries)",
        "record: the account was not created",
    ]
    assert result.calls == {"create_official_account": 1}  # the slot's; no rewrite either
    with raw(db) as vendor:
        assert vendor.account("@TOA#_new") is None


def test_a_create_no_slot_records_is_not_sent(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed(db)
    result = run(db, [CreateAccount("@TOA#_new", "boss", ((NAME, "New"),))])
    assert result.reports["@TOA#_new"].skipped == [
        "create: not sent: the plan records it in no inventory ledger slot"
    ]
    assert (result.exit_code, sum(result.calls.values())) == (1, 0)


def test_an_unsubscribed_inventory_keeps_the_id_in_the_ledger(tmp_path: Path) -> None:
    """The inventory user's item fails in the new account's member batch (deleted by hand; the
    slot it no longer subscribes to is still written): the account exists, unowned, and the
    ledger keeps its id for the next run to find."""
    db = tmp_path / "s.db"
    seed(db, "alice")
    result = run(
        db,
        [
            ledger_for("@TOA#_new"),
            # room for one subscriber: alice joins, the inventory user (sorted after) does not
            CreateAccount(
                "@TOA#_new", "boss", ((NAME, "New"), (ProfileField.MAX_SUBSCRIBER_NUM, 1))
            ),
            AddSubscribers("@TOA#_new", frozenset({"alice"})),
            Record("@TOA#_new", record(), subscribe=True),
        ],
    )
    report = result.reports["@TOA#_new"]
    assert [f.what for f in report.failed] == [f"inventory subscription {INVENTORY}"]
    assert report.skipped == ["record: the inventory subscription failed"]
    assert result.exit_code == 3
    assert slot_content(db) == ["@TOA#_new"]  # its run's claim is kept with it
    with raw(db) as vendor:
        read = read_slot(str(vendor.profile(SLOT0)["CustomString"]))
    assert read is not None and read[1] is not None
    with raw(db) as vendor:
        assert vendor.members("@TOA#_new") == {"alice"}


def test_ids_whose_create_surely_never_happened_are_cleared(tmp_path: Path) -> None:
    """A definite vendor error (a name over 150 bytes) and an owner that could not be imported:
    nothing was created, so the slot does not keep them."""
    db = tmp_path / "s.db"
    seed(db)
    result = run(
        db,
        [
            ImportUsers(frozenset({TOO_LONG})),
            ledger_for("@TOA#_long", "@TOA#_orphaned"),
            CreateAccount("@TOA#_long", "boss", ((NAME, "x" * 151),)),
            CreateAccount("@TOA#_orphaned", TOO_LONG, ((NAME, "O"),)),
        ],
    )
    assert [f.code for f in result.reports["@TOA#_long"].failed] == [6017]
    assert result.reports["@TOA#_orphaned"].skipped == [
        f"create: its owner {TOO_LONG} could not be imported"
    ]
    assert slot_content(db) is None


def test_an_interrupted_apply_leftover_is_adopted_and_cleared(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed(db, "alice", account="@TOA#_lost", members=["alice"])
    make_slot(db, "@TOA#_lost", "@TOA#_never")
    held = frozenset({"@TOA#_lost", "@TOA#_never"})
    result = run(
        db,
        [
            LedgerWrite(0, SLOT0, True, held, EMPTY, frozenset({"@TOA#_never"})),
            AdoptOrphan("@TOA#_lost", "boss", 1),
        ],
        fingerprints={"@TOA#_lost": Fingerprint("sha256:p", 1, None)},
    )
    assert (result.exit_code, result.adopted, result.unverified) == (0, 1, {})
    assert result.reports["@TOA#_lost"].applied == [
        "adopt (created by an interrupted apply, no longer declared)"
    ]
    assert slot_content(db) is None
    with raw(db) as vendor:
        assert vendor.subscribers("@TOA#_lost", with_inventory=True) == {
            "alice": "",
            INVENTORY: encode_record(INTERRUPTED_RECORD),
        }
    assert "Applied: 0 created, 1 adopted" in render_result(result)


def test_a_leftover_destroyed_with_prune_is_cleared_and_a_failed_adoption_kept(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    seed(db, account="@TOA#_lost")
    seed(db, "alice", account="@TOA#_full", members=["alice"])
    with raw(db) as vendor:
        vendor.modify("@TOA#_full", MaxSubscriberNum=1)  # full: the inventory user cannot join
    make_slot(db, "@TOA#_lost", "@TOA#_full")
    held = frozenset({"@TOA#_lost", "@TOA#_full"})
    result = run(
        db,
        [
            LedgerWrite(0, SLOT0, True, held, EMPTY, EMPTY),
            AdoptOrphan("@TOA#_full", "boss", 1),
            DestroyAccount("@TOA#_lost", "boss", 0),
        ],
    )
    assert result.destroyed == 1
    assert [f.what for f in result.reports["@TOA#_full"].failed] == [
        f"inventory subscription {INVENTORY}"
    ]
    assert slot_content(db) == ["@TOA#_full"]


def test_a_slot_left_unsubscribed_by_a_kill_is_destroyed_and_the_next_index_claimed(
    tmp_path: Path,
) -> None:
    """Killed between a slot's claim and its subscription, a run left a slot no read sees, and
    the next plan claims the same index: the create says 130008 and the slot is not this run's.
    Claimed long ago (or before claims existed), it is destroyed (its run sent nothing it
    records), and the next index is claimed instead."""
    db = tmp_path / "s.db"
    seed(db)
    make_slot(db, "@TOA#_stale", subscribed=False)
    plan: list[Change] = [
        ledger_for("@TOA#_new"),
        CreateAccount("@TOA#_new", "boss", ((NAME, "New"),)),
    ]
    result = run(db, plan)
    assert (result.exit_code, result.created) == (0, 1)
    assert slot_content(db) is None
    # no inventory subscription was planned for it: the slot claimed instead keeps it
    with raw(db) as vendor:
        assert list(vendor.ledger().values()) == [["@TOA#_new"]]


def test_a_slot_another_run_claims_at_the_same_moment_is_never_written(tmp_path: Path) -> None:
    """Two runs on two machines plan the same new slot: the vendor's create lets one of them
    have it (130008 for the other). The other leaves it alone and claims another index."""
    db = tmp_path / "s.db"
    seed(db)
    claimed_slot(db, "@TOA#_theirs", at=time.time() - 60)
    create = CreateAccount("@TOA#_new", "boss", ((NAME, "New"),))
    result = run(db, [ledger_for("@TOA#_new"), create])
    assert result.created == 1
    assert slot_content(db) == ["@TOA#_theirs"]
    with raw(db) as vendor:  # the one it claimed instead (slot 0 is not subscribed)
        assert list(vendor.ledger().values()) == [["@TOA#_new"]]


def test_a_slot_of_another_inventory_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed(db)
    other = slot_id("another-inventory", 0)
    result = run(
        db,
        [
            LedgerWrite(0, other, False, EMPTY, frozenset({"@TOA#_new"}), EMPTY),
            CreateAccount("@TOA#_new", "boss", ((NAME, "New"),)),
        ],
    )
    assert [str(f) for f in result.reports[LEDGER].failed] == [
        f"ledger slot {other}: not slot 0 of the inventory user {INVENTORY}"
    ]
    assert sum(result.calls.values()) == 0


def test_progress_shows_the_ledger_rewrite_as_its_own_phase() -> None:
    plan = assemble_plan(
        Diff.of([ledger_for("@TOA#_new"), CreateAccount("@TOA#_new", "boss", ((NAME, "New"),))]),
        target=TargetIdentity("sandbox", "sandbox", path="x"),
        desired_digest="sha256:x",
        fingerprints={},
        live_mass_speed=None,
        limits=Limits(),
        safety=Safety(),
    )
    assert phase_totals(plan) == {
        "users": 0,
        "accounts": 3,
        "destroy": 0,
        "ledger": 1,
        "mass speed": 0,
        "verify": 1,
    }


def test_a_create_a_slot_held_already_is_recorded_again_in_its_own_slot(
    tmp_path: Path,
) -> None:
    """Killed between the ledger write and the create, a run left the id in slot 0; the next
    plan records it again in the slot it claims (slot 0 may be emptied by another run at any
    time), creates it, then destroys both slots, holding nothing. A create that only a slot
    claimed by another run records is never sent."""
    db = tmp_path / "s.db"
    seed(db)
    make_slot(db, "@TOA#_new")
    held = frozenset({"@TOA#_new"})
    create = CreateAccount("@TOA#_new", "boss", ((NAME, "New"),))
    alone = run(db, [LedgerWrite(0, SLOT0, True, held, EMPTY, EMPTY), create])
    assert alone.reports["@TOA#_new"].skipped == [
        "create: not sent: the plan records it in no inventory ledger slot"
    ]
    slot1 = slot_id(INVENTORY, 1)
    result = run(
        db,
        [
            LedgerWrite(0, SLOT0, True, held, EMPTY, EMPTY),
            LedgerWrite(1, slot1, False, EMPTY, held, EMPTY),
            create,
            Record("@TOA#_new", record(), subscribe=True),
        ],
    )
    assert (result.exit_code, result.created) == (0, 1)
    assert (slot_content(db), slot_content(db, slot1)) == (None, None)


def test_without_the_inventory_user_nothing_is_recorded_nor_created(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed(db)
    result = run(
        db,
        [
            ImportInventoryUser("x" * 40),  # over the 32-byte UserID limit: its import fails
            ledger_for("@TOA#_new"),
            CreateAccount("@TOA#_new", "boss", ((NAME, "New"),)),
        ],
        inventory="x" * 40,
    )
    assert result.reports[LEDGER].skipped == [
        f"ledger slot {SLOT0}: the inventory user could not be imported"
    ]
    assert result.reports["@TOA#_new"].skipped == [
        "create: not sent: the inventory ledger cannot be written without the inventory user"
    ]


def test_a_slot_that_cannot_be_written_or_rewritten_is_reported(tmp_path: Path) -> None:
    """A saved plan edited to hold 61 ids fails before any call; a rewrite of a slot destroyed
    by hand fails with the vendor's code; neither stops the run."""
    db = tmp_path / "s.db"
    seed(db)
    too_many = frozenset(f"@TOA#_a{i:02d}" for i in range(61))
    result = run(
        db,
        [
            LedgerWrite(0, SLOT0, True, too_many, frozenset({"@TOA#_new"}), EMPTY),
            LedgerWrite(1, slot_id(INVENTORY, 1), True, frozenset({"@TOA#_x"}), EMPTY, EMPTY),
            CreateAccount("@TOA#_new", "boss", ((NAME, "New"),)),
        ],
    )
    failed = [(f.what, f.code) for f in result.reports[LEDGER].failed]
    assert failed == [
        (f"ledger slot {SLOT0}", None),
        (f"ledger slot {slot_id(INVENTORY, 1)}", 130004),
    ]
    assert result.created == 0
    result = run(db, [LedgerWrite(0, SLOT0, True, too_many, EMPTY, EMPTY)])
    assert [str(f) for f in result.reports[LEDGER].failed] == [
        f"ledger slot {SLOT0}: a ledger slot holds at most 60 valid custom ids"
    ]


def test_an_orphan_is_not_adopted_without_the_inventory_user(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed(db, account="@TOA#_lost")
    result = run(
        db,
        [ImportInventoryUser("x" * 40), AdoptOrphan("@TOA#_lost", "boss", 0)],
        inventory="x" * 40,
    )
    assert result.reports["@TOA#_lost"].skipped == [
        "adopt: the inventory user could not be imported"
    ]


def _run_with_clock(db: Path, changes: list[Change], times: list[float]) -> ApplyResult:
    """`run`, with this run's monotonic clock reading `times` in turn (then the last one)."""
    plan = assemble_plan(
        Diff.of(changes),
        target=TargetIdentity("sandbox", "sandbox", path=str(db)),
        desired_digest="sha256:x",
        fingerprints={},
        live_mass_speed=None,
        limits=Limits(),
        safety=Safety(),
    )
    readings = iter(times)

    def clock() -> float:
        return next(readings, times[-1])

    async def main() -> ApplyResult:
        async with connect(SandboxTarget("sandbox", db), Limits()) as providers:
            return await apply_plan(plan, providers, inventory_user=INVENTORY, clock=clock)

    return asyncio.run(main())


def test_a_claim_subscribed_late_or_grown_old_sends_no_create(tmp_path: Path) -> None:
    """A run sends a create only within SEND_WINDOW of claiming its slot, and only when the
    slot was subscribed within SUBSCRIBE_WINDOW: another run may treat an older claim as
    abandoned or expired (reconciler/ledger.py, items 1 and 4)."""
    db = tmp_path / "s.db"
    seed(db)
    plan: list[Change] = [
        ledger_for("@TOA#_new"),
        CreateAccount("@TOA#_new", "boss", ((NAME, "New"),)),
    ]
    # clock readings: the run's start, the claim sent, the subscription answered, the create
    late = _run_with_clock(db, plan, [0.0, 0.0, SUBSCRIBE_WINDOW + 1])
    assert [str(f) for f in late.reports[LEDGER].failed] == [
        f"ledger slot {SLOT0}: subscribed too late after its claim"
    ]
    assert late.created == 0
    old = _run_with_clock(db, [*plan[:1], plan[1]], [0.0, 0.0, 1.0, SEND_WINDOW + 1])
    assert old.reports["@TOA#_new"].skipped == [
        "create: not sent: its inventory ledger slot was claimed too long ago (retried next run)"
    ]
    assert old.created == 0
