"""The digests of memberships and accounts, and the canonical JSON they and the plan file use."""

from __future__ import annotations

import hashlib

from plan_scenarios import F, account

from reconciler.digest import account_digest, canonical_json, json_digest, members_digest


def test_members_digest_is_order_independent_and_exact() -> None:
    assert members_digest(["b", "a"]) == members_digest(frozenset({"a", "b"}))
    assert members_digest([]) == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert members_digest(["a", "b"]) != members_digest(["a", "b", "c"])


def test_account_digest_follows_values_not_positions() -> None:
    base = account("news", profile={F.NAME: "News"}, members=["a"])
    moved = account("news", profile={F.NAME: "News"}, members=["a"], labels={"team": "x"})
    assert account_digest(base) == account_digest(moved)
    for other in (
        account("news", profile={F.NAME: "News!"}, members=["a"]),
        account("news", profile={F.NAME: "News"}, members=["a", "b"]),
        account("news", profile={F.NAME: "News"}, members=["a"], protect=True),
        account("news", profile={F.NAME: "News"}, members=["a"], profiles={"a": "vip"}),
        account("news", profile={F.NAME: "News"}),
    ):
        assert account_digest(other) != account_digest(base)


def test_canonical_json_sorts_keys_drops_whitespace_and_keeps_text() -> None:
    value = {"b": [1, None], "a": "é"}
    assert canonical_json(value) == '{"a":"é","b":[1,null]}'
    assert (
        json_digest(value) == "sha256:" + hashlib.sha256(canonical_json(value).encode()).hexdigest()
    )
