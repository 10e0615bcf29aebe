"""Issue 14: what a new user meets first, end to end through the command line.

Each test runs `reconciler.cli.main` (or `reconciler sandbox serve` in a subprocess) the way the
README tells a user to, and asserts the exact output.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.cli import main

HEADER = "apiVersion: reconciler/v1\n"
USERS = f"{HEADER}kind: UserAccounts\nmetadata: {{name: users}}\nspec: {{members: [alice]}}\n"


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return directory


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# -- 2: a date-shaped value the calendar does not have ------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("faceUrl", "2030-13-45", "month must be in 1..12"),
        ("introduction", "2020-02-30", "day is out of range for month"),
    ],
)
def test_an_impossible_date_is_a_positioned_problem(
    field: str,
    value: str,
    reason: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        {
            "a.yaml": f"{HEADER}kind: OfficialAccount\nmetadata: {{id: news}}\n"
            f"spec:\n  owner: alice\n  name: News\n  {field}: {value}\n"
        },
    )
    col = len(f"  {field}: ") + 1
    expected = (
        f"a.yaml:7:{col}: '{value}' reads as a date but is not one ({reason});"
        " quote it if it is a string\n"
    )
    assert run(["validate", "."], capsys) == (1, expected, "")
    code, out, err = run(["plan", "."], capsys)
    assert (code, out, err) == (1, "", expected)


def test_an_impossible_date_in_mass_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        {
            "a.yaml": f"{HEADER}kind: MassSpeed\nmetadata: {{name: wx}}\n"
            "spec:\n  speed: 2020-02-30\n"
        },
    )
    code, out, err = run(["validate", "."], capsys)
    assert (code, err) == (1, "")
    assert out.splitlines()[0] == (
        "a.yaml:5:10: '2020-02-30' reads as a date but is not one (day is out of range for"
        " month); quote it if it is a string"
    )


def test_an_impossible_date_in_the_drift_ignore_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        {
            "m/a.yaml": USERS,
            "ignore.yaml": """\
                - account: news
                  field: name
                  reason: the desk renames it by hand
                  owner: alice
                  expires: 2030-13-45
            """,
        },
    )
    code, out, err = run(["drift", "m", "--ignore", "ignore.yaml"], capsys)
    assert (code, out) == (1, "")
    assert err == (
        "ignore.yaml:5:12: '2030-13-45' reads as a date but is not one (month must be in"
        " 1..12); quote it if it is a string\n"
    )
