"""The inventory ledger on plain data: slot ids and content, the layout, and what the diff, the
plan, the saved-plan file, the renderers and drift make of it (issue 7: no orphan left unowned)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from plan_scenarios import (
    INVENTORY,
    SANDBOX,
    F,
    account,
    check_golden,
    desired,
    live,
    live_account,
)

from reconciler.changes import Finding, PlanProblem
from reconciler.diff import Diff, diff
from reconciler.drift import DriftItem, drift_items
from reconciler.errors import StalePlanError
from reconciler.kinds.inventory import LedgerWrite
from reconciler.kinds.official_account import AdoptOrphan, CreateAccount, DestroyAccount
from reconciler.ledger import (
    ABANDONED,
    EXPIRED,
    ID_MAX_BYTES,
    LEDGER_HEADER,
    SEND_WINDOW,
    SLOT_IDS,
    SLOT_MAX_BYTES,
    SUBSCRIBE_WINDOW,
    Claim,
    Ledger,
    Slot,
    decode_slot,
    encode_slot,
    expired,
    layout,
    read_slot,
    slot_id,
    slot_index,
    slot_prefix,
)
from reconciler.live import LiveAccount, LiveState
from reconciler.model import DesiredState
from reconciler.pipeline import narrow
from reconciler.plan import Plan, plan_from_read
from reconciler.planfile import check_fresh, decode_change, dump_plan, load_plan
from reconciler.providers.calls import (
    API_ADD,
    API_CREATE,
    API_DESTROY,
    API_MODIFY,
    API_SUBSCRIBER_INFO,
)
from reconciler.render import render_json, render_markdown, render_text
from reconciler.schemas import validator

SLOT0 = slot_id(INVENTORY, 0)
SLOT1 = slot_id(INVENTORY, 1)
EMPTY: frozenset[str] = frozenset()


def ids(n: int, prefix: str = "a") -> list[str]:
    return [f"@TOA#_{prefix}{i:03d}" for i in range(n)]


# -- slots ---------------------------------------------------------------------------------------


def test_slot_ids_derive_from_the_inventory_user_and_fit_a_custom_id() -> None:
    assert SLOT0 == "@TOA#_rcl-f60a3fdba772-0"
    assert slot_prefix("someone-else") != slot_prefix(INVENTORY)
    assert len(slot_id(INVENTORY, 10**9).encode()) <= ID_MAX_BYTES  # reference 4.4
    assert [slot_index(INVENTORY, slot_id(INVENTORY, k)) for k in (0, 1, 17)] == [0, 1, 17]
    for other in (
        "@TOA#_news",
        slot_id("someone-else", 0),
        SLOT0 + "x",
        slot_prefix(INVENTORY) + "01",
        slot_prefix(INVENTORY) + "-1",
        slot_prefix(INVENTORY),
        slot_prefix(INVENTORY) + "٣",  # a digit, but not an ASCII one
    ):
        assert slot_index(INVENTORY, other) is None, other


def test_a_slot_holds_sixty_of_the_longest_ids_within_the_vendors_3000_bytes() -> None:
    longest = [f"@TOA#_{i:02d}" + "x" * (ID_MAX_BYTES - 8) for i in range(SLOT_IDS)]
    assert all(len(i) == ID_MAX_BYTES for i in longest)
    text = encode_slot(reversed(longest))
    assert len(text.encode()) <= SLOT_MAX_BYTES
    assert text.split("\n") == [LEDGER_HEADER, *sorted(longest)]
    assert decode_slot(text) == frozenset(longest)
    assert encode_slot([]) == LEDGER_HEADER and decode_slot(LEDGER_HEADER) == EMPTY
    with pytest.raises(ValueError):
        encode_slot([*longest, "@TOA#_one_more"])
    with pytest.raises(ValueError):
        encode_slot(["news"])  # not a custom id


def test_a_claimed_slot_names_its_run_and_still_holds_sixty_of_the_longest_ids() -> None:
    longest = [f"@TOA#_{i:02d}" + "x" * (ID_MAX_BYTES - 8) for i in range(SLOT_IDS)]
    claim = Claim(1_800_000_000, "0123456789abcdef")
    text = encode_slot(longest, claim)
    assert len(text.encode()) <= SLOT_MAX_BYTES
    assert text.split("\n")[:2] == [LEDGER_HEADER, "claim 1800000000 0123456789abcdef"]
    assert read_slot(text) == (frozenset(longest), claim)
    assert decode_slot(text) == frozenset(longest)
    assert read_slot(LEDGER_HEADER + "\n@TOA#_a") == (frozenset({"@TOA#_a"}), None)
    for bad in ("claim 18 0123", "claim x 0123456789abcdef", "claim 1 0123456789abcdeX"):
        assert read_slot(f"{LEDGER_HEADER}\n{bad}") is None, bad  # neither a claim nor an id
    # a run sends no create more than SEND_WINDOW after its claim; others wait until EXPIRED
    assert not expired(claim, claim.at + SEND_WINDOW)
    assert expired(claim, claim.at + EXPIRED + 1)
    assert EXPIRED - SEND_WINDOW >= 12 * 3600 and ABANDONED > SUBSCRIBE_WINDOW
    assert expired(None, 0)  # written before claims existed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tier=gold",
        "reconciler-ledger/v2\n@TOA#_a",
        "reconciler/v1:{}",
        LEDGER_HEADER + "\n",  # an empty line is not an id
        LEDGER_HEADER + "\nnews",
        LEDGER_HEADER + "\n@TOA#_@TOA#_system",
        LEDGER_HEADER + "\n@TOA#_" + "x" * ID_MAX_BYTES,
        LEDGER_HEADER + "\n@TOA#_tab\there",
        LEDGER_HEADER + "\n@TOA#_ünïcode",
        "\n".join([LEDGER_HEADER, *ids(SLOT_IDS + 1)]),
    ],
)
def test_content_that_is_not_a_ledgers_is_refused_never_an_error(text: str) -> None:
    assert decode_slot(text) is None


def test_layout_fills_the_lowest_slots_and_touches_only_what_it_must() -> None:
    empty = Ledger()
    assert layout(empty, [], handled=(), droppable=(), tidy=True) == []
    new = ids(SLOT_IDS * 2 + 5)
    plans = layout(empty, list(reversed(new)), handled=new, droppable=(), tidy=False)
    assert [(p.index, p.exists, len(p.add)) for p in plans] == [
        (0, False, 60),
        (1, False, 60),
        (2, False, 5),
    ]
    assert plans[0].add == frozenset(new[:60])  # sorted: the same plan, the same layout
    # creates go to a new slot at the lowest free index, never into a slot that exists (another
    # run may write it at the same time); an empty slot is destroyed when the plan is tidy
    pending = frozenset(ids(58, "p"))
    ledger = Ledger({0: Slot(0, SLOT0, pending), 1: Slot(1, SLOT1)})
    plans = layout(ledger, ids(5), handled=(), droppable=(), tidy=True)
    assert [(p.index, p.exists, p.add, p.drop) for p in plans] == [
        (1, True, EMPTY, EMPTY),
        (2, False, frozenset(ids(5)), EMPTY),
    ]
    # an id a slot holds already is recorded again in this run's own slot
    plans = layout(ledger, [*ids(3), "@TOA#_p000"], handled=(), droppable=pending, tidy=True)
    assert [(p.index, p.add, p.drop) for p in plans] == [
        (0, EMPTY, pending),
        (1, EMPTY, EMPTY),
        (2, frozenset([*ids(3), "@TOA#_p000"]), EMPTY),
    ]
    # a live slot (its run may still send creates) is never touched, whatever it holds
    live_slot = Ledger({0: Slot(0, SLOT0, pending, live=True), 2: Slot(2, slot_id(INVENTORY, 2))})
    plans = layout(live_slot, ids(1), handled=pending, droppable=pending, tidy=True)
    assert [(p.index, p.exists, p.add) for p in plans] == [
        (1, False, frozenset(ids(1))),
        (2, True, EMPTY),
    ]


def test_layout_rewrites_a_slot_only_for_what_the_plan_acts_on_unless_tidy() -> None:
    ledger = Ledger(
        {
            0: Slot(0, SLOT0, frozenset({"@TOA#_gone", "@TOA#_lost"})),
            1: Slot(1, SLOT1, readable=False),
            3: Slot(3, slot_id(INVENTORY, 3), frozenset({"@TOA#_owned"})),
        }
    )
    droppable = {"@TOA#_gone", "@TOA#_owned"}
    assert layout(ledger, [], handled=(), droppable=droppable, tidy=False) == []
    acted = layout(ledger, [], handled={"@TOA#_lost"}, droppable=droppable, tidy=False)
    assert [(p.index, p.drop) for p in acted] == [(0, frozenset({"@TOA#_gone"}))]
    tidy = layout(ledger, [], handled=(), droppable=droppable, tidy=True)
    assert [p.index for p in tidy] == [0, 1, 3]  # the unreadable slot is rewritten too


# -- the diff ------------------------------------------------------------------------------------


def run(d: DesiredState, state: LiveState, *, prune: bool = False) -> list[Finding]:
    return diff(d, state, prune=prune, inventory_user=INVENTORY).findings()


def pending(raw_id: str, subscribers: int = 2) -> LiveAccount:
    return dataclasses.replace(
        live_account(raw_id), subscriber_count=subscribers, owned=False, pending=True
    )


def with_ledger(state: LiveState, *slots: Slot, missing: frozenset[str] = EMPTY) -> LiveState:
    return dataclasses.replace(state, ledger=Ledger({s.index: s for s in slots}, missing))


NEWS = account("news")
LOST = "@TOA#_lost"


def test_every_create_is_recorded_in_a_new_slot_never_in_one_that_exists() -> None:
    sports = account("sports")
    fresh = run(desired(NEWS, sports), live())
    assert fresh[0] == LedgerWrite(0, SLOT0, False, EMPTY, frozenset({NEWS.id, sports.id}), EMPTY)
    state = with_ledger(live(), Slot(0, SLOT0))
    assert run(desired(NEWS), state)[:2] == [
        LedgerWrite(0, SLOT0, True, EMPTY, EMPTY, EMPTY),  # empty: destroyed after
        LedgerWrite(1, SLOT1, False, EMPTY, frozenset({NEWS.id}), EMPTY),
    ]
    # nothing to create, nothing pending: the ledger is not touched
    owned = with_ledger(live(live_account("news", owned_by=NEWS)), Slot(0, SLOT0))
    assert run(desired(NEWS), owned) == []


def test_an_account_an_interrupted_apply_created_is_adopted_or_pruned() -> None:
    slot = Slot(0, SLOT0, frozenset({LOST}))
    state = with_ledger(live(pending("lost")), slot)
    assert run(desired(), state) == [
        LedgerWrite(0, SLOT0, True, frozenset({LOST}), EMPTY, EMPTY),
        AdoptOrphan(LOST, "ops_admin", 2),
    ]
    assert run(desired(), state, prune=True) == [
        LedgerWrite(0, SLOT0, True, frozenset({LOST}), EMPTY, EMPTY),
        # ours, though no record says so: not protected
        DestroyAccount(LOST, "ops_admin", 2),
    ]
    # declared again, it is adopted the ordinary way, and cleared from the ledger after
    lost = account("lost")
    unowned = dataclasses.replace(live_account("lost"), owned=False)
    changes = run(desired(lost), with_ledger(live(unowned), slot))
    assert [c.kind for c in changes] == ["ledgerWrite", "record"]
    # a selector leaves undeclared accounts out of scope: nothing is adopted, the slot kept
    chosen, narrowed = narrow(desired(), state, selector={"team": "x"})
    assert run(chosen, narrowed) == []


def test_ids_that_need_no_record_wait_for_an_apply_that_changes_something() -> None:
    """A plan whose only news is stale ledger ids (owned already, or never created) says "No
    changes"; the next apply that changes anything clears them."""
    slot = Slot(0, SLOT0, frozenset({"@TOA#_gone", NEWS.id}))
    state = with_ledger(
        live(live_account("news", owned_by=NEWS)), slot, missing=frozenset({"@TOA#_gone"})
    )
    assert run(desired(NEWS), state) == []
    renamed = account("news", profile={F.NAME: "News 2"})
    changes = run(desired(renamed), state)
    assert [c.kind for c in changes] == ["ledgerWrite", "modifyAccount", "record"]
    assert changes[0] == LedgerWrite(0, SLOT0, True, slot.ids, EMPTY, slot.ids)
    # a missing id that is declared is created again, and stays recorded
    again = run(desired(account("gone")), state)
    assert isinstance(again[2], CreateAccount)
    assert again[:2] == [
        LedgerWrite(0, SLOT0, True, slot.ids, EMPTY, frozenset({NEWS.id})),
        LedgerWrite(1, SLOT1, False, EMPTY, frozenset({"@TOA#_gone"}), EMPTY),
    ]


def test_a_declared_ledger_slot_id_is_a_problem() -> None:
    changes = run(desired(account(SLOT0)), live())
    assert changes == [
        PlanProblem(
            SLOT0,
            "the id is reserved for the inventory ledger of 'reconciler-inventory'"
            " (reconciler's own bookkeeping); choose another id",
        )
    ]


def test_the_inventory_user_is_imported_before_its_first_slot() -> None:
    changes = run(desired(NEWS), live(inventory_exists=False))
    assert [c.kind for c in changes][:2] == ["importInventoryUser", "ledgerWrite"]


# -- plan, plan file, renderers, drift -----------------------------------------------------------


def plan_for(d: DesiredState, state: LiveState, *, prune: bool = False) -> Plan:
    changes = run(d, state, prune=prune)
    return plan_from_read(Diff.of(changes), desired=d, live=state, target=SANDBOX, prune=prune)


def interrupted() -> tuple[DesiredState, LiveState]:
    """`lost` was created by a killed apply and is no longer declared; `news` is to be created;
    slot 0 holds `lost` and one id whose create never happened."""
    slot = Slot(0, SLOT0, frozenset({LOST, "@TOA#_never"}))
    state = with_ledger(live(pending("lost")), slot, missing=frozenset({"@TOA#_never"}))
    return desired(NEWS, users=["ops_admin"]), state


def test_the_ledgers_calls_are_actions_with_stable_ids_and_cost() -> None:
    fresh = plan_for(desired(NEWS), live())
    ledger = [(a.id, a.api) for a in fresh.actions if a.id.startswith("ledgerWrite")]
    assert ledger == [
        ("ledgerWrite/0/create", API_CREATE),
        ("ledgerWrite/0/subscribe", API_ADD),
        ("ledgerWrite/0/rewrite", API_DESTROY),  # holding nothing once the create is answered
    ]
    d, state = interrupted()
    plan = plan_for(d, state)
    assert [(a.id, a.api) for a in plan.actions] == [
        ("ledgerWrite/0/rewrite", API_MODIFY),  # it will hold nothing: destroyed, one call too
        ("ledgerWrite/1/create", API_CREATE),
        ("ledgerWrite/1/subscribe", API_ADD),
        ("ledgerWrite/1/rewrite", API_DESTROY),
        ("createAccount/@TOA#_news/0", API_CREATE),
        ("adoptOrphan/@TOA#_lost/subscribe", API_ADD),
        ("adoptOrphan/@TOA#_lost/write", API_SUBSCRIBER_INFO),
        ("record/@TOA#_news/subscribe", API_ADD),
        ("record/@TOA#_news/write", API_SUBSCRIBER_INFO),
        ("verify/-/0", "get_official_account_info"),
    ]
    assert plan.summary["adopt"] == 1 and plan.summary["create"] == 1
    assert [c.kind for c in plan.resource_changes] == ["createAccount", "adoptOrphan"]


def test_golden_interrupted_apply_text_markdown_json() -> None:
    d, state = interrupted()
    plan = plan_for(d, state)
    check_golden("plan_interrupted.txt", render_text(plan))
    check_golden("plan_interrupted.md", render_markdown(plan))
    check_golden("plan_interrupted.json", render_json(plan))
    validator("plan").validate(json.loads(render_json(plan)))
    validator("plan").validate(json.loads(render_json(plan, show_all=True)))
    pruned = plan_for(d, state, prune=True)
    assert "- account @TOA#_lost will be destroyed" in render_text(pruned).splitlines()


def test_the_new_kinds_survive_a_plan_file_and_a_changed_slot_makes_it_stale() -> None:
    d, state = interrupted()
    plan = plan_for(d, state)
    loaded = load_plan(dump_plan(plan))
    assert loaded.changes == plan.changes and loaded.actions == plan.actions
    check_fresh(loaded, target=SANDBOX, live=state)
    other = Slot(0, SLOT0, frozenset({LOST}))
    with pytest.raises(StalePlanError) as stale:
        check_fresh(loaded, target=SANDBOX, live=with_ledger(state, other))
    assert str(stale.value) == (
        "stale plan: the inventory ledger changed since the plan was made (slot 0);"
        " make the plan again"
    )
    with pytest.raises(StalePlanError):
        check_fresh(loaded, target=SANDBOX, live=with_ledger(state))  # the slot vanished
    for bad in ({"slot": -1}, {"slot": True}, {"add": "@TOA#_x"}, {"before": [1]}):
        data = {**plan.changes[0].data, **bad}
        with pytest.raises((ValueError, KeyError, TypeError)):
            decode_change(data)
    assert decode_change(AdoptOrphan(LOST, "o", 3).data) == AdoptOrphan(LOST, "o", 3)


def test_drift_reports_the_leftover_and_not_the_ledger() -> None:
    _, state = interrupted()
    items = drift_items(Diff.of(run(desired(), state)))
    assert items == [DriftItem(LOST, "account", "not declared", "exists")]
    assert json.loads(render_json(plan_for(desired(), state)))["summary"]["adopt"] == 1
