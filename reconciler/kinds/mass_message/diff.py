"""What a plan does with the declared mass messages, from their records as read (pure).

A message is sent once: batches recorded with a msg_id are never sent again, and a sent message
whose content changed is not sent again either (a notice says to give it a new name). A batch
marked pending without a msg_id is sent again only within the vendor's 24 hours (its clientmsgid
then answers 45065 if it went); older, it is reported and never sent. Sends wait for their
window, and one over the daily quota is deferred (reference section 4: 100 sends a day, 10
uploads of news a day); what is left is a `SendMassMessage`, and a successful send with
`delete:` that is not deleted yet a `DeleteMassMessage`. A record no longer needed (`record.py`:
window closed 12 hours ago, jobs final, delete done), of a declared message or of one removed
from git, is a `ClearMassRecord`. With `wechat.accountType: subscription` a second send within a
day is deferred and a send to OpenIDs refused (reference section 4).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Final

from reconciler.changes import DiffOptions, Finding, Notice, PlanProblem
from reconciler.kinds.mass_message.changes import (
    PREFIX,
    ClearMassRecord,
    DeleteMassMessage,
    SendMassMessage,
)
from reconciler.kinds.mass_message.model import WINDOW_DAYS, Audience, MassMessage
from reconciler.kinds.mass_message.record import (
    REPLAY_WINDOW,
    LiveMassMessage,
    SendRecord,
    still_needed,
)
from reconciler.kinds.sending import (
    Quota,
    WindowState,
    deferral_line,
    format_instant,
    time_zone,
)
from reconciler.live import LiveState
from reconciler.model import DesiredState

#: Reference section 4: mass sends (sendall and send together) and news uploads per day.
SENDS: Final = Quota(100, 86400.0)
UPLOADS: Final = Quota(10, 86400.0)
#: The notice reason `reconciler drift` reports as a drift of the field `status`: a job deleted
#: by hand, failed after apply, or a send pending for over 24 hours (`reconciler.drift`).
STATUS_DRIFT: Final = "drift:status"
DELETED_BY_HAND = FAILED_AFTER_APPLY = PENDING_EXPIRED = STATUS_DRIFT
#: Reference section 4: a subscription account's sendall succeeds once a day, and it cannot send
#: to a list of OpenIDs. No API tells an account's type: `wechat.accountType` declares it.
ONCE_A_DAY: Final = Quota(1, 86400.0)
SUBSCRIPTION: Final = "subscription"
TYPE_UNKNOWN: Final = (
    "the WeChat account's type is not declared (wechat.accountType of the target in"
    " reconciler.yaml), so its limit is not known to the plan: a subscription account sends"
    " once a day and never to a list of OpenIDs; a send the vendor refuses for that (45028,"
    " 48001) fails in apply, is reported, and is planned again"
)
BLIND_SPOT: Final = (
    "sends made outside this tool cannot be seen (the vendor has no list of mass messages);"
    " only this tool's send records are read, and a message's record is cleared once its window"
    " closed and its jobs are final: its jobs are not tracked after that"
)


def _notice(name: str, message: str, reason: str = "field") -> Notice:
    return Notice(PREFIX + name, message, reason)


def diff_messages(
    desired: DesiredState, live: LiveState, options: DiffOptions
) -> Iterable[Finding]:
    """The sends, deletions, notices and problems of the declared messages."""
    messages = sorted(desired.of(MassMessage), key=lambda m: m.name)
    records = live.of(LiveMassMessage)
    if not messages and not records:
        return []
    if options.wechat_missing is not None:
        target = options.wechat_missing
        return [
            PlanProblem(
                "",
                f"{m.position}: MassMessage '{m.name}' is declared but target '{target}' has no"
                f" WeChat credentials (targets.{target}.wechat: appId, secret)",
            )
            for m in messages
        ]
    found = {r.name: r for r in records if r.name}
    now = max((r.read_at for r in records), default=0.0)
    sends = [float(b.pending_at) for r in records for b in r.record.batches.values()]
    uploads = [
        float(min(b.pending_at for b in r.record.batches.values()))
        for r in records
        if r.record.media_id and r.record.batches
    ]
    out: list[Finding] = [Notice("MassMessage", BLIND_SPOT, "blindSpot")] if messages else []
    for message in messages:
        rec = found.get(message.name) or LiveMassMessage(message.name, False, SendRecord())
        found_here = _one(message, rec, now, sends, uploads, options)
        out.extend(found_here)
        if not any(isinstance(f, SendMassMessage | DeleteMassMessage) for f in found_here):
            end = message.window.not_after.timestamp()
            out.extend(_clear(rec, end, message.delete is not None, now))
    for rec in records:
        if not rec.name:  # a message removed from git: its record is kept until it is closed
            out.extend(_clear(rec, None, False, now))
    if options.wechat_account_type is None and any(isinstance(f, SendMassMessage) for f in out):
        out.append(Notice("MassMessage", TYPE_UNKNOWN, "field"))
    return out


def _clear(
    rec: LiveMassMessage, not_after: float | None, delete: bool, now: float
) -> list[Finding]:
    """The record's destruction once nothing can be sent or change any more (`record.py`)."""
    if not rec.exists or not rec.readable:
        return []
    if still_needed(rec.record, rec.statuses, not_after, delete, now) is not None:
        return []
    return [ClearMassRecord(rec.name, rec.account, rec.record.encode())]


def _one(
    message: MassMessage,
    rec: LiveMassMessage,
    now: float,
    sends: list[float],
    uploads: list[float],
    options: DiffOptions,
) -> list[Finding]:
    name, record = message.name, rec.record
    tz = time_zone(options.time_zone)
    if not rec.readable:
        return [
            PlanProblem(
                PREFIX + name,
                "its record (a CustomString of the inventory's record account) is not one this"
                " tool wrote: nothing is sent until a human checks what was sent",
            )
        ]
    out: list[Finding] = []
    batches = message.audience.batches()
    if record.batches and record.digest != message.digest:
        return [
            _notice(
                name,
                "was sent with other content or to another audience; a sent message is never"
                " sent again (give it a new name to send the new one)",
            )
        ]
    due, expired = [], []
    for i in range(len(batches)):
        batch = record.batches.get(i)
        if batch is None:
            due.append(i)
        elif batch.msg_id is None and now - batch.pending_at > REPLAY_WINDOW:
            expired.append(i)
        elif batch.msg_id is None:
            due.append(i)
    for i in expired:
        at = format_instant(record.batches[i].pending_at, tz)
        out.append(
            _notice(
                name,
                f"batch {i} was marked pending at {at}, more than 24 hours ago, and has no"
                " msg_id: it may or may not have gone out; it is never sent again (check the MP"
                " console)",
                PENDING_EXPIRED,
            )
        )
    if due:
        out.extend(_send(message, rec, tuple(due), now, sends, uploads, options))
        return out
    out.extend(_status(message, rec))
    return out


def _send(
    message: MassMessage,
    rec: LiveMassMessage,
    due: tuple[int, ...],
    now: float,
    sends: list[float],
    uploads: list[float],
    options: DiffOptions,
) -> list[Finding]:
    name, tz_name = message.name, options.time_zone
    tz = time_zone(tz_name)
    state = message.window.state(now, WINDOW_DAYS)
    if state is WindowState.NOT_YET_OPEN:
        assert message.window.not_before is not None
        at = format_instant(message.window.not_before.timestamp(), tz)
        return [_notice(name, f"waits for its window: not sent before {at}")]
    if state is WindowState.CLOSED:
        at = format_instant(message.window.not_after.timestamp(), tz)
        return [_notice(name, f"its window closed at {at}: done, nothing more is sent")]
    subscription = options.wechat_account_type == SUBSCRIPTION
    if subscription and message.audience.kind is Audience.OPENIDS:
        return [
            PlanProblem(
                PREFIX + name,
                "a subscription account (wechat.accountType: subscription) cannot send to a list"
                " of OpenIDs (WeChat mass API section 4): send to everyone or to a tag",
            )
        ]
    if subscription and max(ONCE_A_DAY.slots(sends, 1, now)) > now:
        until = max(ONCE_A_DAY.slots(sends, 1, now))
        line = deferral_line(f"{PREFIX}{name}", until, tz)
        return [_notice(name, f"{line}: a subscription account sends once a day")]
    upload = message.type in ("news", "video") and not rec.record.media_id
    slots = SENDS.slots(sends, len(due), now)
    if upload and message.type == "news":
        slots += UPLOADS.slots(uploads, 1, now)
    if max(slots) > now:
        return [_notice(name, deferral_line(f"{PREFIX}{name}", max(slots), tz))]
    sends.extend([now] * len(due))
    if upload and message.type == "news":
        uploads.append(now)
    quota = f"{SENDS.used(sends, now)} of {SENDS.count} sends in 24 hours after this one"
    if message.type == "news" and upload:
        quota += f"; {UPLOADS.used(uploads, now)} of {UPLOADS.count} news uploads"
    return [
        SendMassMessage(
            name,
            message.type,
            dict(message.content),
            message.audience,
            dataclasses.replace(message.window, position=None),  # as a plan file holds it
            message.ignore_reprint,
            message.digest,
            message.delete,
            due,
            rec.exists,
            rec.record.encode() if rec.exists else "",
            quota,
            tz_name,
        )
    ]


def _status(message: MassMessage, rec: LiveMassMessage) -> list[Finding]:
    name, record = message.name, rec.record
    out: list[Finding] = []
    jobs = {i: b.msg_id for i, b in record.batches.items() if b.msg_id is not None}
    for i, state in sorted(rec.statuses.items()):
        deleted = record.batches[i].deleted_at is not None
        if state == "DELETE" and not deleted:
            out.append(
                _notice(
                    name,
                    f"batch {i} (msg_id {jobs[i]}) reads DELETE: deleted by hand",
                    DELETED_BY_HAND,
                )
            )
        elif state == "SEND_FAIL":
            out.append(
                _notice(
                    name,
                    f"batch {i} (msg_id {jobs[i]}) reads SEND_FAIL: failed after apply",
                    FAILED_AFTER_APPLY,
                )
            )
        elif state == "SENDING":
            out.append(
                _notice(
                    name,
                    f"batch {i} (msg_id {jobs[i]}) is SENDING (a send to all"
                    " may wait up to 30 minutes for the admin's confirmation)",
                )
            )
    undeleted = {i: m for i, m in jobs.items() if record.batches[i].deleted_at is None}
    success = all(rec.statuses.get(i) == "SEND_SUCCESS" for i in undeleted)
    if message.delete is not None and undeleted and success:
        out.append(
            DeleteMassMessage(name, message.type, undeleted, message.delete, record.encode())
        )
    return out
