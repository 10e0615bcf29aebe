# ruff: noqa: F811  (the fixtures are imported from test_providers_wechat)
"""The WeChat client's mass messages against the in-process sandbox: upload, send to each
audience with a clientmsgid, a lost answer resolved by the 45065 replay, 45066 waited out,
45067 refused, preview, delete and status (reference wechat-mp-mass-api.md sections 6 to 11)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import httpx
import pytest
from test_providers_wechat import Clocks, client_for, clocks, make_sandbox, run  # noqa: F401

from reconciler.errors import ProviderError
from reconciler.providers import MassSent
from reconciler.sandbox.behaviour import Behaviour
from reconciler.sandbox.server import Sandbox

TEXT = {"msgtype": "text", "text": {"content": "hello"}}
ARTICLE = {"title": "Week 49", "thumb_media_id": "thumb", "content": "<p>hi</p>"}
OPENIDS = [f"o{i:027d}" for i in range(3)]


def sent_effects(sandbox: Sandbox) -> list[list[str]]:
    _, _, out = sandbox.handle("GET", "/__sandbox/log", "limit=1000", b"")
    entries = json.loads(out)["entries"]
    return [e for entry in entries for e in entry["effects"] if e[0] == "mass_sent"]


def test_upload_send_status_and_delete(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks
) -> None:
    sandbox = make_sandbox()

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)
        media = await client.upload_news([ARTICLE, ARTICLE])
        news = {"msgtype": "mpnews", "mpnews": {"media_id": media}}
        every = await client.send_mass(news, clientmsgid="all-1", to_all=True)
        tagged = await client.send_mass(TEXT, clientmsgid="tag-1", tag=7)
        listed = await client.send_mass(TEXT, clientmsgid="ids-1", openids=OPENIDS)
        assert not every.replayed and len({every.msg_id, tagged.msg_id, listed.msg_id}) == 3
        assert await client.mass_status(every.msg_id) == "SEND_SUCCESS"
        await client.delete_mass(every.msg_id, 2)
        assert await client.mass_status(every.msg_id) == "SEND_SUCCESS"
        await client.delete_mass(every.msg_id)
        assert await client.mass_status(every.msg_id) == "DELETE"
        video = await client.upload_video("temporary", "A film", "about it")
        assert video and video != media
        assert await client.preview_mass(TEXT, wxname="someone") > 0
        assert await client.preview_mass(TEXT, openid=OPENIDS[0]) > 0

    run(sandbox, body)
    labels = [e[2] for e in sent_effects(sandbox)]
    assert labels[:2] == ["all", "tag:7"] and labels[2].startswith("openids:3:sha256:")


def test_a_lost_answer_is_resolved_by_the_replay(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks
) -> None:
    sandbox = make_sandbox(behaviour=Behaviour(wechat_lose_send_answers=True, wechat_retry_gap=0))

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)
        first = await client.send_mass(TEXT, clientmsgid="lost-1", to_all=True)
        assert first.replayed
        assert await client.send_mass(TEXT, clientmsgid="lost-1", to_all=True) == first
        assert client.calls["mass_sendall"] == 3

    run(sandbox, body)
    assert len(sent_effects(sandbox)) == 1


def test_45066_is_waited_out_a_minute_at_a_time(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks
) -> None:
    sandbox = make_sandbox(behaviour=Behaviour(wechat_lose_send_answers=True))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clocks.advance(seconds)

    async def body(http: httpx.AsyncClient) -> MassSent:
        client = client_for(http, clocks)
        client._sleep = sleep
        return await client.send_mass(TEXT, clientmsgid="slow-1", openids=OPENIDS)

    assert run(sandbox, body).replayed
    assert 60.0 in waits and len(sent_effects(sandbox)) == 1


def test_45066_past_the_replays_gives_up(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks
) -> None:
    sandbox = make_sandbox(behaviour=Behaviour(wechat_lose_send_answers=True))

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)  # its sleep moves no clock: 45066 every time
        with pytest.raises(ProviderError) as caught:
            await client.send_mass(TEXT, clientmsgid="stuck", to_all=True)
        assert caught.value.code == 45066

    run(sandbox, body)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clientmsgid": "x" * 65, "to_all": True}, "clientmsgid must be 1 to 64 bytes"),
        ({"clientmsgid": "a", "to_all": True, "tag": 1}, "a mass send needs exactly one audience"),
        ({"clientmsgid": "a"}, "a mass send needs exactly one audience"),
        ({"clientmsgid": "a", "openids": OPENIDS[:1]}, "a send by OpenID takes 2 to 10,000"),
    ],
)
def test_bad_sends_are_refused_before_any_call(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks, kwargs: dict[str, object], message: str
) -> None:
    sandbox = make_sandbox()

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)
        with pytest.raises(ProviderError, match=message):
            await client.send_mass(TEXT, **kwargs)  # type: ignore[arg-type]
        assert dict(client.calls) == {}

    run(sandbox, body)


def test_odd_answers_are_refused(make_sandbox: Callable[..., Sandbox], clocks: Clocks) -> None:
    sandbox = make_sandbox()

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)
        with pytest.raises(ProviderError, match="invalid msg id"):
            await client.mass_status(12345)
        with pytest.raises(ProviderError, match="lacks media_id"):
            client._media_id({}, "mass_upload_news")

    run(sandbox, body)


def test_the_retry_gap_behaviour_is_checked() -> None:
    assert Behaviour(wechat_retry_gap=-1).problems() == ["wechat_retry_gap must not be negative"]
    assert dataclasses.replace(Behaviour(), wechat_retry_gap=0).problems() == []
