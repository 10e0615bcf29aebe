"""The sandbox's test controls: the behaviour flags of `sandbox serve`, checks, old state files."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from conftest import FakeClock

from reconciler.sandbox import store
from reconciler.sandbox.behaviour import Behaviour, updated
from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.serve import RunningServer
from reconciler.sandbox.server import SandboxOptions

NEWS = "@TOA#_news"


def test_serve_flags_set_the_behaviour_and_the_clock_moves_over_http(tmp_path: Path) -> None:
    """The real `reconciler sandbox serve` process, flags in, controls and vendor calls out."""
    flags = [
        *("--history-days", "30", "--broadcast-duplicate", "body_and_random"),
        *("--wechat-account-type", "subscription", "--wechat-followers", "5"),
        *("--wechat-admin-confirm", "60", "--wechat-blocked-ip", "203.0.113.7"),
        *("--clock-offset", "-100", "--page-max", "100"),
        *("--wechat-retry-gap", "0", "--wechat-lose-send-answers"),
    ]
    serve = [sys.executable, "-m", "reconciler", "sandbox", "serve", "--port", "0"]
    proc = subprocess.Popen(
        [*serve, "--db", str(tmp_path / "s.db"), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        match = re.fullmatch(r"reconciler sandbox listening on (\S+)\n", proc.stdout.readline())
        assert match is not None
        with httpx.Client(base_url=match[1]) as http:
            assert http.get("/__sandbox/behaviour").json() == {
                "clock_offset": -100,
                "history_days": 30,
                "broadcast_duplicate": "body_and_random",
                "wechat_account_type": "subscription",
                "wechat_followers": 5,
                "wechat_admin_confirm": 60,
                "wechat_blocked_ip": "203.0.113.7",
                "official_accounts": True,
                "wechat_verified": True,
                "page_max": 100,
                "wechat_retry_gap": 0,
                "wechat_lose_send_answers": True,
            }
            token = http.get(
                "/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": "wxsandbox00000000",
                    "secret": "sandbox-wechat-secret-not-a-secret",
                },
            )
            assert token.json()["errcode"] == 40164
            client = SandboxClient(http, SandboxOptions())
            client.account("account_import", {"UserID": "owner"})
            client.oa(
                "create_official_account",
                {"Owner_Account": "owner", "OfficialAccountUserID": NEWS, "Name": "News"},
            )
            body = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}]
            sent = client.oa(
                "send_official_account_msg",
                {"Official_Account": NEWS, "Random": 1, "MsgBody": body},
            )
            before = http.get("/__sandbox/clock").json()
            assert sent["MsgTime"] in (int(before["now"]), int(before["now"]) - 1)
            moved = http.post("/__sandbox/clock", json={"advance": 29 * 86400}).json()
            assert moved["offset"] == 29 * 86400 - 100
            page = client.oa("official_account_msg_get_simple", {"Official_Account": NEWS})
            assert [m["MsgKey"] for m in page["RspMsgList"]] == [sent["MsgKey"]]  # 30 days kept
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--history-days", "0"], "error: sandbox serve: history_days must be at least 1, not 0\n"),
        (
            ["--wechat-followers", "-1"],
            "error: sandbox serve: wechat_followers must not be negative\n",
        ),
        (
            ["--wechat-admin-confirm", "-5"],
            "error: sandbox serve: wechat_admin_confirm must not be negative\n",
        ),
    ],
)
def test_serve_refuses_bad_behaviour_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    from reconciler.cli import main

    assert main(["sandbox", "serve", "--db", str(tmp_path / "x.db"), *flags]) == 1
    assert capsys.readouterr().err == message


def test_behaviour_updates_are_checked() -> None:
    base = Behaviour()
    assert updated(base, {"clock_offset": 3}) == dataclasses.replace(base, clock_offset=3)
    assert updated(base, {}) == base
    for changes, message in [
        ({"clock_offset": True}, "clock_offset must be a float"),
        (
            {"broadcast_duplicate": "random"},
            "broadcast_duplicate must be one of body, body_and_random",
        ),
        ({"wechat_account_type": "x"}, "wechat_account_type must be one of service, subscription"),
        ({"wechat_followers": 1.5}, "wechat_followers must be a int"),
        ("x", "the body must be a JSON object of behaviour fields"),
    ]:
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            updated(base, changes)
    assert Behaviour(history_days=2).retention == 2 * 86400


def test_a_state_file_from_before_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE messages (account TEXT NOT NULL, seq INTEGER NOT NULL,"
        " msg_time INTEGER NOT NULL, random INTEGER NOT NULL, body TEXT NOT NULL,"
        " cloud_custom_data TEXT NOT NULL DEFAULT '', digest TEXT NOT NULL,"
        " recalled INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (account, seq)) WITHOUT ROWID;"
        "CREATE TABLE wx_mass (msg_id INTEGER PRIMARY KEY, msg_data_id INTEGER,"
        " clientmsgid TEXT NOT NULL, created INTEGER NOT NULL, msgtype TEXT NOT NULL,"
        " status TEXT NOT NULL);"
        "INSERT INTO wx_mass VALUES (1000000001, NULL, 'c', 1, 'text', 'SEND_SUCCESS');"
    )
    old.commit()
    old.close()
    conn = store.connect(path)
    try:
        row = conn.execute(
            "SELECT status, finish_at, scope, articles, deleted FROM wx_mass"
        ).fetchone()
        assert row == ("SEND_SUCCESS", 0, "", 0, "")
        columns = {r[1] for r in conn.execute("PRAGMA table_info(messages)")}
        assert "placeholder" in columns
    finally:
        conn.close()
    store.connect(path).close()  # a second open finds nothing to add


def test_a_failed_upgrade_leaves_the_file_unlocked(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    odd = sqlite3.connect(path)
    odd.execute("CREATE VIEW messages AS SELECT 1 AS seq")  # not a table: no column can be added
    odd.commit()
    odd.close()
    with pytest.raises(sqlite3.OperationalError, match="Cannot add a column to a view") as info:
        store.connect(path)
    assert info.value is not None  # the failed connection is still referenced here
    other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # would be "database is locked" had it not rolled back
    other.execute("ROLLBACK")
    other.close()


def test_vendor_replies_carry_the_sandbox_clock_as_date(
    make_sandbox_server: Callable[..., RunningServer], fake_clock: FakeClock
) -> None:
    server = make_sandbox_server(clock=fake_clock, behaviour=Behaviour(clock_offset=3600))
    with httpx.Client(base_url=server.base_url) as http:
        client = SandboxClient(http, server.options, clock=fake_clock)
        answer = client.im_raw("im_open_login_svc/account_import", {"UserID": "x"})
        assert answer.headers.get_list("date") == [formatdate(fake_clock() + 3600, usegmt=True)]
        token = http.get("/cgi-bin/token", params={"grant_type": "client_credential"})
        assert token.headers.get_list("date") == [formatdate(fake_clock() + 3600, usegmt=True)]
