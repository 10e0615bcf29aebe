"""Reading live state against the in-process sandbox: what is read, and nothing twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

from reconciler.config import Limits, SandboxTarget
from reconciler.connect import connect
from reconciler.live import LiveAccount, encode_record, record_for
from reconciler.model import (
    Account,
    DesiredState,
    MassSpeed,
    Position,
    ProfileField,
    SubscriberPolicy,
    Subscribers,
)
from reconciler.providers import TencentClient, WeChatClient
from reconciler.read import read_live
from reconciler.sandbox.server import Sandbox

T = TypeVar("T")
INVENTORY = "reconciler-inventory"
HERE = Position("accounts.yaml", 1, 1)


def account(
    name: str,
    *,
    members: frozenset[str] | None = None,
    owner: str = "owner",
    profiles: Mapping[str, str] | None = None,
) -> Account:
    subscribers = None
    if members is not None:
        subscribers = Subscribers(SubscriberPolicy.EXACT, members, profiles=profiles or {})
    return Account(
        id=f"@TOA#_{name}",
        owner=owner,
        profile={ProfileField.NAME: name.title()},
        position=HERE,
        subscribers=subscribers,
    )


def desired_of(
    *accounts: Account, users: frozenset[str] = frozenset(), speed: int | None = None
) -> DesiredState:
    return DesiredState(
        accounts={a.id: a for a in accounts},
        users=users,
        mass_speed=None if speed is None else MassSpeed("wechat", speed, HERE),
    )


def on_sandbox(sandbox: Sandbox, body: Callable[[TencentClient, WeChatClient], Awaitable[T]]) -> T:
    """Run `body` with the clients `connect` builds for the embedded sandbox on the same db."""
    db = Path(sandbox.options.db_path)

    async def main() -> T:
        async with connect(SandboxTarget("sandbox", db), Limits()) as providers:
            assert providers.wechat is not None
            return await body(providers.im, providers.wechat)

    return asyncio.run(main())


async def own(im: TencentClient, acct: Account) -> None:
    """Create `acct` and record it in the inventory, as apply will."""
    await im.create_account(acct.id, acct.owner, acct.profile)
    await im.add_subscribers(acct.id, [INVENTORY])
    await im.set_subscriber_profile(acct.id, INVENTORY, encode_record(record_for(acct)))


def test_fresh_target_reads_the_inventory_then_checks_users(sandbox: Sandbox) -> None:
    news = account("news", members=frozenset({"alice", "bob"}))
    desired = desired_of(news, users=frozenset({"owner", "alice", "bob"}))

    async def body(im: TencentClient, wx: WeChatClient) -> None:
        await im.import_accounts(["alice"])
        live = await read_live(desired, im, inventory_user=INVENTORY, mass=wx)
        assert live.accounts == {}
        assert live.existing_users == frozenset({"alice"})
        assert live.inventory_exists is False
        assert live.mass_speed is None  # no MassSpeed declared: not read
        assert live.read_calls == {
            "get_subscribed_official_account_list": 1,
            "get_official_account_info": 1,
            "account_check": 1,
        }

    on_sandbox(sandbox, body)


def test_owned_adopted_and_missing_accounts(sandbox: Sandbox) -> None:
    news = account("news", members=frozenset({"alice", "bob", "carol"}), profiles={"alice": "vip"})
    sports = account("sports")  # declares no subscribers: they are not read
    adopted = account("weather", members=frozenset({"alice"}))
    missing = account("ghost", members=frozenset({"dave"}))
    desired = desired_of(
        news, sports, adopted, missing, users=frozenset({"owner", "erin"}), speed=1
    )

    async def body(im: TencentClient, wx: WeChatClient) -> None:
        await im.import_accounts(["owner", "alice", "bob", "carol", INVENTORY])
        for acct in (news, sports):
            await own(im, acct)
        await im.add_subscribers(news.id, ["alice", "bob"])
        await im.set_subscriber_profile(news.id, "alice", "vip")
        await im.create_account(adopted.id, "owner", {ProfileField.NAME: "Weather"})
        await im.add_subscribers(adopted.id, ["alice"])
        await wx.set_mass_speed(3)
        before = dict(im.calls)

        live = await read_live(desired, im, inventory_user=INVENTORY, mass=wx)

        assert sorted(live.accounts) == [news.id, sports.id, adopted.id]
        got_news = live.accounts[news.id]
        assert got_news.owned and got_news.last_applied == record_for(news)
        assert got_news.subscribers == frozenset({"alice", "bob", INVENTORY})
        assert got_news.subscriber_profiles == {
            "alice": "vip",
            INVENTORY: encode_record(record_for(news)),
        }
        assert got_news.subscriber_count == 3
        assert live.accounts[sports.id].subscribers is None
        assert live.accounts[sports.id].owned
        got_adopted = live.accounts[adopted.id]
        assert (got_adopted.owned, got_adopted.subscribers) == (False, frozenset({"alice"}))
        assert got_adopted.profile[ProfileField.NAME] == "Weather"
        assert live.mass_speed == 3
        assert live.inventory_exists
        # only users that must exist are reported: carol (to add), erin (UserAccounts) and dave
        # (for the missing account) were checked; the owner owns an account; alice and bob are
        # already subscribed where declared, so nothing needs them to exist
        assert live.existing_users == frozenset({"owner", "carol"})
        calls = {k: v - before.get(k, 0) for k, v in im.calls.items() if v != before.get(k, 0)}
        assert calls == {
            "get_subscribed_official_account_list": 1,
            "get_official_account_info": 1,  # weather and ghost, one batch
            "get_subscriber_info": 2,  # news (owned) and weather (adopted)
            "account_check": 1,
        }
        assert live.read_calls["get_subscriber_info"] == 2

    on_sandbox(sandbox, body)


def test_large_reads_are_paged_and_batched_once(sandbox: Sandbox) -> None:
    members = frozenset(f"user{i:05d}" for i in range(450))
    accounts = [account(f"acct{i:02d}") for i in range(60)]
    big = account("big", members=members)
    desired = desired_of(big, *accounts)

    async def body(im: TencentClient, wx: WeChatClient) -> None:
        del wx
        await im.import_accounts(["owner", INVENTORY, *sorted(members)])
        await own(im, big)
        await im.add_subscribers(big.id, sorted(members)[:300])
        for acct in accounts:
            await im.create_account(acct.id, acct.owner, acct.profile)
        before = dict(im.calls)

        live = await read_live(desired, im, inventory_user=INVENTORY)

        calls = {k: v - before.get(k, 0) for k, v in im.calls.items() if v != before.get(k, 0)}
        assert calls == {
            "get_subscribed_official_account_list": 1,
            "get_official_account_info": 2,  # 60 unowned accounts, 50 per call
            "get_subscriber_info": 2,  # 301 subscribers, 200 per page
            "account_check": 2,  # the 150 members still to add, 100 per call
        }
        got: LiveAccount = live.accounts[big.id]
        assert got.subscribers is not None and len(got.subscribers) == 301
        assert live.existing_users == {"owner"} | frozenset(sorted(members)[300:])

    on_sandbox(sandbox, body)
