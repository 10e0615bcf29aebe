"""`kind: MassMessage` on plain data: its record's format, batches, clientmsgids, and the diff
(windows, quota deferral, resumed sends, expired pending marks, content changed after the send,
status drift, deletion), without any vendor."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from reconciler.changes import DiffOptions, Notice, PlanProblem
from reconciler.kinds.mass_message import digest
from reconciler.kinds.mass_message.changes import (
    ClearMassRecord,
    DeleteMassMessage,
    SendMassMessage,
    clientmsgid,
)
from reconciler.kinds.mass_message.diff import BLIND_SPOT, TYPE_UNKNOWN, diff_messages
from reconciler.kinds.mass_message.model import Audience, MassMessage, Target, message_body
from reconciler.kinds.mass_message.record import (
    Batch,
    LiveMassMessage,
    SendRecord,
    parse_record,
    record_id,
    still_needed,
)
from reconciler.kinds.sending import Window
from reconciler.live import LiveState
from reconciler.model import DesiredState, Position

NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC).timestamp()
DAY = 86400
OPTIONS = DiffOptions(prune=False, inventory_user="inv", wechat_account_type="service")
IDS = frozenset(f"o{n:027d}" for n in range(20_001))


def msg(name: str = "m", audience: Target | None = None, **changes: object) -> MassMessage:
    made = MassMessage(
        name=name,
        type="text",
        content={"content": "hi"},
        audience=audience or Target(Audience.TAG, tag=1),
        window=Window(None, dt.datetime(2027, 1, 1, tzinfo=dt.UTC)),
        ignore_reprint=False,
        preview_openids=(),
        preview_wxnames=(),
        delete=None,
        position=Position("m.yaml", 1, 1),
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def live(*records: LiveMassMessage) -> LiveState:
    return LiveState(accounts={}, existing_users=frozenset(), inventory_user="inv", records=records)


def found(message: MassMessage, *records: LiveMassMessage) -> list[object]:
    state = DesiredState(accounts={}, users=frozenset(), records=(message,))
    out = list(diff_messages(state, live(*records), OPTIONS))
    assert out[0] == Notice("MassMessage", BLIND_SPOT, "blindSpot")
    return out[1:]


def sent(name: str, digest_: str, batches: dict[int, Batch], **kw: object) -> LiveMassMessage:
    return LiveMassMessage(name, True, SendRecord(digest_, "", batches), read_at=NOW, **kw)  # type: ignore[arg-type]


def test_a_record_reads_back_what_it_wrote_and_refuses_anything_else() -> None:
    record = SendRecord("sha256:ab", "media-1", {0: Batch(5, 77), 1: Batch(6, None, None)})
    record = record.deleted(0, 9)
    text = record.encode()
    assert text == "\n".join(
        [
            "reconciler-mass/v1",
            "digest sha256:ab",
            "media media-1",
            "0 5 77",
            "1 6 -",
            "deleted 0 9",
        ]
    )
    assert parse_record(text) == record
    for bad in (
        "",
        "x\ndigest a\nmedia -",
        "reconciler-mass/v1\ndigest\nmedia -",
        text + "\n2 x -",
        text + "\ndeleted 5 1",
        text + "\n3 4 y",
        text + "\nhello",
    ):
        assert parse_record(bad) is None, bad
    assert len(record_id("a" * 128).encode()) <= 48
    with pytest.raises(ValueError, match="3,000 bytes"):
        SendRecord("d" * 3000).encode()


@pytest.mark.parametrize(
    ("count", "sizes"),
    [
        (2, [2]),
        (10_000, [10_000]),
        (10_001, [5001, 5000]),
        (20_001, [6667] * 3),
        (25_000, [8334, 8333, 8333]),
    ],
)
def test_batches_are_as_even_as_can_be(count: int, sizes: list[int]) -> None:
    target = Target(Audience.OPENIDS, openids=frozenset(f"o{n:027d}" for n in range(count)))
    batches = target.batches()
    assert [len(b) for b in batches] == sizes
    assert sorted(i for b in batches for i in b) == sorted(target.openids)
    assert Target(Audience.ALL).batches() == [()] and Target(Audience.ALL).label() == "everyone"


def test_clientmsgid_is_stable_short_and_never_a_time() -> None:
    one = clientmsgid("wxapp", "weekly", "sha256:x", 49)
    assert one == clientmsgid("wxapp", "weekly", "sha256:x", 49) and len(one.encode()) <= 64
    others = {
        clientmsgid("wxother", "weekly", "sha256:x", 49),
        clientmsgid("wxapp", "weekly2", "sha256:x", 49),
        clientmsgid("wxapp", "weekly", "sha256:y", 49),
        clientmsgid("wxapp", "weekly", "sha256:x", 48),
    }
    assert one not in others and len(others) == 4


def test_a_new_message_is_sent_and_a_sent_one_is_not() -> None:
    message = msg()
    (send,) = found(message)
    assert isinstance(send, SendMassMessage) and send.send == (0,)
    assert send.quota == "1 of 100 sends in 24 hours after this one"
    done = sent("m", message.digest, {0: Batch(int(NOW) - 60, 5)}, statuses={0: "SEND_SUCCESS"})
    assert found(message, done) == []


def test_an_interrupted_send_resumes_its_unsent_batches_only() -> None:
    message = msg(audience=Target(Audience.OPENIDS, openids=IDS))
    half = sent("m", message.digest, {0: Batch(int(NOW) - 60, 5), 1: Batch(int(NOW) - 60)})
    (send,) = found(message, half)
    assert isinstance(send, SendMassMessage) and send.send == (1, 2)
    assert send.block(show_all=False, first=10)[2] == (
        "+",
        "    audience: 20,001 OpenIDs in 3 batches (6,667 + 6,667 + 6,667); 2 batches left of"
        " an interrupted send",
    )


def test_a_pending_mark_older_than_24_hours_is_reported_never_sent() -> None:
    message = msg()
    old = sent("m", message.digest, {0: Batch(int(NOW) - DAY - 1)})
    (notice,) = found(message, old)
    assert isinstance(notice, Notice) and notice.reason == "drift:status"
    assert "more than 24 hours ago" in notice.message and "never sent again" in notice.message


def test_over_the_daily_quota_a_send_is_deferred() -> None:
    message = msg()
    busy = sent("other", "sha256:o", {i: Batch(int(NOW) - 3600 + i) for i in range(100)})
    (notice,) = found(message, busy)
    assert notice == Notice(
        "MassMessage/m",
        "MassMessage/m: deferred until 2026-12-08 11:00 UTC, over the quota",
        "field",
    )
    uploads = [sent(f"n{i}", "sha256:n", {0: Batch(int(NOW) - 60, i + 1)}) for i in range(10)]
    uploads = [
        dataclasses.replace(u, record=dataclasses.replace(u.record, media_id="m")) for u in uploads
    ]
    news = msg(type="news", content={"articles": [{"title": "t"}]})
    (deferred,) = found(news, *uploads)
    assert isinstance(deferred, Notice) and "deferred until" in deferred.message


def test_content_changed_after_the_send_is_a_notice_and_nothing_more() -> None:
    message = msg()
    other = sent("m", "sha256:before", {0: Batch(int(NOW), 5)})
    (notice,) = found(message, other)
    assert isinstance(notice, Notice) and "never sent again" in notice.message


def test_an_unreadable_record_stops_the_plan() -> None:
    broken = LiveMassMessage("m", True, SendRecord(), readable=False, read_at=NOW)
    (problem,) = found(msg(), broken)
    assert isinstance(problem, PlanProblem) and "not one this tool wrote" in problem.message


def test_without_wechat_credentials_a_message_is_a_problem() -> None:
    state = DesiredState(accounts={}, users=frozenset(), records=(msg(),))
    options = dataclasses.replace(OPTIONS, wechat_missing="prod")
    (problem,) = diff_messages(state, live(), options)
    assert isinstance(problem, PlanProblem)
    assert "MassMessage 'm' is declared but target 'prod' has no WeChat credentials" in str(problem)
    empty = DesiredState(accounts={}, users=frozenset())
    assert list(diff_messages(empty, live(), OPTIONS)) == [] and digest(empty) == ""


def test_status_drift_and_deletion_after_success() -> None:
    message = msg(
        type="news",
        content={"articles": [{"title": "a"}, {"title": "b"}]},
        delete=(2,),
        audience=Target(Audience.OPENIDS, openids=IDS),
    )
    batches = {i: Batch(int(NOW) - 60, 10 + i) for i in range(3)}
    batches[0] = dataclasses.replace(batches[0], deleted_at=int(NOW))
    statuses = {0: "SEND_SUCCESS", 1: "SEND_SUCCESS", 2: "SEND_SUCCESS"}
    (delete,) = found(message, sent("m", message.digest, batches, statuses=statuses))
    assert isinstance(delete, DeleteMassMessage)
    assert (delete.jobs, delete.articles) == ({1: 11, 2: 12}, (2,))
    assert [a.id for a in delete.actions(None)] == [  # type: ignore[arg-type]
        "deleteMassMessage/m/delete/1/2",
        "deleteMassMessage/m/deleted/1",
        "deleteMassMessage/m/delete/2/2",
        "deleteMassMessage/m/deleted/2",
    ]
    odd = {0: "SEND_SUCCESS", 1: "DELETE", 2: "SEND_FAIL"}
    batches[0] = dataclasses.replace(batches[0], deleted_at=None)
    notices = found(
        dataclasses.replace(message, delete=None), sent("m", message.digest, batches, statuses=odd)
    )
    assert [n.message for n in notices] == [  # type: ignore[attr-defined]
        "batch 1 (msg_id 11) reads DELETE: deleted by hand",
        "batch 2 (msg_id 12) reads SEND_FAIL: failed after apply",
    ]
    sending = found(message, sent("m", message.digest, batches, statuses={0: "SENDING"}))
    assert "SENDING (a send to all may wait up to 30 minutes" in sending[0].message  # type: ignore[union-attr]


def test_windows_not_open_or_closed_send_nothing() -> None:
    future = Window(dt.datetime(2027, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 2, 1, tzinfo=dt.UTC))
    nothing = LiveMassMessage("m", False, SendRecord(), read_at=NOW)
    (wait,) = found(msg(window=future), nothing)
    assert wait.message == "waits for its window: not sent before 2027-01-01 00:00 UTC"  # type: ignore[union-attr]
    past = Window(None, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    (closed,) = found(msg(window=past), nothing)
    assert "window closed at 2026-01-01 00:00 UTC" in closed.message  # type: ignore[union-attr]


def test_message_bodies_per_type() -> None:
    assert message_body("news", {}, "M") == {"msgtype": "mpnews", "mpnews": {"media_id": "M"}}
    assert message_body("video", {}, "V") == {"msgtype": "mpvideo", "mpvideo": {"media_id": "V"}}
    assert message_body("image", {"media_ids": ["a"]}, "") == {
        "msgtype": "image",
        "images": {"media_ids": ["a"]},
    }
    assert message_body("card", {"card_id": "c"}, "") == {
        "msgtype": "wxcard",
        "wxcard": {"card_id": "c"},
    }


def test_the_plan_shows_times_in_the_configured_zone_beside_utc() -> None:
    state = DesiredState(accounts={}, users=frozenset(), records=(msg(),))
    options = dataclasses.replace(OPTIONS, time_zone="Asia/Shanghai")
    record = LiveMassMessage("m", False, SendRecord(), read_at=NOW)
    (_, send) = diff_messages(state, live(record), options)
    assert isinstance(send, SendMassMessage) and send.time_zone == "Asia/Shanghai"
    assert send.block(show_all=False, first=10)[3] == (
        "+",
        "    window: until 2027-01-01 08:00 CST (00:00 UTC)",
    )


def test_a_record_is_needed_until_its_window_closed_12_hours_ago_and_its_jobs_are_final() -> None:
    closes = int(NOW) - 13 * 3600
    record = SendRecord("sha256:ab", "", {0: Batch(closes - 60, 7)}, closes)
    assert parse_record(record.encode()) == record
    final = {0: "SEND_SUCCESS"}
    assert still_needed(record, final, None, False, NOW) is None
    assert still_needed(record, final, float(closes), False, NOW) is None
    # the declared window, moved on, or the record's own: the later one counts
    assert still_needed(record, final, NOW - 11 * 3600, False, NOW) == (
        "its window has not been closed for 12 hours"
    )
    assert still_needed(record, final, None, False, closes + 12 * 3600) is not None
    assert still_needed(record, {0: "SENDING"}, None, False, NOW) == (
        "the job of batch 0 is not known to be final"
    )
    assert still_needed(record, {}, None, False, NOW) is not None  # never read: kept
    assert still_needed(record, final, None, True, NOW) == "batch 0 is not deleted yet"
    assert still_needed(record.deleted(0, closes), final, None, True, NOW) is None
    assert still_needed(record, {0: "SEND_FAIL"}, None, True, NOW) is None  # nothing to delete
    pending = SendRecord("sha256:ab", "", {0: Batch(int(NOW) - 20 * 3600)}, closes)
    assert still_needed(pending, {}, None, False, NOW) == (
        "batch 0 is pending within the vendor's 24 hours"
    )
    old = SendRecord("sha256:ab", "", {0: Batch(int(NOW) - 25 * 3600)}, closes)
    assert still_needed(old, {}, None, False, NOW) is None  # reported, never sent: done
    # a record written before `closes` was kept: its last mark bounds its sends
    legacy = SendRecord("sha256:ab", "", {0: Batch(int(NOW) - 60, 7)})
    assert parse_record(legacy.encode()) == legacy
    assert still_needed(legacy, final, None, False, NOW) is not None
    assert still_needed(legacy, final, None, False, NOW + 13 * 3600) is None


def test_the_diff_clears_a_closed_record_declared_or_not_and_keeps_an_open_one() -> None:
    past = Window(None, dt.datetime.fromtimestamp(NOW - 13 * 3600, dt.UTC))
    message = msg(window=past)
    batch = {0: Batch(int(NOW) - 14 * 3600, 7)}
    record = sent("m", message.digest, batch, statuses={0: "SEND_SUCCESS"}, account="@TOA#_rcm-a")
    (clear,) = found(message, record)
    assert clear == ClearMassRecord("m", "@TOA#_rcm-a", record.record.encode())
    assert [a.id for a in clear.actions(None)] == [  # type: ignore[arg-type]
        "clearMassRecord/@TOA#_rcm-a/check",
        "clearMassRecord/@TOA#_rcm-a",
    ]
    assert found(msg(), record) == []  # its window open: kept, nothing to do
    removed = dataclasses.replace(record, name="")
    state = DesiredState(accounts={}, users=frozenset())
    (gone,) = diff_messages(state, live(removed), OPTIONS)
    assert gone == ClearMassRecord("", "@TOA#_rcm-a", record.record.encode())
    assert gone.block(show_all=False, first=10) == [
        (
            " ",
            "Bookkeeping: send record of a mass message no longer declared cleared (@TOA#_rcm-a):"
            " its window closed and its jobs are final, nothing more can be sent",
        )
    ]
    sending = dataclasses.replace(removed, statuses={0: "SENDING"})
    assert list(diff_messages(state, live(sending), OPTIONS)) == []


def test_a_subscription_account_sends_once_a_day_and_never_to_openids() -> None:
    subscription = dataclasses.replace(OPTIONS, wechat_account_type="subscription")
    first, second = msg("a"), msg("b", audience=Target(Audience.ALL))
    listed = msg("c", audience=Target(Audience.OPENIDS, openids=IDS))
    state = DesiredState(accounts={}, users=frozenset(), records=(first, second, listed))
    nothing = [LiveMassMessage(n, False, SendRecord(), read_at=NOW) for n in "abc"]
    _, send, deferred, refused = diff_messages(state, live(*nothing), subscription)
    assert isinstance(send, SendMassMessage) and send.name == "a"
    assert deferred == Notice(
        "MassMessage/b",
        "MassMessage/b: deferred until 2026-12-08 12:00 UTC, over the quota: a subscription"
        " account sends once a day",
        "field",
    )
    assert refused == PlanProblem(
        "MassMessage/c",
        "a subscription account (wechat.accountType: subscription) cannot send to a list of"
        " OpenIDs (WeChat mass API section 4): send to everyone or to a tag",
    )
    # a service account: both sends and the list are planned, and no notice about the type
    service = list(diff_messages(state, live(*nothing), OPTIONS))
    assert [type(f) for f in service[1:]] == [SendMassMessage] * 3
    # undeclared: planned as for a service account, with one line saying the limit is unknown
    unknown = list(
        diff_messages(state, live(*nothing), dataclasses.replace(OPTIONS, wechat_account_type=None))
    )
    assert unknown[-1] == Notice("MassMessage", TYPE_UNKNOWN, "field")
    assert [type(f) for f in unknown[1:-1]] == [SendMassMessage] * 3
