"""`kind: Broadcast`: a message from one official account to all its subscribers, as code.

The document is the send's approval: the plan shows what goes out, to how many, when and within
which quota; apply sends it once inside its window; a later change with `recall: true` recalls
it. Whether it was sent is read from the account's live history every run (`diff.py`), never
from a local file, and the send's vendor `Random` is derived from the account, the name and the
body (`model.send_random`), so a retry inside 5 minutes is the vendor's duplicate, not a second
send. `model.py` (records, body forms, resolve), `read.py` (histories), `diff.py` (what is due),
`changes.py` (send, recall).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.changes import Change, Kind, plural
from reconciler.digest import json_digest
from reconciler.kinds.broadcast import read as history
from reconciler.kinds.broadcast.changes import RecallBroadcast, SendBroadcast
from reconciler.kinds.broadcast.diff import check, diff_broadcasts
from reconciler.kinds.broadcast.model import AccountHistory, BroadcastRecord, resolve
from reconciler.kinds.sending import wall_clock
from reconciler.live import LiveState
from reconciler.model import DesiredState
from reconciler.providers import IMProvider

__all__ = ["KIND", "AccountHistory", "BroadcastRecord", "RecallBroadcast", "SendBroadcast"]


def _digest(desired: DesiredState) -> str:
    """Its part of the desired-state digest; "" without broadcasts (digests stay as they were)."""
    found = sorted(desired.of(BroadcastRecord), key=lambda r: (r.account, r.name))
    if not found:
        return ""
    return json_digest(
        [[r.account, r.name, r.digest, r.window.data, r.recall, r.reason, r.resend] for r in found]
    )


def _accounts(changes: Sequence[Change]) -> list[str]:
    return sorted({c.account_id for c in changes if isinstance(c, SendBroadcast | RecallBroadcast)})


def _pin(history: AccountHistory, since: float) -> str:
    kept = [m for m in history.messages if m.time >= since]
    return f"{since:.0f}:" + AccountHistory(history.account, tuple(kept), 0, since).fingerprint


def _pins(changes: Sequence[Change], live: LiveState) -> Mapping[str, str]:
    """Each sending or recalling account's history, from the read's start (`Kind.pins`)."""
    histories = {h.account: h for h in live.of(AccountHistory)}
    return {
        f"history {a}": _pin(histories[a], int(histories[a].since))
        for a in _accounts(changes)
        if a in histories
    }


async def _repin(
    changes: Sequence[Change], saved: Mapping[str, str], im: IMProvider
) -> tuple[Mapping[str, str], list[str]]:
    """The pins read afresh (each history from where the plan's pin starts), and the sends whose
    window has closed since the plan."""
    now = wall_clock()
    expired = [
        f"the window of broadcast {c.ref} closed"
        for c in changes
        if isinstance(c, SendBroadcast) and now > c.window.not_after.timestamp()
    ]
    since = {
        account: float(saved.get(f"history {account}", f"{now - 3600:.0f}:").split(":")[0])
        for account in _accounts(changes)
    }
    found = await history.read_since(since, im)
    pins = {f"history {h.account}": _pin(h, since[h.account]) for h in found}
    return pins, expired


# Its counts are in a plan's summary only when it has some (`count` adds the key), so plans
# without broadcasts keep their JSON and markdown summaries.
_COUNTS = (("broadcastsSent", "to send"), ("broadcastsRecalled", "to recall"))


def _summary_text(s: Mapping[str, int]) -> list[str]:
    return [f"{plural(s[k], 'broadcast')} {what}" for k, what in _COUNTS if s.get(k)]


def _summary_rows(s: Mapping[str, int]) -> list[tuple[str, int]]:
    return [(f"broadcasts {what}", s[k]) for k, what in _COUNTS if s.get(k)]


KIND = Kind(
    name="Broadcast",
    changes=(SendBroadcast, RecallBroadcast),
    resolve=resolve,
    read=history.read,
    digest=_digest,
    diff=diff_broadcasts,
    summary_text=_summary_text,
    summary_rows=_summary_rows,
    pins=_pins,
    repin=_repin,
    check=check,
)
