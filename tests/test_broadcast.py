"""`kind: Broadcast` on plain data: validation, and what history says of each declared broadcast."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.changes import DiffOptions, Notice, PlanProblem
from reconciler.cli import main
from reconciler.diff import diff
from reconciler.drift import build_drift
from reconciler.kinds.broadcast import AccountHistory, BroadcastRecord, RecallBroadcast
from reconciler.kinds.broadcast.changes import SendBroadcast, render_body
from reconciler.kinds.broadcast.diff import diff_broadcasts
from reconciler.kinds.broadcast.model import (
    HistoryMessage,
    manifest_body,
    resolve,
    send_random,
    vendor_body,
)
from reconciler.live import LiveAccount, LiveState
from reconciler.load import load_text
from reconciler.model import DesiredState
from reconciler.plan import TargetIdentity, plan_from_read
from reconciler.planfile import dump_plan, load_plan
from reconciler.render import render_json, render_markdown, render_text

NEWS = "@TOA#_news"
NOW = dt.datetime(2026, 12, 8, 3, 0, tzinfo=dt.UTC).timestamp()
WINDOW = {"notBefore": "2026-12-08T09:00:00+08:00", "notAfter": "2026-12-08T21:00:00+08:00"}


def doc(name: str = "m1", body: Any = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Broadcast",
        "metadata": {"name": name},
        "spec": {
            "account": "news",
            "body": body if body is not None else [{"text": "Maintenance tonight."}],
            "window": WINDOW,
            **spec,
        },
    }


def records(*docs: dict[str, Any]) -> list[BroadcastRecord]:
    text = "\n---\n".join(json.dumps(d) for d in docs)
    loaded = load_text(text, "b.yaml")
    found, problems = resolve(loaded.documents)
    assert problems == []
    return found


def validate(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *docs: dict[str, Any],
) -> str:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    code = main(["validate", "b.yaml"])
    out, err = capsys.readouterr()
    return f"{code}\n{out}{err}"


def test_every_element_type_of_reference_7_4_is_written_in_camel_case() -> None:
    body = [
        {"text": "hi"},
        {"face": {"index": 1, "data": "smile"}},
        {"custom": {"data": "{}", "desc": "d", "ext": "e", "sound": "s"}},
        {"location": {"desc": "office", "latitude": 22.5, "longitude": 114.0}},
        {"image": {"uuid": "u", "imageFormat": 1, "imageInfoArray": [{"type": 1, "url": "x"}]}},
        {"sound": {"url": "x", "uuid": "u", "size": 1, "second": 3, "downloadFlag": 2}},
        {"file": {"url": "x", "uuid": "u", "fileSize": 9, "fileName": "a.pdf", "downloadFlag": 2}},
        {"videoFile": {"videoUrl": "v", "videoUuid": "vu", "thumbUrl": "t", "thumbUuid": "tu"}},
    ]
    [record] = records(doc(body=body))
    assert [e["MsgType"] for e in record.msg_body] == [
        "TIMTextElem",
        "TIMFaceElem",
        "TIMCustomElem",
        "TIMLocationElem",
        "TIMImageElem",
        "TIMSoundElem",
        "TIMFileElem",
        "TIMVideoFileElem",
    ]
    assert record.msg_body[4]["MsgContent"] == {
        "UUID": "u",
        "ImageFormat": 1,
        "ImageInfoArray": [{"Type": 1, "URL": "x"}],
    }
    assert record.msg_body[5]["MsgContent"]["Download_Flag"] == 2
    assert record.msg_body[7]["MsgContent"]["VideoUUID"] == "vu"
    assert manifest_body(vendor_body(body)) == body
    assert render_body(record.msg_body) == [
        "| hi",
        "[face]",
        "[custom (d): 2 characters of data]",
        "[location: office]",
        "[image]",
        "[sound: x]",
        "[file: a.pdf]",
        "[videoFile]",
    ]


def test_validation_reports_every_problem_with_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    big = "x" * (12 * 1024)
    out = validate(
        tmp_path,
        capsys,
        monkeypatch,
        doc("a", body=[{"text": "t", "face": {"index": 1}}]),
        doc("a2", body=[{"custom": {"desc": "no data"}}]),
        doc("b", body=[{"text": big}]),
        doc("c", recall=True, reason="é" * 51),
        doc("d", window={"notBefore": "2026-12-08T09:00:00"}),
        doc("e", body=[{"sticker": {}}]),
    )
    assert out.splitlines() == [
        "1",
        "b.yaml:1:118: spec.body[0]: one element type per item (text, face, custom, location,"
        " image, sound, file, videoFile), not 2",
        "b.yaml:3:130: spec.body[0].custom: missing required field 'data'",
        "b.yaml:5:117: spec.body: 12,340 bytes as sent, over the 12 KB (12,288) message limit",
        "b.yaml:7:274: spec.reason: at most 100 bytes, not 102",
        "b.yaml:9:163: spec.window: missing required field 'notAfter'",
        "b.yaml:11:119: spec.body[0]: unknown field 'sticker'",
    ]


def test_identical_bodies_due_to_one_account_within_5_minutes_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    later = {"notBefore": "2026-12-08T21:04:00+08:00", "notAfter": "2026-12-08T22:00:00+08:00"}
    out = validate(tmp_path, capsys, monkeypatch, doc("a"), doc("b", window=later), doc("a"))
    assert out.splitlines() == [
        "1",
        "b.yaml:3:75: Broadcast 'b' has the same body as 'a' (b.yaml:1:75) and may be sent from"
        " news within 5 minutes of it: the vendor would drop it as a duplicate",
        "b.yaml:5:75: duplicate Broadcast name 'a' (first declared at b.yaml:1:75)",
    ]


def live_with(*messages: HistoryMessage, read_at: float = NOW) -> LiveState:
    account = LiveAccount(NEWS, "boss", {}, 5, owned=True)
    history = AccountHistory(NEWS, tuple(messages), read_at, read_at - 86400)
    return LiveState(
        accounts={NEWS: account},
        existing_users=frozenset(),
        inventory_user="inv",
        records=(history,),
    )


def findings(live: LiveState, *recs: BroadcastRecord, history_days: int = 7) -> list[Any]:
    desired = DesiredState(accounts={}, users=frozenset(), records=tuple(recs))
    options = DiffOptions(False, "inv", history_days=history_days, time_zone="Asia/Shanghai")
    return list(diff_broadcasts(desired, live, options))


def sent_message(record: BroadcastRecord, key: str = "5_1_100", **kw: Any) -> HistoryMessage:
    fields: dict[str, Any] = {
        "key": key,
        "time": int(NOW) - 600,
        "random": record.random,
        "place": 0,
        "msg_body": record.msg_body,
    }
    fields.update(kw)
    return HistoryMessage(**fields)


def test_a_due_broadcast_is_a_send_with_its_lines() -> None:
    [record] = records(doc())
    [send] = findings(live_with(), record)
    assert isinstance(send, SendBroadcast)
    assert send.lines() == [
        "+ broadcast news/m1 will be sent to 4 subscribers",
        "    | Maintenance tonight.",
        "    window: 2026-12-08 09:00 CST (01:00 UTC) → 2026-12-08 21:00 CST (13:00 UTC)",
        "    quota: news: 0 sent in the last hour; this makes 1/2",
        "    a send cannot be undone (a later change can only recall it)",
    ]


def test_sent_is_read_from_history_and_a_rename_or_re_add_is_reported_not_sent() -> None:
    [record] = records(doc())
    assert findings(live_with(sent_message(record)), record) == []
    [renamed] = records(doc("m2"))
    [notice] = findings(live_with(sent_message(record)), renamed)
    assert isinstance(notice, Notice)
    assert notice.message == (
        "broadcast news/m2: the same body was already sent from news inside its window (at"
        " 2026-12-08 10:50 CST (02:50 UTC), MsgKey 5_1_100); not sent again (`resend: true`"
        " sends it)"
    )
    [resend] = records(doc("m2", resend=True))
    [send] = findings(live_with(sent_message(record)), resend)
    assert isinstance(send, SendBroadcast)
    assert send.quota == "news: 1 sent in the last hour (1 by hand); this makes 2/2"


def test_an_edit_after_the_send_names_the_changed_paths_and_only_recall_acts() -> None:
    [old] = records(doc(body=[{"text": "a"}, {"custom": {"data": "d", "desc": "x"}}]))
    [new] = records(doc(body=[{"text": "a"}, {"custom": {"data": "d", "desc": "y"}}]))
    [notice] = findings(live_with(sent_message(old)), new)
    assert notice.message == (
        "broadcast news/m1 was sent at 2026-12-08 10:50 CST (02:50 UTC) and edited since"
        " (body[1].custom.desc): a sent message cannot change; only `recall: true` takes effect"
    )
    [recall] = records(doc(body=new.body, recall=True, reason="typo"))
    [change] = findings(live_with(sent_message(old)), recall)
    assert change == RecallBroadcast(NEWS, "m1", "5_1_100", int(NOW) - 600, "typo", "Asia/Shanghai")
    assert change.line() == (
        "- broadcast news/m1 will be recalled (sent 2026-12-08 10:50 CST (02:50 UTC), MsgKey"
        " 5_1_100, reason: typo)"
    )


def test_a_placeholder_in_the_window_is_sent_unknown_state_and_never_resent() -> None:
    [record] = records(doc())
    hole = HistoryMessage("7_1_1", int(NOW) - 60, 0, 1)
    [notice] = findings(live_with(hole), record)
    assert notice.message.startswith("broadcast news/m1: sent, unknown state (a placeholder")
    assert notice.message.endswith("never sent again")


def test_recalled_by_hand_and_undeclared_messages_are_drift() -> None:
    [record] = records(doc())
    recalled = sent_message(record, place=2, msg_body=())
    by_hand = HistoryMessage("9_1_2", int(NOW) - 30, 42, 0, tuple(vendor_body([{"text": "x"}])))
    live = live_with(recalled, by_hand)
    desired = DesiredState(accounts={}, users=frozenset(), records=(record,))
    found = diff(desired, live, prune=False, inventory_user="inv")
    report = build_drift(found, target=TargetIdentity("sandbox", "s"), today=dt.date(2026, 12, 8))
    assert [(i.account, i.field, i.live) for i in report.items if i.field != "account"] == [
        (
            NEWS,
            "broadcast m1",
            "broadcast news/m1 was recalled outside git (at 2026-12-08 02:50 UTC); it is not sent"
            " again",
        ),
        (
            NEWS,
            "broadcast 9_1_2",
            "message 9_1_2 sent at 2026-12-08 02:59 UTC is declared by no Broadcast document",
        ),
    ]
    assert not found.changes


def test_windows_quota_and_problems() -> None:
    [record] = records(doc())
    [early] = findings(live_with(read_at=NOW - 3 * 3600), record)
    assert early.message == (
        "broadcast news/m1: scheduled, its window opens 2026-12-08 09:00 CST (01:00 UTC)"
    )
    [late] = findings(live_with(read_at=NOW + 86400), record)
    assert "its window closed 2026-12-08 21:00 CST (13:00 UTC)" in late.message
    two = [HistoryMessage(f"{i}_1_{i}", int(NOW) - 100 * i, 1000 + i, 0) for i in (1, 2)]
    [deferred] = [f for f in findings(live_with(*two), record) if "news/m1" in f.message]
    assert deferred.message == (
        "broadcast news/m1: deferred until 2026-12-08 11:56 CST (03:56 UTC), over the quota"
    )
    [never, _, _] = findings(
        live_with(*two, read_at=NOW),
        records(
            doc(
                window={
                    "notBefore": "2026-12-08T10:00:00+08:00",
                    "notAfter": "2026-12-08T11:30:00+08:00",
                }
            )
        )[0],
    )
    assert never.message.endswith("after its window closes: it will not be sent")
    [too_long] = findings(live_with(), record, history_days=0)
    assert isinstance(too_long, PlanProblem)
    assert "is longer than the 0-day history retention" in too_long.message
    nowhere = LiveState(accounts={}, existing_users=frozenset(), inventory_user="inv")
    [problem] = findings(nowhere, record)
    assert "account news is neither declared nor found" in problem.message


def test_a_plan_with_a_send_renders_and_round_trips_through_a_plan_file() -> None:
    [record] = records(doc())
    live = live_with()
    desired = DesiredState(accounts={}, users=frozenset(), records=(record,))
    found = diff(desired, live, prune=False, inventory_user="inv", time_zone="Asia/Shanghai")
    plan = plan_from_read(found, desired=desired, live=live, target=TargetIdentity("sandbox", "s"))
    assert plan.pins == {f"history {NEWS}": plan.pins[f"history {NEWS}"]}
    again = load_plan(dump_plan(plan))
    assert render_text(again) == render_text(plan)
    assert again.pins == plan.pins
    text = render_text(plan)
    assert "; 1 broadcast to send." in text
    assert "maxBroadcasts" not in text
    markdown = render_markdown(plan)
    assert "| broadcasts to send | 1 |" in markdown
    assert "+ broadcast news/m1 will be sent to 4 subscribers" in markdown
    data = json.loads(render_json(plan))
    assert data["summary"]["broadcastsSent"] == 1
    [change] = [c for c in data["changes"] if c["type"] == "sendBroadcast"]
    assert change["random"] == send_random(NEWS, "m1", record.digest)
    assert change["window"] == {
        "notBefore": "2026-12-08T01:00:00Z",
        "notAfter": "2026-12-08T13:00:00Z",
    }


def test_a_markdown_plan_of_many_large_broadcasts_stays_under_the_comment_limit() -> None:
    faces = [{"face": {"index": i, "data": "x" * 20}} for i in range(200)]
    sends = [
        SendBroadcast(
            f"@TOA#_a{i:02d}",
            f"m{i}",
            tuple(vendor_body([{"text": "y" * 3000}, *faces])),
            i + 1,
            records(doc())[0].window,
            10,
            "quota",
        )
        for i in range(40)
    ]
    live = LiveState(accounts={}, existing_users=frozenset(), inventory_user="inv")
    desired = DesiredState(accounts={}, users=frozenset())
    from reconciler.diff import Diff

    plan = plan_from_read(
        Diff.of(sends), desired=desired, live=live, target=TargetIdentity("sandbox", "s")
    )
    text = render_markdown(plan)
    assert len(text) < 65_536
    assert "more changes are not shown; run `reconciler plan`." in text
    assert "    … 165 more lines" in text


def test_validate_measures_a_window_against_the_history_retention_of_reconciler_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ten_days = {"notBefore": "2026-12-08T09:00:00+08:00", "notAfter": "2026-12-18T09:00:00+08:00"}
    out = validate(tmp_path, capsys, monkeypatch, doc("long", window=ten_days))
    assert out.splitlines() == [
        "1",
        "b.yaml:1:166: spec.window: 10 days is longer than the 7-day history retention"
        " (limits.historyDays): a send could not be proven once it left it",
    ]
    (tmp_path / "reconciler.yaml").write_text("limits: {historyDays: 30}\n")
    assert validate(tmp_path, capsys, monkeypatch, doc("long", window=ten_days)) == (
        "0\n1 document valid\n"
    )
