"""The inventory ledger: the creates an apply is about to send, recorded before it sends them.

Ownership lives in the inventory user's subscriptions (DESIGN section 5), and a new account is
subscribed only after its create was answered. A run killed in between (or whose create answer
was lost) leaves an account that nothing records; a later run that no longer declares it could
never find it, since the vendor cannot list an app's accounts. So before any create, apply writes
the ids it is about to create into the LEDGER, and reads it back on every run:

- The ledger is a few official accounts of the repo's own, SLOTS, used for bookkeeping only:
  custom ids derived from the inventory user (`@TOA#_rcl-<12 hex of sha256(user)>-<k>`, well
  under the 48 bytes of reference 4.4), owned by the inventory user, which subscribes to each. So
  the inventory walk that every run already makes (`get_subscribed_official_account_list`,
  reference 5.9, base info included) returns every slot with its content at no extra call.
- A slot's content is its profile CustomString (at most 3,000 bytes, reference 4.2): a version
  line, then one id per line. Custom ids are printable ASCII (reference 4.4), so a line break
  never occurs inside one; at most 48 bytes each, `SLOT_IDS` of them always fit.
- Anything else in a slot's CustomString (edited by hand, another tool) reads as an empty slot,
  with a warning from the reader, never an error: it is rewritten when apply next uses it.

The reader reads the ledger's ids that are not owned by id, with the declared accounts it reads
anyway; `layout` decides which slots a plan writes. Slots are never destroyed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from reconciler.model import ACCOUNT_ID_PREFIX, RESERVED_ACCOUNT_ID_PREFIX

#: The first line of every slot's content.
LEDGER_HEADER: Final = "reconciler-ledger/v1"
#: A slot's Name (required at create, reference 5.1).
SLOT_NAME: Final = "reconciler ledger"
#: The vendor's cap on an account's CustomString (reference 4.2).
SLOT_MAX_BYTES: Final = 3000
#: Ids of at most 48 bytes (reference 4.4), one a line after the header: 20 + 60 × 49 = 2,960
#: bytes, within the 3,000.
SLOT_IDS: Final = 60
#: The custom-id limit (reference 4.4).
ID_MAX_BYTES: Final = 48
_SLOT_TAG: Final = "rcl-"


def slot_prefix(inventory_user: str) -> str:
    """`@TOA#_rcl-<12 hex>-`: every slot id of this inventory user starts with it."""
    digest = hashlib.sha256(inventory_user.encode()).hexdigest()[:12]
    return f"{ACCOUNT_ID_PREFIX}{_SLOT_TAG}{digest}-"


def slot_id(inventory_user: str, index: int) -> str:
    """The id of slot `index` (0, 1, …) of this inventory user's ledger."""
    return f"{slot_prefix(inventory_user)}{index}"


def slot_index(inventory_user: str, account_id: str) -> int | None:
    """The slot number when `account_id` is one of this inventory user's slots, else None."""
    prefix = slot_prefix(inventory_user)
    if not account_id.startswith(prefix):
        return None
    rest = account_id[len(prefix) :]
    if not rest.isascii() or not rest.isdigit() or (rest != "0" and rest.startswith("0")):
        return None
    return int(rest)


def _valid_id(text: str) -> bool:
    return (
        text.startswith(ACCOUNT_ID_PREFIX)
        and not text.startswith(RESERVED_ACCOUNT_ID_PREFIX)
        and len(text) <= ID_MAX_BYTES
        and all(" " <= ch <= "~" for ch in text)
    )


def encode_slot(ids: Iterable[str]) -> str:
    """A slot's CustomString: the header, then the ids sorted, one a line."""
    ordered = sorted(set(ids))
    if len(ordered) > SLOT_IDS or not all(_valid_id(i) for i in ordered):
        raise ValueError(f"a ledger slot holds at most {SLOT_IDS} valid custom ids")
    text = "\n".join([LEDGER_HEADER, *ordered])
    assert len(text.encode()) <= SLOT_MAX_BYTES, "ledger slot over the vendor's 3,000 bytes"
    return text


def decode_slot(text: str) -> frozenset[str] | None:
    """The ids a slot's CustomString holds; None when it is not a ledger slot's content."""
    lines = text.split("\n")
    if lines[0] != LEDGER_HEADER:
        return None
    ids = lines[1:]
    if len(ids) > SLOT_IDS or not all(_valid_id(i) for i in ids):
        return None
    return frozenset(ids)


@dataclass(frozen=True, slots=True)
class Slot:
    """One ledger slot as the inventory walk returned it."""

    index: int
    id: str
    #: the ids it holds (empty when its content was unreadable)
    ids: frozenset[str] = frozenset()
    #: False when its CustomString was not a ledger's (read as empty)
    readable: bool = True


@dataclass(frozen=True, slots=True)
class Ledger:
    """The ledger as read: its slots, and which of its ids were found not to exist."""

    #: slot number → slot, for every slot the inventory user subscribes to
    slots: Mapping[int, Slot] = field(default_factory=dict)
    #: ids the ledger holds that were read by id and do not exist (their create never happened)
    missing: frozenset[str] = frozenset()

    @property
    def pending(self) -> frozenset[str]:
        """Every id the slots hold: creates that may have happened without being recorded."""
        return frozenset().union(*(s.ids for s in self.slots.values()))


EMPTY_LEDGER: Final = Ledger()


@dataclass(frozen=True, slots=True)
class SlotPlan:
    """What one plan does with one slot: written before the creates when `add` is not empty
    (created first when it does not `exist`), and rewritten after apply in any case."""

    index: int
    exists: bool
    #: what it held when read
    before: frozenset[str]
    #: the plan's create ids recorded in it before they are sent
    add: frozenset[str]
    #: ids it held that need no record any more (owned, or known never created)
    drop: frozenset[str]


def layout(
    ledger: Ledger,
    creates: Sequence[str],
    *,
    handled: Iterable[str],
    droppable: Iterable[str],
    tidy: bool,
) -> list[SlotPlan]:
    """The slots a plan writes.

    `creates` not held by any slot yet are recorded in the lowest slots with room (sorted, so the
    same plan gives the same layout); a slot is also rewritten when it holds ids the plan acts on
    (`handled`: adopted, created, destroyed), so apply can clear them; with `tidy` (the plan
    changes something anyway) also when it holds only `droppable` ids or was unreadable. A plan
    whose only news is droppable ids therefore stays "No changes"; its reads of ids found missing
    recur until the next apply that changes anything clears them.
    """
    pending = ledger.pending
    queue = [i for i in sorted(set(creates)) if i not in pending]
    acted = frozenset(handled)
    stale = frozenset(droppable)
    plans: list[SlotPlan] = []
    last = max(ledger.slots, default=-1)
    index = 0
    while queue or index <= last:
        slot = ledger.slots.get(index)
        before = slot.ids if slot is not None else frozenset()
        drop = before & stale
        room = max(SLOT_IDS - len(before - drop), 0)
        add, queue = frozenset(queue[:room]), queue[room:]
        unreadable = slot is not None and not slot.readable
        if add or before & acted or (tidy and (drop or unreadable)):
            plans.append(SlotPlan(index, slot is not None, before, add, drop))
        index += 1
    return plans
