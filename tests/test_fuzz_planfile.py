"""Saved plan files, mutated: refused with the project's own error, never a traceback, never run.

A real plan (made by `reconciler plan --out` against the embedded sandbox) is mutated at the byte
level and at the JSON level. Without a recomputed integrity digest every mutation that changes
the document is refused (`StalePlanError`); with one (a tool that rewrote the file), the body is
read or refused, never anything else. A few mutated files go through `reconciler apply FILE`,
which must exit 1 with one `error:` line before any vendor call.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_common import fuzz_settings, json_values

from reconciler import cli
from reconciler.digest import json_digest
from reconciler.errors import StalePlanError
from reconciler.planfile import MAX_PLAN_BYTES, dump_plan, load_plan, read_plan_file

MANIFESTS = """apiVersion: reconciler/v1
kind: OfficialAccount
metadata: {id: news}
spec:
  owner: alice
  name: Daily News
  introduction: Morning
  subscribers:
    policy: exact
    members: [bob, carol]
    profiles: {bob: vip}
---
apiVersion: reconciler/v1
kind: OfficialAccount
metadata: {id: sports}
spec: {owner: alice, name: Sports, customString: "x=1", subscribers: {members: [dave]}}
---
apiVersion: reconciler/v1
kind: UserAccounts
metadata: {name: users}
spec: {members: [alice, bob, carol, dave]}
---
apiVersion: reconciler/v1
kind: MassSpeed
metadata: {name: wechat}
spec: {speed: 1}
"""
CHANGED = (
    MANIFESTS.replace("Daily News", "Daily News 2")
    .replace("bob: vip", "bob: gold")
    .replace("speed: 1", "speed: 3")
    .replace("[bob, carol]", "[bob, erin]")
    .replace("carol, dave]", "carol, dave, erin]")
)


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project on the embedded sandbox with `MANIFESTS` applied and a plan to `CHANGED` saved
    in `plan.json` (a create, a modify, membership changes, profiles, a record, the speed)."""
    root = tmp_path_factory.mktemp("planfuzz")
    (root / "m").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        (root / "m" / "all.yaml").write_text(MANIFESTS.replace("sports", "gone"))
        assert _cli("apply", "m", "--auto-approve")[0] == 0
        (root / "m" / "all.yaml").write_text(CHANGED)
        code, out, err = _cli("plan", "m", "--out", "plan.json")
        assert code == 0, out + err
        yield root


@pytest.fixture(scope="module")
def original(project: Path) -> str:
    return (project / "plan.json").read_text(encoding="utf-8")


def test_the_plan_round_trips(original: str) -> None:
    assert dump_plan(load_plan(original)) == original


# -- mutations -------------------------------------------------------------------------------------


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


def _mutate(doc: Any, data: st.DataObject) -> Any:
    """A copy of `doc` with one value replaced, one key deleted, one element added or dropped."""
    doc = copy.deepcopy(doc)
    paths = _paths(doc)
    path = data.draw(st.sampled_from(paths[1:]), label="path")
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    action = data.draw(st.sampled_from(["replace", "delete", "grow", "retype"]), label="action")
    if action == "replace":
        parent[last] = data.draw(json_values, label="value")
    elif action == "delete":
        del parent[last]
    elif action == "grow" and isinstance(parent[last], list):
        parent[last].append(data.draw(json_values, label="element"))
    elif action == "grow" and isinstance(parent[last], dict):
        parent[last][data.draw(st.text(max_size=8), label="key")] = data.draw(json_values)
    else:  # the same value as another JSON type
        value = parent[last]
        parent[last] = [value] if not isinstance(value, list) else {"0": value}
    return doc


def _same(a: Any, b: Any) -> bool:
    """JSON equality where NaN equals NaN (a replaced NaN is not a change)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@fuzz_settings(ci=300)
@given(data=st.data())
def test_a_mutated_plan_is_refused_unless_it_means_the_same(
    original: str, data: st.DataObject
) -> None:
    doc = json.loads(original)
    mutated = _mutate(doc, data)
    text = json.dumps(mutated, ensure_ascii=data.draw(st.booleans()))
    try:
        plan = load_plan(text, source="plan.json")
    except StalePlanError as exc:
        assert str(exc).startswith("plan.json ")
        return
    assert _same(mutated, doc)  # accepted only when nothing that matters changed
    assert dump_plan(plan) == original


@fuzz_settings(ci=300)
@given(data=st.data())
def test_a_rewritten_plan_with_a_fresh_digest_is_read_or_refused_cleanly(
    original: str, data: st.DataObject
) -> None:
    doc = json.loads(original)
    mutated = _mutate({"body": doc["body"]}, data)
    body = mutated.get("body")
    rewritten = {**doc, "body": body, "integrity": json_digest(body)}
    try:
        load_plan(json.dumps(rewritten), source="plan.json")
    except StalePlanError as exc:
        assert str(exc).startswith("plan.json ")


@fuzz_settings(ci=300)
@given(
    cut=st.integers(min_value=0, max_value=10**6),
    insert=st.binary(max_size=6),
    drop=st.integers(min_value=0, max_value=6),
)
def test_a_damaged_file_is_refused(original: str, cut: int, insert: bytes, drop: int) -> None:
    raw = original.encode()
    at = cut % (len(raw) + 1)
    damaged = raw[:at] + insert + raw[at + drop :]
    text = damaged.decode("utf-8", errors="replace")
    try:
        load_plan(text, source="plan.json")
    except StalePlanError as exc:
        assert str(exc).startswith("plan.json ")
        return
    assert json.loads(text) == json.loads(original)  # only whitespace moved


# -- through the CLI: refused before any vendor call ---------------------------------------------


def _vendor_calls(project: Path) -> int:
    with contextlib.closing(sqlite3.connect(project / ".reconciler" / "sandbox.db")) as conn:
        (count,) = conn.execute("SELECT count(*) FROM call_log").fetchone()
    return int(count)


@fuzz_settings(ci=15)
@given(data=st.data())
def test_apply_refuses_a_mutated_plan_file_before_any_call(
    project: Path, original: str, data: st.DataObject
) -> None:
    doc = json.loads(original)
    mutated = _mutate(doc, data)
    if _same(mutated, doc):
        return
    (project / "mutated.json").write_text(json.dumps(mutated), encoding="utf-8")
    before = _vendor_calls(project)
    with contextlib.chdir(project):
        code, out, err = _cli("apply", "mutated.json")
    assert (code, out) == (1, "")
    assert err.startswith("error: mutated.json ") and err.count("\n") == 1, err
    assert _vendor_calls(project) == before


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("liveMassSpeed", float("inf")),  # found by the fuzz: OverflowError escaped
        ("limits", {"callsPerSecond": False, "concurrency": 1}),  # nightly: ZeroDivisionError
        ("limits", {"callsPerSecond": 1, "concurrency": float("-inf")}),
        ("changes", [{"type": "importUsers", "users": {"first": []}}]),
    ],
)
def test_a_rewritten_body_with_odd_numbers_is_refused(original: str, key: str, value: Any) -> None:
    doc = json.loads(original)
    body = {**doc["body"], key: value}
    rewritten = json.dumps({**doc, "body": body, "integrity": json_digest(body)})
    with pytest.raises(StalePlanError, match=r"^plan\.json is not a valid reconciler plan: "):
        load_plan(rewritten, source="plan.json")


def test_a_plan_nested_too_deeply_is_refused() -> None:
    with pytest.raises(StalePlanError, match=r"^plan\.json is not a reconciler plan \(nested"):
        load_plan("[" * 100_000 + "]" * 100_000, source="plan.json")


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_a_format_version_that_only_equals_1_is_refused(original: str, version: Any) -> None:
    """Found by the nightly fuzz: `"formatVersion": true` passed (True == 1 in Python)."""
    doc = {**json.loads(original), "formatVersion": version}
    with pytest.raises(StalePlanError, match=r"^plan\.json has plan format "):
        load_plan(json.dumps(doc), source="plan.json")


# -- the size and type of a plan file (issue 12) -------------------------------------------------


def test_apply_refuses_a_plan_file_over_the_cap_before_any_call(
    project: Path, original: str
) -> None:
    """A 300 MB plan padded with whitespace was read and loaded (656 MB): a plan file over
    `MAX_PLAN_BYTES` is refused. Here one byte over: a real plan and spaces, which JSON allows."""
    padded = project / "padded.json"
    with padded.open("w", encoding="utf-8") as f:
        f.write(original)
        left = MAX_PLAN_BYTES + 1 - len(original.encode())
        chunk = " " * (1 << 20)
        while left > 0:
            f.write(chunk[:left])
            left -= len(chunk)
    before = _vendor_calls(project)
    try:
        with contextlib.chdir(project):
            code, out, err = _cli("apply", "padded.json", "--auto-approve")
    finally:
        padded.unlink()
    assert (code, out, err) == (
        1,
        "",
        "error: padded.json is larger than the 268,435,456-byte limit for plan files"
        " (268,435,457 bytes or more)\n",
    )
    assert _vendor_calls(project) == before


def test_read_plan_file_checks_type_and_size_before_reading(tmp_path: Path, original: str) -> None:
    (tmp_path / "plan.json").write_text(original, encoding="utf-8")
    assert read_plan_file(tmp_path / "plan.json") == original
    with (tmp_path / "sparse.json").open("wb") as f:
        f.truncate(MAX_PLAN_BYTES + 1)  # its size is checked, not its content: nothing is read
    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "latin1.json").write_bytes(b'{"a": "\xe9"}')
    for name, message in [
        (
            "sparse.json",
            "p is larger than the 268,435,456-byte limit for plan files"
            " (268,435,457 bytes or more)",
        ),
        ("pipe.json", "p is a FIFO (named pipe), not a regular file"),
        ("/dev/zero", "p is a character device, not a regular file"),
        ("missing.json", "cannot read the plan file p: [Errno 2] No such file or directory: "),
        ("latin1.json", "cannot read the plan file p: 'utf-8' codec can't decode byte 0xe9 "),
    ]:
        with pytest.raises(StalePlanError) as refused:
            read_plan_file(tmp_path / name, source="p")
        assert str(refused.value).startswith(message), name
