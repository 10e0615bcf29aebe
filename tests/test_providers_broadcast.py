"""The Tencent client's broadcast calls against the in-process sandbox: history paged 20 at a
time back to a given time, recall batched 10 MsgKeys a call, a send's Random reused by retries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_providers_tencent import NEWS, run, seed

from reconciler.providers import TencentClient
from reconciler.sandbox.behaviour import Behaviour
from reconciler.sandbox.server import Sandbox, SandboxOptions

BODY = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}]


def text(i: int) -> list[dict[str, Any]]:
    return [{"MsgType": "TIMTextElem", "MsgContent": {"Text": f"message {i}"}}]


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def make(**options: Any) -> Sandbox:
        made.append(Sandbox(SandboxOptions(db_path=":memory:", calls_per_second=0, **options)))
        return made[-1]

    yield make
    for sandbox in made:
        sandbox.close()


def test_history_pages_20_at_a_time_back_to_since_and_recall_batches_10(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    now = [time.time()]
    sandbox = make_sandbox(clock=lambda: now[0])

    async def body(client: TencentClient) -> None:
        await seed(client, members=["a"], accounts=[NEWS])
        sent = []
        for i in range(25):
            now[0] += 1801  # two an hour at most
            sent.append(await client.send_broadcast(NEWS, text(i), random_id=i + 1))
        before = dict(client.calls)
        everything = await client.get_history(NEWS, 0)
        assert [m.key for m in everything] == [s.key for s in reversed(sent)]
        assert (
            client.calls["official_account_msg_get_simple"]
            - before.get("official_account_msg_get_simple", 0)
            == 2
        )  # 20 + 5
        recent = await client.get_history(NEWS, sent[-5].time)
        assert len(recent) == 20  # the first page reaches back past `since`: no second page
        assert recent[0].random == 25
        assert recent[0].msg_body == tuple(text(24))
        keys = [s.key for s in sent[:12]]
        before = dict(client.calls)
        results = await client.recall_broadcasts(NEWS, keys, "wrong")
        assert results.changed == frozenset(keys)
        assert (
            client.calls["official_account_msg_recall"]
            - before.get("official_account_msg_recall", 0)
            == 2
        )
        again = await client.recall_broadcasts(NEWS, [keys[0], "999_1_1"])
        assert again.changed == {keys[0]}  # recalling twice is a success (5.12)
        assert again.failed["999_1_1"].code == 10030
        history = await client.get_history(NEWS, 0)
        recalled = [m for m in history if m.place == 2]
        assert sorted(m.random for m in recalled) == list(range(1, 13))

    run(sandbox, body)


def test_a_send_retried_with_its_random_is_the_vendors_duplicate(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    now = [time.time()]
    sandbox = make_sandbox(
        clock=lambda: now[0], behaviour=Behaviour(broadcast_duplicate="body_and_random")
    )

    async def body(client: TencentClient) -> None:
        await seed(client, members=["a"], accounts=[NEWS])
        first = await client.send_broadcast(NEWS, BODY, random_id=7, online_only=True)
        now[0] += 2
        again = await client.send_broadcast(
            NEWS, BODY, random_id=7, cloud_custom_data="x", offline_push={"Title": "t"}
        )
        assert again == first
        assert len(await client.get_history(NEWS, 0)) == 1

    run(sandbox, body)
