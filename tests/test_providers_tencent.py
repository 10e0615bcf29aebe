"""The Tencent IM client against the sandbox, in-process (its httpx transport) and over loopback.

The http client points at the real vendor domain: the sandbox transport answers any host, so a
test proves nothing would leave the process. Clock, sleep and random are injected.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from reconciler import usersig
from reconciler.errors import ConfigError, ProviderError
from reconciler.model import ProfileField
from reconciler.providers import (
    AccountInfo,
    CreateOutcome,
    ItemFailure,
    ItemResults,
    Pacer,
    Subscriber,
    TencentClient,
    tencent,
)
from reconciler.providers.http import RetryPolicy
from reconciler.providers.tencent import _decode_page, _DecodedSubscribers
from reconciler.sandbox import defaults
from reconciler.sandbox.server import Sandbox, SandboxOptions
from reconciler.secret import Secret

T = TypeVar("T")
ENDPOINT = "https://console.tim.qq.com"
NEWS = "@TOA#_news"


class FakeSleep:
    """Backoff pauses are recorded, not slept."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def make(**options: Any) -> Sandbox:
        options.setdefault("db_path", ":memory:")
        options.setdefault("calls_per_second", 0)  # unlimited unless a test is about limits
        sandbox = Sandbox(SandboxOptions(**options))
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.close()


def run(
    sandbox: Sandbox,
    body: Callable[[TencentClient], Awaitable[T]],
    *,
    pacer: Pacer | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    secret_key: str = defaults.SECRET_KEY,
    **client_options: Any,
) -> T:
    """Run `body` with a Tencent client on `sandbox`'s in-process transport."""

    async def main() -> T:
        async with httpx.AsyncClient(
            transport=sandbox.async_transport(), base_url=ENDPOINT
        ) as http:
            client = TencentClient(
                http,
                sdkappid=defaults.SDKAPPID,
                identifier=defaults.ADMIN,
                secret_key=Secret(secret_key),
                pacer=pacer or Pacer(1_000_000, 16),
                rng=random.Random(0),
                sleep=sleep or FakeSleep(),
                **client_options,
            )
            return await body(client)

    return asyncio.run(main())


def users(n: int, prefix: str = "u") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


async def seed(client: TencentClient, *, members: list[str], accounts: list[str]) -> None:
    failed = await client.import_accounts(["owner", *members])
    assert failed.ok
    for account in accounts:
        # EXISTED too: under faults, a create whose answer was lost is retried and finds its account
        await client.create_account(account, "owner", {ProfileField.NAME: account[6:]})


# -- accounts --------------------------------------------------------------------------------------


def test_import_and_check_users_in_batches_of_100(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    ids = users(250)

    async def body(client: TencentClient) -> None:
        result = await client.import_accounts([*ids, "bad id over thirty-two bytes long....", *ids])
        assert result.changed == frozenset(ids)
        assert result.failed == {
            "bad id over thirty-two bytes long....": ItemFailure(None, "import failed")
        }
        await client.import_account("single")
        found = await client.check_accounts([*ids, "single", "ghost"])
        assert found == {**dict.fromkeys(ids, True), "single": True, "ghost": False}
        assert dict(client.calls) == {
            "multiaccount_import": 3,
            "account_import": 1,
            "account_check": 3,
        }

    run(sandbox, body)


# -- official accounts -------------------------------------------------------------------------


def test_create_read_modify_destroy(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()

    async def body(client: TencentClient) -> None:
        await client.import_account("ops_admin")
        profile = {
            ProfileField.NAME: "Daily News",
            ProfileField.INTRODUCTION: "Morning headlines",
            ProfileField.FACE_URL: "https://example.com/news.png",
            ProfileField.ORGANIZATION: "Example Media",
            ProfileField.CUSTOM_STRING: "tier=gold",
            ProfileField.MAX_SUBSCRIBER_NUM: 5000,
        }
        assert await client.create_account(NEWS, "ops_admin", profile) == CreateOutcome.CREATED
        # a retry after a lost answer, or a second run, finds it there: not an error
        assert await client.create_account(NEWS, "ops_admin", profile) == CreateOutcome.EXISTED
        found = await client.get_accounts([NEWS, "@TOA#_ghost"])
        info = found[NEWS]
        assert set(found) == {NEWS}
        assert info == AccountInfo(
            id=NEWS,
            owner="ops_admin",
            name="Daily News",
            introduction="Morning headlines",
            face_url="https://example.com/news.png",
            organization="Example Media",
            custom_string="tier=gold",
            max_subscriber_num=5000,
            subscriber_num=0,
            create_time=info.create_time,
            last_msg_time=0,
        )
        assert abs(info.create_time - time.time()) < 60
        assert info.profile == profile

        await client.modify_account(NEWS, {ProfileField.NAME: "Evening News"})
        await client.modify_account(NEWS, {})  # nothing to say: no call
        assert (await client.get_accounts([NEWS]))[NEWS].name == "Evening News"

        assert await client.destroy_account(NEWS) is True
        assert await client.destroy_account(NEWS) is False  # already gone: converged
        assert await client.get_accounts([NEWS]) == {}
        assert dict(client.calls) == {
            "account_import": 1,
            "create_official_account": 2,
            "get_official_account_info": 3,
            "modify_official_account_base_info": 1,
            "destroy_official_account": 2,
        }

    run(sandbox, body)


def test_info_is_read_50_ids_per_call_and_missing_ids_are_absent(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    accounts = [f"@TOA#_a{i:03d}" for i in range(120)]

    async def body(client: TencentClient) -> None:
        await seed(client, members=[], accounts=accounts)
        wanted = [*accounts, *(f"@TOA#_missing{i}" for i in range(5))]
        found = await client.get_accounts(wanted)
        assert sorted(found) == accounts
        assert found["@TOA#_a007"].name == "a007"
        assert client.calls["get_official_account_info"] == 3  # 125 ids: 50 + 50 + 25

    run(sandbox, body)


# -- subscribers -----------------------------------------------------------------------------------


def test_membership_changes_batch_by_100_and_report_items(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    members = users(250)

    async def body(client: TencentClient) -> None:
        await seed(client, members=members, accounts=[NEWS])
        first = await client.add_subscribers(NEWS, [*members[:10], "not_imported"])
        assert first == ItemResults(
            changed=frozenset(members[:10]),
            failed={"not_imported": ItemFailure(None, "add_subscriber result 0 for not_imported")},
        )
        # already subscribed is converged, not a failure
        second = await client.add_subscribers(NEWS, members)
        assert second.changed == frozenset(members[10:])
        assert second.unchanged == frozenset(members[:10])
        assert second.ok
        assert client.calls["add_subscriber"] == 1 + 3

        removed = await client.remove_subscribers(NEWS, [*members[:120], "never_there"])
        assert removed == ItemResults(
            changed=frozenset(members[:120]), unchanged=frozenset({"never_there"})
        )
        assert client.calls["delete_subscriber"] == 2
        page = await client.get_subscribers(NEWS)
        assert [s.user_id for s in page.subscribers] == members[120:]
        assert page.total == 130

    run(sandbox, body)


def test_subscribers_are_paged_to_the_end(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    members = users(450)

    async def body(client: TencentClient) -> None:
        await seed(client, members=members, accounts=[NEWS, "@TOA#_empty"])
        assert (await client.add_subscribers(NEWS, members)).ok
        await client.set_subscriber_profile(NEWS, "u0007", "vip")
        before = client.calls["get_subscriber_info"]
        page = await client.get_subscribers(NEWS)
        assert client.calls["get_subscriber_info"] - before == 3  # 200 + 200 + 50
        assert [s.user_id for s in page.subscribers] == members
        assert page.total == 450
        vip = page.subscribers[7]
        assert vip == Subscriber("u0007", "vip", vip.subscribe_time, "AcceptAndNotify")
        empty = await client.get_subscribers("@TOA#_empty")
        assert (empty.subscribers, empty.total) == ((), 0)

    run(sandbox, body)


def test_the_sandboxs_pages_are_decoded_into_records_in_one_pass(
    make_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[type] = []

    def watched(content: bytes) -> dict[str, Any]:
        page = _decode_page(content)
        decoded.append(type(page["SubscriberList"]))
        return page

    monkeypatch.setattr(tencent, "_decode_page", watched)

    async def body(client: TencentClient) -> None:
        await seed(client, members=users(250), accounts=[NEWS])
        assert (await client.add_subscribers(NEWS, users(250))).ok
        assert len((await client.get_subscribers(NEWS)).subscribers) == 250

    run(make_sandbox(), body)
    assert decoded == [_DecodedSubscribers, _DecodedSubscribers]


def test_a_page_of_another_shape_is_plain_json_read_field_by_field() -> None:
    documented: dict[str, Any] = {
        "ActionStatus": "OK",
        "ErrorInfo": "",
        "ErrorCode": 0,
        "Next": "TGSOTk=",
        "SubscriberNum": 2,
        "SubscriberList": [
            {
                "Subscriber_Account": "u1",
                "SubscribeTime": 1,
                "CustomString": "vip",
                "MsgFlag": "AcceptAndNotify",
                "LastSendMsgTime": 5,  # reference 5.5: a field the client does not keep
            },
            {"Subscriber_Account": "u2"},
        ],
    }
    page = _decode_page(json.dumps(documented).encode())
    assert type(page["SubscriberList"]) is _DecodedSubscribers
    assert page["SubscriberList"] == [
        Subscriber("u1", "vip", 1, "AcceptAndNotify"),
        Subscriber("u2"),
    ]
    changes: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d["SubscriberList"][1].update(SubscribeTime="12"),
        lambda d: d["SubscriberList"][1].update(Subscriber_Account=""),
        lambda d: d["SubscriberList"][1].update(MsgFlag=None),
        lambda d: d.update(SubscriberList=None),
        lambda d: d.pop("ErrorCode"),
    ]
    for change in changes:
        shape = copy.deepcopy(documented)
        change(shape)
        odd = json.dumps(shape).encode()
        assert _decode_page(odd) == json.loads(odd)
        assert type(_decode_page(odd)["SubscriberList"]) is not _DecodedSubscribers


def test_subscriptions_of_a_user_are_paged_to_the_end(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    accounts = [f"@TOA#_a{i:03d}" for i in range(205)]

    async def body(client: TencentClient) -> None:
        await seed(client, members=["reconciler-inventory"], accounts=accounts)
        added = await asyncio.gather(
            *(client.add_subscribers(a, ["reconciler-inventory"]) for a in accounts)
        )
        assert all(r.ok for r in added)
        await client.set_subscriber_profile(accounts[3], "reconciler-inventory", '{"v":1}')
        subs = await client.get_subscriptions("reconciler-inventory")
        assert client.calls["get_subscribed_official_account_list"] == 2
        # subscriptions come in subscription order; the adds ran concurrently
        assert sorted(s.account.id for s in subs) == accounts
        by_id = {s.account.id: s for s in subs}
        assert by_id[accounts[3]].custom_string == '{"v":1}'
        assert by_id[accounts[3]].account.name == "a003"
        assert by_id[accounts[0]].custom_string == ""
        assert await client.get_subscriptions("nobody") == []

    run(sandbox, body)


# -- errors ----------------------------------------------------------------------------------------


def test_vendor_errors_are_mapped_with_api_action_object_and_code(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()

    async def body(client: TencentClient) -> list[ProviderError]:
        errors: list[ProviderError] = []
        for call in (
            client.create_account(NEWS, "nobody", {ProfileField.NAME: "x"}),
            client.modify_account("@TOA#_ghost", {ProfileField.NAME: "x"}),
            client.get_subscribers("@TOA#_ghost"),
        ):
            with pytest.raises(ProviderError) as caught:
                await call
            errors.append(caught.value)
        failed = await client.add_subscribers("@TOA#_ghost", ["a", "b"])
        assert set(failed.failed) == {"a", "b"}
        assert failed.failed["a"].code == 130004
        assert client.retries == {}
        return errors

    errors = run(sandbox, body)
    assert [(e.api, e.action, e.object_id, e.code) for e in errors] == [
        ("tencent", "create_official_account", NEWS, 70107),
        ("tencent", "modify_official_account_base_info", "@TOA#_ghost", 130004),
        ("tencent", "get_subscriber_info", "@TOA#_ghost", 130004),
    ]
    assert str(errors[0]) == (
        "tencent (create_official_account) on @TOA#_news: Owner_Account has not been imported"
        " [vendor code 70107]"
    )


def test_a_wrong_key_fails_without_showing_key_or_sig(
    make_sandbox: Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = make_sandbox()
    key = "wrong-secret-key-1234567890"
    sigs: list[str] = []

    async def body(client: TencentClient) -> ProviderError:
        with pytest.raises(ProviderError) as caught:
            await client.import_account("alice")
        # a batch refused as a whole: every id is reported failed, with the code
        batch = await client.import_accounts(["alice", "bob"])
        assert sorted(batch.failed) == ["alice", "bob"]
        assert {f.code for f in batch.failed.values()} == {70009}
        sigs.append(client.sig.current().reveal())
        assert all(sigs[0] not in f.message for f in batch.failed.values())
        return caught.value

    with caplog.at_level(logging.DEBUG):
        error = run(sandbox, body, secret_key=key)
    assert (error.action, error.code) == ("account_import", 70009)
    text = "\n".join([str(error), repr(error), caplog.text])
    assert key not in text
    assert sigs[0] not in text
    assert "usersig=" not in caplog.text or "usersig=***" in caplog.text


def test_secrets_never_reach_logs_even_at_debug(
    make_sandbox: Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = make_sandbox(fail_rate=0.5, seed=3)
    sigs: list[str] = []

    async def body(client: TencentClient) -> None:
        await client.import_accounts(users(30))
        sigs.append(client.sig.current().reveal())
        assert repr(client) == (
            "TencentClient(endpoint='https://console.tim.qq.com', sig=AdminSig(sdkappid="
            f"{defaults.SDKAPPID}, identifier='administrator'))"
        )

    with caplog.at_level(logging.DEBUG):
        run(sandbox, body)
    assert "retry" in caplog.text
    assert defaults.SECRET_KEY not in caplog.text
    assert sigs[0] not in caplog.text


# -- retries and limits ----------------------------------------------------------------------------


def test_retries_under_faults_converge(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(fail_rate=0.25, seed=11)
    members = users(300)
    sleep = FakeSleep()

    async def body(client: TencentClient) -> None:
        await seed(client, members=members, accounts=[NEWS])
        added = await client.add_subscribers(NEWS, members)
        assert added.ok
        assert added.changed | added.unchanged == frozenset(members)
        page = await client.get_subscribers(NEWS)
        assert [s.user_id for s in page.subscribers] == members
        assert sum(client.retries.values()) > 0

    run(sandbox, body, sleep=sleep, retry=RetryPolicy(attempts=8))
    assert sleep.pauses
    assert all(0.32 <= p <= 10.0 for p in sleep.pauses)


def test_the_pacer_keeps_a_run_under_the_vendor_limit(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    # The sandbox enforces the vendor's own limits (200/s, 100/s for account_check).
    sandbox = make_sandbox(calls_per_second=None)
    ids = users(5000)

    async def body(client: TencentClient) -> float:
        started = time.monotonic()
        await asyncio.gather(
            client.check_accounts(ids),  # 50 calls at 100/s
            *(client.get_accounts([f"@TOA#_{i}"]) for i in range(150)),  # 150 calls at 200/s
        )
        assert client.retries == {}  # no 60007 was ever seen
        return time.monotonic() - started

    elapsed = run(sandbox, body, pacer=Pacer(200, 16))
    assert 0.7 <= elapsed < 5


def test_unpaced_the_same_load_trips_the_sandbox_limit(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    # The control for the test above: the sandbox's limit is live, so the pacer is what kept the
    # run clean. Raw requests, as fast as the in-process transport goes.
    sandbox = make_sandbox(calls_per_second=None)
    sig = usersig.generate(
        defaults.SDKAPPID, defaults.SECRET_KEY, defaults.ADMIN, now=int(time.time())
    )
    params = {"sdkappid": str(defaults.SDKAPPID), "identifier": defaults.ADMIN, "usersig": sig}
    body = {"OfficialAccountIdList": [{"Official_Account": NEWS}]}

    async def main() -> list[int]:
        async with httpx.AsyncClient(transport=sandbox.async_transport()) as http:
            replies = [
                await http.post(
                    ENDPOINT + "/v4/official_account_open_http_svc/get_official_account_info",
                    params={**params, "random": str(i), "contenttype": "json"},
                    json=body,
                )
                for i in range(300)
            ]
        return [r.json()["ErrorCode"] for r in replies]

    codes = asyncio.run(main())
    assert codes.count(60007) > 0
    assert set(codes) == {0, 60007}


def test_an_expired_sig_is_renewed_and_the_call_retried(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    skew = [-100_000.0]  # the client's clock is a day behind: its first sig is already expired

    async def fix_clock(seconds: float) -> None:
        skew[0] = 0.0

    async def body(client: TencentClient) -> None:
        await client.import_account("alice")
        assert client.retries == {"account_import": 1}
        assert client.sig.generated == 2

    run(
        sandbox,
        body,
        sleep=fix_clock,
        wall_clock=lambda: time.time() + skew[0],
        sig_expire=3600,
    )


def test_over_real_http_on_loopback_with_redacted_request_logs(
    make_sandbox_server: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    server = make_sandbox_server(calls_per_second=0)
    sigs: list[str] = []

    async def main() -> None:
        async with httpx.AsyncClient() as http:
            client = TencentClient(
                http,
                sdkappid=defaults.SDKAPPID,
                identifier=defaults.ADMIN,
                secret_key=Secret(defaults.SECRET_KEY),
                pacer=Pacer(),
                endpoint=server.base_url,
            )
            await seed(client, members=users(3), accounts=[NEWS])
            assert (await client.add_subscribers(NEWS, users(3))).ok
            page = await client.get_subscribers(NEWS)
            assert [s.user_id for s in page.subscribers] == users(3)
            sigs.append(client.sig.current().reveal())

    with caplog.at_level(logging.INFO, logger="httpx"):
        asyncio.run(main())
    requests = [m for m in caplog.messages if m.startswith("HTTP Request: POST")]
    assert len(requests) == 4  # import, create, add, one page
    assert all("usersig=***&" in m for m in requests)
    assert sigs[0] not in caplog.text


# -- a vendor that misbehaves in ways the sandbox never does ---------------------------------------


class OddVendor:
    """A real HTTP server on 127.0.0.1 answering each command with the next scripted JSON body.

    The sandbox is a faithful vendor; these are the answers the reference leaves open (items
    without ids, missing per-item results, cursors that do not move), decoded defensively.
    """

    def __init__(self, answers: dict[str, list[dict[str, Any]]]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1]
        length = next(
            int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length")
        )
        body = await reader.readexactly(length)
        command = target.split("?")[0].rsplit("/", 1)[1]
        self.seen.append((command, body.decode("utf-8")))
        queue = self.answers[command]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        out = json.dumps(answer).encode("utf-8")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(out)}\r\n\r\n".encode()
            + out
        )
        await writer.drain()
        writer.close()


def odd(
    answers: dict[str, list[dict[str, Any]]], body: Callable[[TencentClient], Awaitable[T]]
) -> T:
    vendor = OddVendor(answers)

    async def main() -> T:
        server = await asyncio.start_server(vendor.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, httpx.AsyncClient() as http:
            client = TencentClient(
                http,
                sdkappid=defaults.SDKAPPID,
                identifier=defaults.ADMIN,
                secret_key=Secret(defaults.SECRET_KEY),
                pacer=Pacer(1000, 1),  # one at a time: answers go out in script order
                endpoint=f"http://127.0.0.1:{port}",
                rng=random.Random(0),
                sleep=FakeSleep(),
            )
            try:
                return await body(client)
            finally:
                server.close()

    return asyncio.run(main())


def OK(**fields: Any) -> dict[str, Any]:
    return {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", **fields}


def FAIL(code: int, info: str = "failed", **fields: Any) -> dict[str, Any]:
    return {"ActionStatus": "FAIL", "ErrorCode": code, "ErrorInfo": info, **fields}


async def raises(call: Awaitable[Any]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


def test_odd_account_check_answers_are_errors() -> None:
    answers = {
        "account_check": [
            OK(ResultItem=[{"UserID": "a", "ResultCode": 70402, "ResultInfo": "bad"}]),
            OK(ResultItem=[{"UserID": "a", "ResultCode": 0, "AccountStatus": "Imported"}]),
        ]
    }

    async def body(client: TencentClient) -> list[str]:
        first = await raises(client.check_accounts(["a"]))
        second = await raises(client.check_accounts(["a", "b"]))
        return [str(first), str(second)]

    assert odd(answers, body) == [
        "tencent (account_check) on a: bad [vendor code 70402]",
        "tencent (account_check) on b: no result for some users",
    ]


def test_a_create_answered_with_another_id_is_an_error() -> None:
    answers = {"create_official_account": [OK(OfficialAccountUserID="@TOA#_@TOA#0001")]}

    async def body(client: TencentClient) -> str:
        return str(await raises(client.create_account(NEWS, "o", {ProfileField.NAME: "n"})))

    assert odd(answers, body) == (
        "tencent (create_official_account) on @TOA#_news: vendor assigned another id"
        " '@TOA#_@TOA#0001'"
    )


def test_a_whole_info_request_failing_on_a_missing_id_is_asked_again_one_by_one() -> None:
    answers = {
        "get_official_account_info": [
            FAIL(130004, "official account does not exist"),
            OK(OfficialAccountInfoList=[OK(Official_Account="@TOA#_a", Name="A")]),
            FAIL(130004, "official account does not exist"),
            OK(OfficialAccountInfoList=[OK(Official_Account="@TOA#_c", Name="C")]),
        ]
    }

    async def body(client: TencentClient) -> dict[str, str]:
        found = await client.get_accounts(["@TOA#_a", "@TOA#_b", "@TOA#_c"])
        assert client.calls["get_official_account_info"] == 4
        return {k: v.name for k, v in found.items()}

    assert odd(answers, body) == {"@TOA#_a": "A", "@TOA#_c": "C"}


def test_info_items_without_ids_are_matched_by_position_only_when_counts_agree() -> None:
    answers = {
        "get_official_account_info": [
            OK(OfficialAccountInfoList=[{"Name": "A"}, {"Name": "B"}]),
            OK(OfficialAccountInfoList=[{"Name": "A"}]),
            OK(OfficialAccountInfoList=[FAIL(10010, "odd", Official_Account="@TOA#_a")]),
        ]
    }

    async def body(client: TencentClient) -> list[Any]:
        found = await client.get_accounts(["@TOA#_a", "@TOA#_b"])
        unmatched = await raises(client.get_accounts(["@TOA#_a", "@TOA#_b"]))
        item_error = await raises(client.get_accounts(["@TOA#_a"]))
        return [{k: v.name for k, v in found.items()}, str(unmatched), item_error.code]

    assert odd(answers, body) == [
        {"@TOA#_a": "A", "@TOA#_b": "B"},
        "tencent (get_official_account_info) on @TOA#_a (+1 more): answer items cannot be"
        " matched to ids",
        10010,
    ]


def test_paging_that_does_not_advance_is_an_error_not_a_loop() -> None:
    page = OK(SubscriberList=[{"Subscriber_Account": "a"}], SubscriberNum=9, Next="c1")
    answers = {
        "get_subscriber_info": [page, page],
        "get_subscribed_official_account_list": [
            OK(OfficialAccountInfoList=[], CompleteFlag=0, Next=0, TotalCount=3)
        ],
    }

    async def body(client: TencentClient) -> list[str]:
        subscribers = await raises(client.get_subscribers(NEWS))
        subscriptions = await raises(client.get_subscriptions("inv"))
        return [str(subscribers), str(subscriptions)]

    assert odd(answers, body) == [
        "tencent (get_subscriber_info) on @TOA#_news: paging cursor did not advance",
        "tencent (get_subscribed_official_account_list) on inv: paging did not advance",
    ]


def test_membership_items_without_a_result_are_failures_by_id() -> None:
    answers = {"delete_subscriber": [OK(SubscriberList=[{"Subscriber_Account": "a", "Result": 1}])]}

    async def body(client: TencentClient) -> ItemResults:
        return await client.remove_subscribers(NEWS, ["a", "b"])

    assert odd(answers, body) == ItemResults(
        changed=frozenset({"a"}),
        failed={"b": ItemFailure(None, "delete_subscriber returned no result for b")},
    )


def test_envelopes_are_read_leniently_and_vendor_text_is_redacted() -> None:
    sig_echo: list[str] = []
    answers = {
        "account_import": [{"ActionStatus": "OK"}],  # no ErrorCode: OK says it all
        "modify_subscriber_info": [{"ActionStatus": "FAIL", "ErrorCode": True}],
        "destroy_official_account": [FAIL(6017, "placeholder")],
    }

    async def body(client: TencentClient) -> list[str]:
        await client.import_account("a")
        sig = client.sig.current().reveal()
        sig_echo.append(sig)
        answers["destroy_official_account"] = [FAIL(6017, f"bad usersig={sig} from {sig}")]
        bool_code = await raises(client.set_subscriber_profile(NEWS, "a", "x"))
        echoed = await raises(client.destroy_account(NEWS))
        return [str(bool_code), str(echoed)]

    assert odd(answers, body) == [
        "tencent (modify_subscriber_info) on @TOA#_news/a: request failed [vendor code -1]",
        "tencent (destroy_official_account) on @TOA#_news: bad usersig=*** from ***"
        " [vendor code 6017]",
    ]


def test_an_odd_number_field_reads_as_zero() -> None:
    info = AccountInfo.from_vendor(
        {"SubscriberNum": "12", "MaxSubscriberNum": True, "CreateTime": "soon", "Name": 7},
        NEWS,
    )
    assert (info.subscriber_num, info.max_subscriber_num, info.create_time, info.name) == (
        12,
        1,
        0,
        "7",
    )


def test_a_client_needs_an_endpoint() -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as http:
            with pytest.raises(ConfigError, match="needs an endpoint"):
                TencentClient(
                    http, sdkappid=1, identifier="a", secret_key=Secret("k"), pacer=Pacer()
                )
            with pytest.raises(ConfigError, match="must use https"):
                TencentClient(
                    http,
                    sdkappid=1,
                    identifier="a",
                    secret_key=Secret("k"),
                    pacer=Pacer(),
                    endpoint="http://console.tim.qq.com",
                )

    asyncio.run(main())
