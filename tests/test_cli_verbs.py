"""The verbs a Terraform user reaches for (issue 14, item 17): `version` and `completion`.
(`fmt` has its own tests in test_fmt.py.)"""

from __future__ import annotations

import importlib.metadata
import platform
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
