"""Where a mass message's sends are recorded: in the live system, so a CI runner that starts
clean knows what was sent.

The vendor has no list of mass messages (reference sections 6 to 10): a job is found again only
by its `msg_id`. So every send is recorded, as the inventory ledger records creates
(`reconciler.ledger`), in an official account of the repo's own: its RECORD, id
`@TOA#_rcm-<24 hex of the message's name>`, owned by the inventory user (never subscribed by it,
so the accounts' diff never sees it as an orphan), its profile CustomString (at most 3,000 bytes,
Tencent reference 4.2) holding:

    reconciler-mass/v1
    digest sha256:<64 hex>          what was sent (`MassMessage.digest`)
    media <media_id>|-              the upload it was sent with (reused by a resumed send)
    closes <unix seconds>           its window's notAfter when the first mark was written
    <batch> <pending at> <msg_id>|- one line per send call: the pending mark, then its msg_id
    deleted <batch> <at>            once `mass/delete` of that batch's job succeeded

The pending mark is written before the send call and the msg_id after it. A mark without a
msg_id is a send that may have happened: within 24 hours its clientmsgid is replayed (the vendor
answers 45065 with the job it has, or sends it if it never had it, reference 6.1); older than 24
hours the vendor no longer knows the clientmsgid, so it is reported for a human and never sent
again. Lines hold only ASCII digits, words and the vendor's media ids, so a record of
`MAX_BATCHES` (50) batches stays well within the 3,000 bytes.

A record is needed only while the message can still be sent or its jobs change, and the vendor
caps an app's official accounts (5 in the developer edition), so it is destroyed by apply
(`ClearMassRecord`) once `closed()` holds: the window closed more than `CLOCK_MARGIN` ago (a
send is refused once its window closed, on the clock of the run that would make it, and runners'
clocks may disagree by that much), every batch's job is final or its pending mark is past the
24 hours of the vendor's replay (so no lost answer can be replayed, and none would be sent: the
window is closed), and a declared `delete:` is done. A record is found again after its message
was removed from git because the inventory user subscribes to it (the inventory walk returns
it, with its CustomString, as it returns the ledger's slots; `reconciler.read` sets it aside).
What is left after that is the declared window: a message whose record was cleared reads as
closed. Moving its notAfter into the future again would make it a new message that was never
sent: like a new name, that is a human's decision the plan cannot see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from reconciler.kinds.sending import stable_id
from reconciler.model import ACCOUNT_ID_PREFIX

RECORD_HEADER: Final = "reconciler-mass/v1"
RECORD_NAME: Final = "reconciler mass message"
RECORD_MAX_BYTES: Final = 3000
#: Reference 6.1: the vendor keeps a clientmsgid 24 hours.
REPLAY_WINDOW: Final = 24 * 3600.0
_TAG: Final = "rcm-"
#: Every record's id starts with it (`reconciler.read` keeps these out of the owned accounts).
RECORD_PREFIX: Final = ACCOUNT_ID_PREFIX + _TAG
#: How long after its window closed a record is kept: runners' clocks may disagree by this much
#: (the inventory ledger's margin, `reconciler.ledger.EXPIRED - SEND_WINDOW`).
CLOCK_MARGIN: Final = 12 * 3600.0
#: `mass/get` states after which a job does not change any more (UNKNOWN: the vendor forgot it).
FINAL_STATES: Final = frozenset({"SEND_SUCCESS", "SEND_FAIL", "DELETE", "UNKNOWN"})


def record_id(name: str) -> str:
    """The record account of message `name` (34 bytes: within the 48 of a custom id)."""
    return f"{RECORD_PREFIX}{stable_id('MassMessage', name)[:24]}"


@dataclass(frozen=True, slots=True)
class Batch:
    """One send call as recorded: when it was marked pending, and its job once answered."""

    pending_at: int
    msg_id: int | None = None
    deleted_at: int | None = None


@dataclass(frozen=True, slots=True)
class SendRecord:
    """A message's record (module docstring)."""

    digest: str = ""
    media_id: str = ""
    batches: Mapping[int, Batch] = field(default_factory=dict)
    #: the window's notAfter (unix seconds) when the record was first written; None in records
    #: written before it was kept
    closes: int | None = None

    def encode(self) -> str:
        lines = [RECORD_HEADER, f"digest {self.digest}", f"media {self.media_id or '-'}"]
        if self.closes is not None:
            lines.append(f"closes {self.closes}")
        for index, batch in sorted(self.batches.items()):
            msg = "-" if batch.msg_id is None else str(batch.msg_id)
            lines.append(f"{index} {batch.pending_at} {msg}")
        for index, batch in sorted(self.batches.items()):
            if batch.deleted_at is not None:
                lines.append(f"deleted {index} {batch.deleted_at}")
        text = "\n".join(lines)
        if len(text.encode()) > RECORD_MAX_BYTES:
            raise ValueError("a mass message record over the vendor's 3,000 bytes")
        return text

    def marked(
        self, indices: list[int], at: int, media_id: str, digest: str, closes: int
    ) -> SendRecord:
        """Pending marks for `indices` (batches already marked keep their first mark)."""
        batches = dict(self.batches)
        for index in indices:
            batches.setdefault(index, Batch(at))
        return SendRecord(digest, media_id or self.media_id, batches, max(closes, self.closes or 0))

    def sent(self, index: int, msg_id: int) -> SendRecord:
        batches = dict(self.batches)
        batches[index] = replace(batches[index], msg_id=msg_id)
        return replace(self, batches=batches)

    def deleted(self, index: int, at: int) -> SendRecord:
        batches = dict(self.batches)
        batches[index] = replace(batches[index], deleted_at=at)
        return replace(self, batches=batches)


def _number(word: str) -> int | None:
    return int(word) if word.isascii() and word.isdigit() and len(word) <= 20 else None


def parse_record(text: str) -> SendRecord | None:
    """The record a CustomString holds; None when it is not one (edited by hand, another tool)."""
    lines = text.split("\n")
    if len(lines) < 3 or lines[0] != RECORD_HEADER:
        return None
    digest, media = lines[1].split(" "), lines[2].split(" ")
    if len(digest) != 2 or digest[0] != "digest" or len(media) != 2 or media[0] != "media":
        return None
    batches: dict[int, Batch] = {}
    closes = None
    for line in lines[3:]:
        words = line.split(" ")
        numbers = [_number(w) for w in words]
        if len(words) == 2 and words[0] == "closes" and numbers[1] is not None and not batches:
            closes = numbers[1]
        elif len(words) == 3 and words[0] == "deleted":
            index, at = numbers[1], numbers[2]
            if index is None or at is None or index not in batches:
                return None
            batches[index] = replace(batches[index], deleted_at=at)
        elif len(words) == 3 and numbers[0] is not None and numbers[1] is not None:
            if words[2] != "-" and numbers[2] is None:
                return None
            batches[numbers[0]] = Batch(numbers[1], numbers[2])
        else:
            return None
    return SendRecord(digest[1], "" if media[1] == "-" else media[1], batches, closes)


def still_needed(
    record: SendRecord,
    statuses: Mapping[int, str],
    not_after: float | None,
    delete: bool,
    now: float,
) -> str | None:
    """Why a record must be kept (None: it can be destroyed; module docstring). `not_after`
    is the declared window's end (None for a message no longer declared: the record's own),
    `delete` whether a `delete:` is declared."""
    closes = max(not_after or 0.0, float(record.closes or 0))
    if not closes and record.batches:  # an older record: its last mark bounds its sends
        closes = float(max(b.pending_at for b in record.batches.values()))
    if now <= closes + CLOCK_MARGIN:
        return "its window has not been closed for 12 hours"
    for index, batch in record.batches.items():
        if batch.msg_id is None and now - batch.pending_at <= REPLAY_WINDOW:
            return f"batch {index} is pending within the vendor's 24 hours"
        if batch.msg_id is not None and statuses.get(index) not in FINAL_STATES:
            return f"the job of batch {index} is not known to be final"
        if delete and batch.deleted_at is None and statuses.get(index) == "SEND_SUCCESS":
            return f"batch {index} is not deleted yet"
    return None


@dataclass(frozen=True, slots=True)
class LiveMassMessage:
    """A message's record as read, with the status of each recorded job; `name` is "" for the
    record of a message no longer declared (found by the inventory walk)."""

    name: str
    #: the record account exists
    exists: bool
    #: None when there is no record or its content is not one (`readable` says which)
    record: SendRecord
    readable: bool = True
    #: batch → `mass/get`'s state of its job (SEND_SUCCESS, SENDING, SEND_FAIL, DELETE)
    statuses: Mapping[int, str] = field(default_factory=dict)
    #: when it was read (the sending kinds' wall clock): what the window and quota are judged at
    read_at: float = 0.0
    #: its record account ("" when it does not exist)
    account: str = ""
