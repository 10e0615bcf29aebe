"""The command line's own contract: help, usage errors, the error boundary."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import commands
from reconciler.cli import main
from reconciler.errors import ConfigError, ManifestError, Problem


def test_python_m_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "80"},  # argparse wraps the usage line at the width
    )
    assert done.returncode == 0
    assert done.stdout.startswith(
        "usage: reconciler [-h] [--version] [--config FILE] [--target NAME]\n"
        "                  [--no-color] [-v]\n"
        "                  COMMAND ...\n"
    )
    for command in ("validate", "plan", "apply", "drift", "import", "sandbox"):
        assert f"    {command} " in done.stdout


def test_usage_error_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--format", "yaml"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    # argparse's own wording of the choices differs between Python versions
    assert err.startswith("error: reconciler plan: argument --format: invalid choice: 'yaml'")
    assert err.endswith("(see 'reconciler plan --help')\n")


def test_positioned_problems_print_as_they_are(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*args: object, **kwargs: object) -> int:
        raise ManifestError([Problem("b.yaml", 2, 1, "two"), Problem("a.yaml", 1, 3, "one")])

    monkeypatch.setattr(commands, "plan_command", fail)
    assert main(["plan"]) == 1
    assert capsys.readouterr().err == "a.yaml:1:3: one\nb.yaml:2:1: two\n"


def test_other_errors_get_a_prefix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*args: object, **kwargs: object) -> int:
        raise ConfigError("target 'prod' cannot be used\nreconciler.yaml:3:5: TIM_KEY is not set")

    monkeypatch.setattr(commands, "plan_command", fail)
    assert main(["plan"]) == 1
    assert capsys.readouterr().err == (
        "error: target 'prod' cannot be used\nreconciler.yaml:3:5: TIM_KEY is not set\n"
    )


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_a_bug_is_named_and_redacted(
    verbose: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*args: object, **kwargs: object) -> int:
        raise RuntimeError("GET https://x/v4/a/b?usersig=eJyrVgrxCdYr&random=1 went wrong")

    monkeypatch.setattr(commands, "plan_command", fail)
    assert main(["plan", *verbose]) == 1
    err = capsys.readouterr().err
    assert "eJyrVgrxCdYr" not in err
    last = err.splitlines()[-1]
    assert last.startswith(
        "internal error (this is a bug in reconciler, please report it): RuntimeError: GET"
    )
    assert ("Traceback (most recent call last):" in err) == bool(verbose)
    assert last.endswith("went wrong") == bool(verbose)


def test_the_collector_is_eased_during_a_run_and_restored_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, int, int]] = []

    def plan(*args: object, **kwargs: object) -> int:
        seen.append(gc.get_threshold())
        return 0

    monkeypatch.setattr(commands, "plan_command", plan)
    before = gc.get_threshold()
    assert main(["plan"]) == 0
    assert seen == [(20_000, 50, 50)]
    assert gc.get_threshold() == before


# -- what manifests make a run read (issue 12), through the real CLI in a process --------------

ROOT = Path(__file__).resolve().parent.parent
#: Planted in the environment of the runs below: it must never be printed.
PLANTED = "planted-secret-6b1f0c2e9ad4"
SET_DOC = (
    "apiVersion: reconciler/v1\nkind: SubscriberSet\nmetadata: {{name: staff}}\n"
    "spec: {{files: [{}]}}\n"
)
ACCOUNT_DOC = (
    "---\napiVersion: reconciler/v1\nkind: OfficialAccount\nmetadata: {id: news}\n"
    "spec: {owner: alice, name: News, subscribers: {sets: [staff]}}\n"
)


def _run(cwd: Path, *args: str) -> tuple[int, str, str]:
    """The CLI in its own process; a hang (a FIFO opened for reading) fails on the timeout."""
    env = {**os.environ, "RECONCILER_TEST_SECRET": PLANTED}
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def _hook_command() -> list[str]:
    """The pre-commit hook's command line, as .pre-commit-hooks.yaml gives it."""
    for line in (ROOT / ".pre-commit-hooks.yaml").read_text().splitlines():
        if line.strip().startswith("entry:"):
            program, *args = line.split(":", 1)[1].split()
            assert program == "reconciler"
            return args
    raise AssertionError("no entry in .pre-commit-hooks.yaml")  # pragma: no cover


def test_files_outside_the_project_are_neither_read_nor_quoted(tmp_path: Path) -> None:
    """`files: [/proc/self/environ]` printed the environment (credentials in CI) as invalid
    UserIDs, and `../secrets.ini` made its id-looking lines subscribers in the plan. validate,
    plan and the pre-commit hook now refuse both where the manifest names them."""
    (tmp_path / "secrets.ini").write_text(f"alice\nKEY={PLANTED}\n")
    project = tmp_path / "project"
    (project / "m").mkdir(parents=True)
    (project / "m" / "a.yaml").write_text(
        SET_DOC.format("/proc/self/environ, ../../secrets.ini, link.txt") + ACCOUNT_DOC
    )
    (project / "m" / "link.txt").symlink_to(tmp_path / "secrets.ini")
    expected = [
        "m/a.yaml:4:16: spec.files[0]: member file '/proc/self/environ' is not a relative path;"
        " it must be inside the project root 'm'",
        "m/a.yaml:4:36: spec.files[1]: member file '../../secrets.ini' resolves outside the"
        " project root 'm'",
        "m/a.yaml:4:55: spec.files[2]: member file 'link.txt' resolves outside the project"
        " root 'm'",
    ]
    for args, stream in [
        (["validate", "m"], 1),
        ([*_hook_command(), "m"], 1),
        (["plan", "m"], 2),
        (["apply", "m", "--auto-approve"], 2),
    ]:
        code, *streams = _run(project, *args)
        assert (code, streams[stream - 1].splitlines()) == (1, expected), args
        assert streams[2 - stream] == ""
        assert PLANTED not in "".join(streams)
    # with ./reconciler.yaml the project root is its directory: still not ../secrets.ini
    (project / "reconciler.yaml").write_text("inventory: reconciler-inventory\n")
    code, _, err = _run(project, "plan", "m")
    assert (code, err.splitlines()) == (
        1,
        [line.replace("project root 'm'", "project root '.' or 'm'") for line in expected],
    )


def test_special_files_are_refused_not_waited_on(tmp_path: Path) -> None:
    """A FIFO as a member file, as a manifest named on the command line or found in a walk, or
    as `apply FILE`, hung forever (open() waits for a writer); now each is a positioned error."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(SET_DOC.format("pipe.txt") + ACCOUNT_DOC)
    os.mkfifo(tmp_path / "m" / "pipe.txt")
    os.mkfifo(tmp_path / "m" / "pipe.yaml")
    os.mkfifo(tmp_path / "plan.json")
    fifo = "is a FIFO (named pipe), not a regular file"
    member = f"m/a.yaml:4:16: spec.files[0]: member file 'm/pipe.txt' {fifo}"
    assert _run(tmp_path, "validate", "m") == (1, f"{member}\nm/pipe.yaml:1:1: {fifo}\n", "")
    assert _run(tmp_path, "validate", "m/pipe.yaml") == (1, f"m/pipe.yaml:1:1: {fifo}\n", "")
    assert _run(tmp_path, "plan", "m/a.yaml") == (1, "", f"{member}\n")
    assert _run(tmp_path, "apply", "plan.json") == (1, "", f"plan.json:1:1: {fifo}\n")
