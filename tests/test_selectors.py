"""Selectors never fail silently (issue 14, item 6), end to end through the CLI against the
embedded sandbox of a copy of the examples: a targeted run says how many accounts it chose and
what it left out ("Resource targeting is in effect"), a selector or exclude that matches nothing
is a warning, and what is not an account (the mass speed, users no chosen account needs) is left
out of the plan. A run without selectors is unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONTENT = (
    "2 accounts selected of 3 (selector team=content);"
    " mass speed skipped (it belongs to no account)"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "repo", ignore=shutil.ignore_patterns(".reconciler"))
    return tmp_path / "repo"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_targeted_plan_says_how_many_accounts_it_chose_in_every_format(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "plan", str(project), "--selector", "team=content")
    assert code == 0
    assert err == f"warning: {CONTENT}\n"
    assert out.splitlines()[2] == f"Targeting in effect: {CONTENT}"
    code, out, err = run(
        capsys, "plan", str(project), "--selector", "team=content", "--format", "markdown"
    )
    assert f"Targeting in effect: {CONTENT}" in out.splitlines()[:4]
    code, out, _ = run(
        capsys,
        "plan",
        str(project),
        "--exclude",
        "news",
        "--selector",
        "team=content",
        "--format",
        "json",
    )
    assert json.loads(out)["targeting"] == (
        "1 account selected of 3 (selector team=content; excluded: @TOA#_news);"
        " mass speed skipped (it belongs to no account)"
    )
    _, _, err = run(capsys, "drift", str(project), "--exclude", "news")
    assert err.startswith("warning: 2 accounts selected of 3 (excluded: @TOA#_news)")


def test_a_selector_or_exclude_that_matches_nothing_is_a_warning_naming_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "plan", str(project), "--selector", "nosuch=x")
    assert code == 0
    assert err.splitlines() == [
        "warning: 0 accounts selected of 3 (selector nosuch=x);"
        " mass speed skipped (it belongs to no account)",
        "warning: --selector nosuch=x matches no declared account",
    ]
    assert "No changes." in out
    _, _, err = run(capsys, "plan", str(project), "--exclude", "nws", "--exclude", "zzz-none")
    assert err.splitlines()[1:] == [
        "warning: --exclude nws names no declared account (did you mean 'news'?)",
        "warning: --exclude zzz-none names no declared account",
    ]
    _, _, err = run(capsys, "drift", str(project), "--selector", "team=nosuch")
    assert "warning: --selector team=nosuch matches no declared account\n" in err


def test_what_is_not_a_selected_account_is_left_out_of_the_plan(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "plan", str(project), "--format", "json")
    whole = json.loads(out)["summary"]
    assert (whole["massSpeed"], whole["importUsers"]) == (1, 1005)
    _, out, _ = run(capsys, "plan", str(project), "--selector", "team=platform", "--format", "json")
    chosen = json.loads(out)["summary"]
    # the ops-alerts owner and its subscribers only; no mass speed
    assert (chosen["massSpeed"], chosen["importUsers"], chosen["create"]) == (0, 4, 1)
    code, out, err = run(
        capsys, "apply", str(project), "--selector", "team=platform", "--auto-approve"
    )
    assert code == 0, out + err
    assert err.startswith("warning: 1 account selected of 3 (selector team=platform)")
    _, out, _ = run(capsys, "plan", str(project), "--format", "json")
    left = json.loads(out)["summary"]
    # apply left the mass speed and the other accounts' users alone
    assert (left["massSpeed"], left["importUsers"], left["create"]) == (1, 1001, 2)


def test_a_plan_without_selectors_is_unchanged(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, text, err = run(capsys, "plan", str(project))
    assert "Targeting" not in text
    assert "warning" not in err
    _, out, _ = run(capsys, "plan", str(project), "--format", "json")
    assert "targeting" not in json.loads(out)
    _, out, _ = run(capsys, "plan", str(project), "--format", "markdown")
    assert "Targeting" not in out


def test_without_a_declared_mass_speed_the_line_says_nothing_of_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for manifest in project.rglob("*.yaml"):
        if "kind: MassSpeed" in manifest.read_text():
            manifest.unlink()
    _, _, err = run(capsys, "plan", str(project), "--selector", "tier=gold")
    assert err == "warning: 1 account selected of 3 (selector tier=gold)\n"
