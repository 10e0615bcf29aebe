"""Every malformed request gets the documented code, over real HTTP (one table, one server)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.cli import build_parser
from reconciler.sandbox import serve, store
from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.serve import RunningServer
from reconciler.sandbox.server import Sandbox

NEWS = "@TOA#_news"
TEXT = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "x"}}]

IM_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("im_open_login_svc/account_import", {"UserID": ""}, 70402),
    ("im_open_login_svc/account_check", {"CheckItem": "alice"}, 70402),
    ("im_open_login_svc/account_check", {"CheckItem": []}, 70402),
    ("im_open_login_svc/account_check", {"CheckItem": [{"UserID": 1}]}, 70402),
    ("im_open_login_svc/account_delete", {"DeleteItem": ["alice"]}, 70402),
    ("official_account_open_http_svc/destroy_official_account", {}, 6017),
    ("official_account_open_http_svc/destroy_official_account", {"Official_Account": 5}, 6017),
    (
        "official_account_open_http_svc/create_official_account",
        {"Owner_Account": "owner", "Name": "N", "OfficialAccountUserID": 5},
        130007,
    ),
    (
        "official_account_open_http_svc/create_official_account",
        {"Owner_Account": "owner", "Name": ""},
        6017,
    ),
    (
        "official_account_open_http_svc/create_official_account",
        {"Owner_Account": "owner", "Name": "N", "MaxSubscriberNum": 0},
        6017,
    ),
    (
        "official_account_open_http_svc/create_official_account",
        {"Owner_Account": "owner", "Name": "N", "MaxSubscriberNum": "9"},
        6017,
    ),
    (
        "official_account_open_http_svc/create_official_account",
        {"Owner_Account": "owner", "Name": "N", "MaxSubscriberNum": 2**32},
        6017,
    ),
    (
        "official_account_open_http_svc/get_official_account_info",
        {"OfficialAccountIdList": [NEWS]},
        6017,
    ),
    (
        "official_account_open_http_svc/get_official_account_info",
        {"OfficialAccountIdList": [{"Official_Account": NEWS}], "ResponseFilter": []},
        6017,
    ),
    (
        "official_account_open_http_svc/get_official_account_info",
        {
            "OfficialAccountIdList": [{"Official_Account": NEWS}],
            "ResponseFilter": {"OfficialAccountBaseInfoFilter": "Name"},
        },
        6017,
    ),
    (
        "official_account_open_http_svc/get_subscriber_info",
        {"Official_Account": NEWS, "Next": "eDp5"},
        6017,
    ),
    (
        "official_account_open_http_svc/add_subscriber",
        {"Official_Account": NEWS, "SubscriberList": ["alice"]},
        6017,
    ),
    (
        "official_account_open_http_svc/delete_subscriber",
        {"Official_Account": NEWS, "SubscriberList": ["alice"]},
        6017,
    ),
    (
        "official_account_open_http_svc/delete_subscriber",
        {"Official_Account": NEWS, "SubscriberToDel_Account": [7]},
        60015,
    ),
    (
        "official_account_open_http_svc/send_official_account_msg",
        {"Official_Account": NEWS, "MsgBody": TEXT, "SendMsgControl": "NoLastMsg"},
        6017,
    ),
    (
        "official_account_open_http_svc/official_account_msg_recall",
        {"Official_Account": NEWS, "MsgKeyList": [1]},
        10004,
    ),
]


def test_im_parameter_errors(sandbox_client: SandboxClient) -> None:
    sandbox_client.account("account_import", {"UserID": "owner"})
    sandbox_client.oa(
        "create_official_account",
        {"Owner_Account": "owner", "OfficialAccountUserID": NEWS, "Name": "News"},
    )
    got = [(api, body, sandbox_client.im(api, body)["ErrorCode"]) for api, body, _ in IM_CASES]
    assert got == IM_CASES


def test_im_edge_cases_that_succeed(sandbox_client: SandboxClient) -> None:
    client = sandbox_client
    client.account("account_import", {"UserID": "administrator"})  # the admin always exists
    client.account("account_import", {"UserID": "bob", "Nick": "B", "FaceUrl": "https://f"})
    client.account("account_import", {"UserID": "bob", "Nick": "B2", "FaceUrl": "https://g"})
    doc = client.account(
        "multiaccount_import",
        {"AccountList": [{"UserID": "carol", "Nick": "n" * 501}, {"UserID": "dave"}, "erin"]},
    )
    assert doc["FailAccounts"] == ["carol", "erin"]
    client.oa(
        "create_official_account",
        {"Owner_Account": "bob", "OfficialAccountUserID": NEWS, "Name": "News"},
    )
    added = client.oa(
        "add_subscriber",
        {"Official_Account": NEWS, "SubscriberList": [{"Subscriber_Account": "administrator"}]},
    )
    assert added["SubscriberList"] == [{"Subscriber_Account": "administrator", "Result": 1}]
    removed = client.oa(
        "delete_subscriber", {"Official_Account": NEWS, "SubscriberToDel_Account": ["", "x" * 33]}
    )
    assert [i["Result"] for i in removed["SubscriberList"]] == [0, 0]
    unchanged = client.oa("modify_official_account_base_info", {"Official_Account": NEWS})
    assert unchanged["ErrorCode"] == 0
    # A user who follows accounts is deleted: the accounts' counts follow.
    client.account("account_delete", {"DeleteItem": [{"UserID": "bob"}]})
    client.account("account_import", {"UserID": "frank"})
    client.oa(
        "add_subscriber",
        {"Official_Account": NEWS, "SubscriberList": [{"Subscriber_Account": "frank"}]},
    )
    client.account("account_delete", {"DeleteItem": [{"UserID": "frank"}]})
    info = client.oa(
        "get_official_account_info",
        {
            "OfficialAccountIdList": [{"Official_Account": NEWS}],
            "ResponseFilter": {"SelfInfoFilter": ["x"]},
        },
    )
    assert info["OfficialAccountInfoList"][0]["SubscriberNum"] == 1
    recall = client.oa(
        "official_account_msg_recall", {"Official_Account": NEWS, "MsgKeyList": ["not-a-key"]}
    )
    assert recall["RecallRetList"] == [{"MsgKey": "not-a-key", "RetCode": 10030}]


WX_CASES: list[tuple[str, Any, int]] = [
    ("message/mass/sendall", {"filter": {"is_to_all": True}, "msgtype": 5}, 47001),
    ("message/mass/sendall", {"filter": {"is_to_all": True}, "msgtype": "text"}, 47001),
    ("message/mass/sendall", {"filter": {"is_to_all": True}, "msgtype": "text", "text": {}}, 47001),
    (
        "message/mass/sendall",
        {"filter": {"is_to_all": True}, "msgtype": "image", "images": {"media_ids": []}},
        40007,
    ),
    (
        "message/mass/sendall",
        {"filter": {"is_to_all": True}, "msgtype": "wxcard", "wxcard": {}},
        47001,
    ),
    (
        "message/mass/sendall",
        {
            "filter": {"is_to_all": True},
            "msgtype": "text",
            "text": {"content": "x"},
            "clientmsgid": 5,
        },
        47001,
    ),
    ("message/mass/send", {"touser": "o1", "msgtype": "text", "text": {"content": "x"}}, 47001),
    ("message/mass/delete", {"msg_id": 1, "article_idx": -1}, 47001),
    ("message/mass/delete", {"msg_id": "abc"}, 40059),
    ("message/mass/get", {}, 40059),
    ("media/uploadnews", {"articles": ["x"]}, 47001),
    ("media/uploadnews", {"articles": [{"title": "t", "content": "c"}]}, 40007),
    ("media/uploadnews", {"articles": [{"title": "t", "thumb_media_id": "m"}]}, 47001),
    ("media/uploadvideo", {"media_id": "m", "title": 5}, 47001),
    ("message/mass/speed/set", b"[1]", 47001),
]


def test_wechat_parameter_errors(sandbox_client: SandboxClient) -> None:
    got = [(ep, body, sandbox_client.wx(ep, body).get("errcode", 0)) for ep, body, _ in WX_CASES]
    assert got == WX_CASES


def test_wechat_edge_cases_that_succeed(sandbox_client: SandboxClient) -> None:
    client = sandbox_client
    to_all = {"filter": {"is_to_all": True}}
    for body in (
        {**to_all, "msgtype": "image", "images": {"media_ids": ["a", "b"]}},
        {**to_all, "msgtype": "image", "image": {"media_id": "a"}},
        {**to_all, "msgtype": "wxcard", "wxcard": {"card_id": "c"}},
        {**to_all, "msgtype": "music", "music": {}},
        {
            "filter": {"is_to_all": False, "tag_id": "7"},
            "msgtype": "voice",
            "voice": {"media_id": "v"},
        },
    ):
        assert client.wx("message/mass/sendall", body)["errcode"] == 0, body


def test_faults_use_each_family_s_retry_codes(
    make_sandbox_server: Callable[..., RunningServer],
) -> None:
    server = make_sandbox_server(fail_rate=1.0, seed=11, calls_per_second=0)
    seen: dict[str, set[int]] = {"recall": set(), "oa": set(), "wx": set()}
    with httpx.Client(base_url=server.base_url) as http:
        client = SandboxClient(http, server.options)
        for _ in range(40):
            for family, response in (
                (
                    "recall",
                    client.im_raw("official_account_open_http_svc/official_account_msg_recall", {}),
                ),
                (
                    "oa",
                    client.im_raw("official_account_open_http_svc/destroy_official_account", {}),
                ),
                ("wx", http.get("/cgi-bin/token")),
            ):
                if response.status_code == 200:
                    doc = response.json()
                    seen[family].add(doc.get("ErrorCode", doc.get("errcode")))
                else:
                    assert response.status_code in (502, 503)
                    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert seen == {"recall": {10002, 20005}, "oa": {10004, 20005}, "wx": {-1}}


def test_asgi_lifespan_and_other_scopes(sandbox: Sandbox) -> None:
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    async def run() -> None:
        await sandbox.asgi_app({"type": "lifespan"}, receive, send)
        await sandbox.asgi_app({"type": "websocket"}, receive, send)

    asyncio.run(run())
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


def test_bulk_load_seeds_state(sandbox: Sandbox) -> None:
    conn = store.connect(sandbox.options.db_path)
    store.bulk_load(conn, owner="o", memberships={NEWS: ["u1", "u2"]}, now=1_800_000_000)
    conn.close()
    with httpx.Client(transport=sandbox.transport(), base_url="http://sandbox") as http:
        client = SandboxClient(http, sandbox.options)
        doc = client.oa("get_subscriber_info", {"Official_Account": NEWS, "Next": ""})
        assert [s["Subscriber_Account"] for s in doc["SubscriberList"]] == ["u1", "u2"]
        assert doc["SubscriberNum"] == 2
        # Seeding is not traffic: the only logged call is the read above.
        assert [(e["api"], e["effects"]) for e in client.log()] == [
            ("official_account_open_http_svc/get_subscriber_info", [])
        ]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_command_in_process_stops_cleanly(tmp_path: Path, stop: signal.Signals) -> None:
    args = build_parser().parse_args(
        ["sandbox", "serve", "--port", "0", "--db", str(tmp_path / "s.db"), "--latency-ms", "1"]
    )
    out = io.StringIO()
    answered: list[int] = []

    def drive() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = out.getvalue()
            if "listening on " in text:
                url = text.split("listening on ", 1)[1].split("\n", 1)[0]
                try:
                    answered.append(httpx.get(url + "/__sandbox/stats").status_code)
                    break
                except httpx.TransportError:
                    pass
            time.sleep(0.01)
        os.kill(os.getpid(), stop)

    thread = threading.Thread(target=drive)
    thread.start()
    assert serve.command(args, stdout=out) == 0
    thread.join()
    assert answered == [200]
    assert out.getvalue().startswith("reconciler sandbox listening on http://127.0.0.1:")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fail-rate", "1.5"], "error: --fail-rate must be between 0 and 1, not 1.5\n"),
        (["--latency-ms", "-1"], "error: --latency-ms must not be negative, not -1.0\n"),
        (
            ["--calls-per-second", "-2"],
            "error: --calls-per-second must be 0 (unlimited) or more, not -2.0\n",
        ),
    ],
)
def test_serve_refuses_bad_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    from reconciler.cli import main

    assert main(["sandbox", "serve", "--db", str(tmp_path / "x.db"), *flags]) == 1
    assert capsys.readouterr().err == message


def test_serve_reports_a_busy_port_and_an_unusable_db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.cli import main

    with serve.serve_in_thread(serve.SandboxOptions(db_path=tmp_path / "a.db")) as running:
        port = running.base_url.rsplit(":", 1)[1]
        assert main(["sandbox", "serve", "--port", port, "--db", str(tmp_path / "b.db")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    (tmp_path / "file").write_text("x")
    assert main(["sandbox", "serve", "--db", str(tmp_path / "file" / "db.sqlite")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot open the sandbox database {tmp_path}/file/db.sqlite: ")
