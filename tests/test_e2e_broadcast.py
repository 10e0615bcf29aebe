"""`kind: Broadcast` through the real CLI against `reconciler sandbox serve` (issue 15).

Sent once, a no-op re-plan, recalled by a later change, a window not yet open and one closed, a
quota deferral across two runs (the sandbox's clock and the CLI's, `RECONCILER_CLOCK_OFFSET`,
moved together), a stale saved plan; then faults with lost answers (`--fail-rate 0.2`), each
broadcast sent exactly once by the call log, and SIGKILLs at seeded points of 30 applies with
sends: never a double, never a lost one inside its window.

The served sandbox says a duplicate is the same body and the same `Random`
(`--broadcast-duplicate body_and_random`): only a retry that reuses `Random` is dropped, the
stricter test of exactly-once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_vendor import Call, Misbehave, hostile_vendor
from test_e2e_common import (
    ENV,
    Project,
    Vendor,
    account_doc,
    no_changes,
    sandbox_options,
    users,
)
from test_e2e_faults import serving

from reconciler.kinds.broadcast.model import body_digest
from reconciler.sandbox.behaviour import Behaviour
from reconciler.sandbox.server import Sandbox

NEWS = "@TOA#_news"
STRICT = ("--broadcast-duplicate", "body_and_random")
REC = (sys.executable, "-m", "reconciler")


def iso(seconds_from_now: float, offset: float = 0.0) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now + offset)
    return moment.isoformat(timespec="seconds")


def broadcast(
    name: str,
    text: str,
    *,
    account: str = "news",
    opens: float = -60,
    closes: float = 3 * 3600,
    offset: float = 0.0,
    **spec: object,
) -> str:
    body = {
        "apiVersion": "reconciler/v1",
        "kind": "Broadcast",
        "metadata": {"name": name},
        "spec": {
            "account": account,
            "body": [{"text": text}],
            "window": {"notBefore": iso(opens, offset), "notAfter": iso(closes, offset)},
            **spec,
        },
    }
    return json.dumps(body)


def sent(vendor: Vendor) -> Counter[tuple[str, str]]:
    """(account, body digest) → sends, from the call log's `message_sent` effects."""
    return Counter(
        (e[1], e[3]) for entry in vendor.log() for e in entry["effects"] if e[0] == "message_sent"
    )


def digest(text: str) -> str:
    return body_digest([{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)  # the CLI runs in-process (cli.main) for speed, over real HTTP
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("RECONCILER_CLOCK_OFFSET", raising=False)
    yield Project(root, "", tmp_path / "sandbox.db")


ACCOUNT = account_doc("news", "ops_admin", name="News", subscribers={"members": ["a", "b"]})
PEOPLE = users("ops_admin", "a", "b")


def test_send_once_replan_noop_then_recall_by_a_later_change(project: Project) -> None:
    with serving(project, *STRICT) as vendor:
        project.manifests(ACCOUNT, PEOPLE, broadcast("hello", "Maintenance tonight."))
        plan = project.cli("plan", "m")
        assert plan.code == 0, plan.text
        start = plan.lines.index("+ broadcast news/hello will be sent to 2 subscribers")
        assert plan.lines[start + 1 : start + 5] == [
            "    | Maintenance tonight.",
            plan.lines[start + 2],
            "    quota: news: 0 sent in the last hour; this makes 1/2",
            "    a send cannot be undone (a later change can only recall it)",
        ]
        assert plan.lines[start + 2].startswith("    window: ")
        applied = project.cli("apply", "m", "--auto-approve")
        assert applied.code == 0, applied.text
        assert "1 broadcast sent" in applied.lines[-1]
        no_changes(project.cli("plan", "m", "--detailed-exitcode"))
        assert project.cli("drift", "m").code == 0
        assert sent(vendor) == {(NEWS, digest("Maintenance tonight.")): 1}
        listed = project.cli("messages", "news", "m")
        assert listed.code == 0, listed.text
        assert listed.lines[0].startswith("news: 1 message since ")
        assert listed.lines[1].endswith("  sent      Broadcast/hello  'Maintenance tonight.'")
        as_json = json.loads(project.cli("messages", "news", "m", "--format", "json").out)
        [message] = as_json["messages"]
        assert (message["document"], message["body"]) == (
            "hello",
            [{"text": "Maintenance tonight."}],
        )
        assert project.cli("messages", "news", "m", "--since", "nope").code == 1

        project.manifests(
            ACCOUNT, PEOPLE, broadcast("hello", "Maintenance tonight.", recall=True, reason="oops")
        )
        recall = project.cli("plan", "m")
        [line] = [x for x in recall.lines if x.startswith("- broadcast")]
        assert line.startswith("- broadcast news/hello will be recalled (sent ")
        assert line.endswith(", reason: oops)")
        assert project.cli("apply", "m", "--auto-approve").code == 0
        no_changes(project.cli("plan", "m", "--detailed-exitcode"))
        recalled = [e for x in vendor.log() for e in x["effects"] if e[0] == "message_recalled"]
        assert len(recalled) == 1
        # removing it from git never recalls or re-sends: the message is reported, not touched
        project.manifests(ACCOUNT, PEOPLE)
        before = len(vendor.log())
        no_changes(project.cli("apply", "m", "--auto-approve"))
        assert [x for x in vendor.log()[before:] if x["effects"]] == []


def test_windows_not_yet_open_and_closed_send_nothing(project: Project) -> None:
    with serving(project, *STRICT) as vendor:
        project.manifests(
            ACCOUNT,
            PEOPLE,
            broadcast("later", "Later.", opens=3600, closes=7200),
            broadcast("past", "Past.", opens=-7200, closes=-3600),
        )
        assert project.cli("apply", "m", "--auto-approve").code == 0
        plan = project.cli("plan", "m", "--detailed-exitcode")
        no_changes(plan)
        notes = [x.strip() for x in plan.lines if "broadcast news/" in x]
        assert notes[0].startswith("@TOA#_news: broadcast news/later: scheduled, its window opens ")
        assert notes[1].startswith("@TOA#_news: broadcast news/past: its window closed ")
        assert notes[1].endswith("and it was never sent; it will not be sent")
        assert sent(vendor) == {}


def test_quota_defers_a_send_until_the_hour_frees_then_the_next_run_sends_it(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(project, *STRICT) as vendor:
        project.manifests(ACCOUNT, PEOPLE)
        assert project.cli("apply", "m", "--auto-approve").code == 0
        by_hand = vendor.client.oa(
            "send_official_account_msg",
            {
                "Official_Account": NEWS,
                "Random": 7,
                "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "by hand"}}],
            },
        )
        assert by_hand["ActionStatus"] == "OK", by_hand
        time.sleep(1.1)  # the vendor's 1 per second
        project.manifests(ACCOUNT, PEOPLE, broadcast("one", "One."), broadcast("two", "Two."))
        plan = project.cli("plan", "m")
        assert "    quota: news: 1 sent in the last hour (1 by hand); this makes 2/2" in plan.lines
        [deferred] = [x for x in plan.lines if "deferred until" in x]
        assert deferred.startswith("  @TOA#_news: broadcast news/two: deferred until ")
        assert deferred.endswith(", over the quota")
        assert project.cli("apply", "m", "--auto-approve").code == 0
        assert sum(sent(vendor).values()) == 2  # by hand and `one`
        # an hour later (both clocks), the next run sends the rest
        vendor.client.advance(3700)
        monkeypatch.setenv("RECONCILER_CLOCK_OFFSET", "3700")
        second = project.cli("apply", "m", "--auto-approve")
        assert second.code == 0, second.text
        assert sent(vendor)[(NEWS, digest("Two."))] == 1
        no_changes(project.cli("plan", "m", "--detailed-exitcode"))


def test_a_saved_plan_is_stale_after_a_send_by_someone_else_or_when_its_window_closed(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(project, *STRICT) as vendor:
        project.manifests(ACCOUNT, PEOPLE)
        assert project.cli("apply", "m", "--auto-approve").code == 0
        project.manifests(ACCOUNT, PEOPLE, broadcast("hello", "Hello.", closes=600))
        assert project.cli("plan", "m", "--out", "p.json").code == 0
        assert project.cli("plan", "m", "--out", "q.json").code == 0
        other = project.cli("apply", "m", "--auto-approve")  # someone else's run sends it
        assert other.code == 0, other.text
        stale = project.cli("apply", "p.json", "--auto-approve")
        assert stale.code == 1
        assert stale.err == (
            f"error: stale plan: history {NEWS} changed since the plan was made;"
            " make the plan again\n"
        )
        monkeypatch.setenv("RECONCILER_CLOCK_OFFSET", "1200")
        closed = project.cli("apply", "q.json", "--auto-approve")
        assert closed.code == 1
        assert "the window of broadcast news/hello closed" in closed.err
        assert sent(vendor) == {(NEWS, digest("Hello.")): 1}


def test_one_broadcast_per_apply_unless_an_exact_override(project: Project) -> None:
    with serving(project, *STRICT) as vendor:
        project.manifests(ACCOUNT, PEOPLE, broadcast("one", "One."), broadcast("two", "Two."))
        refused = project.cli("apply", "m", "--auto-approve")
        assert refused.code == 1
        assert (
            "  maxBroadcasts: 2 broadcasts in total, over 1 (to allow it: --allow-broadcasts 2)"
            in refused.err.splitlines()
        )
        assert sent(vendor) == {}
        assert project.cli("apply", "m", "--auto-approve", "--allow-broadcasts", "1").code == 1
        done = project.cli("apply", "m", "--auto-approve", "--allow-broadcasts", "2")
        assert done.code == 0, done.text
        assert "Safety: overridden by --allow-broadcasts 2." in done.lines
        assert sum(sent(vendor).values()) == 2


def test_lost_answers_under_faults_each_broadcast_is_sent_exactly_once(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rounds of 12 new broadcasts over 6 accounts at `--fail-rate 0.2`, applied until no
    changes, until the faults lost the answers of at least 2 applied sends (a quarter of the
    faults are lost answers); every broadcast is sent exactly once by the call log."""
    names = [f"f{i}" for i in range(6)]
    accounts = [account_doc(n, "ops_admin", name=n, subscribers={"members": ["a"]}) for n in names]
    lost = 0
    with serving(project, *STRICT, "--fail-rate", "0.2", "--seed", "15") as vendor:
        expected: Counter[tuple[str, str]] = Counter()
        offset = 0.0
        for round_ in range(15):
            texts = {n: [f"{n} {round_} one", f"{n} {round_} two"] for n in names}
            project.manifests(
                *accounts,
                PEOPLE,
                *(
                    broadcast(f"{n}-{round_}-{i}", t, account=n, offset=offset, closes=7200)
                    for n in names
                    for i, t in enumerate(texts[n])
                ),
            )
            expected.update((f"@TOA#_{n}", digest(t)) for n in names for t in texts[n])
            for _ in range(10):
                result = project.cli("apply", "m", "--auto-approve", "--allow-broadcasts", "12")
                assert result.code in (0, 1, 3), result.text
                if result.code == 0 and "No changes." in result.out:
                    break
            else:
                pytest.fail(f"round {round_} did not converge: {result.text}")
            assert sent(vendor) == expected
            log = vendor.log()
            lost = sum(1 for x in log if x["fault"] == "http_after" and x["api"].endswith("_msg"))
            if lost >= 2:
                break
            offset += 3700.0  # the next round's sends get a fresh hour, on both clocks
            vendor.client.advance(3700.0)
            monkeypatch.setenv("RECONCILER_CLOCK_OFFSET", str(offset))
    assert lost >= 2


def _last_id(vendor: Vendor) -> int:
    """The id of the sandbox's last call-log entry (0 when none)."""
    entries = vendor.log()
    return int(entries[-1]["id"]) if entries else 0


def _kill_after(process: subprocess.Popen[bytes], vendor: Vendor, calls: int, start: int) -> bool:
    """SIGKILL `process` right after the sandbox logged `calls` calls after id `start`; False
    when it ended before."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        page = vendor.http.get("/__sandbox/log", params={"since": start, "limit": calls}).json()
        if len(page["entries"]) >= calls:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.005)
    process.kill()
    process.wait()
    return True


def test_sigkill_during_30_applies_with_sends_never_doubles_never_loses(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each round declares two new broadcasts, on two of 6 accounts (an account's hourly quota of
    2 lasts two rounds, then both clocks move an hour on), kills the apply right after a seeded
    k-th vendor call (over the read, the two sends and the verification), then re-applies."""
    rng = random.Random(1515)
    killed = 0
    names = [f"b{i}" for i in range(6)]
    accounts = [account_doc(n, "ops_admin", name=n, subscribers={"members": ["a"]}) for n in names]
    with serving(project, *STRICT) as vendor:
        project.manifests(*accounts, PEOPLE)
        assert project.cli("apply", "m", "--auto-approve").code == 0
        offset = 0.0
        for round_ in range(30):
            if round_ and round_ % 6 == 0:  # every account used its hour: both clocks move on
                offset += 3700.0
                vendor.client.advance(3700.0)
                monkeypatch.setenv("RECONCILER_CLOCK_OFFSET", str(offset))
            pair = names[2 * (round_ % 3) : 2 * (round_ % 3) + 2]
            texts = [f"round {round_} {n}" for n in pair]
            project.manifests(
                *accounts,
                PEOPLE,
                *(
                    broadcast(f"r{round_}-{n}", t, account=n, offset=offset, closes=7200)
                    for n, t in zip(pair, texts, strict=True)
                ),
            )
            start = _last_id(vendor)
            process = subprocess.Popen(
                [*REC, "apply", "m", "--auto-approve", "--allow-broadcasts", "2"],
                cwd=project.root,
                env={**os.environ, **ENV, "RECONCILER_CLOCK_OFFSET": str(offset)},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            killed += _kill_after(process, vendor, rng.randint(2, 8), start)
            rerun = project.cli("apply", "m", "--auto-approve", "--allow-broadcasts", "2")
            assert rerun.code == 0, rerun.text
            counts = sent(vendor)
            found = [counts[(f"@TOA#_{n}", digest(t))] for n, t in zip(pair, texts, strict=True)]
            assert found == [1, 1], round_
        no_changes(project.cli("plan", "m", "--detailed-exitcode"))
        assert sum(sent(vendor).values()) == 60
    assert killed >= 20


def test_the_examples_plan_their_broadcast_as_scheduled_and_send_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    shutil.copytree(examples, tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path, "", tmp_path / "examples" / ".reconciler" / "sandbox.db")
    applied = project.cli("apply", "examples", "--auto-approve")
    assert applied.code == 0, applied.text
    assert (
        "  @TOA#_news: broadcast news/maintenance-2030-01-08: scheduled, its window opens"
        " 2030-01-08 09:00 CST (01:00 UTC)"
    ) in applied.lines
    assert "broadcast sent" not in applied.out
    assert (  # and the mass message beside it likewise
        "  MassMessage/digest-2030-02: waits for its window: not sent before"
        " 2030-02-01 09:00 CST (01:00 UTC)"
    ) in applied.lines
    assert "+ mass message" not in applied.out and "sent batch" not in applied.out
    no_changes(project.cli("plan", "examples", "--detailed-exitcode"))
    messages = project.cli("messages", "news", "examples")
    assert messages.code == 0, messages.text
    assert messages.lines[0].startswith("news: 0 messages since ")
    missing = project.cli("messages", "nobody", "examples", "--format", "json")
    assert (missing.code, json.loads(missing.out)["error"]) == (0, "does not exist")
    missing = project.cli("messages", "nobody", "examples")
    assert missing.lines[1:] == ["  the account does not exist"]


def test_a_send_whose_every_answer_was_lost_is_unknown_then_found_in_history(
    project: Project,
) -> None:
    """Each attempt of the send is applied by the vendor and its answer lost (HTTP 502): apply
    ends "unknown" with exit 3; the next run finds it in the history and sends nothing."""

    def script(call: Call) -> Misbehave | None:
        if call.command == "send_official_account_msg":
            call.honest()  # applied (a retry with the same Random and body is a duplicate)
            return Misbehave(b"<html>bad gateway</html>", status=502)
        return None

    box = Sandbox(
        sandbox_options(project.db_path, behaviour=Behaviour(broadcast_duplicate="body_and_random"))
    )
    try:
        with hostile_vendor(box, script) as server:
            project.base_url = server.base_url
            project.configure()
            project.manifests(ACCOUNT, PEOPLE, broadcast("hello", "Hello."))
            first = project.cli("apply", "m", "--auto-approve")
            assert first.code == 3, first.text
            [failed] = [x for x in first.lines if x.startswith("failed ")]
            assert failed.startswith(
                f"failed  {NEWS}: broadcast news/hello: unknown (the answer was lost; the next run"
                " looks it up in history first): "
            )
            no_changes(project.cli("apply", "m", "--auto-approve"))
            assert server.calls["send_official_account_msg"] == 5  # five attempts, one message
            vendor = Vendor(server.base_url, project.db_path)
            try:
                assert sent(vendor) == {(NEWS, digest("Hello.")): 1}
            finally:
                vendor.close()
    finally:
        box.close()


def test_a_history_that_cannot_be_read_is_an_error_never_an_empty_history(
    project: Project,
) -> None:
    def script(call: Call) -> dict[str, object] | None:
        if call.command == "official_account_msg_get_simple":
            return {"ActionStatus": "FAIL", "ErrorCode": 10003, "ErrorInfo": "invalid command"}
        return None

    box = Sandbox(sandbox_options(project.db_path))
    try:
        with hostile_vendor(box, script) as server:
            project.base_url = server.base_url
            project.configure()
            project.manifests(ACCOUNT, PEOPLE, broadcast("hello", "Hello."))
            result = project.cli("apply", "m", "--auto-approve")
            assert result.code == 1
            assert result.err == (
                f"error: tencent (official_account_msg_get_simple) on {NEWS}: invalid command"
                " [vendor code 10003]\n"
            )
            assert server.calls["send_official_account_msg"] == 0
    finally:
        box.close()


def test_two_machines_applying_at_once_send_each_broadcast_once(
    project: Project, tmp_path: Path
) -> None:
    """Two CI runners (each its own lock directory: no lock between them) apply the same
    broadcasts at the same moment: both read no send in history and both send, with the same
    Random and body, so the vendor drops the second as a duplicate."""
    with serving(project, *STRICT) as vendor:
        project.manifests(ACCOUNT, PEOPLE)
        assert project.cli("apply", "m", "--auto-approve").code == 0
        project.manifests(ACCOUNT, PEOPLE, broadcast("one", "One."), broadcast("two", "Two."))
        for i in range(2):
            (tmp_path / f"runner{i}").mkdir()
        runners = [
            subprocess.Popen(
                [*REC, "apply", "m", "--auto-approve", "--allow-broadcasts", "2"],
                cwd=project.root,
                env={**os.environ, **ENV, "XDG_RUNTIME_DIR": str(tmp_path / f"runner{i}")},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        outs = [r.communicate(timeout=60) for r in runners]
        assert [r.returncode for r in runners] == [0, 0], outs
        assert sent(vendor) == {(NEWS, digest("One.")): 1, (NEWS, digest("Two.")): 1}
        # (on this machine both runners sent both: 5 send calls, 3 without effect)
        no_changes(project.cli("plan", "m", "--detailed-exitcode"))
