"""`plan` against the embedded sandbox with random, mostly valid manifests; then apply converges.

Hypothesis writes accounts (ids, owners, profile fields with multi-byte text near the byte limits,
policies, members, absent ids, profiles), subscriber sets that include and exclude each other
(cycles too), user accounts and the mass speed. One sandbox lives through the whole run, so the
state each case meets is what the previous cases left. Each case: `plan` exits 0 (or 1 with
positioned problems) and never reports a bug; when the plan is clean, `apply --prune --force`
exits 0 and a second plan has no changes.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_common import PROBLEM, fuzz_settings

from reconciler import cli

USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "u_1", "x.y@z"]
OWNERS = USERS[:3]
ACCOUNTS = ["news", "sports", "@TOA#_weather", "tech"]
SETS = ["staff", "vips", "all"]
TEXT = st.sampled_from(["", "Daily", "新闻" * 20, "x" * 150, "é", "tier=gold", " a "])
#: One deliberate mistake in about one case in eight: a positioned problem, never a crash.
BREAKAGES = ["bad user", "unknown set", "cycle", "name too long", "speed", "absent member", "owner"]


def _account(
    data: st.DataObject, account_id: str, sets: list[str], owners: list[str]
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "owner": owners[ACCOUNTS.index(account_id) % len(owners)],  # an owner never changes
        "name": data.draw(
            st.sampled_from(["News", "Sports", "新闻" * 25, "n" * 150]), label="name"
        ),
    }
    for field in ("introduction", "faceUrl", "organization", "customString"):
        if data.draw(st.booleans(), label=f"has {field}"):
            spec[field] = data.draw(TEXT, label=field)
    if data.draw(st.booleans(), label="has max"):
        spec["maxSubscriberNum"] = data.draw(st.sampled_from([100, 5000, 100000]), label="max")
    if data.draw(st.booleans(), label="protect"):
        spec["protect"] = data.draw(st.booleans())
    if data.draw(st.booleans(), label="ignore"):
        spec["ignoreChanges"] = data.draw(
            st.lists(st.sampled_from(["customString", "introduction", "name"]), unique=True)
        )
    if data.draw(st.booleans(), label="has subscribers"):
        members = data.draw(st.lists(st.sampled_from(USERS), unique=True, max_size=5))
        subscribers: dict[str, Any] = {
            "policy": data.draw(st.sampled_from(["additive", "exact"]), label="policy"),
            "members": members,
        }
        others = [u for u in USERS if u not in members]
        if others and data.draw(st.booleans(), label="absent"):
            subscribers["absent"] = data.draw(
                st.lists(st.sampled_from(others), unique=True, max_size=2)
            )
        if sets and data.draw(st.booleans(), label="sets"):
            subscribers["sets"] = data.draw(st.lists(st.sampled_from(sets), unique=True))
        if members and data.draw(st.booleans(), label="profiles"):
            subscribers["profiles"] = {members[0]: data.draw(TEXT, label="profile")}
        spec["subscribers"] = subscribers
    return _doc("OfficialAccount", {"id": account_id}, spec)


def _doc(kind: str, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "reconciler/v1", "kind": kind, "metadata": metadata, "spec": spec}


def _documents(data: st.DataObject) -> list[dict[str, Any]]:
    docs = []
    sets: list[str] = []
    for name in data.draw(st.lists(st.sampled_from(SETS), unique=True, max_size=3), label="sets"):
        spec: dict[str, Any] = {
            "members": data.draw(st.lists(st.sampled_from(USERS), unique=True, max_size=4))
        }
        if sets and data.draw(st.booleans(), label="include"):  # earlier sets only: no cycle
            spec["include"] = data.draw(st.lists(st.sampled_from(sets), unique=True))
        if sets and data.draw(st.booleans(), label="exclude"):
            spec["exclude"] = data.draw(st.lists(st.sampled_from(sets), unique=True, max_size=1))
        docs.append(_doc("SubscriberSet", {"name": name}, spec))
        sets.append(name)
    accounts = data.draw(st.lists(st.sampled_from(ACCOUNTS), unique=True, max_size=3))
    docs += [_account(data, account_id, sets, OWNERS) for account_id in accounts]
    users = data.draw(st.lists(st.sampled_from(USERS), unique=True), label="users")
    docs.append(_doc("UserAccounts", {"name": "users"}, {"members": sorted({*OWNERS, *users})}))
    if data.draw(st.booleans(), label="speed"):
        speed = data.draw(st.integers(0, 4), label="speed")
        docs.append(_doc("MassSpeed", {"name": "wx"}, {"speed": speed}))
    if data.draw(st.sampled_from([False] * 7 + [True]), label="break?"):
        _break(docs, data.draw(st.sampled_from(BREAKAGES), label="breakage"))
    return docs


def _break(docs: list[dict[str, Any]], how: str) -> None:
    if how == "bad user":
        docs.append(_doc("UserAccounts", {"name": "bad"}, {"members": ["用户 1"]}))
    elif how == "unknown set":
        docs.append(_doc("SubscriberSet", {"name": "ghost"}, {"include": ["nowhere"]}))
    elif how == "cycle":
        docs.append(_doc("SubscriberSet", {"name": "c1"}, {"include": ["c2"]}))
        docs.append(_doc("SubscriberSet", {"name": "c2"}, {"include": ["c1"]}))
    elif how == "name too long":
        docs.append(_doc("OfficialAccount", {"id": "long"}, {"owner": "alice", "name": "长" * 51}))
    elif how == "owner":  # the vendor cannot change an owner: a plan problem (exit 1)
        for doc in docs:
            if doc["kind"] == "OfficialAccount":
                doc["spec"]["owner"] = "dave"
    elif how == "speed":
        docs.append(_doc("MassSpeed", {"name": "wx2"}, {"speed": 5}))
    else:
        docs.append(
            _doc(
                "OfficialAccount",
                {"id": "both"},
                {
                    "owner": "alice",
                    "name": "B",
                    "subscribers": {"members": ["bob"], "absent": ["bob"]},
                },
            )
        )


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("planfuzz")
    (path / "m").mkdir()
    return path


@fuzz_settings(ci=40)
@given(data=st.data())
def test_plan_then_apply_converges_or_reports_problems(root: Path, data: st.DataObject) -> None:
    docs = _documents(data)
    (root / "m" / "all.yaml").write_text(
        "\n---\n".join(json.dumps(d, ensure_ascii=False) for d in docs) or "{}", encoding="utf-8"
    )
    with contextlib.chdir(root):
        code, out, err = _cli("plan", "m", "--prune", "--format", "json")
        assert "internal error" not in err, err
        if code == 1 and out.startswith("{"):
            assert json.loads(out)["errors"], out  # a plan with problems: shown, not applied
            return
        if code == 1:  # manifest problems: one positioned line each
            problems = err.splitlines() or out.splitlines()
            assert problems and all(PROBLEM.match(p) for p in problems), out + err
            return
        assert code == 0, err
        applied = _cli("apply", "m", "--auto-approve", "--prune", "--force")
        assert applied[0] == 0, applied[1] + applied[2]
        again = _cli("plan", "m", "--prune", "--detailed-exitcode")
        assert again[0] == 0, again[1] + again[2]
