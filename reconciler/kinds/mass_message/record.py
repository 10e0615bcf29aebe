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
    <batch> <pending at> <msg_id>|- one line per send call: the pending mark, then its msg_id
    deleted <batch> <at>            once `mass/delete` of that batch's job succeeded

The pending mark is written before the send call and the msg_id after it. A mark without a
msg_id is a send that may have happened: within 24 hours its clientmsgid is replayed (the vendor
answers 45065 with the job it has, or sends it if it never had it, reference 6.1); older than 24
hours the vendor no longer knows the clientmsgid, so it is reported for a human and never sent
again. Lines hold only ASCII digits, words and the vendor's media ids, so a record of
`MAX_BATCHES` (50) batches stays well within the 3,000 bytes.
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


def record_id(name: str) -> str:
    """The record account of message `name` (34 bytes: within the 48 of a custom id)."""
    return f"{ACCOUNT_ID_PREFIX}{_TAG}{stable_id('MassMessage', name)[:24]}"


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

    def encode(self) -> str:
        lines = [RECORD_HEADER, f"digest {self.digest}", f"media {self.media_id or '-'}"]
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

    def marked(self, indices: list[int], at: int, media_id: str, digest: str) -> SendRecord:
        """Pending marks for `indices` (batches already marked keep their first mark)."""
        batches = dict(self.batches)
        for index in indices:
            batches.setdefault(index, Batch(at))
        return SendRecord(digest, media_id or self.media_id, batches)

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
    for line in lines[3:]:
        words = line.split(" ")
        numbers = [_number(w) for w in words]
        if len(words) == 3 and words[0] == "deleted":
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
    return SendRecord(digest[1], "" if media[1] == "-" else media[1], batches)


@dataclass(frozen=True, slots=True)
class LiveMassMessage:
    """A declared message's record as read, with the status of each recorded job."""

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
