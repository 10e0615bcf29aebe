"""The machinery both vendor clients share: pacing, retries, redaction, endpoint rules.

Clock, sleep and jitter are injected; network faults are real (a closed port, a server that never
answers, a server that answers 5xx) on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from reconciler import usersig
from reconciler.errors import ConfigError, ProviderError
from reconciler.providers.http import (
    Caller,
    Pacer,
    Request,
    RetryPolicy,
    batches,
    check_endpoint,
    install_log_redaction,
    redact,
    run_all,
)
from reconciler.providers.tencent import AdminSig
from reconciler.providers.wechat import TokenCache
from reconciler.secret import Secret, SecretSet


class FakeTime:
    """A clock that only moves when someone sleeps; records every pause asked for."""

    def __init__(self, advance: bool = True) -> None:
        self.advance = advance
        self.now = 0.0
        self.pauses: list[float] = []
        self.wakeups: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(round(seconds, 6))
        self.wakeups.append(round(self.now + seconds, 6))
        if self.advance:
            self.now += seconds
        await asyncio.sleep(0)


class MidRandom(random.Random):
    """Jitter pinned to the middle of its range (1.0), so backoff delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


# -- pacing ----------------------------------------------------------------------------------------


async def _hold(pacer: Pacer, api: str, ceiling: float | None = None) -> None:
    async with pacer.slot(api, ceiling):
        pass


def test_calls_of_one_api_are_evenly_spaced_at_the_configured_rate() -> None:
    fake = FakeTime()
    pacer = Pacer(100, concurrency=50, clock=fake.clock, sleep=fake.sleep)

    async def main() -> None:
        await asyncio.gather(*(_hold(pacer, "add_subscriber") for _ in range(5)))

    asyncio.run(main())
    # the first call starts at once, the others 10 ms apart
    assert fake.wakeups == [0.01, 0.02, 0.03, 0.04]


def test_each_api_has_its_own_budget_and_a_vendor_ceiling_wins() -> None:
    fake = FakeTime(advance=False)
    pacer = Pacer(200, concurrency=50, clock=fake.clock, sleep=fake.sleep)

    async def main() -> None:
        await asyncio.gather(
            *(_hold(pacer, "account_check", ceiling=100) for _ in range(3)),
            *(_hold(pacer, "add_subscriber", ceiling=200) for _ in range(3)),
        )

    asyncio.run(main())
    assert sorted(fake.wakeups) == [0.005, 0.01, 0.01, 0.02]
    assert pacer.rate(100) == 100
    assert pacer.rate(None) == 200
    assert Pacer(50).rate(200) == 50


def test_an_idle_api_does_not_bank_a_burst() -> None:
    fake = FakeTime()
    pacer = Pacer(10, clock=fake.clock, sleep=fake.sleep)

    async def main() -> None:
        await _hold(pacer, "x")
        fake.now = 5.0  # long idle
        await asyncio.gather(*(_hold(pacer, "x") for _ in range(3)))

    asyncio.run(main())
    assert fake.wakeups == [5.1, 5.2]


def test_calls_in_flight_never_exceed_concurrency() -> None:
    pacer = Pacer(1_000_000, concurrency=3)

    async def work() -> None:
        async with pacer.slot("x"):
            await asyncio.sleep(0.001)

    async def main() -> None:
        await asyncio.gather(*(work() for _ in range(20)))

    asyncio.run(main())
    assert pacer.max_in_flight == 3
    assert pacer.in_flight == 0


def test_the_real_clock_holds_the_rate() -> None:
    pacer = Pacer(200)

    async def main() -> float:
        start = time.monotonic()
        await asyncio.gather(*(_hold(pacer, "x") for _ in range(41)))
        return time.monotonic() - start

    elapsed = asyncio.run(main())
    assert elapsed >= 40 / 200 - 0.01


@pytest.mark.parametrize(("rate", "concurrency"), [(0, 1), (-1, 1), (1, 0)])
def test_limits_must_be_positive(rate: float, concurrency: int) -> None:
    with pytest.raises(ConfigError):
        Pacer(rate, concurrency)


# -- backoff ---------------------------------------------------------------------------------------


def test_backoff_doubles_from_400ms_and_is_capped() -> None:
    policy = RetryPolicy()
    rng = MidRandom()
    assert [round(policy.delay(n, rng), 6) for n in range(1, 8)] == [
        0.4,
        0.8,
        1.6,
        3.2,
        6.4,
        10.0,
        10.0,
    ]


def test_a_policy_needs_one_attempt() -> None:
    with pytest.raises(ConfigError, match="at least one attempt"):
        RetryPolicy(attempts=0)


def test_backoff_jitter_stays_within_20_percent() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    delays = [policy.delay(2, rng) for _ in range(200)]
    assert min(delays) >= 0.64
    assert max(delays) <= 0.96
    assert len(set(delays)) > 100


# -- redaction and endpoints -----------------------------------------------------------------------


def test_redact_masks_credential_parameters_and_given_secrets() -> None:
    url = (
        "https://console.tim.qq.com/v4/x/y?sdkappid=1&identifier=admin"
        "&usersig=eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80ryMyGiJanFJUZGUEFDAyMgH"
        "&random=9&contenttype=json"
    )
    assert redact(url) == (
        "https://console.tim.qq.com/v4/x/y?sdkappid=1&identifier=admin"
        "&usersig=***&random=9&contenttype=json"
    )
    assert (
        redact("GET /cgi-bin/token?grant_type=client_credential&appid=wx1&secret=abc")
        == "GET /cgi-bin/token?grant_type=client_credential&appid=wx1&secret=***"
    )
    assert redact('{"access_token": "tok123"}') == '{"access_token": "***"}'
    assert redact("key k3y and k3y", [Secret("k3y"), "", Secret("")]) == "key *** and ***"


def test_a_secret_set_masks_every_credential_it_ever_held_in_every_form_it_travels_in() -> None:
    sig = "eJyr*Vgrx-CdYr_Sy1SslIy0jNQ0gHzM1NS80ryM"
    secrets = SecretSet(Secret("short"), Secret(""))
    assert secrets.add(Secret(sig)) == Secret(sig)
    secrets.add(Secret(sig))  # remembered once
    secrets.add(Secret(sig + "-longer"))  # one holding another is masked whole
    assert len(secrets) == 3
    quoted = "eJyr%2AVgrx-CdYr_Sy1SslIy0jNQ0gHzM1NS80ryM"  # `*` as urlencode sends it
    assert secrets.redact(f"a {sig}, b {quoted}, c {sig}-longer, d short") == (
        "a ***, b ***, c ***, d ***"
    )
    # the raw answer: long credentials scrubbed (JSON-escaped too), short ones left alone
    answer = json.dumps({"ErrorInfo": f"expired: {sig}/é", "Short": "short"}).encode()
    assert secrets.scrub(answer) == answer.replace(sig.encode(), b"***")
    accented = "sig/withé-and-more-than-16"
    for ascii_only in (True, False):
        document = json.dumps({"x": accented}, ensure_ascii=ascii_only).encode()
        assert SecretSet(Secret(accented)).scrub(document) == b'{"x": "***"}'


def test_the_admin_sig_and_the_token_cache_remember_every_credential_they_gave_out() -> None:
    now = [1_700_000_000.0]
    sig = AdminSig(1400000000, Secret("k"), "administrator", expire=1000, clock=lambda: now[0])
    first = sig.current()
    sig.invalidate()  # the vendor called it expired
    now[0] += 1
    second = sig.current()
    assert first != second
    assert sig.secrets.redact(f"{first.reveal()} {second.reveal()} k") == "*** *** ***"
    cache = TokenCache(clock=lambda: now[0])
    cache.put(Secret("token-one-0123456789"), 7200)
    cache.drop(Secret("token-one-0123456789"))  # the vendor rejected it
    cache.put(Secret("token-two-0123456789"), 7200)
    assert cache.secrets.redact("token-one-0123456789 token-two-0123456789") == "*** ***"


def test_httpx_request_log_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    install_log_redaction()  # idempotent
    assert logging.getLogger("httpx").filters.count(logging.getLogger("httpx").filters[0]) == 1
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info(
            'HTTP Request: %s %s "%s"', "POST", "https://h/p?access_token=tok-XYZ&x=1", "200 OK"
        )
    assert caplog.messages == ['HTTP Request: POST https://h/p?access_token=***&x=1 "200 OK"']


@pytest.mark.parametrize(
    ("url", "verify", "expected"),
    [
        ("https://console.tim.qq.com/", True, "https://console.tim.qq.com"),
        ("http://127.0.0.1:8754", True, "http://127.0.0.1:8754"),
        ("http://localhost:8754/", False, "http://localhost:8754"),
        ("http://[::1]:8754", False, "http://[::1]:8754"),
    ],
)
def test_endpoints_accepted(url: str, verify: bool, expected: str) -> None:
    assert check_endpoint(url, verify_tls=verify) == expected


@pytest.mark.parametrize(
    ("url", "verify", "message"),
    [
        (
            "http://console.tim.qq.com",
            True,
            "endpoint 'http://console.tim.qq.com' must use https: credentials travel in the URL",
        ),
        (
            "https://api.weixin.qq.com",
            False,
            "TLS verification cannot be turned off for api.weixin.qq.com; only loopback endpoints"
            " may skip it",
        ),
        ("ftp://example.com", True, "endpoint 'ftp://example.com' is not an http(s) URL"),
        ("console.tim.qq.com", True, "endpoint 'console.tim.qq.com' is not an http(s) URL"),
    ],
)
def test_endpoints_refused(url: str, verify: bool, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_endpoint(url, verify_tls=verify)
    assert str(caught.value) == message


def test_batches_split_to_the_maximum() -> None:
    ids = [f"u{i}" for i in range(250)]
    parts = batches(ids, 50)
    assert [len(p) for p in parts] == [50, 50, 50, 50, 50]
    assert [x for p in parts for x in p] == ids
    assert [len(p) for p in batches(ids, 100)] == [100, 100, 50]
    assert batches([], 100) == []


def test_run_all_cancels_the_rest_on_the_first_failure() -> None:
    finished: list[str] = []

    async def slow() -> str:
        await asyncio.sleep(5)
        finished.append("slow")
        return "slow"

    async def bad() -> str:
        raise ProviderError("boom", api="tencent")

    async def main() -> None:
        assert await run_all([asyncio.sleep(0, "a"), asyncio.sleep(0, "b")]) == ["a", "b"]
        with pytest.raises(ProviderError, match="boom"):
            await run_all([slow(), bad()])

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 2
    assert finished == []


# -- credentials -----------------------------------------------------------------------------------


def test_admin_sig_is_generated_once_and_renewed_before_expiry() -> None:
    now = [1_700_000_000.0]
    sig = AdminSig(1400000000, Secret("k"), "administrator", expire=1000, clock=lambda: now[0])
    first = sig.current()
    assert sig.current() is first
    now[0] += 899  # 101 s left: more than 10%
    assert sig.current() is first
    now[0] += 2  # 99 s left
    second = sig.current()
    assert second != first
    assert sig.generated == 2
    decoded = usersig.verify(
        second.reveal(),
        sdkappid=1400000000,
        key="k",
        identifier="administrator",
        now=int(now[0]),
    )
    assert (decoded.time, decoded.expire) == (1_700_000_901, 1000)
    sig.invalidate()
    now[0] += 1
    assert sig.current() != second
    assert "k" not in repr(sig).replace("sdkappid", "").replace("identifier", "")
    assert sig.generated == 3


def test_token_cache_refreshes_shortly_before_expiry() -> None:
    now = [0.0]
    cache = TokenCache(clock=lambda: now[0])
    assert cache.get() is None
    token = Secret("t1")
    cache.put(token, 7200)
    now[0] = 6999.0
    assert cache.get() is token
    now[0] = 7000.0  # 200 s early, as WxJava
    assert cache.get() is None
    cache.put(Secret("t2"), 300)  # a short-lived token is refreshed after 90% of its life
    now[0] = 7269.0
    assert cache.get() == Secret("t2")
    now[0] = 7270.0
    assert cache.get() is None
    cache.put(Secret("t3"), 7200)
    cache.drop(Secret("other"))
    assert cache.get() == Secret("t3")
    cache.drop(Secret("t3"))
    assert cache.get() is None


# -- real network faults on 127.0.0.1 -----------------------------------------------------------


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)


def _reply(status: int, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


SECRET_SIG = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80ryMyGiJanFJUZGUEFDAyMgH"


def _caller(http: httpx.AsyncClient, endpoint: str, fake: FakeTime, timeout: float = 5) -> Caller:
    return Caller(
        http,
        vendor="tencent",
        endpoint=endpoint,
        pacer=Pacer(1000),
        secrets=SecretSet(Secret(SECRET_SIG)),
        rng=MidRandom(),
        timeout=timeout,
        sleep=fake.sleep,
    )


REQUEST = Request(
    api="get_official_account_info",
    action="get_official_account_info",
    method="POST",
    path="/v4/official_account_open_http_svc/get_official_account_info",
    object_id="@TOA#_news",
    body={},
)


def _params() -> dict[str, str]:
    return {"usersig": SECRET_SIG, "random": "1"}


def test_connection_refused_is_retried_then_reported_without_the_sig() -> None:
    fake = FakeTime()

    async def main() -> ProviderError:
        server, endpoint = await _serve(_read_request_and_close)
        server.close()
        await server.wait_closed()  # the port is now closed: connections are refused
        async with httpx.AsyncClient() as client:
            caller = _caller(client, endpoint, fake)
            with pytest.raises(ProviderError) as caught:
                await caller.call(REQUEST, _params)
            assert caller.calls == {"get_official_account_info": 5}
            assert caller.retries == {"get_official_account_info": 4}
            return caught.value

    error = asyncio.run(main())
    assert fake.pauses == [0.4, 0.8, 1.6, 3.2]
    assert str(error).startswith(
        "tencent (get_official_account_info) on @TOA#_news: gave up after 5 attempts: network"
        " error (ConnectError: "
    )
    assert (error.api, error.action, error.object_id, error.code) == (
        "tencent",
        "get_official_account_info",
        "@TOA#_news",
        None,
    )
    assert SECRET_SIG not in str(error)
    cause = error.__cause__
    assert cause is not None and SECRET_SIG not in str(cause.__cause__)


async def _read_request_and_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.close()


def test_a_server_that_never_answers_times_out_and_is_retried() -> None:
    fake = FakeTime()
    hung: list[int] = []

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(1)
        try:
            await asyncio.sleep(30)
        finally:
            writer.close()

    async def main() -> ProviderError:
        server, endpoint = await _serve(never)
        async with server, httpx.AsyncClient() as client:
            caller = _caller(client, endpoint, fake, timeout=0.05)
            caller.retry = RetryPolicy(attempts=2)
            with pytest.raises(ProviderError) as caught:
                await caller.call(REQUEST, _params)
            server.close()
            return caught.value

    error = asyncio.run(main())
    assert len(hung) == 2
    assert fake.pauses == [0.4]
    assert "gave up after 2 attempts: timed out (ReadTimeout" in str(error)
    assert SECRET_SIG not in str(error)


def test_http_5xx_is_retried_until_an_answer_and_4xx_is_not() -> None:
    fake = FakeTime()
    answers = [_reply(503, b"busy"), _reply(502, b""), _reply(200, b'{"ErrorCode": 0}')]
    seen: list[bytes] = []

    async def scripted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        reply = answers.pop(0) if answers else _reply(404, b"no such path")
        seen.append(reply[:12])
        writer.write(reply)
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, endpoint = await _serve(scripted)
        async with server, httpx.AsyncClient() as client:
            caller = _caller(client, endpoint, fake)
            assert await caller.call(REQUEST, _params) == {"ErrorCode": 0}
            assert caller.calls == {"get_official_account_info": 3}
            with pytest.raises(ProviderError) as caught:
                await caller.call(REQUEST, _params)
            assert str(caught.value) == (
                "tencent (get_official_account_info) on @TOA#_news: unexpected HTTP status 404"
            )
            assert caller.calls == {"get_official_account_info": 4}
            server.close()

    asyncio.run(main())
    assert fake.pauses == [0.4, 0.8]


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"<html>", "response is not JSON"), (b"[1, 2]", "response is not a JSON object")],
)
def test_an_unreadable_answer_is_an_error_not_a_retry(body: bytes, message: str) -> None:
    fake = FakeTime()

    async def scripted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_reply(200, body))
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, endpoint = await _serve(scripted)
        async with server, httpx.AsyncClient() as client:
            caller = _caller(client, endpoint, fake)
            with pytest.raises(ProviderError) as caught:
                await caller.call(REQUEST, _params)
            assert str(caught.value) == (
                f"tencent (get_official_account_info) on @TOA#_news: {message}"
            )
            server.close()

    asyncio.run(main())
    assert fake.pauses == []


def test_a_garbled_encoding_is_an_error_not_a_retry() -> None:
    fake = FakeTime()

    async def scripted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        body = b"this is not gzip"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, endpoint = await _serve(scripted)
        async with server, httpx.AsyncClient() as client:
            caller = _caller(client, endpoint, fake)
            with pytest.raises(ProviderError) as caught:
                await caller.call(REQUEST, _params)
            assert str(caught.value).startswith(
                "tencent (get_official_account_info) on @TOA#_news: request failed: DecodingError"
            )
            assert caller.calls == {"get_official_account_info": 1}
            server.close()

    asyncio.run(main())


def test_a_request_repr_leaves_the_body_out() -> None:
    request = Request(
        api="stable_token",
        action="stable_token",
        method="POST",
        path="/cgi-bin/stable_token",
        body={"secret": "app-secret-value"},
    )
    assert repr(request) == (
        "Request(api='stable_token', action='stable_token', method='POST',"
        " path='/cgi-bin/stable_token', object_id='', ceiling=None)"
    )
