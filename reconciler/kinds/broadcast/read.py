"""A Broadcast's live state: the history of each account a Broadcast document names."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from reconciler.kinds.broadcast.model import AccountHistory, BroadcastRecord, HistoryMessage
from reconciler.kinds.sending import wall_clock
from reconciler.model import DesiredState
from reconciler.providers import AccountInfo, IMProvider, MassSpeedProvider

#: Read at least this far back: the hourly quota counts the last hour's sends.
QUOTA_SECONDS = 3600.0
#: A window without notBefore is read back this far (no retention is longer than 90 days).
LONGEST_RETENTION = 90 * 86400.0


def _since(records: Sequence[BroadcastRecord], now: float) -> float:
    starts = [
        r.window.not_before.timestamp()
        if r.window.not_before is not None
        else r.window.not_after.timestamp() - LONGEST_RETENTION
        for r in records
    ]
    return min([now - QUOTA_SECONDS, *starts])


async def read_since(since: Mapping[str, float], im: IMProvider) -> list[AccountHistory]:
    """Each account's history back to `since[account]`; an account that cannot be read (not
    created yet) has an empty history and says why."""
    now = wall_clock()

    async def one(account: str, since: float) -> AccountHistory:
        # any other failure ends the read: a history not read is never taken for an empty one
        entries = await im.get_history(account, since)
        if entries is None:
            return AccountHistory(account, (), now, since, missing="does not exist")
        messages = tuple(
            HistoryMessage(e.key, e.time, e.random, e.place, e.msg_body) for e in entries
        )
        return AccountHistory(account, messages, now, since)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(a, s)) for a, s in sorted(since.items())]
    return [t.result() for t in tasks]


async def read(
    desired: DesiredState,
    im: IMProvider,
    mass: MassSpeedProvider | None,
    recorded: Sequence[AccountInfo] = (),
) -> list[AccountHistory]:
    """`Kind.read`: the histories of the accounts the declared broadcasts name."""
    del mass, recorded
    accounts: dict[str, list[BroadcastRecord]] = {}
    for record in desired.of(BroadcastRecord):
        accounts.setdefault(record.account, []).append(record)
    now = wall_clock()
    return await read_since({a: _since(rs, now) for a, rs in accounts.items()}, im)
