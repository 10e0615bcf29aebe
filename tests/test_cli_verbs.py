"""The verbs a Terraform user reaches for (issue 14, item 17): `version` and `completion`.
(`fmt` has its own tests in test_fmt.py.)"""

from __future__ import annotations

import importlib.metadata
import platform
import shlex
import shutil
import subprocess
import sys

import pytest

from reconciler import __version__
from reconciler.cli import main


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_version_is_the_same_text_as_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    flag = _cli("--version")
    assert (flag.returncode, flag.stdout, flag.stderr) == (0, f"reconciler {__version__}\n", "")
    assert main(["version"]) == 0
    assert capsys.readouterr() == (flag.stdout, "")


@pytest.mark.parametrize("argv", [["version", "-v"], ["-v", "version"]])
def test_verbose_version_names_python_and_every_runtime_dependency(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        f"reconciler {__version__}",
        f"Python {platform.python_version()} ({sys.executable})",
    ]
    named = {line.split(" ")[0]: line.split(" ", 1)[1] for line in lines[2:]}
    assert {"pyyaml", "jsonschema", "httpx", "rich"} <= set(named)
    assert named["httpx"] == importlib.metadata.version("httpx")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_naming_every_command(shell: str) -> None:
    done = _cli("completion", shell)
    assert (done.returncode, done.stderr) == (0, "")
    for command in ("validate", "plan", "apply", "drift", "import", "fmt", "version", "completion"):
        assert command in done.stdout
    assert "--parallelism" in done.stdout
    checker = shutil.which(shell)
    if checker is None:
        return  # zsh and fish are not on every machine; bash always is
    syntax = subprocess.run(
        [checker, "-n"], input=done.stdout, capture_output=True, text=True, check=False
    )
    assert (syntax.returncode, syntax.stderr) == (0, "")


def _complete_in_bash(script: str, line: str) -> list[str]:
    """What bash offers for `line` (ending where the cursor is) with the script loaded."""
    words = line.split(" ")
    program = "\n".join(
        [
            script,
            f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}",
            "COMP_WORDS=(" + " ".join(shlex.quote(w) for w in words) + ")",
            f"COMP_CWORD={len(words) - 1}",
            f"_shtab_reconciler reconciler {shlex.quote(words[-1])} {shlex.quote(words[-2])}",
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ]
    )
    done = subprocess.run(["bash"], input=program, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_bash_completes_commands_flags_and_shells() -> None:
    script = _cli("completion", "bash").stdout
    assert _complete_in_bash(script, "reconciler pl") == ["plan"]
    assert _complete_in_bash(script, "reconciler plan --par") == ["--parallelism"]
    assert _complete_in_bash(script, "reconciler completion ") == ["bash", "zsh", "fish"]


def test_completion_for_another_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "powershell"]) == 1
    assert capsys.readouterr().err.startswith(
        "error: reconciler completion: argument SHELL: invalid choice: 'powershell'"
    )


def test_completion_in_process_is_the_script_the_command_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["completion", "zsh"]) == 0
    assert capsys.readouterr() == (_cli("completion", "zsh").stdout, "")
