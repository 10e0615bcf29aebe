"""How apply runs a mass message's changes when the plan no longer holds at apply time (its
window moved past, a batch pending for over 24 hours, no WeChat credentials), against the
embedded sandbox."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from pathlib import Path

from reconciler.changes import ApplyRun, Change
from reconciler.config import Limits, SandboxTarget
from reconciler.connect import connect
from reconciler.kinds.mass_message.changes import (
    PREFIX,
    ClearMassRecord,
    DeleteMassMessage,
    SendMassMessage,
)
from reconciler.kinds.mass_message.model import Audience, Target
from reconciler.kinds.mass_message.record import Batch, SendRecord, record_id
from reconciler.kinds.sending import Window
from reconciler.model import ProfileField
from reconciler.outcome import AccountReport

LATER = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


def send(**changes: object) -> SendMassMessage:
    made = SendMassMessage(
        "m",
        "text",
        {"content": "hi"},
        Target(Audience.TAG, tag=1),
        Window(None, LATER),
        False,
        "sha256:x",
        None,
        (0,),
        False,
        "",
        "1 of 100",
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def run_one(
    tmp_path: Path, change: Change, *, wechat: bool = True, record: str = ""
) -> AccountReport:
    async def main() -> AccountReport:
        async with connect(SandboxTarget("sandbox", tmp_path / "s.db"), Limits()) as providers:
            await providers.im.import_account("inv")
            if record:  # a record account holding `record`, as a run wrote it
                fields = {ProfileField.NAME: "r", ProfileField.CUSTOM_STRING: record}
                await providers.im.create_account(record_id("m"), "inv", fields)
            run = ApplyRun(
                [change], {}, providers.im, providers.wechat if wechat else None, "inv", None
            )
            await change.run(run, change.actions(None))  # type: ignore[arg-type]
            return run.result.report(PREFIX + "m")

    return asyncio.run(main())


def test_a_window_that_moved_past_sends_nothing(tmp_path: Path) -> None:
    closed = Window(None, dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert run_one(tmp_path, send(window=closed)).skipped == [
        "not sent: its window closed before apply"
    ]
    early = Window(dt.datetime(2098, 1, 1, tzinfo=dt.UTC), LATER)
    assert run_one(tmp_path, send(window=early)).skipped == ["not sent: its window is not open yet"]


def test_without_wechat_nothing_is_sent_or_deleted(tmp_path: Path) -> None:
    report = run_one(tmp_path, send(), wechat=False)
    assert [f.what for f in report.failed] == ["send"]
    deleted = run_one(tmp_path, DeleteMassMessage("m", "news", {0: 1}, (), ""), wechat=False)
    assert [f.what for f in deleted.failed] == ["delete"]


def test_a_batch_pending_for_over_24_hours_is_never_sent_again(tmp_path: Path) -> None:
    old = SendRecord("sha256:x", "", {0: Batch(int(time.time()) - 90_000)})
    report = run_one(tmp_path, send(record=old.encode()))
    assert [f.what for f in report.failed] == ["batch 0"]
    assert "never sent again" in report.failed[0].message
    assert report.applied == []


def test_mass_changes_have_no_account_lines_and_no_drift() -> None:
    change = send()
    assert change.headline() is None
    assert change.detail_lines(show_all=False, first=10) == [] and change.drift() == []
    assert change.lane == "MassMessage/m" and change.account == ""


def test_a_record_is_cleared_only_when_it_still_holds_what_the_plan_read(tmp_path: Path) -> None:
    read = SendRecord("sha256:x", "", {0: Batch(1, 7)}, 2).encode()
    changed = SendRecord("sha256:x", "", {0: Batch(1, 7), 1: Batch(3)}, 2).encode()
    clear = ClearMassRecord("m", record_id("m"), read)
    kept = run_one(tmp_path / "a", clear, record=changed)
    assert kept.skipped == ["record kept: it changed since the plan read it"]
    cleared = run_one(tmp_path / "b", clear, record=read)
    assert cleared.applied == [f"send record {record_id('m')} cleared"]
    gone = run_one(tmp_path / "c", clear)  # cleared by another run meanwhile: nothing to do
    assert gone.applied == [f"send record {record_id('m')} cleared"]


def test_a_record_left_unsubscribed_by_a_killed_run_is_subscribed_by_the_next(
    tmp_path: Path,
) -> None:
    """A run killed between the record's create and the inventory's subscription: the next
    run's first write subscribes it, so the record is found after its message left git."""
    half = SendRecord("sha256:x", "", {}, 2).encode()
    report = run_one(tmp_path, send(record_exists=True, record=half), record=half)
    assert report.applied == ["sent batch 0: msg_id 1000000001"]

    async def walked() -> list[str]:
        async with connect(SandboxTarget("sandbox", tmp_path / "s.db"), Limits()) as providers:
            return [s.account.id for s in await providers.im.get_subscriptions("inv")]

    assert asyncio.run(walked()) == [record_id("m")]
