"""Manifests on disk, fuzzed through the real CLI: every problem is one line with a true position.

Several files per case (damaged seeds, random documents, raw text, member files with random
lines). `reconciler validate` must exit 0 or 1; in JSON every problem names one of the files
given, a line and column inside that file, and a one-line message; in text every line is
`file:line:col: message`. Nothing but the project's errors may escape `cli.main`.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_common import PROBLEM, fuzz_settings
from test_validate_fuzz import PIECES, SEEDS, mutated, random_documents

from reconciler import cli

MEMBER_LINES = ["alice", "bob", "# comment", "", "  carol  ", "bad id!", "é", "\x00", "a" * 40]


def _manifest(data: st.DataObject) -> str:
    how = data.draw(st.sampled_from(["seed", "mutated", "random", "raw"]), label="how")
    if how == "seed":
        return data.draw(st.sampled_from(SEEDS))
    seed = data.draw(st.integers(0, 2**32), label="seed")
    if how == "mutated":
        return mutated(seed)
    if how == "random":
        return random_documents(seed)
    return "".join(data.draw(st.lists(st.sampled_from(PIECES), max_size=30), label="raw"))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("manifestfuzz")


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


@fuzz_settings(ci=150)
@given(data=st.data())
def test_validate_positions_every_problem_inside_its_file(root: Path, data: st.DataObject) -> None:
    case = root / f"case{len(list(root.iterdir()))}"
    (case / "m" / "members").mkdir(parents=True)
    texts: dict[str, str] = {}
    for index in range(data.draw(st.integers(1, 3), label="files")):
        texts[f"m/f{index}.yaml"] = _manifest(data)
    members = data.draw(st.lists(st.sampled_from(MEMBER_LINES), max_size=6), label="members")
    texts["m/members/staff.txt"] = "\n".join(members)
    for name, text in texts.items():
        (case / name).write_text(text, encoding="utf-8")
    with contextlib.chdir(case):
        code, out, err = _cli("validate", "m", "--format", "json")
        text_code, text_out, _ = _cli("validate", "m")
    assert code in (0, 1) and code == text_code, err
    if code == 1 and not out:  # no file holds a manifest (issue 14, item 4): an error, no report
        assert err.startswith("error: no manifests found in 'm'"), err
        return
    report = json.loads(out)
    assert report["valid"] is (code == 0)
    for problem in report["problems"]:
        assert problem["file"] in texts, problem
        lines = texts[problem["file"]].count("\n") + 1
        assert 1 <= problem["line"] <= lines + 1 and problem["col"] >= 1, problem
        assert problem["message"] and "\n" not in problem["message"], problem
    if code == 1:
        for line in text_out.splitlines():
            assert PROBLEM.match(line), line


def test_a_name_with_a_line_break_stays_on_one_line(root: Path) -> None:
    """Found by the nightly fuzz: a duplicate name holding a line break split its problem."""
    case = root / "linebreak"
    (case / "m").mkdir(parents=True)
    doc = (
        '{"apiVersion": "reconciler/v1", "kind": "UserAccounts", "metadata": {"name": "a\\nb"},'
        ' "spec": {"members": [alice]}}'
    )
    (case / "m" / "a.yaml").write_text(doc)
    (case / "m" / "b.yaml").write_text(doc)
    with contextlib.chdir(case):
        code, out, _ = _cli("validate", "m")
    assert code == 1
    assert out.splitlines() == [
        "m/a.yaml:1:78: metadata.name: 'a\\nb' must be letters, digits, '.', '_' or '-', starting"
        " and ending with a letter or digit (at most 128)",
        "m/b.yaml:1:78: duplicate UserAccounts name 'a\\nb' (first declared at m/a.yaml:1:78)",
        "m/b.yaml:1:78: metadata.name: 'a\\nb' must be letters, digits, '.', '_' or '-', starting"
        " and ending with a letter or digit (at most 128)",
    ]
