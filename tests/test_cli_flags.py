"""Flags where people expect them (issue 14, item 16): the common flags before or after the
command, their environment variables, colour, parallelism and the answer to apply's question."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from reconciler import commands, pipeline
from reconciler.cli import _settle_common, build_parser, main
from reconciler.config import Limits, Target
from reconciler.progress import progress, reading

TWO_TARGETS = """\
defaultTarget: a
targets:
  a: {type: sandbox, path: a.db}
  b: {type: sandbox, path: b.db}
"""

ALICE = """\
apiVersion: reconciler/v1
kind: UserAccounts
metadata: {name: people}
spec: {members: [alice]}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with two sandbox targets, `a` the default; the current directory."""
    (tmp_path / "reconciler.yaml").write_text(TWO_TARGETS, encoding="utf-8")
    (tmp_path / "users.yaml").write_text(ALICE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_TARGET", raising=False)
    monkeypatch.delenv("RECONCILER_CONFIG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return tmp_path


def _target_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize(
    ("argv", "target"),
    [
        (["plan", "."], "a"),
        (["--target", "b", "plan", "."], "b"),
        (["plan", ".", "--target", "b"], "b"),
        # given on both sides, the one after the command wins, as a later flag does
        (["--target", "a", "plan", ".", "--target", "b"], "b"),
        (["--target", "b", "-v", "--no-color", "plan", "."], "b"),
    ],
)
def test_common_flags_before_or_after_the_command(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], target: str
) -> None:
    assert _target_line(capsys, argv).startswith(f"Target: sandbox '{target}', ")


@pytest.mark.parametrize(
    ("argv", "verbose", "no_color", "config"),
    [
        (["plan"], 0, False, None),
        (["-v", "plan"], 1, False, None),
        (["plan", "-v"], 1, False, None),
        (["-v", "plan", "-v"], 2, False, None),
        (["-vv", "--no-color", "drift"], 2, True, None),
        (["drift", "--no-color"], 0, True, None),
        (["--config", "x.yaml", "validate"], 0, False, "x.yaml"),
        (["--config", "x.yaml", "validate", "--config", "y.yaml"], 0, False, "y.yaml"),
        (["-v", "sandbox", "serve", "-v"], 2, False, None),
    ],
)
def test_flags_merge_before_and_after(
    argv: list[str], verbose: int, no_color: bool, config: str | None
) -> None:
    args = build_parser().parse_args(argv)
    _settle_common(args, {})
    assert (args.verbose, args.no_color, args.config) == (verbose, no_color, config)


def test_verbose_before_the_command_shows_a_bugs_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*args: object, **kwargs: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(commands, "plan_command", fail)
    assert main(["-v", "plan"]) == 1
    assert "Traceback (most recent call last):" in capsys.readouterr().err


def test_target_from_the_environment_and_the_flag_wins(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_TARGET", "b")
    assert _target_line(capsys, ["plan", "."]).startswith("Target: sandbox 'b', ")
    assert _target_line(capsys, ["plan", ".", "--target", "a"]).startswith("Target: sandbox 'a', ")
    monkeypatch.setenv("RECONCILER_TARGET", "")  # empty is unset: the config's default
    assert _target_line(capsys, ["plan", "."]).startswith("Target: sandbox 'a', ")
    monkeypatch.setenv("RECONCILER_TARGET", "nosuch")
    assert main(["plan", "."]) == 1
    assert capsys.readouterr().err == "error: no target named 'nosuch' (targets: a, b)\n"


def test_config_from_the_environment_and_the_flag_wins(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    other, conf = project / "elsewhere", project / "conf"
    other.mkdir()
    conf.mkdir()
    (conf / "c.yaml").write_text("targets:\n  c: {type: sandbox, path: c.db}\n", encoding="utf-8")
    (project / "users.yaml").rename(other / "users.yaml")
    monkeypatch.setenv("RECONCILER_CONFIG", str(conf / "c.yaml"))
    assert _target_line(capsys, ["plan", "elsewhere"]).startswith("Target: sandbox 'c', ")
    flag = ["plan", "elsewhere", "--config", "reconciler.yaml"]
    assert _target_line(capsys, flag).startswith("Target: sandbox 'a', ")
    monkeypatch.setenv("RECONCILER_CONFIG", "missing.yaml")
    assert main(["plan", "elsewhere"]) == 1
    assert capsys.readouterr().err == "error: RECONCILER_CONFIG=missing.yaml: no such file\n"
    assert main(["version"]) == 0  # a command that reads no config does not mind it


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


#: an SGR sequence (colour, bold...): cursor moves and line erases are not colour
_SGR = re.compile(r"\x1b\[[0-9;]*m")
_SPINNER = set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")


def _draw(stream: io.StringIO) -> str:
    async def read() -> None:
        async with reading(stream, lambda: 1234, interval=0.01):
            await asyncio.sleep(0.15)

    asyncio.run(read())
    with progress(stream, {"users": 2}) as advance:
        advance.phase("users")
        advance(2)
    return stream.getvalue()


def test_the_spinner_spins_in_colour_on_a_colour_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    shown = _draw(Terminal())
    assert _SGR.search(shown) and _SPINNER & set(shown)
    assert "reading live state… 1,234 calls" in shown


@pytest.mark.parametrize("value", ["1", "true", "0"])  # any non-empty value, even "0"
def test_no_color_stills_and_greys_the_progress(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("NO_COLOR", value)
    monkeypatch.setenv("TERM", "xterm-256color")
    shown = _draw(Terminal())
    assert "reading live state… 1,234 calls" in shown and "2/2" in shown
    assert not _SGR.search(shown)
    assert not _SPINNER & set(shown)


def test_an_empty_no_color_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "")
    monkeypatch.setenv("TERM", "xterm-256color")
    assert _SPINNER & set(_draw(Terminal()))


@pytest.mark.parametrize("before", [None, "", "yes"])
def test_no_color_flag_is_no_color_for_the_run_only(
    monkeypatch: pytest.MonkeyPatch, before: str | None
) -> None:
    seen: list[str | None] = []

    def record(*args: object, **kwargs: object) -> int:
        seen.append(os.environ.get("NO_COLOR"))
        return 0

    monkeypatch.setattr(commands, "drift_command", record)
    if before is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", before)
    assert main(["--no-color", "drift"]) == 0
    assert main(["drift"]) == 0
    assert seen == ["1", before]
    assert os.environ.get("NO_COLOR") == before


@pytest.mark.parametrize("value", ["0", "-3", "201", "1e3", "four", ""])
def test_parallelism_out_of_bounds_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    assert main(["plan", ".", "--parallelism", value]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "error: reconciler plan: argument --parallelism: expected a whole number from 1 to 200,"
        f" not {value!r} (see 'reconciler plan --help')\n"
    )
    assert not (project / "a.db").exists()  # nothing read


def test_parallelism_overrides_limits_concurrency_for_the_run(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = commands.connect

    def spy(target: Target, limits: Limits, **kwargs: bool) -> AbstractAsyncContextManager[Any]:
        seen.append(limits.concurrency)
        return real(target, limits, **kwargs)

    monkeypatch.setattr(commands, "connect", spy)  # apply and import
    monkeypatch.setattr(pipeline, "connect", spy)  # plan and drift
    assert main(["plan", ".", "--out", "default.json"]) == 0
    assert main(["plan", ".", "--out", "p.json", "--parallelism", "3"]) == 0
    assert json.loads((project / "default.json").read_text())["body"]["limits"]["concurrency"] == 16
    assert json.loads((project / "p.json").read_text())["body"]["limits"]["concurrency"] == 3
    assert main(["apply", "p.json", "--parallelism", "4"]) == 0
    assert main(["drift", ".", "--parallelism", "200"]) == 0
    assert main(["apply", ".", "--parallelism", "1", "--auto-approve"]) == 0
    assert main(["import", "@TOA#_nosuch", "--out", "imported", "--parallelism", "6"]) == 1
    assert seen == [16, 3, 4, 200, 1, 6]


PROMPT = "\nDo you want to perform these actions? Only 'yes' will be accepted.\n  Enter a value: \n"
CANCELLED = "error: apply cancelled, nothing was applied\n"
NO_ANSWER = (
    "error: apply needs confirmation and standard input gave no answer (closed or empty): review"
    " the plan and answer 'yes', or pass --auto-approve (nothing was applied)\n"
)


def _run(project: Path, shell: str) -> subprocess.CompletedProcess[str]:
    """`reconciler ARGS` through a shell, for pipes and a closed fd 0 as users make them."""
    command = shell.replace("reconciler", f"{sys.executable} -m reconciler")
    return subprocess.run(
        ["bash", "-c", command],
        cwd=project,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _pending(project: Path) -> int:
    """0: nothing left to apply; 2: the plan still has changes."""
    return _run(project, "reconciler plan . --detailed-exitcode").returncode


@pytest.mark.parametrize(
    ("shell", "code", "err"),
    [
        ("echo yes | reconciler apply .", 0, ""),
        ("printf '  yes  ' | reconciler apply .", 0, ""),
        ("echo no | reconciler apply .", 1, CANCELLED),
        ("printf 'yes please\\n' | reconciler apply .", 1, CANCELLED),
        ("echo | reconciler apply .", 1, CANCELLED),
        ("reconciler apply . < /dev/null", 1, NO_ANSWER),
        ("reconciler apply . 0<&-", 1, NO_ANSWER),
        ("true | reconciler apply .", 1, NO_ANSWER),
        # the manifests came on stdin: nothing is left to answer with
        ("cat users.yaml | reconciler apply -", 1, NO_ANSWER),
    ],
)
def test_apply_reads_its_answer_from_a_pipe(project: Path, shell: str, code: int, err: str) -> None:
    done = _run(project, shell)
    assert (done.returncode, done.stderr) == (code, err), done.stdout
    assert PROMPT in done.stdout
    assert done.stdout.index("+ users to import: 1") < done.stdout.index(PROMPT)
    assert _pending(project) == (0 if code == 0 else 2)


class Unreadable(io.StringIO):
    def readline(self, size: int | None = -1) -> str:
        raise OSError(5, "Input/output error")


@pytest.mark.parametrize("stdin", [Unreadable(), None])
def test_an_unreadable_stdin_is_no_answer(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdin: io.StringIO | None,
) -> None:
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["apply", "."]) == 1
    assert capsys.readouterr().err == NO_ANSWER
    assert main(["plan", ".", "--detailed-exitcode"]) == 2
