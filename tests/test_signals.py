"""SIGINT and SIGTERM end `reconciler apply` the same way (reconciler/interrupt.py, issue 12).

The real CLI in a subprocess against `reconciler sandbox serve` with latency: a signal mid-apply
stops new calls, lets those in flight finish, prints the summary of what was applied and exits
128 + the signal's number; the next plan shows exactly what was not applied. A signal while the
run reads, or once the summary is printed, still ends with a line and that status, never with the
process dying of the signal (exit -15 with nothing said, or -2).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from test_crash import last_id
from test_e2e_common import ENV, Project, account_doc, config_text, docs, no_changes, users
from test_e2e_faults import check_log, serving

from reconciler import cli
from reconciler.interrupt import (
    SIGNALS,
    Interrupted,
    StoppablePacer,
    Stopped,
    StopSignal,
    graceful,
    handled,
    last_word,
    settle,
    take_late,
)

ACCOUNTS = [f"@TOA#_a{i}" for i in range(10)]
EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)  # the plans after the signal run in-process
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NO_COLOR", "1")
    project = Project(root, "", tmp_path / "sandbox.db")
    documents = [
        account_doc(a.removeprefix("@TOA#_"), name=a, subscribers={"members": ["u1", "u2"]})
        for a in ACCOUNTS
    ]
    project.manifests(*documents, users("ops_admin", "u1", "u2"))
    return project


def start_apply(project: Project, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "m", "--auto-approve", *flags],
        cwd=project.root,
        env={**os.environ, **ENV, "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_calls(
    http: httpx.Client, since: int, process: subprocess.Popen[str], api: str, count: int
) -> None:
    """Until the call log shows `count` calls of `api` after `since` (the process still runs)."""
    seen = 0
    deadline = time.monotonic() + 30
    while seen < count:
        assert process.poll() is None, "the apply ended before the signal"
        assert time.monotonic() < deadline, "the apply never got there"
        page = http.get("/__sandbox/log", params={"since": since, "limit": 5000}).json()
        seen += sum(1 for e in page["entries"] if str(e["api"]).endswith(api))
        since = page["next"] if page["entries"] else since
        time.sleep(0.005)


def table_accounts(out: str) -> set[str]:
    """The accounts the summary table names (rows of applied, failed and skipped counts)."""
    return {line.split()[0] for line in out.splitlines() if line.startswith("@TOA#_a")}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_apply_stops_new_calls_prints_the_summary_and_the_remainder_is_exact(
    project: Project, stop: signal.Signals
) -> None:
    with serving(project, "--latency-ms", "100") as vendor:
        project.write("slow.yaml", config_text(project.base_url, limits={"concurrency": 2}))
        since = last_id(vendor.http)
        process = start_apply(project, "--config", "slow.yaml")
        wait_for_calls(vendor.http, since, process, "create_official_account", 3)
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
        assert process.returncode == EXIT[stop], out + err
        assert err == ""
        lines = out.splitlines()
        assert lines[-1] == (
            f"Interrupted by {stop.name}: no call was started after it and the calls in flight"
            " finished; run plan again to see exactly what remains."
        )
        assert lines[-2].startswith("Applied: "), out
        created = int(lines[-2].split()[1])
        # what the summary names is what the vendor holds: the calls in flight were counted
        made = {a for a in ACCOUNTS if vendor.account(a) is not None}
        assert 2 <= len(made) < len(ACCOUNTS), made
        assert created == len(made)
        assert table_accounts(out) == made
        plan = project.cli("plan", "m")
        assert plan.code == 0, plan.text
        assert {line.split()[2] for line in plan.lines if line.endswith(" will be created")} == set(
            ACCOUNTS
        ) - made
        # the rest applies as planned: nothing created or subscribed twice
        rest = project.cli("apply", "m", "--auto-approve")
        assert rest.code == 0, rest.text
        assert f"Applied: {len(ACCOUNTS) - len(made)} created" in rest.out, rest.out
        no_changes(project.cli("plan", "m", "--detailed-exitcode"))
        check_log(vendor)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_reading_ends_with_a_line_and_nothing_applied(
    project: Project, stop: signal.Signals
) -> None:
    with serving(project, "--latency-ms", "300") as vendor:
        since = last_id(vendor.http)
        process = start_apply(project)
        wait_for_calls(vendor.http, since, process, "get_subscribed_official_account_list", 1)
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
        assert (process.returncode, out, err) == (EXIT[stop], "", f"interrupted by {stop.name}\n")
        assert vendor.effects().total() == 0


def test_a_sigint_right_after_the_summary_exits_130_with_a_line(project: Project) -> None:
    """Issue 12: a SIGINT landing right after the summary line exited -2 with nothing said.
    The signal is sent as soon as the summary line is read; it lands somewhere in the run's
    teardown (connections closed, the lock released, the interpreter's shutdown): in 10 rounds
    about half landed before the command returned, half after."""
    with serving(project) as vendor:
        for round_ in range(4):
            project.manifests(account_doc("a0", name=f"A{round_}"), users("ops_admin"))
            process = start_apply(project)
            assert process.stdout is not None and process.stderr is not None
            for line in process.stdout:
                if line.startswith("Applied: "):
                    process.send_signal(signal.SIGINT)
                    break
            else:  # pragma: no cover - the summary always comes
                pytest.fail("no summary")
            process.wait(timeout=30)
            err = process.stderr.read()
            process.stdout.close()
            process.stderr.close()
            # 130 with a line, or, for a signal landing in the interpreter's own shutdown after
            # the status was settled (interrupt.last_word), the command's 0: never -2, never mute
            assert (process.returncode, err) in (
                (130, "interrupted by SIGINT\n"),
                (
                    130,
                    "interrupted by SIGINT after the command finished"
                    " (its output above is complete)\n",
                ),
                (0, ""),
            ), (round_, process.returncode, err)
        assert vendor.profile("@TOA#_a0")["Name"] == "A3"


# -- in-process: the handlers, the pacer, an apply stopped by a signal -----------------------------


def _signal_self(signum: signal.Signals) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(5)  # the handler runs (and raises) at the next bytecode, well before this ends


def test_outside_an_apply_a_signal_raises_and_inside_it_stops_then_raises() -> None:
    before = {s: signal.getsignal(s) for s in SIGNALS}
    with handled(own_process=False) as finished:
        with pytest.raises(Interrupted) as caught:
            _signal_self(signal.SIGTERM)
        assert (caught.value.signum, caught.value.exit_code) == (signal.SIGTERM, 143)
        stop = StopSignal()
        with graceful(stop):
            os.kill(os.getpid(), signal.SIGINT)  # the first: the apply stops gracefully
            assert stop.signum == signal.SIGINT and stop.stopping
            with pytest.raises(Interrupted) as caught:  # the second: at once
                _signal_self(signal.SIGTERM)
            assert caught.value.exit_code == 143
        finished()
    assert {s: signal.getsignal(s) for s in SIGNALS} == before  # restored in-process


def test_outside_the_main_thread_nothing_is_installed() -> None:
    seen: list[object] = []

    def other() -> None:
        with handled(own_process=True) as finished:
            seen.append(signal.getsignal(signal.SIGTERM))
            finished()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGTERM)]


def test_the_stoppable_pacer_starts_no_call_once_stopped() -> None:
    async def main() -> list[str]:
        stop = StopSignal()
        pacer = StoppablePacer(1000, 1, stop=stop)
        order: list[str] = []

        async def call(name: str) -> None:
            try:
                async with pacer.slot("api"):
                    order.append(name)
                    stop.signum = signal.SIGTERM  # arrives while the second waits for a place
                    await asyncio.sleep(0.01)
            except Stopped:
                order.append(f"{name} stopped")

        await asyncio.gather(call("first"), call("second"))
        await call("third")  # stopped before it waits at all
        return order

    assert asyncio.run(main()) == ["first", "second stopped", "third stopped"]


def test_sigterm_mid_apply_in_process_prints_the_summary_and_returns_143(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same through `cli.main` in this process against the embedded sandbox, paced at 20
    calls a second; the signal is sent once the plan is printed (the apply takes about 1.6 s)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    (tmp_path / "reconciler.yaml").write_text(
        "targets:\n  sandbox: {type: sandbox}\nlimits: {callsPerSecond: 20, concurrency: 2}\n"
    )
    documents = [
        account_doc(a.removeprefix("@TOA#_"), name=a, subscribers={"members": ["u1"]})
        for a in ACCOUNTS
    ]
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(docs(*documents, users("ops_admin", "u1")))
    out = io.StringIO()

    def signal_after_the_plan() -> None:
        deadline = time.monotonic() + 30
        while "Plan: 10 to create" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)

    # a signal that came late (after cli.main restored the handlers) must not end the tests
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    sender = threading.Thread(target=signal_after_the_plan)
    try:
        sender.start()
        with contextlib.redirect_stdout(out):
            code = cli.main(["apply", "m", "--auto-approve"])
        sender.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    lines = out.getvalue().splitlines()
    assert code == 143, out.getvalue()
    assert lines[-1].startswith("Interrupted by SIGTERM: no call was started after it")
    created = int(lines[-2].split()[1])
    assert 0 < created < len(ACCOUNTS), lines[-2]
    capsys.readouterr()
    assert cli.main(["plan", "m"]) == 0
    plan = capsys.readouterr().out
    assert f"Plan: {len(ACCOUNTS) - created} to create" in plan, plan


def test_the_last_word_takes_a_signal_that_came_in_and_ignores_later_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = {s: signal.getsignal(s) for s in SIGNALS}
    try:
        assert last_word(3) == 3  # nothing came in: the command's status stands
        assert all(signal.getsignal(s) == signal.SIG_IGN for s in SIGNALS)
        os.kill(os.getpid(), signal.SIGTERM)  # ignored now: the interpreter may shut down
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # held until the last word takes it
        assert last_word(0) == 130
        assert capsys.readouterr().err == (
            "interrupted by SIGINT after the command finished (its output above is complete)\n"
        )
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_once_settled_a_signal_is_noted_for_after_the_command_not_raised() -> None:
    """Issue 12: a SIGINT landing after the summary, while the connections and the event loop were
    still closing, was raised into that teardown and left a half-closed loop complaining on
    stderr (1 round in 12 under load)."""
    with handled(own_process=False):
        settle()
        _signal_self(signal.SIGINT)  # returns: the handler notes it
        assert take_late() == signal.SIGINT
        assert take_late() is None
        settle(late=signal.SIGTERM)  # one that came while the summary was printed
        assert take_late() == signal.SIGTERM
    with handled(own_process=False), pytest.raises(Interrupted):
        _signal_self(signal.SIGINT)  # a new command starts unsettled
