"""`reconciler messages ACCOUNT [--since DATE] [--format text|json]`: an account's broadcast
history, each message with the Broadcast document it belongs to (for on-call). Read-only."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, TextIO

from reconciler.changes import plural
from reconciler.connect import connect
from reconciler.errors import UsageError
from reconciler.kinds.broadcast.model import (
    AccountHistory,
    BroadcastRecord,
    HistoryMessage,
    manifest_body,
    send_random,
    short,
)
from reconciler.kinds.broadcast.read import read_since
from reconciler.kinds.sending import format_instant, time_zone, wall_clock
from reconciler.model import canonical_account_id
from reconciler.pipeline import open_scope

_STATES = {0: "sent", 1: "placeholder", 2: "recalled"}


def belongs_to(message: HistoryMessage, records: Sequence[BroadcastRecord]) -> str | None:
    """The name of the document `message` was sent for (as declared, or edited since)."""
    for record in records:
        if message.random == record.random:
            return record.name
        if message.msg_body and message.random == send_random(
            record.account, record.name, message.digest
        ):
            return record.name
    return None


def _since(text: str | None, now: float, history_days: int) -> float:
    if text is None:
        return now - history_days * 86400
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r}: not a date (YYYY-MM-DD) or a date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def messages_command(
    account: str,
    paths: Sequence[str],
    *,
    config: str | None,
    target: str | None,
    since: str | None,
    fmt: str,
    stdout: TextIO,
) -> int:
    """Print the history; 0, or 1 on an error."""
    scope = open_scope(paths, config=config, target=target)
    account_id = canonical_account_id(account)
    now = wall_clock()
    start = _since(since, now, scope.config.limits.history_days)
    records = [r for r in scope.desired.of(BroadcastRecord) if r.account == account_id]

    async def run() -> list[AccountHistory]:
        async with connect(scope.target, scope.config.limits, read_only=True) as providers:
            return await read_since({account_id: start}, providers.im)

    [history] = asyncio.run(run())
    rows: list[dict[str, Any]] = [
        {
            "msgKey": m.key,
            "time": m.time,
            "state": _STATES.get(m.place, str(m.place)),
            "random": m.random,
            "document": belongs_to(m, records),
            "body": manifest_body(m.msg_body),
        }
        for m in history.messages
        if m.time >= start
    ]
    if fmt == "json":
        out: dict[str, Any] = {"account": account_id, "since": int(start), "messages": rows}
        if history.missing:
            out["error"] = history.missing
        stdout.write(json.dumps(out, ensure_ascii=False, sort_keys=True, indent=2) + "\n")
        return 0
    tz = time_zone(scope.config.time_zone)
    since_text = format_instant(start, tz)
    stdout.write(f"{short(account_id)}: {plural(len(rows), 'message')} since {since_text}\n")
    if history.missing:
        stdout.write(f"  the account {history.missing}\n")
    for row in rows:
        doc = f"Broadcast/{row['document']}" if row["document"] else "(no document)"
        text = next((e["text"] for e in row["body"] if "text" in e), "")
        shown = str(text).splitlines()[0][:60] if text else ""
        stdout.write(
            f"  {format_instant(row['time'], tz)}  {row['msgKey']}  {row['state']:<8}  {doc}"
            + (f"  {shown!r}" if shown else "")
            + "\n"
        )
    return 0
