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

Two runs on two machines may share an inventory user (the run lock covers one machine), and the
vendor has no compare-and-set on a CustomString: two blind writes of one slot lose one of them.
The one atomic test the vendor offers is a create: `create_official_account` of an id that exists
answers 130008 (reference 5.1). So a run records its creates only in slots it CLAIMS, by creating
them, with content naming the run (a `CLAIM` line: when, and a random marker, so that a create whose
answer was lost and was retried, answering 130008, is recognised as the run's own by reading it
back). A slot that exists is never written to add ids. Hence every slot has one writer of what
it records, and the proof that nothing is lost is short:

1. a create of account X is sent only after a slot holding X was claimed by this run and
   subscribed by the inventory user (visible to every later read), within `SEND_WINDOW` of the
   claim (measured by the run from before it sent the claim);
2. the claiming run rewrites its own slot to drop the ids whose create was answered and is now
   owned (or surely never happened), and destroys the slot once it holds nothing;
3. another run never writes a live slot (claimed less than `EXPIRED` ago: its run may still
   send creates). An expired one (its run sends no create any more; `EXPIRED` is `SEND_WINDOW`
   plus a margin for clocks that disagree), or one written before claims existed, it rewrites to
   drop the ids that are owned or were never created, and destroys when nothing is left. Ids a
   live slot names that exist unowned are still adopted (or destroyed with `--prune`) by any run:
   they are found at once;
4. a slot that exists at the index a run meant to claim, is not its own and was not in its read
   (claimed by a run at the same moment, or left by a run killed before it subscribed to it)
   sends none of the creates it was to record; the next run retries. Such a slot claimed more than
   `ABANDONED` ago is destroyed then: its run subscribes to it within `SUBSCRIBE_WINDOW` of
   claiming it or sends nothing, so it recorded no create that could have been sent.

So every account that exists is owned, a slot, or named in a slot, whatever two runs do at once.
Slots are few: the claiming run destroys its slot at the end, so between runs there are none but
those a killed run left, which the next runs empty and destroy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from reconciler.model import ACCOUNT_ID_PREFIX, RESERVED_ACCOUNT_ID_PREFIX

#: The first line of every slot's content.
LEDGER_HEADER: Final = "reconciler-ledger/v1"
#: The second line of a claimed slot's content: `claim <unix seconds> <16 hex>`.
CLAIM: Final = "claim"
#: How long after its claim a run still sends the creates a slot records (items 1, 3, 4 above).
SEND_WINDOW: Final = 12 * 3600.0
#: A slot claimed longer ago than this is expired: its run sends no create any more. The margin
#: over `SEND_WINDOW` covers machines whose clocks disagree by up to 12 hours.
EXPIRED: Final = 24 * 3600.0
#: A run whose new slot was not subscribed within this time after it claimed it sends nothing.
SUBSCRIBE_WINDOW: Final = 300.0
#: A slot at a claimed index, not in the read and claimed longer ago than this, was abandoned.
ABANDONED: Final = 900.0
#: A slot's Name (required at create, reference 5.1).
SLOT_NAME: Final = "reconciler ledger"
#: The vendor's cap on an account's CustomString (reference 4.2).
SLOT_MAX_BYTES: Final = 3000
#: Ids of at most 48 bytes (reference 4.4), one a line after the header and the claim line:
#: 20 + 35 + 60 × 49 = 2,995 bytes, within the 3,000.
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


@dataclass(frozen=True, slots=True)
class Claim:
    """Which run claimed a slot, and when (unix seconds, the claiming machine's clock)."""

    at: int
    marker: str

    @property
    def line(self) -> str:
        return f"{CLAIM} {self.at} {self.marker}"

    @classmethod
    def parse(cls, line: str) -> Claim | None:
        words = line.split(" ")
        valid = (
            len(words) == 3
            and words[0] == CLAIM
            and words[1].isascii()
            and words[1].isdigit()
            and len(words[1]) <= 12
            and len(words[2]) == 16
            and all(ch in "0123456789abcdef" for ch in words[2])
        )
        return cls(int(words[1]), words[2]) if valid else None


def encode_slot(ids: Iterable[str], claim: Claim | None = None) -> str:
    """A slot's CustomString: the header, the claim (when given), then the ids sorted, one a
    line."""
    ordered = sorted(set(ids))
    if len(ordered) > SLOT_IDS or not all(_valid_id(i) for i in ordered):
        raise ValueError(f"a ledger slot holds at most {SLOT_IDS} valid custom ids")
    text = "\n".join([LEDGER_HEADER, *([claim.line] if claim else []), *ordered])
    assert len(text.encode()) <= SLOT_MAX_BYTES, "ledger slot over the vendor's 3,000 bytes"
    return text


def read_slot(text: str) -> tuple[frozenset[str], Claim | None] | None:
    """The ids a slot's CustomString holds and its claim; None when it is not a ledger slot's
    content. A slot written before claims existed has none (it counts as expired)."""
    lines = text.split("\n")
    if lines[0] != LEDGER_HEADER:
        return None
    claim = Claim.parse(lines[1]) if len(lines) > 1 else None
    ids = lines[1 + (claim is not None) :]
    if len(ids) > SLOT_IDS or not all(_valid_id(i) for i in ids):
        return None
    return frozenset(ids), claim


def decode_slot(text: str) -> frozenset[str] | None:
    """The ids a slot's CustomString holds; None when it is not a ledger slot's content."""
    read = read_slot(text)
    return None if read is None else read[0]


def expired(claim: Claim | None, now: float) -> bool:
    """True when a slot's run sends no create it records any more (or it has no claim)."""
    return claim is None or now - claim.at > EXPIRED


@dataclass(frozen=True, slots=True)
class Slot:
    """One ledger slot as the inventory walk returned it."""

    index: int
    id: str
    #: the ids it holds (empty when its content was unreadable)
    ids: frozenset[str] = frozenset()
    #: False when its CustomString was not a ledger's (read as empty)
    readable: bool = True
    #: True when its run may still send a create it records (claimed less than `EXPIRED` ago):
    #: no other run writes it (module docstring, item 3)
    live: bool = False


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

    Every create is recorded in a new slot this run claims, at the lowest indices no slot holds
    (sorted, so the same plan gives the same layout), even when a slot holds its id already: that
    slot may be emptied by another run meanwhile (module docstring). A slot that exists is never
    written to add ids, and a live one (claimed less than `EXPIRED` ago: its run may still send
    creates) is left to its run. An expired slot is rewritten when it holds ids the plan acts on
    (`handled`: adopted, created, destroyed), so apply can clear them; with `tidy` (the plan
    changes something anyway) also when it holds `droppable` ids, nothing, or was unreadable. A
    plan whose only news is droppable ids therefore stays "No changes"; its reads of ids found
    missing recur until the next apply that changes anything clears them.
    """
    acted = frozenset(handled)
    stale = frozenset(droppable)
    plans: list[SlotPlan] = []
    for index, slot in sorted(ledger.slots.items()):
        if slot.live:
            continue
        drop = slot.ids & stale
        if slot.ids & acted or (tidy and (drop or not slot.ids or not slot.readable)):
            plans.append(SlotPlan(index, True, slot.ids, frozenset(), drop))
    queue = sorted(set(creates))
    index = 0
    while queue:
        if index not in ledger.slots:
            add, queue = frozenset(queue[:SLOT_IDS]), queue[SLOT_IDS:]
            plans.append(SlotPlan(index, False, frozenset(), add, frozenset()))
        index += 1
    return sorted(plans, key=lambda p: p.index)
