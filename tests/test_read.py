"""Reading live state against the in-process sandbox: what is read, and nothing twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

import pytest

from reconciler import read
from reconciler.config import Limits, SandboxTarget
from reconciler.connect import connect
from reconciler.ledger import Ledger, Slot, encode_slot, slot_id
from reconciler.live import LiveAccount
from reconciler.model import (
    Account,
    DesiredState,
    MassSpeed,
    Position,
    ProfileField,
    SubscriberPolicy,
    Subscribers,
)
from reconciler.providers import SubscriberPage, TencentClient, WeChatClient
from reconciler.read import read_fingerprinted, read_live
from reconciler.record import encode_record, record_for
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


async def ledger_slot(im: TencentClient, index: int, content: str) -> str:
    """Create slot `index` of the inventory ledger holding `content`, as apply does."""
    slot = slot_id(INVENTORY, index)
    fields = {ProfileField.NAME: "reconciler ledger", ProfileField.CUSTOM_STRING: content}
    await im.create_account(slot, INVENTORY, fields)
    await im.add_subscribers(slot, [INVENTORY])
    return slot


def test_the_ledger_comes_with_the_walk_and_its_ids_with_the_declared_ones(
    sandbox: Sandbox,
) -> None:
    """Slot 0 names an owned account, one an interrupted apply created (`lost`, no longer
    declared) and one whose create never happened; the slot is not an account of the repo, `lost`
    is read as pending in the batch that reads the declared `ghost`, nothing costs a call more."""
    news = account("news")
    ghost = account("ghost")
    desired = desired_of(news, ghost)

    async def body(im: TencentClient, wx: WeChatClient) -> None:
        del wx
        await im.import_accounts(["owner", INVENTORY])
        await own(im, news)
        await im.create_account("@TOA#_lost", "owner", {ProfileField.NAME: "Lost"})
        held = {news.id, "@TOA#_lost", "@TOA#_never"}
        await ledger_slot(im, 0, encode_slot(held))
        before = dict(im.calls)

        live = await read_live(desired, im, inventory_user=INVENTORY)

        calls = {k: v - before.get(k, 0) for k, v in im.calls.items() if v != before.get(k, 0)}
        assert calls == {
            "get_subscribed_official_account_list": 1,
            "get_official_account_info": 1,  # ghost, lost and never: one batch
        }
        assert sorted(live.accounts) == ["@TOA#_lost", news.id]
        lost = live.accounts["@TOA#_lost"]
        assert (lost.owned, lost.pending, lost.owner, lost.subscribers) == (
            False,
            True,
            "owner",
            None,
        )
        assert live.accounts[news.id].owned and not live.accounts[news.id].pending
        assert live.ledger == Ledger(
            {0: Slot(0, slot_id(INVENTORY, 0), frozenset(held))}, frozenset({"@TOA#_never"})
        )
        # the saved-plan re-read sees the slots too, and not as accounts
        again = await read_fingerprinted([news.id], [], im, inventory_user=INVENTORY)
        assert sorted(again.accounts) == [news.id]
        assert again.ledger.slots == live.ledger.slots

    on_sandbox(sandbox, body)


def test_a_slot_that_holds_something_else_reads_as_empty_with_a_warning(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(im: TencentClient, wx: WeChatClient) -> None:
        del wx
        await im.import_accounts(["owner", INVENTORY])
        garbled = await ledger_slot(im, 0, "edited by hand")
        own_slot = await ledger_slot(im, 1, encode_slot([slot_id(INVENTORY, 0), "@TOA#_x"]))
        with caplog.at_level(logging.WARNING, logger="reconciler.read"):
            live = await read_live(desired_of(), im, inventory_user=INVENTORY)
        assert live.accounts == {}
        assert live.ledger.slots == {
            0: Slot(0, garbled, readable=False),
            1: Slot(1, own_slot, frozenset({"@TOA#_x"})),  # a slot never names a slot
        }
        assert live.ledger.missing == frozenset({"@TOA#_x"})
        assert caplog.messages == [
            f"inventory ledger slot {garbled} holds text that is not a ledger's; read as empty"
        ]

    on_sandbox(sandbox, body)


class CountingPages:
    """A Tencent client whose subscriber reads are counted while they are in flight."""

    def __init__(self, im: TencentClient) -> None:
        self._im = im
        self.paging = 0
        self.most_paging = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._im, name)

    async def get_subscribers(self, account_id: str) -> SubscriberPage:
        self.paging += 1
        self.most_paging = max(self.most_paging, self.paging)
        try:
            await asyncio.sleep(0.01)  # every account asked for is now waiting its turn
            return await self._im.get_subscribers(account_id)
        finally:
            self.paging -= 1


def test_both_reads_page_a_bounded_number_of_accounts_at_once(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read, "PAGING_ACCOUNTS", 3)
    accounts = [account(f"a{i}", members=frozenset({"alice"})) for i in range(8)]
    desired = desired_of(*accounts, users=frozenset({"owner", "alice"}))
    ids = [a.id for a in accounts]

    async def body(im: TencentClient, wx: WeChatClient) -> list[int]:
        await im.import_accounts(["owner", "alice"])
        for acct in accounts:
            await im.create_account(acct.id, acct.owner, acct.profile)
            await im.add_subscribers(acct.id, ["alice"])
        most = []
        for reading in (
            lambda counted: read_live(desired, counted, inventory_user=INVENTORY),
            lambda counted: read_fingerprinted(ids, ids, counted, inventory_user=INVENTORY),
        ):
            counted = CountingPages(im)
            live = await reading(counted)
            assert all(live.accounts[i].subscribers == {"alice"} for i in ids)
            most.append(counted.most_paging)
        return most

    assert on_sandbox(sandbox, body) == [3, 3]
