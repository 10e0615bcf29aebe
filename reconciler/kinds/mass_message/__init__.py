"""`kind: MassMessage`: a WeChat mass message as code, uploaded, previewed, sent once, tracked
and deleted (issue 16; WeChat mass API sections 4 to 11).

- `model.py`: the documents into `MassMessage` records (`Kind.resolve_with_sets`: an OpenID
  audience names SubscriberSets);
- `record.py`: each send recorded in the live system before and after it is made;
- `diff.py`: sends, deletions, deferrals, notices (pure);
- `changes.py`: `SendMassMessage`, `DeleteMassMessage`, `ClearMassRecord` (bookkeeping: a
  record destroyed once it is needed no more) and how apply runs them;
- `preview.py`: `reconciler preview MassMessage/NAME`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.changes import Change, Kind, plural
from reconciler.errors import ProviderError
from reconciler.kinds.mass_message.changes import (
    ClearMassRecord,
    DeleteMassMessage,
    SendMassMessage,
)
from reconciler.kinds.mass_message.diff import diff_messages
from reconciler.kinds.mass_message.model import MassMessage, resolve
from reconciler.kinds.mass_message.record import (
    RECORD_PREFIX,
    LiveMassMessage,
    SendRecord,
    parse_record,
    record_id,
    still_needed,
)
from reconciler.kinds.sending import content_digest, wall_clock
from reconciler.live import LiveState
from reconciler.model import DesiredState
from reconciler.providers import AccountInfo, IMProvider, MassMessageProvider, MassSpeedProvider

__all__ = ["KIND", "LiveMassMessage", "MassMessage", "read"]

#: `mass/get` of an id the vendor does not know (reference 9.2)
_INVALID_MSG_ID = 40059


async def read(
    desired: DesiredState,
    im: IMProvider,
    wechat: MassSpeedProvider | None,
    recorded: Sequence[AccountInfo] = (),
) -> list[LiveMassMessage]:
    """Each declared message's record (found by the inventory walk, `recorded`, else read: one
    call for 50 record accounts), each record of a message no longer declared (name ""), and the
    state of every job they record (one `mass/get` each; none without WeChat credentials)."""
    names = sorted(m.name for m in desired.of(MassMessage))
    walked = {i.id: i for i in recorded if i.id.startswith(RECORD_PREFIX)}
    if not names and not walked:
        return []
    now = wall_clock()
    unread = [record_id(n) for n in names if record_id(n) not in walked]
    infos = {**walked, **(await im.get_accounts(unread) if unread else {})}
    declared = {record_id(n): n for n in names}
    out = []
    for name in names:
        if record_id(name) not in infos:
            out.append(LiveMassMessage(name, False, SendRecord(), read_at=now))
    for account, info in sorted(infos.items()):
        record = parse_record(info.custom_string)
        statuses: dict[int, str] = {}
        wanted = record is not None and (account in declared or _closing(record, now))
        if record is not None and wanted and isinstance(wechat, MassMessageProvider):
            statuses = await _statuses(wechat, record)
        out.append(
            LiveMassMessage(
                declared.get(account, ""),
                True,
                record or SendRecord(),
                readable=record is not None,
                statuses=statuses,
                read_at=now,
                account=account,
            )
        )
    return sorted(out, key=lambda r: (r.name, r.account))


def _closing(record: SendRecord, now: float) -> bool:
    """Whether the record of a message no longer declared may be cleared once its jobs are
    final: only then are they read (its jobs are no one's concern any more otherwise)."""
    final = {i: "SEND_FAIL" for i in record.batches}
    return still_needed(record, final, None, False, now) is None


async def _statuses(wechat: MassMessageProvider, record: SendRecord) -> dict[int, str]:
    statuses: dict[int, str] = {}
    for i, batch in sorted(record.batches.items()):
        if batch.msg_id is not None:
            try:
                statuses[i] = await wechat.mass_status(batch.msg_id)
            except ProviderError as exc:
                if exc.code != _INVALID_MSG_ID:
                    raise
                statuses[i] = "UNKNOWN"
    return statuses


def digest(desired: DesiredState) -> str:
    """The declared messages as a saved plan is pinned to them ("" when there are none)."""
    if not desired.of(MassMessage):
        return ""
    return content_digest(
        sorted(
            [m.name, m.digest, m.window.data, m.delete is not None, list(m.delete or ())]
            for m in desired.of(MassMessage)
        )
    )


def _pin(record: SendRecord | None, exists: bool) -> str:
    if not exists:
        return "none"
    return "unreadable" if record is None else content_digest(record.encode())


def _named(changes: Sequence[Change]) -> list[str]:
    return sorted({c.name for c in changes if isinstance(c, SendMassMessage | DeleteMassMessage)})


def pins(changes: Sequence[Change], live: LiveState) -> Mapping[str, str]:
    """Each sent or deleted message's record as read (`Kind.pins`): a saved plan whose record
    changed since (another apply sent it) is refused as stale, never sent twice."""
    found = {r.name: r for r in live.of(LiveMassMessage) if r.name}
    return {
        f"mass record {n}": _pin(found[n].record if found[n].readable else None, found[n].exists)
        for n in _named(changes)
        if n in found
    }


async def repin(
    changes: Sequence[Change], saved: Mapping[str, str], im: IMProvider
) -> tuple[Mapping[str, str], list[str]]:
    """The records read afresh, and the sends whose window closed since the plan."""
    now = wall_clock()
    closed = [
        f"the window of mass message {c.name} closed"
        for c in changes
        if isinstance(c, SendMassMessage) and now > c.window.not_after.timestamp()
    ]
    names = _named(changes)
    infos = await im.get_accounts([record_id(n) for n in names]) if names else {}
    fresh = {}
    for name in names:
        info = infos.get(record_id(name))
        record = None if info is None else parse_record(info.custom_string)
        fresh[f"mass record {name}"] = _pin(record, info is not None)
    return fresh, closed


# Its counts are in a plan's summary only when it has some (`count` adds the key), as
# Broadcast's, so plans without mass messages keep their JSON and markdown summaries.
_COUNTS = (("massMessages", "to send"), ("massDeletes", "to delete"))


def _summary_text(s: Mapping[str, int]) -> list[str]:
    return [f"{plural(s[k], 'mass message')} {what}" for k, what in _COUNTS if s.get(k)]


def _summary_rows(s: Mapping[str, int]) -> list[tuple[str, int]]:
    return [(f"mass messages {what}", s[k]) for k, what in _COUNTS if s.get(k)]


KIND = Kind(
    name="MassMessage",
    changes=(SendMassMessage, DeleteMassMessage, ClearMassRecord),
    resolve_with_sets=resolve,
    read=read,
    digest=digest,
    diff=diff_messages,
    summary_text=_summary_text,
    summary_rows=_summary_rows,
    pins=pins,
    repin=repin,
)
