"""The WeChat client against the sandbox: access token handling and the mass-send speed.

The sandbox and the client each get a hand-moved clock, so token lifetimes are tested without
waiting; the http client points at the real WeChat host through the in-process transport.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from reconciler.errors import ConfigError, ProviderError
from reconciler.providers import MassSpeedInfo, Pacer, WeChatClient
from reconciler.providers.http import RetryPolicy
from reconciler.sandbox import defaults
from reconciler.sandbox.server import Sandbox, SandboxOptions
from reconciler.secret import Secret

T = TypeVar("T")
ENDPOINT = "https://api.weixin.qq.com"


class Clocks:
    """The sandbox's wall clock and the client's monotonic clock, moved together or apart."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 1000.0

    def advance(self, seconds: float, *, client: bool = True) -> None:
        self.wall += seconds
        if client:
            self.mono += seconds


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def make_sandbox(clocks: Clocks) -> Iterator[Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def make(**options: Any) -> Sandbox:
        options.setdefault("db_path", ":memory:")
        options.setdefault("clock", lambda: clocks.wall)
        sandbox = Sandbox(SandboxOptions(**options))
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.close()


def client_for(
    http: httpx.AsyncClient, clocks: Clocks, secret: str = defaults.WECHAT_SECRET, **options: Any
) -> WeChatClient:
    return WeChatClient(
        http,
        app_id=defaults.WECHAT_APPID,
        secret=Secret(secret),
        pacer=Pacer(200, 16),
        rng=random.Random(0),
        sleep=no_sleep,
        clock=lambda: clocks.mono,
        **options,
    )


def run(sandbox: Sandbox, body: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with httpx.AsyncClient(
            transport=sandbox.async_transport(), base_url=ENDPOINT
        ) as http:
            return await body(http)

    return asyncio.run(main())


def test_speed_is_read_and_set_with_one_token(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks
) -> None:
    sandbox = make_sandbox()

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)
        assert await client.get_mass_speed() == MassSpeedInfo(speed=0, realspeed=80.0)
        await client.set_mass_speed(3)
        assert await client.get_mass_speed() == MassSpeedInfo(speed=3, realspeed=30.0)
        assert dict(client.calls) == {"stable_token": 1, "mass_speed_get": 2, "mass_speed_set": 1}

    run(sandbox, body)


def test_an_out_of_range_speed_is_refused_before_any_call(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks
) -> None:
    sandbox = make_sandbox()

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)
        with pytest.raises(ProviderError) as caught:
            await client.set_mass_speed(5)
        assert str(caught.value) == "wechat (mass_speed_set): speed 5 is out of range 0..4"
        assert dict(client.calls) == {}

    run(sandbox, body)


def test_the_token_is_cached_until_shortly_before_it_expires(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks
) -> None:
    sandbox = make_sandbox()

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)
        await client.get_mass_speed()
        clocks.advance(6999)  # the sandbox issues 7200 s tokens; 200 s before the end is kept
        await client.get_mass_speed()
        assert client.calls["stable_token"] == 1
        clocks.advance(1)
        await client.get_mass_speed()
        assert client.calls["stable_token"] == 2
        assert client.calls["mass_speed_get"] == 3

    run(sandbox, body)


def test_concurrent_calls_share_one_token_fetch(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks
) -> None:
    sandbox = make_sandbox()

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)
        speeds = await asyncio.gather(*(client.get_mass_speed() for _ in range(10)))
        assert {s.speed for s in speeds} == {0}
        assert dict(client.calls) == {"stable_token": 1, "mass_speed_get": 10}

    run(sandbox, body)


def test_a_token_invalidated_elsewhere_is_refreshed_once(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks
) -> None:
    sandbox = make_sandbox()

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)
        await client.get_mass_speed()
        clocks.advance(60, client=False)
        # Another service force-refreshes the stable token; ours dies after the 5-minute overlap.
        forced = await http.post(
            "/cgi-bin/stable_token",
            json={
                "grant_type": "client_credential",
                "appid": defaults.WECHAT_APPID,
                "secret": defaults.WECHAT_SECRET,
                "force_refresh": True,
            },
        )
        assert forced.json()["expires_in"] == 7200
        clocks.advance(301, client=False)
        assert await client.get_mass_speed() == MassSpeedInfo(0, 80.0)  # 40001, refresh, again
        assert dict(client.calls) == {"stable_token": 2, "mass_speed_get": 3}
        assert client.retries == {}

    run(sandbox, body)


def test_an_expired_token_is_refreshed(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks
) -> None:
    sandbox = make_sandbox()

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)
        await client.set_mass_speed(1)
        clocks.advance(7300, client=False)  # the client's clock says the token is still fresh
        await client.set_mass_speed(2)  # 42001, refresh, again
        assert dict(client.calls) == {"stable_token": 2, "mass_speed_set": 3}
        assert (await client.get_mass_speed()).speed == 2

    run(sandbox, body)


def test_a_wrong_secret_fails_without_showing_it(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = make_sandbox()
    secret = "wrong-wechat-secret-0123456789"

    async def body(http: httpx.AsyncClient) -> ProviderError:
        client = client_for(http, clocks, secret=secret)
        with pytest.raises(ProviderError) as caught:
            await client.get_mass_speed()
        assert dict(client.calls) == {"stable_token": 1}
        assert secret not in repr(client)
        return caught.value

    with caplog.at_level(logging.DEBUG):
        error = run(sandbox, body)
    assert str(error) == (
        f"wechat (stable_token) on {defaults.WECHAT_APPID}: invalid appsecret [vendor code 40125]"
    )
    assert secret not in caplog.text


def test_busy_answers_are_retried_and_secrets_stay_out_of_logs(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = make_sandbox(fail_rate=0.4, seed=5)
    tokens: list[str] = []

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks, retry=RetryPolicy(attempts=10))
        for speed in (4, 2, 0, 3):
            await client.set_mass_speed(speed)
            assert (await client.get_mass_speed()).speed == speed
        assert sum(client.retries.values()) > 0
        token = await client.access_token()
        tokens.append(token.reveal())

    with caplog.at_level(logging.DEBUG):
        run(sandbox, body)
    assert "retry" in caplog.text
    assert tokens[0] not in caplog.text
    assert defaults.WECHAT_SECRET not in caplog.text


def test_over_real_http_on_loopback(make_sandbox_server: Callable[..., Any]) -> None:
    server = make_sandbox_server()

    async def main() -> None:
        async with httpx.AsyncClient() as http:
            client = WeChatClient(
                http,
                app_id=defaults.WECHAT_APPID,
                secret=Secret(defaults.WECHAT_SECRET),
                pacer=Pacer(),
                endpoint=server.base_url,
            )
            await client.set_mass_speed(4)
            assert await client.get_mass_speed() == MassSpeedInfo(4, 10.0)

    asyncio.run(main())


def test_concurrent_first_calls_wait_for_one_token_fetch(
    make_sandbox: Callable[..., Sandbox], clocks: Clocks
) -> None:
    sandbox = make_sandbox(latency_ms=5)  # the fetch takes time: the others queue on the lock

    async def body(http: httpx.AsyncClient) -> None:
        client = client_for(http, clocks)
        await asyncio.gather(*(client.get_mass_speed() for _ in range(5)))
        assert dict(client.calls) == {"stable_token": 1, "mass_speed_get": 5}

    run(sandbox, body)


def test_a_token_rejected_again_after_refresh_is_an_error(clocks: Clocks) -> None:
    # Every request lands 8000 s after the one before: each token is expired on its first use.
    def leaping() -> float:
        clocks.wall += 8000
        return clocks.wall

    sandbox = Sandbox(SandboxOptions(db_path=":memory:", clock=leaping))

    async def body(http: httpx.AsyncClient) -> ProviderError:
        client = client_for(http, clocks)
        with pytest.raises(ProviderError) as caught:
            await client.get_mass_speed()
        assert dict(client.calls) == {"stable_token": 2, "mass_speed_get": 2}
        return caught.value

    try:
        error = run(sandbox, body)
    finally:
        sandbox.close()
    assert (error.action, error.code) == ("mass_speed_get", 42001)


class OddWeChat:
    """A real HTTP server on 127.0.0.1 answering each path with a scripted JSON body."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1].split("?")[0]
        length = next(
            int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length")
        )
        await reader.readexactly(length)
        out = json.dumps(self.answers[path]).encode("utf-8")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(out)}\r\n\r\n".encode()
            + out
        )
        await writer.drain()
        writer.close()


TOKEN = {"access_token": "tok-0123456789", "expires_in": 7200}


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (
            {"/cgi-bin/stable_token": {"access_token": "", "expires_in": 7200}},
            "wechat (stable_token) on wxsandbox00000000: token answer lacks"
            " access_token/expires_in",
        ),
        (
            {"/cgi-bin/stable_token": TOKEN, "/cgi-bin/message/mass/speed/get": {"errcode": "0"}},
            "wechat (mass_speed_get) on wxsandbox00000000: errcode is not an integer",
        ),
        (
            {"/cgi-bin/stable_token": TOKEN, "/cgi-bin/message/mass/speed/get": {"realspeed": 3}},
            "wechat (mass_speed_get): speed answer lacks speed/realspeed",
        ),
        (
            {
                "/cgi-bin/stable_token": TOKEN,
                "/cgi-bin/message/mass/speed/get": {
                    "errcode": 48001,
                    "errmsg": "api unauthorized for tok-0123456789",
                },
            },
            "wechat (mass_speed_get) on wxsandbox00000000: api unauthorized for ***"
            " [vendor code 48001]",
        ),
    ],
)
def test_odd_answers_are_errors(
    clocks: Clocks, answers: dict[str, dict[str, Any]], message: str
) -> None:
    vendor = OddWeChat(answers)

    async def main() -> str:
        server = await asyncio.start_server(vendor.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, httpx.AsyncClient() as http:
            client = client_for(http, clocks, endpoint=f"http://127.0.0.1:{port}")
            with pytest.raises(ProviderError) as caught:
                await client.get_mass_speed()
            server.close()
            return str(caught.value)

    assert asyncio.run(main()) == message


def test_a_client_needs_an_app_id_and_defaults_to_the_wechat_host(clocks: Clocks) -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as http:
            with pytest.raises(ConfigError, match="needs an AppID"):
                WeChatClient(http, app_id="", secret=Secret("s"), pacer=Pacer())
            client = WeChatClient(http, app_id="wx1", secret=Secret("s3cr3t"), pacer=Pacer())
            assert repr(client) == (
                "WeChatClient(endpoint='https://api.weixin.qq.com', app_id='wx1')"
            )

    asyncio.run(main())
