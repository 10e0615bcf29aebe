"""Memory at scale (issue 6): a user read as a subscriber of many accounts is held once.

`bench/scale.py` S5 reads 1,000,000 memberships of 100,000 users; the JSON decoder makes a fresh
string for every id it reads, so without interning each user's id was held once per account.
The client's subscriber records live only while a page is read; the live state keeps the ids.
"""

from __future__ import annotations

import asyncio
import random

import httpx

from reconciler.model import ProfileField
from reconciler.providers import Pacer, TencentClient
from reconciler.read import read_fingerprinted
from reconciler.sandbox import defaults
from reconciler.sandbox.server import Sandbox, SandboxOptions
from reconciler.secret import Secret


def test_subscriber_ids_read_from_many_accounts_are_held_once() -> None:
    sandbox = Sandbox(SandboxOptions(db_path=":memory:", calls_per_second=0))
    members = [f"user{i:03d}" for i in range(250)]  # two pages per account

    async def main() -> list[frozenset[str]]:
        async with httpx.AsyncClient(
            transport=sandbox.async_transport(), base_url="https://console.tim.qq.com"
        ) as http:
            im = TencentClient(
                http,
                sdkappid=defaults.SDKAPPID,
                identifier=defaults.ADMIN,
                secret_key=Secret(defaults.SECRET_KEY),
                pacer=Pacer(1_000_000, 16),
                rng=random.Random(0),
            )
            assert (await im.import_accounts(["owner", *members])).ok
            accounts = ["@TOA#_one", "@TOA#_two"]
            for account in accounts:
                await im.create_account(account, "owner", {ProfileField.NAME: account[6:]})
                assert (await im.add_subscribers(account, members)).ok
            live = await read_fingerprinted(accounts, accounts, im, inventory_user="nobody")
            return [live.accounts[a].subscribers or frozenset() for a in accounts]

    try:
        one, two = asyncio.run(main())
    finally:
        sandbox.close()
    assert sorted(one) == sorted(two) == members
    held = {user: user for user in one}
    assert all(held[user] is user for user in two)
