"""Broadcasts, history and recall (reference sections 5.10-5.12 and 7), on an injected clock."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeClock

from reconciler.sandbox.behaviour import Behaviour
from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.messages import body_digest
from reconciler.sandbox.serve import RunningServer
from reconciler.sandbox.server import Sandbox, SandboxOptions

NEWS = "@TOA#_news"


def text(value: str) -> list[dict[str, Any]]:
    return [{"MsgType": "TIMTextElem", "MsgContent": {"Text": value}}]


@pytest.fixture
def client(
    make_sandbox_server: Callable[..., RunningServer], fake_clock: FakeClock
) -> Iterator[SandboxClient]:
    server = make_sandbox_server(clock=fake_clock)
    with httpx.Client(base_url=server.base_url) as http:
        c = SandboxClient(http, server.options, clock=fake_clock)
        c.account("account_import", {"UserID": "owner"})
        c.oa(
            "create_official_account",
            {"Owner_Account": "owner", "OfficialAccountUserID": NEWS, "Name": "News"},
        )
        yield c


def send(client: SandboxClient, body: str, **extra: Any) -> dict[str, Any]:
    return client.oa(
        "send_official_account_msg",
        {"Official_Account": NEWS, "Random": 7, "MsgBody": text(body), **extra},
    )


def history(client: SandboxClient, **body: Any) -> dict[str, Any]:
    return client.oa("official_account_msg_get_simple", {"Official_Account": NEWS, **body})


def test_send_returns_msgkey_seq_1_servertime(client: SandboxClient, fake_clock: FakeClock) -> None:
    now = int(fake_clock())
    assert send(client, "one") == {
        "ActionStatus": "OK",
        "ErrorCode": 0,
        "ErrorInfo": "",
        "MsgTime": now,
        "MsgKey": f"1_1_{now}",
    }
    fake_clock.advance(1800)
    assert send(client, "two")["MsgKey"] == f"2_1_{now + 1800}"
    info = client.oa(
        "get_official_account_info",
        {
            "OfficialAccountIdList": [{"Official_Account": NEWS}],
            "ResponseFilter": {"OfficialAccountBaseInfoFilter": ["LastMsgTime"]},
        },
    )
    assert info["OfficialAccountInfoList"][0]["LastMsgTime"] == now + 1800


def test_one_per_second_and_two_per_hour(client: SandboxClient, fake_clock: FakeClock) -> None:
    assert send(client, "a")["ErrorCode"] == 0
    assert send(client, "b")["ErrorCode"] == 60018  # same second
    fake_clock.advance(1)
    assert send(client, "b")["ErrorCode"] == 0
    fake_clock.advance(1)
    assert send(client, "c")["ErrorCode"] == 60019  # third within the hour
    fake_clock.advance(3600)
    assert send(client, "c")["ErrorCode"] == 0


def test_identical_content_within_5_minutes_is_discarded(
    client: SandboxClient, fake_clock: FakeClock
) -> None:
    first = send(client, "same")
    fake_clock.advance(299)
    # The retry gets the original message back and nothing new is sent.
    assert send(client, "same", Random=8) == first
    fake_clock.advance(2)
    again = send(client, "same")
    assert again["ErrorCode"] == 0
    assert again["MsgKey"] != first["MsgKey"]
    sent = [e["effects"] for e in client.log() if e["api"].endswith("send_official_account_msg")]
    digest = body_digest(text("same"))
    assert sent == [
        [["message_sent", NEWS, first["MsgKey"], digest]],
        [],
        [["message_sent", NEWS, again["MsgKey"], digest]],
    ]


def test_send_validation(client: SandboxClient) -> None:
    assert send(client, "x" * 13000)["ErrorCode"] == 6017  # over 12 KB
    bad_type = {"Official_Account": NEWS, "MsgBody": [{"MsgType": "Nope", "MsgContent": {}}]}
    assert client.oa("send_official_account_msg", bad_type)["ErrorCode"] == 6017
    assert send(client, "r", Random=2**32)["ErrorCode"] == 6017
    conflict = send(client, "c", OnlineOnlyFlag=1, SendMsgControl=["NoLastMsg"])
    assert conflict["ErrorCode"] == 6017
    assert send(client, "ok", Random=2**32 - 1)["ErrorCode"] == 0


def test_history_paging_recall_and_placeholders(
    client: SandboxClient, fake_clock: FakeClock
) -> None:
    keys = []
    for i in range(25):
        keys.append(send(client, f"m{i}")["MsgKey"])
        fake_clock.advance(1801)  # two per hour at most
    newest_first = keys[::-1]
    page = history(client, ReqMsgNumber=30)  # more than 20: 20, not finished
    assert [m["MsgKey"] for m in page["RspMsgList"]] == newest_first[:20]
    assert page["IsFinished"] == 0
    assert page["LastMsgKey"] == newest_first[19]
    rest = history(client, LastMsgKey=page["LastMsgKey"], ReqMsgNumber=20)
    assert [m["MsgKey"] for m in rest["RspMsgList"]] == newest_first[20:]
    assert rest["IsFinished"] == 1
    first = rest["RspMsgList"][-1]
    assert first == {
        "From_Account": NEWS,
        "IsPlaceMsg": 0,
        "MsgBody": text("m0"),
        "IsSystemMsg": 0,
        "MsgPriority": 2,
        "MsgRandom": 7,
        "MsgKey": keys[0],
        "MsgSeq": 1,
        "MsgTimeStamp": int(keys[0].split("_")[2]),
    }
    recall = client.oa(
        "official_account_msg_recall",
        {"Official_Account": NEWS, "MsgKeyList": [keys[-1], "99_1_1", keys[-1]], "Reason": "oops"},
    )
    assert recall["RecallRetList"] == [
        {"MsgKey": keys[-1], "RetCode": 0},
        {"MsgKey": "99_1_1", "RetCode": 10030},
        {"MsgKey": keys[-1], "RetCode": 0},
    ]
    assert history(client, ReqMsgNumber=1)["RspMsgList"][0]["MsgKey"] == keys[-2]
    with_recalled = history(client, ReqMsgNumber=1, WithRecalledMsg=1)["RspMsgList"][0]
    assert (with_recalled["MsgKey"], with_recalled["IsPlaceMsg"], with_recalled["MsgBody"]) == (
        keys[-1],
        2,
        [],
    )
    assert history(client, LastMsgKey="garbage")["ErrorCode"] == 6017


def test_history_marks_expired_range(client: SandboxClient, fake_clock: FakeClock) -> None:
    old = send(client, "old")["MsgKey"]
    fake_clock.advance(8 * 86400)  # past the 7-day retention
    new = send(client, "new")["MsgKey"]
    page = history(client)
    assert [m["MsgKey"] for m in page["RspMsgList"]] == [new]
    assert page["IsFinished"] == 2
    recall = client.oa(
        "official_account_msg_recall", {"Official_Account": NEWS, "MsgKeyList": [old]}
    )
    assert recall["RecallRetList"] == [{"MsgKey": old, "RetCode": 10030}]


def test_recall_limits_use_the_recall_page_codes(client: SandboxClient) -> None:
    eleven = [f"{i}_1_1" for i in range(11)]
    over = client.oa(
        "official_account_msg_recall", {"Official_Account": NEWS, "MsgKeyList": eleven}
    )
    assert over["ErrorCode"] == 10004
    reason = client.oa(
        "official_account_msg_recall",
        {"Official_Account": NEWS, "MsgKeyList": ["1_1_1"], "Reason": "r" * 101},
    )
    assert reason["ErrorCode"] == 10004
    ghost = client.oa(
        "official_account_msg_recall", {"Official_Account": "@TOA#_ghost", "MsgKeyList": ["1_1_1"]}
    )
    assert ghost["ErrorCode"] == 10010
    missing = client.oa("official_account_msg_recall", {"MsgKeyList": ["1_1_1"]})
    assert missing["ErrorCode"] == 10004


# -- test controls: behaviour switches, the clock, placeholders, the call log ---------------------


@pytest.fixture
def make_inproc(tmp_path: Path, fake_clock: FakeClock) -> Iterator[Callable[..., SandboxClient]]:
    """In-process sandboxes (httpx transport, no socket) with some `Behaviour` fields set."""
    with ExitStack() as stack:

        def start(**behaviour: Any) -> SandboxClient:
            options = SandboxOptions(
                db_path=tmp_path / f"inproc-{len(behaviour)}.db",
                clock=fake_clock,
                behaviour=Behaviour(**behaviour),
            )
            box = Sandbox(options)
            stack.callback(box.close)
            http = stack.enter_context(
                httpx.Client(transport=box.transport(), base_url="http://sandbox")
            )
            c = SandboxClient(http, options, clock=fake_clock)
            c.account("account_import", {"UserID": "owner"})
            for oa in (NEWS, OPS):
                c.oa(
                    "create_official_account",
                    {"Owner_Account": "owner", "OfficialAccountUserID": oa, "Name": oa[6:]},
                )
            return c

        yield start


OPS = "@TOA#_ops"


def test_duplicate_rule_body_and_random(
    make_inproc: Callable[..., SandboxClient], fake_clock: FakeClock
) -> None:
    c = make_inproc(broadcast_duplicate="body_and_random")
    first = send(c, "same")
    fake_clock.advance(10)
    other_random = send(c, "same", Random=8)  # not a duplicate under this rule
    assert other_random["ErrorCode"] == 0
    assert other_random["MsgKey"] != first["MsgKey"]
    fake_clock.advance(10)
    # The hourly cap is reached, but a duplicate is answered before it and counts towards none.
    assert send(c, "same") == first
    assert send(c, "same", Random=8) == other_random
    assert send(c, "other")["ErrorCode"] == 60019
    fake_clock.advance(300)
    assert send(c, "same")["ErrorCode"] == 60019  # no longer a duplicate: a new send, capped


def test_history_retention_is_a_behaviour(
    make_inproc: Callable[..., SandboxClient], fake_clock: FakeClock
) -> None:
    c = make_inproc(history_days=30)
    old = send(c, "old")["MsgKey"]
    fake_clock.advance(29 * 86400)
    page = history(c)
    assert ([m["MsgKey"] for m in page["RspMsgList"]], page["IsFinished"]) == ([old], 1)
    fake_clock.advance(86400 + 1)
    page = history(c)
    assert (page["RspMsgList"], page["IsFinished"]) == ([], 2)
    recall = c.oa("official_account_msg_recall", {"Official_Account": NEWS, "MsgKeyList": [old]})
    assert recall["RecallRetList"] == [{"MsgKey": old, "RetCode": 10030}]


def test_call_log_counts_sends_per_account_and_body(
    make_inproc: Callable[..., SandboxClient], fake_clock: FakeClock
) -> None:
    c = make_inproc()
    for account, body in [(NEWS, "a"), (OPS, "a"), (NEWS, "a"), (NEWS, "b"), (OPS, "b")]:
        c.oa(
            "send_official_account_msg",
            {"Official_Account": account, "Random": 1, "MsgBody": text(body)},
        )
        fake_clock.advance(1)
    sends = Counter(
        (effect[1], effect[3])
        for entry in c.log()
        for effect in entry["effects"]
        if effect[0] == "message_sent"
    )
    a, b = body_digest(text("a")), body_digest(text("b"))
    assert sends == {(NEWS, a): 1, (OPS, a): 1, (NEWS, b): 1, (OPS, b): 1}


def test_placeholder_is_listed_without_body_or_random(client: SandboxClient) -> None:
    key = send(client, "lost")["MsgKey"]
    client.placeholder(NEWS, key)
    with pytest.raises(RuntimeError, match="no message 9_1_1 on @TOA#_news"):
        client.placeholder(NEWS, "9_1_1")
    (item,) = history(client)["RspMsgList"]  # listed without WithRecalledMsg
    assert (item["MsgKey"], item["IsPlaceMsg"], item["MsgBody"], item["MsgRandom"]) == (
        key,
        1,
        [],
        0,
    )
    for bad in ({"Official_Account": NEWS, "MsgKey": "9_1_1"}, {"MsgKey": key}, []):
        answer = client.http.post("/__sandbox/placeholder", json=bad)
        assert answer.status_code == 400, bad


def test_clock_endpoint_moves_windows_and_quotas_over_http(client: SandboxClient) -> None:
    def advance(seconds: float) -> dict[str, Any]:
        now = client.advance(seconds)
        doc: dict[str, Any] = client.http.get("/__sandbox/clock").json()
        assert doc["now"] == now
        return doc

    start = client.http.get("/__sandbox/clock").json()
    assert start["offset"] == 0
    first = send(client, "a")
    assert first["MsgTime"] == int(start["now"])
    assert send(client, "a") == first  # duplicate, answered before the per-second rule
    assert send(client, "b")["ErrorCode"] == 60018
    assert advance(1) == {"now": start["now"] + 1, "offset": 1}
    assert send(client, "b")["MsgTime"] == int(start["now"]) + 1
    advance(1)
    assert send(client, "c")["ErrorCode"] == 60019
    advance(297)
    assert send(client, "a") == first  # still inside the 5 minutes (299 s after it)
    advance(3600)
    c = send(client, "c")
    assert c["ErrorCode"] == 0
    advance(8 * 86400)
    page = history(client)
    assert (page["RspMsgList"], page["IsFinished"]) == ([], 2)
    assert client.http.post("/__sandbox/clock", json={"offset": 0}).json()["offset"] == 0
    assert history(client)["RspMsgList"][0]["MsgKey"] == c["MsgKey"]


def test_usersig_expires_when_the_vendor_clock_is_ahead(client: SandboxClient) -> None:
    ahead = client.http.post("/__sandbox/clock", json={"offset": 180 * 86400 + 1})
    assert ahead.status_code == 200
    # The client signs on its own clock; the vendor's is 180 days and a second ahead.
    assert send(client, "x")["ErrorCode"] == 70001
    client.http.post("/__sandbox/clock", json={"offset": -3600})  # behind: still valid
    assert send(client, "x")["ErrorCode"] == 0


def test_control_endpoints_refuse_bad_input(client: SandboxClient) -> None:
    for path, body in [
        ("/__sandbox/clock", {"advance": -1}),
        ("/__sandbox/clock", {"advance": "1"}),
        ("/__sandbox/clock", {"advance": 1, "offset": 2}),
        ("/__sandbox/clock", {}),
        ("/__sandbox/behaviour", {"history_days": 0}),
        ("/__sandbox/behaviour", {"history_days": "7"}),
        ("/__sandbox/behaviour", {"nope": 1}),
        ("/__sandbox/behaviour", [1]),
    ]:
        answer = client.http.post(path, json=body)
        assert answer.status_code == 400, (path, body)
        assert set(answer.json()) == {"error"}
    garbage = client.http.post("/__sandbox/clock", content=b"{nope")
    assert garbage.json() == {"error": "the body must be JSON"}
    assert client.http.get("/__sandbox/clock").json()["offset"] == 0
    assert client.http.get("/__sandbox/behaviour").json() == dataclasses.asdict(Behaviour())
    changed = client.http.post(
        "/__sandbox/behaviour", json={"history_days": 30, "clock_offset": 5}
    ).json()
    assert (changed["history_days"], changed["clock_offset"]) == (30, 5)
    assert client.http.delete("/__sandbox/behaviour").status_code == 404
