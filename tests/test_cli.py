"""The command line's own contract: help, usage errors, the error boundary."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

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
