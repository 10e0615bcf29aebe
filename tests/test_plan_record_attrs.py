"""Issue 14 item 5: `protect`, `policy` and `ignoreChanges` changes are shown like attributes.

They live only in the last-applied record, so a change to them is a record update; the plan
shows it under its account (text, markdown, JSON and the saved plan), end to end through the CLI
against the embedded sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from test_e2e_common import account_doc, docs, users

from reconciler.cli import main
from reconciler.kinds.official_account.account import RecordWire

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "plan.schema.json"
CONFIG = "defaultTarget: sandbox\ntargets:\n  sandbox:\n    type: sandbox\n    path: state.db\n"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert err == "" or code == 0, err
    return code, out


def declare(root: Path, **spec: object) -> None:
    account = account_doc("news", name="News", **spec)
    (root / "m").mkdir(exist_ok=True)
    (root / "m" / "a.yaml").write_text(docs(account, users("ops_admin", "alice")))


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reconciler.yaml").write_text(CONFIG)
    return tmp_path


def applied(root: Path, capsys: pytest.CaptureFixture[str], **spec: object) -> None:
    declare(root, **spec)
    assert run(["apply", "m", "--auto-approve"], capsys)[0] == 0
    assert run(["plan", "m", "--detailed-exitcode"], capsys)[0] == 0


def record_changes(out: str) -> list[object]:
    data = json.loads(out)
    Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8"))).validate(data)
    return [c.get("changes") for c in data["changes"] if c["type"] == "record"]


HEAD = "~ account @TOA#_news will be updated in place (this repo's inventory record only)"


def test_lifting_protect_is_shown_in_text_markdown_and_json(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    applied(root, capsys, protect=True)
    declare(root, protect=False)
    code, text = run(["plan", "m", "--detailed-exitcode"], capsys)
    assert code == 2
    assert f"{HEAD}\n    ~ protect: true → false\n" in text
    assert "bookkeeping only" not in text
    _, markdown = run(["plan", "m", "--format", "markdown"], capsys)
    assert "```diff\n! protect: true → false\n```" in markdown
    assert "<code>~ @TOA#_news</code> will be updated in place" in markdown
    _, out = run(["plan", "m", "--format", "json"], capsys)
    assert record_changes(out) == [[{"attribute": "protect", "old": True, "new": False}]]
    # the saved plan carries them and applies; then nothing is left to show
    assert run(["plan", "m", "--out", "p.json"], capsys)[0] == 0
    assert run(["apply", "p.json", "--auto-approve"], capsys)[0] == 0
    assert run(["plan", "m", "--detailed-exitcode"], capsys)[0] == 0


def test_a_policy_change_and_a_new_subscribers_block_are_shown(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    applied(root, capsys, subscribers={"policy": "additive", "members": ["alice"]})
    declare(root, subscribers={"policy": "exact", "members": ["alice"]})
    _, text = run(["plan", "m"], capsys)
    assert f'{HEAD}\n    ~ policy: "additive" → "exact"\n' in text
    _, out = run(["plan", "m", "--format", "json"], capsys)
    assert record_changes(out) == [[{"attribute": "policy", "old": "additive", "new": "exact"}]]
    declare(root)  # subscribers no longer managed
    _, text = run(["plan", "m"], capsys)
    assert f'{HEAD}\n    ~ policy: "additive" → (unset)\n' in text


def test_an_ignore_changes_change_is_recovered_from_the_record_digest(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    applied(root, capsys, ignoreChanges=["customString"], protect=True)
    declare(root, ignoreChanges=["faceUrl", "customString"], protect=False)
    _, text = run(["plan", "m"], capsys)
    assert (
        f"{HEAD}\n    ~ protect: true → false\n"
        '    ~ ignoreChanges: ["customString"] → ["faceUrl", "customString"]\n'
    ) in text
    # with a profile change in the same edit, the live value puts the old profile back
    declare(root, ignoreChanges=[], introduction="Hello")
    _, text = run(["plan", "m"], capsys)
    assert (
        "~ account @TOA#_news will be updated in place\n"
        '    ~ introduction: "" → "Hello"\n'
        "    ~ protect: true → false\n"
        '    ~ ignoreChanges: ["customString"] → []\n'
    ) in text


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"name": "Old"}, {"name": "New"}),  # a value changed
        ({"introduction": "Hi"}, {}),  # a field removed from the manifest
        ({}, {"organization": "Org"}),  # a field added
    ],
)
def test_ignore_changes_is_recovered_whatever_else_the_profile_does(
    root: Path,
    capsys: pytest.CaptureFixture[str],
    before: dict[str, str],
    after: dict[str, str],
) -> None:
    account = account_doc("news", **{"name": "News", **before})
    (root / "m").mkdir()
    (root / "m" / "a.yaml").write_text(docs(account, users("ops_admin")))
    assert run(["apply", "m", "--auto-approve"], capsys)[0] == 0
    account = account_doc("news", **{"name": "News", **after, "ignoreChanges": ["faceUrl"]})
    (root / "m" / "a.yaml").write_text(docs(account, users("ops_admin")))
    _, text = run(["plan", "m"], capsys)
    assert '    ~ ignoreChanges: [] → ["faceUrl"]\n' in text


def test_an_unrecoverable_ignore_changes_is_not_guessed(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    applied(root, capsys, subscribers={"members": ["alice"], "profiles": {"alice": "a"}})
    # a subscriber profile changes with ignoreChanges: the digest cannot tell the old list
    declare(
        root,
        ignoreChanges=["faceUrl"],
        subscribers={"members": ["alice"], "profiles": {"alice": "b"}},
    )
    _, text = run(["plan", "m"], capsys)
    assert "ignoreChanges" not in text
    _, out = run(["plan", "m", "--format", "json"], capsys)
    assert record_changes(out) == [None]


def test_a_record_change_from_an_older_plan_file_loads_without_attributes() -> None:
    import msgspec

    old = {
        "type": "record",
        "account": "@TOA#_a",
        "record": 'reconciler/v1:{"d":"","f":[],"p":1,"s":null}',
        "subscribe": False,
        "adopt": False,
    }
    change = msgspec.convert(old, RecordWire).change()
    assert (
        change.attrs == ()
        and change.headline() is None
        and change.detail_lines(show_all=False, first=3) == []
    )
    with pytest.raises(ValueError, match="unknown record attribute 'labels'"):
        bad = {**old, "changes": [{"attribute": "labels", "old": None, "new": None}]}
        msgspec.convert(bad, RecordWire).change()
