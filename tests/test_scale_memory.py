"""Memory at scale (issue 6): a user read as a subscriber of many accounts is held once.

`bench/scale.py` S5 reads 1,000,000 memberships of 100,000 users; the JSON decoder makes a fresh
string for every id it reads, so without interning each user's id was held once per account.
"""

from __future__ import annotations

import asyncio
import random

import httpx

from reconciler.model import ProfileField
from reconciler.providers import Pacer, TencentClient
from reconciler.sandbox import defaults
from reconciler.sandbox.server import Sandbox, SandboxOptions
from reconciler.secret import Secret


def test_subscriber_ids_and_flags_read_from_many_accounts_are_held_once() -> None:
    sandbox = Sandbox(SandboxOptions(db_path=":memory:", calls_per_second=0))
    members = [f"user{i:03d}" for i in range(250)]  # two pages per account

    async def main() -> list[list[tuple[str, str]]]:
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
            pages = []
            for account in ("@TOA#_one", "@TOA#_two"):
                await im.create_account(account, "owner", {ProfileField.NAME: account[6:]})
                assert (await im.add_subscribers(account, members)).ok
                page = await im.get_subscribers(account)
                pages.append([(s.user_id, s.msg_flag) for s in page.subscribers])
            return pages

    try:
        one, two = asyncio.run(main())
    finally:
        sandbox.close()
    assert [u for u, _ in one] == members
    assert [u for u, _ in two] == members
    assert all(a[0] is b[0] for a, b in zip(one, two, strict=True))
    assert len({id(flag) for _, flag in one + two}) == 1
