"""What a declared broadcast needs, decided from its account's live history (never a local file).

For each declared broadcast, in its account's history read back to its window's start:
- a message with its `Random` and its body: sent (its MsgKey and time); recalled when the vendor
  lists it as recalled (`IsPlaceMsg` 2, its `MsgRandom` kept);
- a message whose `Random` is the one this document's name gives that message's body: sent, then
  edited in git; only `recall` takes effect, and the plan names the changed paths;
- a placeholder (`IsPlaceMsg` 1) inside its window: sent, unknown state; never sent again;
- the same body under another `Random` inside its window (a rename, a re-add, a send by hand):
  reported, not sent, unless the document says `resend: true`;
- else, inside its window: due (sent now, or deferred while the account's quota is used up:
  2 an hour counted from history, by-hand sends included, 1 a second); before it: scheduled;
  after it: never sent.
Messages of the history that no document declares are reported for drift (`drift:` notices).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from reconciler.changes import DiffOptions, Finding, Notice, PlanProblem
from reconciler.config import Limits
from reconciler.errors import Problem
from reconciler.kinds.broadcast.changes import RecallBroadcast, SendBroadcast
from reconciler.kinds.broadcast.model import (
    AccountHistory,
    BroadcastRecord,
    HistoryMessage,
    manifest_body,
    send_random,
    short,
)
from reconciler.kinds.sending import (
    Quota,
    WindowState,
    changed_paths,
    deferral_line,
    format_instant,
    longer_than_retention,
    time_zone,
)
from reconciler.live import LiveState
from reconciler.model import DesiredState

#: Reference 7.1: 2 broadcasts per account per hour, 1 per second.
BROADCAST_QUOTA: Final = Quota(2, 3600, 1)
#: A slot this close to now is due now: apply spaces an account's sends by a second itself.
_DUE_SLACK: Final = 60.0
#: Why a notice is reported by drift too (`reconciler.drift`): `drift:<field>`.
DRIFT: Final = "drift:"


@dataclass(frozen=True, slots=True)
class Found:
    """What history says of one declared broadcast."""

    state: str  # sent | recalled | edited | unknown | elsewhere | unsent
    message: HistoryMessage | None = None


def classify(record: BroadcastRecord, history: AccountHistory, start: float) -> Found:
    random, digest = record.random, record.digest
    for m in history.messages:
        if m.random == random and m.place == 2:
            return Found("recalled", m)
        if m.random == random and m.place == 0 and m.digest == digest:
            return Found("sent", m)
    for m in history.messages:
        if m.place == 0 and m.random == send_random(record.account, record.name, m.digest):
            return Found("edited", m)
    end = record.window.not_after.timestamp()
    for m in history.messages:
        if m.place == 1 and start <= m.time <= end:
            return Found("unknown", m)
    for m in history.messages:
        if m.place == 0 and m.digest == digest and m.time >= start:
            return Found("elsewhere", m)
    return Found("unsent")


def diff_broadcasts(
    desired: DesiredState, live: LiveState, options: DiffOptions
) -> Iterable[Finding]:
    tz = time_zone(options.time_zone)
    histories = {h.account: h for h in live.of(AccountHistory)}
    records = sorted(desired.of(BroadcastRecord), key=lambda r: (r.account, r.name))
    found: list[Finding] = []
    claimed: dict[str, set[str]] = {}
    due: dict[str, list[BroadcastRecord]] = {}
    for record in records:
        history = histories.get(record.account)
        problem = _problem(record, history, desired, options)
        if problem is not None:
            found.append(problem)
            continue
        assert history is not None
        start = record.window.start(options.history_days)
        result = classify(record, history, start)
        if result.message is not None:
            claimed.setdefault(record.account, set()).add(result.message.key)
        finding = _finding(record, result, history, options, tz)
        if finding is None and result.state in ("unsent", "elsewhere") and not record.recall:
            due.setdefault(record.account, []).append(record)
        elif finding is not None:
            found.append(finding)
    for account, records_due in sorted(due.items()):
        found.extend(_sends(records_due, histories[account], desired, live, options))
    for history in histories.values():
        found.extend(_undeclared(history, claimed.get(history.account, set()), tz))
    return found


def window_too_long(record: BroadcastRecord, history_days: int) -> Problem | None:
    """A window longer than the history retention: a send could not be proven once it left it."""
    window = record.window
    if window.not_before is None:
        return None
    why = longer_than_retention(window.not_after - window.not_before, history_days)
    if why is None:
        return None
    where = window.position or record.position
    return Problem(where.file, where.line, where.col, why)


def check(desired: DesiredState, limits: Limits) -> list[Problem]:
    """`Kind.check`: the problems `validate` finds with `reconciler.yaml`'s limits."""
    found = (window_too_long(r, limits.history_days) for r in desired.of(BroadcastRecord))
    return [p for p in found if p is not None]


def _problem(
    record: BroadcastRecord,
    history: AccountHistory | None,
    desired: DesiredState,
    options: DiffOptions,
) -> PlanProblem | None:
    too_long = window_too_long(record, options.history_days)
    if too_long is not None:
        return PlanProblem(record.account, str(too_long))
    declared = record.account in desired.accounts
    if history is None or (history.missing and not declared):
        return PlanProblem(
            record.account,
            f"{record.position}: Broadcast '{record.name}': account {short(record.account)} is"
            " neither declared nor found",
        )
    return None


def _finding(
    record: BroadcastRecord,
    result: Found,
    history: AccountHistory,
    options: DiffOptions,
    tz: dt.tzinfo,
) -> Finding | None:
    m = result.message
    ref, account = record.ref, record.account
    if result.state in ("sent", "edited") and m is not None:
        if record.recall:
            return RecallBroadcast(
                account, record.name, m.key, m.time, record.reason, options.time_zone
            )
        if result.state == "edited":
            paths = changed_paths(
                {"body": manifest_body(m.msg_body)}, {"body": manifest_body(record.msg_body)}
            )
            return Notice(
                account,
                f"broadcast {ref} was sent {_at(m, tz)} and edited since ({', '.join(paths)}):"
                " a sent message cannot change; only `recall: true` takes effect",
                "broadcast",
            )
        return None
    if result.state == "recalled" and m is not None:
        if record.recall:
            return None
        return Notice(
            account,
            f"broadcast {ref} was recalled outside git ({_at(m, tz)}); it is not sent again",
            f"{DRIFT}broadcast {record.name}",
        )
    if result.state == "unknown" and m is not None:
        return Notice(
            account,
            f"broadcast {ref}: sent, unknown state (a placeholder in its window, MsgKey {m.key},"
            f" {_at(m, tz)}); never sent again",
            "broadcast",
        )
    if result.state == "elsewhere" and m is not None and not record.resend:
        return Notice(
            account,
            f"broadcast {ref}: the same body was already sent from {short(account)} inside its"
            f" window ({_at(m, tz)}, MsgKey {m.key}); not sent again (`resend: true` sends it)",
            "broadcast",
        )
    if record.recall:
        return Notice(
            account,
            f"broadcast {ref}: `recall: true` but it is not in the history (never sent, or older"
            f" than the {options.history_days}-day retention): nothing to recall",
            "broadcast",
        )
    state = record.window.state(history.read_at, options.history_days)
    if state is WindowState.NOT_YET_OPEN:
        opens = format_instant(record.window.start(options.history_days), tz)
        return Notice(account, f"broadcast {ref}: scheduled, its window opens {opens}", "broadcast")
    if state is WindowState.CLOSED:
        closed = format_instant(record.window.not_after.timestamp(), tz)
        return Notice(
            account,
            f"broadcast {ref}: its window closed {closed} and it was never sent; it will not be"
            " sent",
            "broadcast",
        )
    return None


def _at(m: HistoryMessage, tz: dt.tzinfo) -> str:
    return "at " + format_instant(m.time, tz)


def _recipients(account: str, desired: DesiredState, live: LiveState) -> int:
    found = live.accounts.get(account)
    if found is not None:
        return max(0, found.subscriber_count - (1 if found.owned else 0))
    declared = desired.accounts.get(account)
    if declared is not None and declared.subscribers is not None:
        return len(declared.subscribers.members)
    return 0


def _sends(
    records: Sequence[BroadcastRecord],
    history: AccountHistory,
    desired: DesiredState,
    live: LiveState,
    options: DiffOptions,
) -> list[Finding]:
    """The due sends of one account within its quota; the rest deferred until a slot frees."""
    tz = time_zone(options.time_zone)
    now = history.read_at
    ordered = sorted(records, key=lambda r: (r.window.not_after, r.name))
    sent = [m.time for m in history.messages]
    used = BROADCAST_QUOTA.used(sent, now)
    declared_randoms = {r.random for r in desired.of(BroadcastRecord)}
    by_hand = sum(
        1
        for m in history.messages
        if now - 3600 < m.time <= now and m.random not in declared_randoms
    )
    slots = BROADCAST_QUOTA.slots(sent, len(ordered), now)
    out: list[Finding] = []
    recipients = _recipients(history.account, desired, live)
    for n, (record, slot) in enumerate(zip(ordered, slots, strict=True)):
        if slot - now <= _DUE_SLACK:
            hand = f" ({by_hand} by hand)" if by_hand else ""
            quota = (
                f"{short(record.account)}: {used} sent in the last hour{hand};"
                f" this makes {used + n + 1}/{BROADCAST_QUOTA.count}"
            )
            out.append(
                SendBroadcast(
                    record.account,
                    record.name,
                    record.msg_body,
                    record.random,
                    record.window,
                    recipients,
                    quota,
                    options.time_zone,
                    record.cloud_custom_data,
                    record.offline_push,
                    record.online_only,
                )
            )
        elif slot > record.window.not_after.timestamp():
            out.append(
                Notice(
                    record.account,
                    f"broadcast {record.ref}: over the quota until {format_instant(slot, tz)},"
                    " after its window closes: it will not be sent",
                    "broadcast",
                )
            )
        else:
            out.append(
                Notice(
                    record.account, deferral_line(f"broadcast {record.ref}", slot, tz), "broadcast"
                )
            )
    return out


def _undeclared(history: AccountHistory, claimed: set[str], tz: dt.tzinfo) -> list[Notice]:
    """Messages in history that no document declares (sent by hand or by a client)."""
    return [
        Notice(
            history.account,
            f"message {m.key} sent {_at(m, tz)} is declared by no Broadcast document",
            f"{DRIFT}broadcast {m.key}",
        )
        for m in history.messages
        if m.place == 0 and m.key not in claimed and m.time >= history.since
    ]
