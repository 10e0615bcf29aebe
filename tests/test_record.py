"""The last-applied record: built from an account, stored as text, fetched back."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plan_scenarios import F, account

from reconciler.digest import account_digest
from reconciler.model import ProfileField, SubscriberPolicy
from reconciler.record import (
    RECORD_MAX_BYTES,
    RECORD_PREFIX,
    UNKNOWN_RECORD,
    LastApplied,
    decode_record,
    encode_record,
    record_for,
)

DIGEST = "sha256:" + "ab" * 32

records = st.builds(
    LastApplied,
    fields=st.frozensets(st.sampled_from(list(ProfileField))),
    protect=st.booleans(),
    policy=st.none() | st.sampled_from(list(SubscriberPolicy)),
    digest=st.just(DIGEST),
)


def test_record_encoding_is_exact_and_names_fields_not_values() -> None:
    record = LastApplied(frozenset({F.NAME, F.CUSTOM_STRING}), True, SubscriberPolicy.EXACT, DIGEST)
    assert encode_record(record) == (
        'reconciler/v1:{"d":"' + DIGEST + '","f":["customString","name"],"p":1,"s":"exact"}'
    )


@given(records)
def test_record_round_trips(record: LastApplied) -> None:
    assert decode_record(encode_record(record)) == record


def test_worst_case_record_stays_far_under_the_vendor_limit() -> None:
    # The largest record: every field, protect, a policy, the longest digest we write.
    huge = account(
        "x" * 42,
        profile={f: "é" * 1000 for f in ProfileField},
        members=[f"user{i}" for i in range(10_000)],
        policy=SubscriberPolicy.ADDITIVE,
        absent=[f"gone{i}" for i in range(1000)],
        profiles={f"user{i}": "p" * 3000 for i in range(100)},
        protect=True,
        ignore=list(ProfileField),
    )
    text = encode_record(record_for(huge))
    assert len(text.encode()) == 201 < RECORD_MAX_BYTES  # "additive" is the longer policy
    assert "é" not in text and "user1" not in text


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "vip",
        RECORD_PREFIX,
        RECORD_PREFIX + "{",
        RECORD_PREFIX + "[]",
        RECORD_PREFIX + '{"d":"x","f":["nickname"],"p":0,"s":null}',
        RECORD_PREFIX + '{"d":"x","f":"name","p":0,"s":null}',
        RECORD_PREFIX + '{"d":"x","f":[1],"p":0,"s":null}',
        RECORD_PREFIX + '{"d":"x","f":[],"p":true,"s":null}',
        RECORD_PREFIX + '{"d":"x","f":[],"p":2,"s":null}',
        RECORD_PREFIX + '{"d":"x","f":[],"p":0,"s":"sometimes"}',
        RECORD_PREFIX + '{"d":7,"f":[],"p":0,"s":null}',
        "reconciler/v2:" + '{"d":"x","f":[],"p":0,"s":null}',
    ],
)
def test_garbled_or_foreign_records_decode_to_unknown(text: str | None) -> None:
    assert decode_record(text) is UNKNOWN_RECORD
    assert not UNKNOWN_RECORD.known


@given(st.text(max_size=300))
def test_decoding_any_text_never_raises(text: str) -> None:
    assert isinstance(decode_record(text), LastApplied)
    assert isinstance(decode_record(RECORD_PREFIX + text), LastApplied)


def test_record_for_takes_names_policy_and_protect() -> None:
    acc = account(
        "news",
        profile={F.NAME: "N", F.FACE_URL: "u"},
        members=["a"],
        policy=SubscriberPolicy.EXACT,
        protect=True,
    )
    record = record_for(acc)
    assert record == LastApplied(
        frozenset({F.NAME, F.FACE_URL}),
        True,
        SubscriberPolicy.EXACT,
        account_digest(acc, members=False),
    )
    assert json.loads(encode_record(record)[len(RECORD_PREFIX) :])["f"] == ["faceUrl", "name"]


def test_record_digest_leaves_membership_to_the_plan_digest() -> None:
    few = account("news", members=["a"])
    many = account("news", members=["a", "b"])
    assert record_for(few).digest == record_for(many).digest
    assert account_digest(few) != account_digest(many)
    assert record_for(few).digest != record_for(account("news", members=["a"], protect=True)).digest
