"""The changes of `kind: MassMessage`: a send (upload, pending marks, send calls, status) and a
deletion after a successful send. Both are irreversible, and say so."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from reconciler.changes import (
    PHASE_SPEED,
    Action,
    ApplyRun,
    Change,
    DriftItem,
    Schedule,
    Wire,
    members_summary,
)
from reconciler.errors import ProviderError
from reconciler.kinds.mass_message.model import (
    Audience,
    Target,
    message_body,
)
from reconciler.kinds.mass_message.record import (
    RECORD_NAME,
    RECORD_PREFIX,
    REPLAY_WINDOW,
    SendRecord,
    parse_record,
    record_id,
)
from reconciler.kinds.sending import Window, stable_id, time_zone, wall_clock
from reconciler.model import ProfileField
from reconciler.outcome import Failure, failure
from reconciler.providers import CreateOutcome, MassMessageProvider
from reconciler.providers.calls import (
    API_ADD,
    API_CREATE,
    API_DESTROY,
    API_INFO,
    API_MASS_DELETE,
    API_MASS_GET,
    API_MASS_SEND,
    API_MASS_SENDALL,
    API_MASS_UPLOAD_NEWS,
    API_MASS_UPLOAD_VIDEO,
    API_MODIFY,
)

#: Where plan, apply and drift name a message: `MassMessage/<name>`.
PREFIX: Final = "MassMessage/"
#: After its sends, apply reads each job's state (`mass/get`) until it is final or this passes;
#: a job still SENDING is read again by the next plan (a send to all may wait 30 minutes for
#: the admin, reference section 4).
STATUS_WAIT: Final = 10.0
STATUS_INTERVAL: Final = 1.0
FINAL: Final = frozenset({"SEND_SUCCESS", "SEND_FAIL", "DELETE"})


def clientmsgid(app_id: str, name: str, digest: str, index: int) -> str:
    """Section 6.1: at most 64 bytes, the same for the same target, message, content and batch,
    never from a time: `rcm-<48 hex>-<batch>` (55 bytes at most for 50 batches)."""
    return f"rcm-{stable_id(app_id, name, digest, str(index))[:48]}-{index}"


def _irreversible(what: str) -> str:
    return f"{what} (irreversible)"


class SendMassMessageWire(Wire, frozen=True, tag="sendMassMessage"):
    """The plan-file form of `SendMassMessage`."""

    name: str
    msgType: str
    content: dict[str, Any]
    audience: str
    tag: int | None
    openIds: list[str]
    window: dict[str, str | None]
    ignoreReprint: bool
    digest: str
    delete: list[int] | None
    send: list[int]
    recordExists: bool
    record: str
    quota: str
    timeZone: str = "UTC"

    def change(self) -> SendMassMessage:
        if self.audience not in {a.value for a in Audience}:
            raise ValueError(f"unknown audience {self.audience!r}")
        return SendMassMessage(
            self.name,
            self.msgType,
            self.content,
            Target(Audience(self.audience), self.tag, frozenset(self.openIds)),
            Window.from_data(self.window),
            self.ignoreReprint,
            self.digest,
            None if self.delete is None else tuple(self.delete),
            tuple(self.send),
            self.recordExists,
            self.record,
            self.quota,
            self.timeZone,
        )


class _MassChange(Change):
    __slots__ = ()
    phase: ClassVar[int] = PHASE_SPEED
    needs_inventory_user: ClassVar[bool] = True

    name: str

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (self.phase, PREFIX + self.name, self.kind)

    @property
    def lane(self) -> str:
        return PREFIX + self.name

    def apply_phase(self, action: Action) -> str:
        return "mass speed"

    def headline(self) -> tuple[int, str, str] | None:
        return None

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return []

    def drift(self) -> list[DriftItem]:
        return []


@dataclass(frozen=True, slots=True)
class SendMassMessage(_MassChange):
    """Send a declared message: its upload, a pending mark per send call in its record, the
    calls (one per batch, each with its clientmsgid), each job's msg_id recorded, its status."""

    kind: ClassVar[str] = "sendMassMessage"
    wire_type: ClassVar[type[Wire]] = SendMassMessageWire
    send_cap: ClassVar[str] = "maxMassMessages"
    name: str
    msg_type: str
    content: dict[str, Any]
    audience: Target
    window: Window
    ignore_reprint: bool
    digest: str
    delete: tuple[int, ...] | None
    #: the batches this plan sends (those of an interrupted send that are not recorded sent)
    send: tuple[int, ...]
    record_exists: bool
    #: the record's CustomString as read ("" when there is none)
    record: str
    #: the quota projection line
    quota: str
    #: where the plan shows the window, beside UTC (`timeZone` of reconciler.yaml)
    time_zone: str = "UTC"

    def wire(self) -> SendMassMessageWire:
        return SendMassMessageWire(
            self.name,
            self.msg_type,
            self.content,
            self.audience.kind.value,
            self.audience.tag,
            sorted(self.audience.openids),
            self.window.data,
            self.ignore_reprint,
            self.digest,
            None if self.delete is None else list(self.delete),
            list(self.send),
            self.record_exists,
            self.record,
            self.quota,
            self.time_zone,
        )

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        data = self.data
        data["openIds"] = members_summary(self.audience.openids, first=first)
        data["audienceLabel"] = self.audience.label()
        data["irreversible"] = True
        return data

    @property
    def _upload_api(self) -> str | None:
        if self.msg_type == "news":
            return API_MASS_UPLOAD_NEWS
        return API_MASS_UPLOAD_VIDEO if self.msg_type == "video" else None

    def actions(self, schedule: Schedule) -> list[Action]:
        key = f"{self.kind}/{self.name}"
        batches = self.audience.batches()
        out = []
        recorded = parse_record(self.record) or SendRecord()
        if self._upload_api is not None and not recorded.media_id:
            out.append(Action(f"{key}/upload", self._upload_api, self))
        out.append(Action(f"{key}/mark", API_MODIFY if self.record_exists else API_CREATE, self))
        out.append(Action(f"{key}/subscribe", API_ADD, self))
        api = API_MASS_SENDALL if self.audience.kind is not Audience.OPENIDS else API_MASS_SEND
        for i in self.send:
            out.append(Action(f"{key}/send/{i}", api, self, batches[i]))
            out.append(Action(f"{key}/record/{i}", API_MODIFY, self))
        for i in self.send:
            out.append(Action(f"{key}/status/{i}", API_MASS_GET, self))
        if self.delete is not None:
            for i in self.send:
                for n in self.delete or (0,):
                    out.append(Action(f"{key}/delete/{i}/{n}", API_MASS_DELETE, self))
                out.append(Action(f"{key}/deleted/{i}", API_MODIFY, self))
        return out

    def count(self, summary: dict[str, int]) -> None:
        summary["massMessages"] = summary.get("massMessages", 0) + 1

    def _lines(self) -> list[str]:
        titles = ", ".join(f'"{t}"' for t in self._titles())
        batches = self.audience.batches()
        audience = self.audience.label()
        if len(self.send) != len(batches):
            left = len(self.send)
            audience += f"; {left} batch{'' if left == 1 else 'es'} left of an interrupted send"
        lines = [
            f"type: {self.msg_type}" + (f" — {titles}" if titles else ""),
            f"audience: {audience}",
            f"window: {self.window.render(time_zone(self.time_zone))}",
            f"quota: {self.quota}",
        ]
        if self.delete is not None:
            which = (
                "every article"
                if not self.delete
                else "articles " + ", ".join(map(str, self.delete))
            )
            lines.append(_irreversible(f"then deleted: {which}"))
        return lines

    def _titles(self) -> list[str]:
        if self.msg_type == "news":
            return [str(a.get("title", "")) for a in self.content.get("articles", ())]
        title = self.content.get("title")
        return [str(title)] if self.msg_type == "video" and title else []

    def block(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        head = _irreversible(f"+ mass message {self.name} will be sent")
        return [("+", head), *(("+", f"    {line}") for line in self._lines())]

    def markdown(self, *, first: int) -> list[str]:
        head = _irreversible(f"Mass message `{self.name}` will be sent")
        return [head, "", *(f"- {line}" for line in self._lines()), ""]

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        await Sender(run, self).send()


class Sender:
    """One message's send during an apply (`SendMassMessage.run`)."""

    def __init__(self, run: ApplyRun, change: SendMassMessage) -> None:
        self.run = run
        self.change = change
        self.report = run.result.report(PREFIX + change.name)
        self.record = parse_record(change.record) or SendRecord()
        self.exists = change.record_exists
        self.subscribed = False

    async def send(self) -> None:
        change, report = self.change, self.report
        wechat = self.run.wechat
        if not isinstance(wechat, MassMessageProvider):
            report.failed.append(Failure("send", None, "the target has no WeChat credentials"))
            return
        now = wall_clock()
        if now > change.window.not_after.timestamp():
            report.skipped.append("not sent: its window closed before apply")
            return
        if change.window.not_before is not None and now < change.window.not_before.timestamp():
            report.skipped.append("not sent: its window is not open yet")
            return
        try:
            sent = await self._send(wechat, int(now))
        except ProviderError as exc:
            report.failed.append(failure("send", exc))
            return
        if sent:
            await self._settle(wechat, sent)

    async def _send(self, wechat: MassMessageProvider, now: int) -> dict[int, int]:
        change = self.change
        media = self.record.media_id
        upload = change.msg_type in ("news", "video") and not media
        if upload and change.msg_type == "news":
            media = await wechat.upload_news(list(change.content["articles"]))
        elif upload:
            c = change.content
            media = await wechat.upload_video(c["media_id"], c["title"], c["description"])
        if upload:
            self.run.progress(1)
        due = []
        for i in change.send:
            batch = self.record.batches.get(i)
            if batch is not None and batch.msg_id is not None:
                continue  # sent by a run since the plan was made
            if batch is not None and now - batch.pending_at > REPLAY_WINDOW:
                self.report.failed.append(
                    Failure(
                        f"batch {i}",
                        None,
                        "pending for more than 24 hours with no msg_id: it may have been sent;"
                        " never sent again (check the MP console)",
                    )
                )
                continue
            due.append(i)
        closes = int(change.window.not_after.timestamp())
        self.record = self.record.marked(due, now, media, change.digest, closes)
        await self._write()  # the pending marks, before any send call
        body = message_body(change.msg_type, change.content, media)
        batches = change.audience.batches()
        app_id = getattr(wechat, "app_id", "")
        sent: dict[int, int] = {}
        for i in due:
            audience = change.audience
            job = await wechat.send_mass(
                body,
                clientmsgid=clientmsgid(app_id, change.name, change.digest, i),
                to_all=audience.kind is Audience.ALL,
                tag=audience.tag if audience.kind is Audience.TAG else None,
                openids=list(batches[i]) if audience.kind is Audience.OPENIDS else None,
                ignore_reprint=change.ignore_reprint,
            )
            self.run.progress(1)
            sent[i] = job.msg_id
            self.record = self.record.sent(i, job.msg_id)
            how = " (its earlier send, found by its clientmsgid)" if job.replayed else ""
            self.report.applied.append(f"sent batch {i}: msg_id {job.msg_id}{how}")
            await self._write()
        return sent

    async def _write(self) -> None:
        run, text = self.run, self.record.encode()
        account = record_id(self.change.name)
        fields = {ProfileField.CUSTOM_STRING: text}
        created = False
        if not self.exists:
            outcome = await run.im.create_account(
                account, run.inventory, {ProfileField.NAME: RECORD_NAME, **fields}
            )
            self.exists, created = True, outcome is CreateOutcome.CREATED
        if not self.subscribed:
            # by the inventory user, so that the inventory walk finds the record again after
            # its message left git (and `ClearMassRecord` destroys it); again on each run's
            # first write, in case a run was killed between the create and this call
            await run.im.add_subscribers(account, [run.inventory])
            self.subscribed = True
            run.progress(1)
        if not created:
            await run.im.modify_account(account, fields)
        run.progress(1)

    async def _settle(self, wechat: MassMessageProvider, sent: dict[int, int]) -> None:
        """Read each job's state until final or `STATUS_WAIT`; delete after a success."""
        states: dict[int, str] = {}
        started = self.run.clock()
        while True:
            for i, msg_id in sent.items():
                if states.get(i) not in FINAL:
                    try:
                        states[i] = await wechat.mass_status(msg_id)
                    except ProviderError as exc:
                        self.report.failed.append(failure(f"status of batch {i}", exc))
                        return
            if all(s in FINAL for s in states.values()):
                break
            if self.run.clock() - started > STATUS_WAIT:
                break
            await asyncio.sleep(STATUS_INTERVAL)
        for i, state in sorted(states.items()):
            if state == "SENDING":
                self.report.applied.append(
                    f"batch {i} still SENDING (a send to all may wait up to 30 minutes for the"
                    " admin's confirmation); the next plan reads it again"
                )
            elif state == "SEND_FAIL":
                self.report.failed.append(Failure(f"batch {i}", None, "the job ended SEND_FAIL"))
        delete = self.change.delete
        if delete is not None and all(states.get(i) == "SEND_SUCCESS" for i in sent):
            await delete_jobs(self.run, self.change.name, self.record, sent, delete, self.report)


async def delete_jobs(
    run: ApplyRun,
    name: str,
    record: SendRecord,
    jobs: dict[int, int],
    articles: tuple[int, ...],
    report: Any,
) -> None:
    """`mass/delete` each job (every article, or the listed ones) once, each recorded after."""
    wechat = run.wechat
    assert isinstance(wechat, MassMessageProvider)
    for i, msg_id in sorted(jobs.items()):
        try:
            for n in articles or (0,):
                await wechat.delete_mass(msg_id, n)
                run.progress(1)
            record = record.deleted(i, int(wall_clock()))
            text = record.encode()
            await run.im.modify_account(record_id(name), {ProfileField.CUSTOM_STRING: text})
            run.progress(1)
        except ProviderError as exc:
            report.failed.append(failure(f"delete batch {i}", exc))
            return
        report.applied.append(f"deleted batch {i} (msg_id {msg_id})")


class DeleteMassMessageWire(Wire, frozen=True, tag="deleteMassMessage"):
    """The plan-file form of `DeleteMassMessage`."""

    name: str
    msgType: str
    #: [batch, msg_id] pairs (JSON objects have string keys only)
    jobs: list[tuple[int, int]]
    articles: list[int]
    record: str

    def change(self) -> DeleteMassMessage:
        return DeleteMassMessage(
            self.name, self.msgType, dict(self.jobs), tuple(self.articles), self.record
        )


@dataclass(frozen=True, slots=True)
class DeleteMassMessage(_MassChange):
    """`delete:` of a message sent successfully and not deleted yet (reference 9.1)."""

    kind: ClassVar[str] = "deleteMassMessage"
    wire_type: ClassVar[type[Wire]] = DeleteMassMessageWire
    name: str
    msg_type: str
    #: batch → its job's msg_id
    jobs: dict[int, int]
    #: () every article, else the 1-based articles
    articles: tuple[int, ...]
    record: str

    def wire(self) -> DeleteMassMessageWire:
        return DeleteMassMessageWire(
            self.name, self.msg_type, sorted(self.jobs.items()), list(self.articles), self.record
        )

    def actions(self, schedule: Schedule) -> list[Action]:
        key = f"{self.kind}/{self.name}"
        out = []
        for i in sorted(self.jobs):
            for n in self.articles or (0,):
                out.append(Action(f"{key}/delete/{i}/{n}", API_MASS_DELETE, self))
            out.append(Action(f"{key}/deleted/{i}", API_MODIFY, self))
        return out

    def count(self, summary: dict[str, int]) -> None:
        summary["massDeletes"] = summary.get("massDeletes", 0) + 1

    def _what(self) -> str:
        which = (
            "every article"
            if not self.articles
            else "articles " + ", ".join(map(str, self.articles))
        )
        jobs = ", ".join(str(m) for _, m in sorted(self.jobs.items()))
        return f"{which} of msg_id {jobs}"

    def block(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return [("-", _irreversible(f"- mass message {self.name} will be deleted: {self._what()}"))]

    def markdown(self, *, first: int) -> list[str]:
        return [_irreversible(f"Mass message `{self.name}` will be deleted: {self._what()}"), ""]

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        report = run.result.report(PREFIX + self.name)
        if not isinstance(run.wechat, MassMessageProvider):
            report.failed.append(Failure("delete", None, "the target has no WeChat credentials"))
            return
        record = parse_record(self.record) or SendRecord()
        await delete_jobs(run, self.name, record, dict(self.jobs), self.articles, report)


class ClearMassRecordWire(Wire, frozen=True, tag="clearMassRecord"):
    """The plan-file form of `ClearMassRecord`."""

    name: str
    account: str
    record: str

    def change(self) -> ClearMassRecord:
        if not self.account.startswith(RECORD_PREFIX):
            raise ValueError(f"{self.account!r} is not a mass message's record")
        return ClearMassRecord(self.name, self.account, self.record)


@dataclass(frozen=True, slots=True)
class ClearMassRecord(_MassChange):
    """Bookkeeping: a message's record destroyed once it is needed no more (`record.py`: its
    window closed, every job final, a declared delete done). Ours, so never under the destroy
    cap; `record` is the content the plan read, and the account is destroyed only if it still
    holds it (another run that wrote it since made it needed again)."""

    kind: ClassVar[str] = "clearMassRecord"
    wire_type: ClassVar[type[Wire]] = ClearMassRecordWire
    bookkeeping: ClassVar[bool] = True
    #: the message ("" when it is no longer declared)
    name: str
    record_account: str
    record: str

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (self.phase, PREFIX + (self.name or self.record_account), self.kind)

    @property
    def lane(self) -> str:
        return PREFIX + (self.name or self.record_account)

    def wire(self) -> ClearMassRecordWire:
        return ClearMassRecordWire(self.name, self.record_account, self.record)

    def actions(self, schedule: Schedule) -> list[Action]:
        key = f"{self.kind}/{self.record_account}"
        # read again first: destroyed only if it still holds what the plan read
        return [Action(f"{key}/check", API_INFO, self), Action(key, API_DESTROY, self)]

    def count(self, summary: dict[str, int]) -> None:
        pass

    def _what(self) -> str:
        who = f"mass message {self.name}" if self.name else "a mass message no longer declared"
        return (
            f"send record of {who} cleared ({self.record_account}): its window closed and its"
            " jobs are final, nothing more can be sent"
        )

    def block(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        return [(" ", f"Bookkeeping: {self._what()}")]

    def markdown(self, *, first: int) -> list[str]:
        return [f"Bookkeeping: {self._what()}", ""]

    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        report = run.result.report(PREFIX + (self.name or self.record_account))
        try:
            found = (await run.im.get_accounts([self.record_account])).get(self.record_account)
            if found is not None and found.custom_string != self.record:
                report.skipped.append("record kept: it changed since the plan read it")
                return
            run.progress(1)
            if found is not None:
                await run.im.destroy_account(self.record_account)
        except ProviderError as exc:
            report.failed.append(failure("clear record", exc))
            return
        run.progress(1)
        report.applied.append(f"send record {self.record_account} cleared")
