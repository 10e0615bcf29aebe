"""`reconciler conformance` (issue 19): the battery against `reconciler sandbox serve` as a
`tencent` target finds nothing (this runs in CI); a difference planted with a sandbox option is
found and named; the throw-away account is gone after a SIGINT or SIGTERM mid-run; without
`--allow-writes` nothing is written, and the read-only guard holds the battery to that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_e2e_common import ENV, Project, ServedSandbox, Vendor

from reconciler.config import Limits, SandboxTarget
from reconciler.conformance.battery import Context, Recorder, cleanup, fields, run
from reconciler.conformance.report import compare, render_json, render_text
from reconciler.conformance.wire import Answer, Wire
from reconciler.connect import connect
from reconciler.errors import ReadOnlyViolation
from reconciler.plan import TargetIdentity
from reconciler.providers import Pacer, RetryPolicy, TencentClient
from reconciler.sandbox.server import Sandbox, SandboxOptions
from reconciler.secret import Secret

PREFIX = "@TOA#_rcl-conformance-"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NO_COLOR", "1")
    return Project(root, "", tmp_path / "sandbox.db")


@pytest.fixture
def serve(project: Project) -> Iterator[Any]:
    """Start `reconciler sandbox serve` with flags and point the project at it."""
    servers: list[ServedSandbox] = []

    def start(*flags: str) -> ServedSandbox:
        server = ServedSandbox(project.db_path, *flags)
        servers.append(server)
        project.base_url = server.base_url
        project.configure()
        return server

    yield start
    for server in servers:
        server.stop()


def effects(vendor: Vendor) -> list[tuple[str, ...]]:
    return [tuple(effect) for entry in vendor.log() for effect in entry["effects"]]


def report(project: Project) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((project.root / "report.json").read_text(encoding="utf-8"))
    return doc


def head(project: Project, scope: str, count: int, differ: str) -> list[str]:
    return [
        f"Target: tencent 'local', sdkappid 1400000000 at {project.base_url},"
        " WeChat appid wxsandbox00000000",
        f"Conformance, {scope}: {count} observations, {differ}",
    ]


def test_reads_and_writes_against_sandbox_serve_find_no_difference(
    project: Project, serve: Any
) -> None:
    serve()
    result = project.cli("conformance", "--allow-writes", "--out", "report.json")
    assert result.code == 0, result.text
    doc = report(project)
    count = len(doc["observations"])
    assert count > 200
    assert result.lines == head(project, "reads and writes", count, "none differ from the sandbox")
    assert doc["differences"] == [] and doc["writes"] is True and doc["leftBehind"] is None
    (made,) = {line.split()[-1] for line in result.err.splitlines() if PREFIX in line}
    assert result.err == (
        f"conformance: making the throw-away account {made}\nconformance: destroyed {made}\n"
    )
    with contextlib_vendor(project) as vendor:
        changed = effects(vendor)
        assert ("account_created", made) in changed and ("account_destroyed", made) in changed
        assert vendor.account(made) is None
        # nothing but the throw-away account was touched: no user imported, no speed set
        tokens = [e for e in changed if e[0] == "token_issued"]
        assert len(tokens) == 1, changed  # the WeChat access token the probes used
        changed = [e for e in changed if e[0] != "token_issued"]
        assert {e[0] for e in changed} == {
            "account_created",
            "account_modified",
            "subscriber_added",
            "subscriber_modified",
            "subscriber_removed",
            "message_sent",
            "message_recalled",
            "account_destroyed",
        }
        assert all(e[1] == made for e in changed), changed
    # no credential in the report
    text = (project.root / "report.json").read_text(encoding="utf-8")
    assert ENV["E2E_IM_KEY"] not in text and ENV["E2E_WX_SECRET"] not in text


def contextlib_vendor(project: Project) -> contextlib.closing[Vendor]:
    return contextlib.closing(project.vendor())


def test_without_allow_writes_only_reads_are_sent_and_nothing_changes(
    project: Project, serve: Any
) -> None:
    serve()
    result = project.cli("conformance", "--out", "report.json")
    assert result.code == 0, result.text
    count = len(report(project)["observations"])
    assert result.lines == head(
        project,
        "reads only (--allow-writes adds the writes)",
        count,
        "none differ from the sandbox",
    )
    assert result.err == ""
    with contextlib_vendor(project) as vendor:
        assert [e[0] for e in effects(vendor)] == ["token_issued"]
        apis = {str(entry["api"]) for entry in vendor.log()}
    oa = "official_account_open_http_svc/"
    assert apis == {
        "im_open_login_svc/account_check",
        oa + "get_official_account_info",
        oa + "get_subscriber_info",
        oa + "official_account_msg_get_simple",
        oa + "get_subscribed_official_account_list",
        "cgi-bin/stable_token",
        "cgi-bin/message/mass/speed/get",
        "cgi-bin/message/mass/get",
    }


def test_a_planted_page_limit_is_found_and_named(project: Project, serve: Any) -> None:
    serve("--page-max", "100")
    result = project.cli("conformance", "--out", "report.json")
    assert result.code == 2, result.text
    count = len(report(project)["observations"])
    assert result.lines == [
        *head(
            project,
            "reads only (--allow-writes adds the writes)",
            count,
            "1 differs from the sandbox",
        ),
        "probe                                            observation  target  sandbox",
        "get_subscribed_official_account_list: Limit 200  code         6017    0",
    ]
    assert report(project)["differences"] == [
        {
            "probe": "get_subscribed_official_account_list: Limit 200",
            "observation": "code",
            "target": 6017,
            "sandbox": 0,
        }
    ]
    assert report(project)["vendorMessages"] == {
        "get_subscribed_official_account_list: Limit 200": {
            "target": "Limit must be at most 100",
            "sandbox": "",
        }
    }


def test_a_planted_duplicate_rule_is_found_and_named(project: Project, serve: Any) -> None:
    """`--broadcast-duplicate body_and_random`: a resend of the body with another Random is no
    longer the first message (refused as too fast, or sent anew when a second has passed)."""
    serve("--broadcast-duplicate", "body_and_random")
    result = project.cli("conformance", "--allow-writes", "--out", "report.json")
    assert result.code == 2, result.text
    rows = {(d["probe"], d["observation"]): d for d in report(project)["differences"]}
    probe = "send_official_account_msg: the same body, another Random"
    assert rows[(probe, "MsgKey is the first one's")]["target"] is False
    assert rows[(probe, "MsgKey is the first one's")]["sandbox"] is True
    assert {p for p, _ in rows} <= {
        probe,
        "official_account_msg_get_simple: after one broadcast",
        "official_account_msg_get_simple: after the recall",
        "official_account_msg_get_simple: after the recall, WithRecalledMsg 1",
    }, rows
    # the table's columns are as wide as its longest probe, and which probes differ depends on
    # whether the second send came within the same second (refused) or after it (sent anew)
    assert re.search(rf"^{re.escape(probe)} +MsgKey is the first one's ", result.out, re.M)


def test_a_wechat_allow_list_refusal_shows_on_every_wechat_probe(
    project: Project, serve: Any
) -> None:
    serve("--wechat-blocked-ip", "203.0.113.7")
    result = project.cli("conformance", "--out", "report.json")
    assert result.code == 2, result.text
    differences = report(project)["differences"]
    assert {(d["probe"], d["observation"], d["target"]) for d in differences} == {
        ("mass_speed_get", "code", 40164),
        ("mass_speed_get", "field realspeed", "absent"),
        ("mass_speed_get", "field speed", "absent"),
        ("mass_speed_get", "speed is a level 0..4", False),
        ("mass_speed_get", "realspeed is the doc table's", False),
        ("mass_get: an unknown msg_id", "code", 40164),
    }


def test_a_target_without_wechat_runs_no_wechat_probe(project: Project, serve: Any) -> None:
    server = serve()
    lines = project.root.joinpath("reconciler.yaml").read_text().splitlines()
    project.write("reconciler.yaml", "\n".join(lines[:8]) + "\n")
    result = project.cli("conformance", "--out", "report.json")
    assert result.code == 0, result.text
    assert not [o for o in report(project)["observations"] if "mass" in o["probe"]]
    assert server.base_url in result.out


def wait_for(vendor: Vendor, process: subprocess.Popen[str], effect: str) -> str:
    """The account of the first `effect` in the call log (the process still running)."""
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "the run ended before the signal"
        assert time.monotonic() < deadline, "the run never got there"
        for found in effects(vendor):
            if found[0] == effect:
                return found[1]
        time.sleep(0.01)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_destroys_the_throw_away_account(
    project: Project, serve: Any, stop: signal.Signals
) -> None:
    serve("--latency-ms", "60")
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "conformance", "--allow-writes", "--out", "r.json"],
        cwd=project.root,
        env={**os.environ, **ENV, "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with contextlib_vendor(project) as vendor:
        made = wait_for(vendor, process, "subscriber_added")
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 128 + stop, out + err
        assert err == (
            f"conformance: making the throw-away account {made}\n"
            f"conformance: destroyed {made}\n"
            f"interrupted by {stop.name}\n"
        )
        assert out.splitlines()[1].endswith(
            f"none differ from the sandbox (stopped early by {stop.name})"
        )
        changed = effects(vendor)
        assert changed.count(("account_created", made)) == 1
        assert changed[-1] == ("account_destroyed", made)
        assert not any(e[0] == "message_sent" for e in changed)  # it stopped before the sends
        assert vendor.account(made) is None
    doc = json.loads((project.root / "r.json").read_text(encoding="utf-8"))
    assert doc["interrupted"] == stop.name and doc["leftBehind"] is None


def test_a_signal_in_process_stops_the_battery_and_destroys_the_account(
    project: Project, serve: Any
) -> None:
    """The same as above inside this process (`cli.main`), SIGTERM from a thread."""
    serve("--latency-ms", "30")
    found: list[str] = []

    def signal_when_subscribed() -> None:
        with contextlib_vendor(project) as vendor:
            deadline = time.monotonic() + 60
            while not found and time.monotonic() < deadline:
                found.extend(e[1] for e in effects(vendor) if e[0] == "subscriber_added")
                time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=signal_when_subscribed)
    thread.start()
    try:
        result = project.cli("conformance", "--allow-writes")
    finally:
        thread.join()
    assert result.code == 143, result.text
    made = found[0]
    assert result.err.splitlines()[1:] == [
        f"conformance: destroyed {made}",
        "interrupted by SIGTERM",
    ]
    assert result.lines[1].endswith("(stopped early by SIGTERM)")
    with contextlib_vendor(project) as vendor:
        assert vendor.account(made) is None


def test_out_in_a_missing_directory_is_refused_before_any_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path, "", tmp_path / "unused.db")
    result = project.cli("conformance", "--out", "nope/r.json")
    assert (result.code, result.out, result.err) == (
        1,
        "",
        "error: cannot write nope/r.json: no directory nope\n",
    )
    assert not (tmp_path / ".reconciler").exists()
    # a file that cannot be written is said after the table
    result = project.cli("conformance", "--out", ".")
    assert result.code == 1 and result.lines[1].endswith("none differ from the sandbox")
    assert result.err == "error: cannot write .: Is a directory\n"


def test_an_id_already_in_use_is_observed_and_left_alone(tmp_path: Path) -> None:
    """130008 to the create: the account is someone else's, and is not destroyed."""

    async def go() -> tuple[Recorder, Answer]:
        target = SandboxTarget("s", tmp_path / "s.db")
        async with connect(target, Limits()) as providers:
            wire = Wire(providers.im, None)
            ctx = Context(wire.admin, "00000000cafe", wechat=False)
            mine = {"Owner_Account": ctx.admin, "OfficialAccountUserID": ctx.account, "Name": "m"}
            assert (await wire.im("create_official_account", mine)).code == 0
            rec = Recorder(wire)
            assert await run(rec, ctx, writes_allowed=True) is True
            ask = {"OfficialAccountIdList": [{"Official_Account": ctx.account}]}
            return rec, await wire.im("get_official_account_info", ask)

    rec, info = asyncio.run(go())
    assert rec.observed["create_official_account"]["code"] == 130008
    assert "destroy_official_account" not in rec.observed
    assert info.body["OfficialAccountInfoList"][0]["Name"] == "m"


# -- in-process: the guard, the clean-up when the vendor fails, the report ---------------------


def test_the_read_only_guard_refuses_a_write_sent_by_the_battery(tmp_path: Path) -> None:
    async def go() -> None:
        target = SandboxTarget("s", tmp_path / "s.db")
        async with connect(target, Limits(), read_only=True) as providers:
            rec = Recorder(Wire(providers.im, providers.wechat))
            with pytest.raises(ReadOnlyViolation):
                await rec.im("create", "create_official_account", {"Name": "x"})

    asyncio.run(go())
    assert not (tmp_path / "s.db").exists()


def test_an_account_that_cannot_be_destroyed_is_named_as_left_behind(tmp_path: Path) -> None:
    """The vendor fails every call (HTTP 502/503 or a retryable code): the destroy of a create
    whose answer was lost fails too, and the report names the account left behind."""
    sandbox = Sandbox(SandboxOptions(db_path=tmp_path / "s.db", fail_rate=1.0))

    async def go() -> Context:
        async with httpx.AsyncClient(transport=sandbox.async_transport()) as http:
            client = TencentClient(
                http,
                sdkappid=1400000000,
                identifier="administrator",
                secret_key=Secret("sandbox-secret-key-not-a-secret"),
                pacer=Pacer(),
                endpoint="https://sandbox",
                retry=RetryPolicy(attempts=1),
            )
            ctx = Context("administrator", "0badf00d", create_sent=True)
            for _ in range(4):  # whether the fault is an HTTP one or a vendor code
                await cleanup(Wire(client, None), ctx)
                assert not ctx.destroyed
            return ctx

    try:
        ctx = asyncio.run(go())
    finally:
        sandbox.close()
    identity = TargetIdentity("tencent", "t", 1, "https://x")
    done = compare(identity, {}, {}, writes=True, left_behind=ctx.account)
    assert json.loads(render_json(done, version="9"))["leftBehind"] == ctx.account


def test_a_target_that_does_not_answer_stops_the_battery_at_its_first_call(
    project: Project,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        project.base_url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    project.configure()
    result = project.cli("conformance", "--allow-writes", "--out", "report.json")
    assert result.code == 1, result.text
    doc = report(project)
    assert doc["observations"][0] == {
        "probe": "account_check: the admin and an unknown user",
        "observation": "code",
        "target": "no answer",
        "sandbox": 0,
    }
    assert {o["probe"] for o in doc["observations"]} == {
        "account_check: the admin and an unknown user"
    }
    (line,) = result.err.splitlines()
    assert line.startswith(
        "error: the target did not answer the battery's first call, so it stopped there:"
        " tencent (account_check): gave up after 5 attempts: network error"
    ), line
    assert doc["leftBehind"] is None and doc["unanswered"] in line


def test_the_report_pairs_observations_and_shows_what_one_side_lacks() -> None:
    seen = {"p": {"code": 0, "field A": "string", "extra": [1]}, "q": {"code": "no answer"}}
    expected = {"p": {"code": 0, "field A": "integer", "field B": "string"}, "r": {"code": 0}}
    identity = TargetIdentity("tencent", "t", 1, "https://x")
    done = compare(identity, seen, expected, writes=False)
    assert render_text(done) == (
        "Target: tencent 't', sdkappid 1 at https://x\n"
        "Conformance, reads only (--allow-writes adds the writes): 6 observations,"
        " 5 differ from the sandbox\n"
        "probe  observation  target     sandbox\n"
        'p      field A      "string"   "integer"\n'
        'p      field B      absent     "string"\n'
        "p      extra        [1]        absent\n"
        "r      code         absent     0\n"
        "q      code         no answer  absent\n"
    )
    assert done.exit_code == 2
    # a probe the target never reached is left out of a run stopped by a signal
    stopped = compare(identity, seen, expected, writes=False, interrupted="SIGINT")
    assert [r.probe for r in stopped.rows] == ["p", "p", "p", "p", "q"]


def test_fields_lists_every_path_with_its_json_type() -> None:
    body = {"b": [{"x": 1.5, "y": None}], "a": True, "c": [], "d": ["s"]}
    assert list(fields(body)) == [
        ("a", "boolean"),
        ("b", "array"),
        ("b[]", "object"),
        ("b[].x", "number"),
        ("b[].y", "null"),
        ("c", "array"),
        ("d", "array"),
        ("d[]", "string"),
    ]
    assert Answer(failed=True).outcome == "no answer" and Answer().outcome == "no code"
