"""A broadcast's two changes: send it (once, inside its window) and recall it (by MsgKey).

Both run in the apply phase "messages", after the accounts and their subscribers (DESIGN section
6), in the lane of their account, so that an account's sends follow one another (1 per second).
They are shown as their own blocks, not in the account's section: a send is not an edit of the
account, and its lines (recipients, body, window, quota, irreversibility) are its own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from reconciler.changes import (
    PHASE_RECALL,
    PHASE_SEND,
    Action,
    ApplyRun,
    Change,
    DriftItem,
    Schedule,
    Wire,
    batched,
    plural,
)
from reconciler.errors import ProviderError
from reconciler.kinds.broadcast.model import manifest_body, short
from reconciler.kinds.sending import Window, format_instant, time_zone, wall_clock
from reconciler.outcome import Failure
from reconciler.providers.calls import API_RECALL, API_SEND, RECALL_BATCH

#: The apply phase of every message change.
MESSAGES: Final = "messages"
#: Reference 7.1: an account sends at most 1 message per second.
SEND_INTERVAL: Final = 1.05
#: How many lines of a send a markdown plan shows (a PR comment is at most 65,536 characters).
_MARKDOWN_LINES: Final = 40
#: How much of a text element a plan shows in full.
_TEXT_SHOWN: Final = 500


def render_body(msg_body: Sequence[Mapping[str, Any]]) -> list[str]:
    """Text elements shown, other elements summarised (one line each)."""
    lines: list[str] = []
    for element in manifest_body(msg_body):
        [(name, content)] = element.items()
        if name == "text":
            text = str(content)
            shown = text if len(text) <= _TEXT_SHOWN else text[:_TEXT_SHOWN] + "…"
            lines.extend(f"| {line}" for line in shown.splitlines() or [""])
        elif name == "custom" and isinstance(content, Mapping):
            desc = f" ({content['desc']})" if content.get("desc") else ""
            lines.append(
                f"[custom{desc}: {len(str(content.get('data', ''))):,} characters of data]"
            )
        elif isinstance(content, Mapping):
            hint = content.get("fileName") or content.get("url") or content.get("desc") or ""
            lines.append(f"[{name}{': ' + str(hint) if hint else ''}]")
        else:
            lines.append(f"[{name}]")
    return lines


class SendBroadcastWire(Wire, frozen=True, tag="sendBroadcast"):
    """The plan-file form of `SendBroadcast`."""

    account: str
    name: str
    msgBody: list[Any]
    random: int
    window: dict[str, str | None]
    recipients: int
    quota: str
    timeZone: str
    cloudCustomData: str | None = None
    offlinePush: dict[str, Any] | None = None
    onlineOnly: bool = False

    def change(self) -> SendBroadcast:
        return SendBroadcast(
            self.account,
            self.name,
            tuple(self.msgBody),
            self.random,
            Window.from_data(self.window),
            self.recipients,
            self.quota,
            self.timeZone,
            self.cloudCustomData,
            self.offlinePush,
            self.onlineOnly,
        )


@dataclass(frozen=True, slots=True)
class _BroadcastChange(Change):
    """What a send and a recall share: an account's lane, ordered by the broadcast's name."""

    account_id: str
    name: str

    @property
    def lane(self) -> str:
        return self.account_id

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (self.phase, self.account_id, self.name)

    @property
    def ref(self) -> str:
        return f"{short(self.account_id)}/{self.name}"


@dataclass(frozen=True, slots=True)
class SendBroadcast(_BroadcastChange):
    """Send a declared broadcast that history shows was not sent (send_official_account_msg)."""

    kind: ClassVar[str] = "sendBroadcast"
    phase: ClassVar[int] = PHASE_SEND
    wire_type: ClassVar[type[Wire]] = SendBroadcastWire
    #: counted by `safety.maxBroadcasts` (`reconciler.caps`)
    send_cap: ClassVar[str] = "maxBroadcasts"
    msg_body: tuple[Any, ...]
    random: int
    window: Window
    #: subscribers it reaches, as planned (the inventory user left out)
    recipients: int
    #: the quota projection line (`news: 1 sent in the last hour (1 by hand); this makes 2/2`)
    quota: str
    time_zone: str = "UTC"
    cloud_custom_data: str | None = None
    offline_push: Mapping[str, Any] | None = None
    online_only: bool = False

    def wire(self) -> SendBroadcastWire:
        return SendBroadcastWire(
            self.account_id,
            self.name,
            list(self.msg_body),
            self.random,
            self.window.data,
            self.recipients,
            self.quota,
            self.time_zone,
            self.cloud_custom_data,
            None if self.offline_push is None else dict(self.offline_push),
            self.online_only,
        )

    def actions(self, schedule: Schedule) -> list[Action]:
        return [Action(f"{self.kind}/{self.account_id}/{self.name}", API_SEND, self)]

    def apply_phase(self, action: Action) -> str:
        return MESSAGES

    def count(self, summary: dict[str, int]) -> None:
        summary["broadcastsSent"] = summary.get("broadcastsSent", 0) + 1

    def headline(self) -> tuple[int, str, str] | None:
        return None

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return []

    def lines(self) -> list[str]:
        tz = time_zone(self.time_zone)
        who = plural(self.recipients, "subscriber") + (" online" if self.online_only else "")
        return [
            f"+ broadcast {self.ref} will be sent to {who}",
            *(f"    {line}" for line in render_body(self.msg_body)),
            f"    window: {self.window.render(tz)}",
            f"    quota: {self.quota}",
            "    a send cannot be undone (a later change can only recall it)",
        ]

    def block(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        head, *rest = self.lines()
        return [("+", head), *((" ", line) for line in rest)]

    def markdown(self, *, first: int) -> list[str]:
        lines = self.lines()
        if len(lines) > _MARKDOWN_LINES:  # a body of many small elements
            extra = len(lines) - _MARKDOWN_LINES
            lines = [*lines[: _MARKDOWN_LINES - 3], f"    … {extra:,} more lines", *lines[-3:]]
        body = "\n".join(lines)
        fence = "`" * max(3, max((len(m) for m in re.findall("`+", body)), default=0) + 1)
        return [f"{fence}diff", body, fence, ""]

    def drift(self) -> list[DriftItem]:
        return [DriftItem(self.account_id, f"broadcast {self.name}", "sent", "not sent")]

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        state = run.state(_Sends)
        report = run.result.report(self.account_id)
        await state.pace(self.account_id, run)
        now = wall_clock()
        before = self.window.not_before
        if now > self.window.not_after.timestamp() or (before and now < before.timestamp()):
            report.skipped.append(f"broadcast {self.ref}: outside its window, not sent")
            run.progress(1)
            return
        try:
            sent = await run.im.send_broadcast(
                self.account_id,
                list(self.msg_body),
                random_id=self.random,
                cloud_custom_data=self.cloud_custom_data,
                offline_push=self.offline_push,
                online_only=self.online_only,
            )
        except ProviderError as exc:
            run.result.uncertain += 1
            how = (
                "unknown (the answer was lost; the next run looks it up in history first)"
                if exc.maybe_applied
                else "failed"
            )
            report.failed.append(Failure(f"broadcast {self.ref}", exc.code, f"{how}: {exc}"))
        else:
            run.result.messages_sent += 1
            report.applied.append(f"broadcast {self.ref} sent (MsgKey {sent.key})")
        finally:
            state.last[self.account_id] = run.clock()
        run.progress(1)


class _Sends:
    """When each account last sent in this run: its next send waits `SEND_INTERVAL`."""

    def __init__(self, run: ApplyRun) -> None:
        self.last: dict[str, float] = {}

    async def pace(self, account: str, run: ApplyRun) -> None:
        last = self.last.get(account)
        if last is not None:
            wait = last + SEND_INTERVAL - run.clock()
            if wait > 0:
                await asyncio.sleep(wait)


class RecallBroadcastWire(Wire, frozen=True, tag="recallBroadcast"):
    """The plan-file form of `RecallBroadcast`."""

    account: str
    name: str
    msgKey: str
    sentAt: int
    reason: str
    timeZone: str

    def change(self) -> RecallBroadcast:
        return RecallBroadcast(
            self.account, self.name, self.msgKey, self.sentAt, self.reason, self.timeZone
        )


@dataclass(frozen=True, slots=True)
class RecallBroadcast(_BroadcastChange):
    """Recall a sent broadcast whose document now says `recall: true`."""

    kind: ClassVar[str] = "recallBroadcast"
    phase: ClassVar[int] = PHASE_RECALL
    wire_type: ClassVar[type[Wire]] = RecallBroadcastWire
    msg_key: str
    sent_at: int
    reason: str = ""
    time_zone: str = "UTC"

    def wire(self) -> RecallBroadcastWire:
        return RecallBroadcastWire(
            self.account_id, self.name, self.msg_key, self.sent_at, self.reason, self.time_zone
        )

    def actions(self, schedule: Schedule) -> list[Action]:
        # one call per batch of 10 MsgKeys of an account (reference 5.12): the first recall of
        # each batch carries the call, the others ride in it
        batch = schedule.derived(_recall_batches).get((self.account_id, self.msg_key))
        if batch is None:
            return []
        return [Action(f"{self.kind}/{self.account_id}/{batch[0]}", API_RECALL, self, batch)]

    def apply_phase(self, action: Action) -> str:
        return MESSAGES

    def count(self, summary: dict[str, int]) -> None:
        summary["broadcastsRecalled"] = summary.get("broadcastsRecalled", 0) + 1

    def headline(self) -> tuple[int, str, str] | None:
        return None

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return []

    def line(self) -> str:
        sent = format_instant(self.sent_at, time_zone(self.time_zone))
        why = f", reason: {self.reason}" if self.reason else ""
        return f"- broadcast {self.ref} will be recalled (sent {sent}, MsgKey {self.msg_key}{why})"

    def block(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return [("-", self.line())]

    def markdown(self, *, first: int) -> list[str]:
        return ["```diff", self.line(), "```", ""]

    def drift(self) -> list[DriftItem]:
        return [DriftItem(self.account_id, f"broadcast {self.name}", "recalled", "sent")]

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        report = run.result.report(self.account_id)
        refs = {c.msg_key: c.ref for c in run.changes if isinstance(c, RecallBroadcast)}
        for action in actions:
            keys = action.items
            results = await run.im.recall_broadcasts(self.account_id, keys, self.reason)
            for key in keys:
                ref = refs.get(key, key)
                if key in results.changed:
                    run.result.messages_recalled += 1
                    report.applied.append(f"broadcast {ref} recalled (MsgKey {key})")
                else:
                    item = results.failed.get(key)
                    report.failed.append(
                        Failure(
                            f"recall broadcast {ref}",
                            item.code if item else None,
                            item.message if item else "no answer",
                        )
                    )
            run.progress(1)


def _recall_batches(changes: Sequence[Change]) -> dict[tuple[str, str], tuple[str, ...]]:
    """Each account's recalls with the same reason, 10 MsgKeys a call: (account, the batch's
    first key) → the batch (the other keys map to nothing: they ride in it)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for change in changes:
        if isinstance(change, RecallBroadcast):
            groups.setdefault((change.account_id, change.reason), []).append(change.msg_key)
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for (account, _), keys in sorted(groups.items()):
        for batch in batched(keys, RECALL_BATCH):
            out[(account, batch[0])] = batch
    return out
