"""Property: whatever it is fed, `validate` answers 0 or 1 and raises nothing but its own errors."""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ReconcilerError
from reconciler.validate import command

# Small valid documents in the examples' style (small, so that 2,000 examples take seconds).
SEEDS = [
    """apiVersion: reconciler/v1
kind: OfficialAccount
metadata: {id: news, labels: {team: content}}
spec:
  owner: alice
  name: Daily News
  customString: "tier=gold"
  ignoreChanges: [customString]
  subscribers:
    policy: exact
    sets: [staff]
    members: [bob]
    absent: [mallory]
    profiles: {bob: vip}
---
apiVersion: reconciler/v1
kind: SubscriberSet
metadata: {name: staff}
spec: {files: [members/staff.txt], include: [], exclude: []}
""",
    """apiVersion: reconciler/v1
kind: UserAccounts
metadata: {name: users}
spec: {sets: [admins], members: [alice, bob]}
---
apiVersion: reconciler/v1
kind: SubscriberSet
metadata: {name: admins}
spec: {members: [carol]}
---
apiVersion: reconciler/v1
kind: MassSpeed
metadata: {name: wechat}
spec: {speed: 2}
""",
]
KEYS = [
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "id",
    "name",
    "labels",
    "owner",
    "introduction",
    "faceUrl",
    "organization",
    "customString",
    "maxSubscriberNum",
    "protect",
    "ignoreChanges",
    "subscribers",
    "policy",
    "sets",
    "members",
    "absent",
    "profiles",
    "files",
    "include",
    "exclude",
    "speed",
    "alice",
]
WORDS = [
    "reconciler/v1",
    "OfficialAccount",
    "SubscriberSet",
    "UserAccounts",
    "MassSpeed",
    "news",
    "@TOA#_news",
    "@TOA#_@TOA#x",
    "staff",
    "alice",
    "bob",
    "additive",
    "exact",
    "name",
    "customString",
    "missing.txt",
    "",
    "新闻",
]

PIECES = [*":-[]{},&*!|>'\"%@`#?\n\t ~.$=", "a", "b", "1", "é", "\x00", "\n  ", ": ", "- "]


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.2:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3 and roll < 0.4:
        return {rng.choice(KEYS): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return rng.choice(
        [
            None,
            True,
            rng.randint(-10, 10**6),
            rng.random() * 1e6,
            float("nan"),
            rng.choice(WORDS),
            "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 8))),
        ]
    )


def random_documents(seed: int) -> str:
    """Manifest-shaped documents with random holes and values, as JSON (which is YAML)."""
    rng = random.Random(seed)
    docs = []
    for _ in range(rng.randint(1, 3)):
        doc: dict[str, Any] = {
            "apiVersion": rng.choice(["reconciler/v1", "v2"]),
            "kind": rng.choice([*WORDS[1:5], "Other"]),
            "metadata": {k: _value(rng) for k in rng.sample(["id", "name", "labels"], 2)},
            "spec": {rng.choice(KEYS): _value(rng) for _ in range(rng.randint(0, 5))},
        }
        for key in rng.sample(list(doc), rng.randint(0, 1)):
            del doc[key]
        docs.append(json.dumps(doc))
    return "\n---\n".join(docs)


def mutated(seed: int) -> str:
    """A valid document with a few characters deleted, inserted or replaced."""
    rng = random.Random(seed)
    text = rng.choice(SEEDS)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(text))
        piece = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 3)))
        action = rng.choice(["delete", "insert", "replace", "word", "word"])
        if action == "word":  # well-formed YAML, wrong content: exercises the semantic checks
            words = list(re.finditer(r"[\w@#.]+", text))
            hit = rng.choice(words)
            text = text[: hit.start()] + rng.choice(WORDS) + text[hit.end() :]
        elif action == "delete":
            text = text[:at] + text[at + len(piece) :]
        elif action == "insert":
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + piece + text[at + len(piece) :]
    return text


# Hypothesis draws seeds (cheap) for the structured inputs and raw text for the rest.
inputs = st.one_of(
    st.integers(min_value=0, max_value=2**32).map(mutated),
    st.integers(min_value=0, max_value=2**32).map(random_documents),
    st.lists(st.sampled_from(PIECES), max_size=30).map("".join),
    st.text(max_size=30),
)


@pytest.mark.parametrize("seed", SEEDS)
def test_seeds_are_valid(workdir: Path, seed: str) -> None:
    out = io.StringIO()
    with contextlib.chdir(workdir):
        assert command(["-"], config=None, fmt="text", stdout=out, stdin=io.StringIO(seed)) == 0


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("fuzz")
    (path / "members").mkdir()
    (path / "members" / "staff.txt").write_text("alice\nbob\n")
    yield path


@settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=inputs, fmt=st.sampled_from(["text", "json", "github"]))
def test_validate_never_raises_anything_else(workdir: Path, text: str, fmt: str) -> None:
    out = io.StringIO()
    with contextlib.chdir(workdir):
        try:
            code = command(["-"], config=None, fmt=fmt, stdout=out, stdin=io.StringIO(text))
        except ReconcilerError:
            return
    assert code in (0, 1)
    if fmt == "json":
        assert json.loads(out.getvalue())["valid"] is (code == 0)
    elif code == 0:
        assert out.getvalue().endswith(" valid\n")
    else:
        assert out.getvalue().startswith(("<stdin>:", "members/", "::error"))
