"""The sandbox as a server: framing, rate limits, faults, stats and log, persistence, transports."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeClock

from reconciler.sandbox.client import SandboxClient, im_query
from reconciler.sandbox.serve import RunningServer, serve_in_thread
from reconciler.sandbox.server import Sandbox, SandboxOptions

CHECK = "im_open_login_svc/account_check"
CHECK_BODY = {"CheckItem": [{"UserID": "alice"}]}


def test_body_is_json_whatever_the_content_type(sandbox_client: SandboxClient) -> None:
    params = im_query(sandbox_client.options, now=int(time.time()))
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/json"):
        response = sandbox_client.http.post(
            f"/v4/{CHECK}",
            params=params,
            content=json.dumps(CHECK_BODY),
            headers={"content-type": content_type},
        )
        assert response.status_code == 200
        assert response.json()["ErrorCode"] == 0, content_type
        assert response.headers["content-type"] == "application/json; charset=utf-8"
    for bad in (b"{not json", b"[1, 2]", b"", b"\xff\xfe"):
        doc = sandbox_client.account("account_check", bad)
        assert doc == {
            "ActionStatus": "FAIL",
            "ErrorCode": 60003,
            "ErrorInfo": "HTTP request JSON parse error",
        }


def test_unknown_endpoints_and_methods(sandbox_client: SandboxClient) -> None:
    params = im_query(sandbox_client.options, now=int(time.time()))
    unknown = sandbox_client.http.post("/v4/im_open_login_svc/nope", params=params, content=b"{}")
    assert (unknown.status_code, unknown.json()["ErrorCode"]) == (200, 60009)
    get = sandbox_client.http.get(f"/v4/{CHECK}", params=params)
    assert (get.status_code, get.json()["ErrorCode"]) == (200, 60002)
    assert sandbox_client.http.post("/elsewhere").status_code == 404
    assert sandbox_client.http.get("/__sandbox/nope").status_code == 404
    assert sandbox_client.http.get("/__sandbox/log", params={"since": "x"}).status_code == 400


def test_stats_count_calls_per_api_and_reset(sandbox_client: SandboxClient) -> None:
    sandbox_client.account("account_check", CHECK_BODY)
    sandbox_client.account("account_check", CHECK_BODY)
    sandbox_client.oa(
        "get_official_account_info", {"OfficialAccountIdList": [{"Official_Account": "@TOA#_a"}]}
    )
    sandbox_client.wx("message/mass/speed/get")
    assert sandbox_client.stats() == {
        "calls": {
            "cgi-bin/message/mass/speed/get": 1,
            "cgi-bin/token": 1,
            "im_open_login_svc/account_check": 2,
            "official_account_open_http_svc/get_official_account_info": 1,
        },
        "rate_limited": 0,
        "faults": 0,
    }
    assert sandbox_client.http.post("/__sandbox/stats/reset").json() == {"ok": True}
    assert sandbox_client.stats() == {"calls": {}, "rate_limited": 0, "faults": 0}


def test_call_log_pages_with_since(sandbox_client: SandboxClient) -> None:
    for user in ("a", "b", "c"):
        sandbox_client.account("account_import", {"UserID": user})
    entries = sandbox_client.log()
    assert [(e["id"], e["api"], e["code"], e["effects"]) for e in entries] == [
        (1, "im_open_login_svc/account_import", 0, [["user_imported", "a"]]),
        (2, "im_open_login_svc/account_import", 0, [["user_imported", "b"]]),
        (3, "im_open_login_svc/account_import", 0, [["user_imported", "c"]]),
    ]
    page = sandbox_client.http.get("/__sandbox/log", params={"since": 1, "limit": 1}).json()
    assert [e["id"] for e in page["entries"]] == [2]
    assert page["next"] == 2


def _hammer(client: SandboxClient, api: str, n: int) -> list[int]:
    return [client.im(api, CHECK_BODY)["ErrorCode"] for _ in range(n)]


def test_vendor_rate_limits_per_api(
    make_sandbox_server: Callable[..., RunningServer], fake_clock: FakeClock
) -> None:
    server = make_sandbox_server(clock=fake_clock)
    with httpx.Client(base_url=server.base_url) as http:
        client = SandboxClient(http, server.options, clock=fake_clock)
        # account_check: 100/s (reference section 1.5); the clock does not move.
        assert _hammer(client, CHECK, 101) == [0] * 100 + [60007]
        # Another API has its own bucket: get_official_account_info is 200/s.
        info = "official_account_open_http_svc/get_official_account_info"
        body = {"OfficialAccountIdList": [{"Official_Account": "@TOA#_a"}]}
        codes = [client.im(info, body)["ErrorCode"] for _ in range(201)]
        assert codes == [0] * 200 + [60007]
        fake_clock.advance(0.5)  # half a second refills half the bucket
        assert _hammer(client, CHECK, 51) == [0] * 50 + [60007]
        assert client.stats()["rate_limited"] == 3
        limited = [e for e in client.log() if e["code"] == 60007]
        assert len(limited) == 3


@pytest.mark.parametrize(("rate", "allowed"), [(5, 5), (0, 300)])
def test_configured_rate_limit(
    make_sandbox_server: Callable[..., RunningServer],
    fake_clock: FakeClock,
    rate: int,
    allowed: int,
) -> None:
    server = make_sandbox_server(clock=fake_clock, calls_per_second=rate)
    with httpx.Client(base_url=server.base_url) as http:
        client = SandboxClient(http, server.options, clock=fake_clock)
        codes = _hammer(client, CHECK, allowed + 1 if rate else allowed)
        assert codes == [0] * allowed + ([60007] if rate else [])
        if rate:
            token = client.token()
            speed = [
                http.post("/cgi-bin/message/mass/speed/get", params={"access_token": token}).json()
                for _ in range(6)
            ]
            assert [d.get("errcode", 0) for d in speed] == [0] * 5 + [45011]
            assert speed[-1] == {"errcode": 45011, "errmsg": "api freq out of limit"}


def _fault_run(
    start: Callable[..., RunningServer], seed: int
) -> tuple[list[tuple[int, int]], RunningServer]:
    server = start(fail_rate=0.4, seed=seed, calls_per_second=0, db_path=":memory:")
    outcomes: list[tuple[int, int]] = []
    with httpx.Client(base_url=server.base_url) as http:
        client = SandboxClient(http, server.options)
        for i in range(120):
            response = client.im_raw("im_open_login_svc/account_import", {"UserID": f"u{i}"})
            code = response.json()["ErrorCode"] if response.status_code == 200 else 0
            outcomes.append((response.status_code, code))
    return outcomes, server


def test_faults_are_seeded_and_documented(
    make_sandbox_server: Callable[..., RunningServer],
) -> None:
    first, server = _fault_run(make_sandbox_server, seed=3)
    again, _ = _fault_run(make_sandbox_server, seed=3)
    other, _ = _fault_run(make_sandbox_server, seed=4)
    assert first == again
    assert first != other
    kinds = {o for o in first if o != (200, 0)}
    assert kinds == {(200, 70500), (200, 70169), (502, 0), (503, 0)}
    with httpx.Client(base_url=server.base_url) as http:
        client = SandboxClient(http, server.options)
        entries = client.log()
        faults = [e for e in entries if e["fault"]]
        assert client.stats()["faults"] == len(faults)
        assert {e["fault"] for e in faults} == {"vendor", "http_before", "http_after"}
        for entry in entries:
            user = entry["effects"][0][1] if entry["effects"] else None
            # Only successful calls and lost responses (http_after) imported their user.
            assert (user is not None) == (entry["fault"] in ("", "http_after")), entry
        lost = [e["effects"][0][1] for e in entries if e["fault"] == "http_after"]
        check = client.account(
            "account_check", {"CheckItem": [{"UserID": u} for u in lost]}, random=1
        )
        # account_check itself may be faulted; retry until it answers.
        while check.get("ErrorCode") != 0:
            check = client.account("account_check", {"CheckItem": [{"UserID": u} for u in lost]})
        assert {i["AccountStatus"] for i in check["ResultItem"]} == {"Imported"}


def test_state_survives_a_restart(tmp_path: Path) -> None:
    options = SandboxOptions(db_path=tmp_path / "state.db")
    with serve_in_thread(options) as server, httpx.Client(base_url=server.base_url) as http:
        client = SandboxClient(http, options)
        client.account("account_import", {"UserID": "owner"})
        client.oa(
            "create_official_account",
            {"Owner_Account": "owner", "OfficialAccountUserID": "@TOA#_keep", "Name": "Keep"},
        )
        client.wx("message/mass/speed/set", {"speed": 3})
    with serve_in_thread(options) as server, httpx.Client(base_url=server.base_url) as http:
        client = SandboxClient(http, options)
        doc = client.oa(
            "get_official_account_info",
            {"OfficialAccountIdList": [{"Official_Account": "@TOA#_keep"}]},
        )
        assert doc["OfficialAccountInfoList"][0]["Name"] == "Keep"
        assert client.wx("message/mass/speed/get") == {"speed": 3, "realspeed": 30}
        assert [e["id"] for e in client.log()][:3] == [1, 2, 3]


def test_concurrent_requests_and_two_sandboxes_on_one_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    users = [f"u{i:03d}" for i in range(160)]
    with serve_in_thread(SandboxOptions(db_path=db, calls_per_second=0)) as server:
        second = Sandbox(SandboxOptions(db_path=db, calls_per_second=0))  # another "process"
        with httpx.Client(base_url=server.base_url) as http:
            setup = SandboxClient(http, server.options)
            setup.account("multiaccount_import", {"Accounts": ["owner", *users[:99]]})
            setup.account("multiaccount_import", {"Accounts": users[99:]})
            setup.oa(
                "create_official_account",
                {"Owner_Account": "owner", "OfficialAccountUserID": "@TOA#_c", "Name": "C"},
            )
        errors: list[BaseException] = []

        def worker(chunk: list[str], in_process: bool) -> None:
            try:
                http = (
                    httpx.Client(transport=second.transport(), base_url="http://anything")
                    if in_process
                    else httpx.Client(base_url=server.base_url)
                )
                with http:
                    client = SandboxClient(http, server.options)
                    for user in chunk:
                        body = {
                            "Official_Account": "@TOA#_c",
                            "SubscriberList": [{"Subscriber_Account": user}],
                        }
                        assert client.oa("add_subscriber", body)["SubscriberList"][0]["Result"] == 1
            except BaseException as exc:  # collected and re-raised in the main thread
                errors.append(exc)

        threads = [
            threading.Thread(target=worker, args=(users[i::8], i % 2 == 0)) for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with httpx.Client(base_url=server.base_url) as http:
            client = SandboxClient(http, server.options)
            doc = client.oa(
                "get_subscriber_info", {"Official_Account": "@TOA#_c", "Limit": 200, "Next": ""}
            )
            assert doc["SubscriberNum"] == 160
            assert [s["Subscriber_Account"] for s in doc["SubscriberList"]] == users
        second.close()


def test_in_process_transports_and_latency(tmp_path: Path) -> None:
    box = Sandbox(SandboxOptions(db_path=tmp_path / "t.db", latency_ms=30))
    try:
        with httpx.Client(transport=box.transport(), base_url="http://console.tim.qq.com") as http:
            client = SandboxClient(http, box.options)
            started = time.perf_counter()
            assert client.account("account_check", CHECK_BODY)["ErrorCode"] == 0
            assert time.perf_counter() - started >= 0.03

        async def run() -> dict[str, Any]:
            async with httpx.AsyncClient(
                transport=box.async_transport(), base_url="https://api.weixin.qq.com"
            ) as http:
                params = im_query(box.options, now=int(time.time()))
                response = await http.post(f"/v4/{CHECK}", params=params, json=CHECK_BODY)
                doc: dict[str, Any] = response.json()
                return doc

        started = time.perf_counter()
        assert asyncio.run(run())["ErrorCode"] == 0
        assert time.perf_counter() - started >= 0.03
    finally:
        box.close()


def test_latency_counts_the_handling_inside_it(tmp_path: Path) -> None:
    """A call waits the latency less what its path's calls cost on top of their wait, so its
    answer leaves about `latency_ms` after it arrived; the sandbox's own endpoints never wait."""
    box = Sandbox(SandboxOptions(db_path=tmp_path / "t.db", latency_ms=40))
    path = f"/v4/{CHECK}"

    async def run() -> list[float]:
        async with httpx.AsyncClient(
            transport=box.async_transport(), base_url="https://console.tim.qq.com"
        ) as http:
            params = im_query(box.options, now=int(time.time()))
            took = []
            for _ in range(4):
                started = time.perf_counter()
                response = await http.post(path, params=params, json=CHECK_BODY)
                assert response.json()["ErrorCode"] == 0
                took.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert (await http.get("/__sandbox/stats")).status_code == 200
            took.append(time.perf_counter() - started)
            return took

    try:
        took = asyncio.run(run())
        overhead = box._overhead[path]
        assert 0 < overhead < 0.04
        assert set(box._overhead) == {path}
        assert took[0] >= 0.04  # nothing known yet: the whole latency
        assert all(t >= 0.04 - overhead - 0.005 for t in took[1:4])
        assert took[4] < 0.04
    finally:
        box.close()


def test_sandbox_fixture_is_in_process(sandbox: Sandbox) -> None:
    with httpx.Client(transport=sandbox.transport(), base_url="http://sandbox") as http:
        client = SandboxClient(http, sandbox.options)
        assert client.account("account_import", {"UserID": "x"})["ErrorCode"] == 0
    assert sandbox.stats()["calls"] == {"im_open_login_svc/account_import": 1}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_command_prints_url_and_credentials_and_stops_on_a_signal(
    tmp_path: Path, stop: signal.Signals
) -> None:
    db = tmp_path / "serve.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "serve", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(23)]
        match = re.fullmatch(
            r"reconciler sandbox listening on (http://127\.0\.0\.1:\d+)\n", lines[0]
        )
        assert match is not None, lines
        url = match[1]
        assert lines[1:] == [
            f"  state:          {db}\n",
            f"  Tencent IM:     {url}/v4/<service>/<command>\n",
            "    sdkappid:     1400000000\n",
            "    identifier:   administrator\n",
            "    secret key:   sandbox-secret-key-not-a-secret\n",
            f"  WeChat:         {url}/cgi-bin/<endpoint>\n",
            "    appid:        wxsandbox00000000\n",
            "    secret:       sandbox-wechat-secret-not-a-secret\n",
            f"  stats:          {url}/__sandbox/stats\n",
            "A reconciler.yaml target for it (export SANDBOX_SECRET_KEY and"
            " SANDBOX_WECHAT_SECRET, the secret key and secret above):\n",
            "targets:\n",
            "  served:\n",
            "    type: tencent\n",
            f"    endpoint: {url}\n",
            "    sdkAppId: 1400000000\n",
            "    identifier: administrator\n",
            "    secretKey: ${SANDBOX_SECRET_KEY}\n",
            "    wechat:\n",
            "      appId: wxsandbox00000000\n",
            "      secret: ${SANDBOX_WECHAT_SECRET}\n",
            f"      endpoint: {url}\n",
            "Press Ctrl+C to stop.\n",
        ]
        with httpx.Client(base_url=url) as http:
            client = SandboxClient(http, SandboxOptions())
            assert client.account("account_import", {"UserID": "x"})["ErrorCode"] == 0
        # The banner is printed once the server is up, so a signal right away stops it cleanly.
        proc.send_signal(stop)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert db.exists()


def test_serve_help_lists_the_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "reconciler", "sandbox", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--port",
        "--db",
        "--sdkappid",
        "--secret-key",
        "--admin",
        "--wechat-appid",
        "--wechat-secret",
        "--latency-ms",
        "--fail-rate",
        "--seed",
        "--calls-per-second",
    ):
        assert flag in out
