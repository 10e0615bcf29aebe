"""Subscriber pages are asked for ahead: the next page leaves as soon as its cursor is known.

`TencentClient.get_subscribers` reads a page's 200 items while the next page is on its way. Against
a vendor on 127.0.0.1 (honest answers from the sandbox, one page bent where a test says so): every
subscriber comes back once and in order, with one call per page; a malformed item on a page that
has a following page ends the read with the item's own error, and the page asked for ahead is
dropped without a stray task or warning (warnings are errors in this suite).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from hostile_vendor import Call, Script, hostile_vendor, tencent_client

from reconciler.errors import ProviderError
from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.server import Sandbox, SandboxOptions

KEY = "paging-ahead-key"
ACCOUNT = "@TOA#_paged"
USERS = [f"u{i:04d}" for i in range(450)]  # three pages: 200, 200, 50


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    box = Sandbox(SandboxOptions(db_path=tmp_path / "s.db", secret_key=KEY))
    with httpx.Client(transport=box.transport(), base_url="http://vendor") as http:
        raw = SandboxClient(http, box.options)
        for batch in [["owner"]] + [USERS[i : i + 100] for i in range(0, len(USERS), 100)]:
            imported = raw.account("multiaccount_import", {"Accounts": batch})
            assert (imported["ErrorCode"], imported["FailAccounts"]) == (0, []), imported
        created = raw.oa(
            "create_official_account",
            {"Owner_Account": "owner", "OfficialAccountUserID": ACCOUNT, "Name": "Paged"},
        )
        assert created["ErrorCode"] == 0, created
        for start in range(0, len(USERS), 100):
            added = raw.oa(
                "add_subscriber",
                {
                    "Official_Account": ACCOUNT,
                    "SubscriberList": [
                        {"Subscriber_Account": u} for u in USERS[start : start + 100]
                    ],
                },
            )
            assert added["ErrorCode"] == 0, added
    return box


def read(sandbox: Sandbox, script: Script) -> tuple[Any, int]:
    """The subscribers (or the error text) and how many pages the vendor was asked for."""

    async def main(url: str) -> Any:
        async with httpx.AsyncClient() as http:
            client = tencent_client(http, url, KEY)
            try:
                result: Any = await client.get_subscribers(ACCOUNT)
            except ProviderError as exc:
                result = str(exc)
            # nothing of the read is left running once it has returned or failed
            assert asyncio.all_tasks() == {asyncio.current_task()}
            return result

    with hostile_vendor(sandbox, script) as server:
        result = asyncio.run(main(server.base_url))
        return result, server.calls["get_subscriber_info"]


def test_an_honest_read_has_every_subscriber_once_with_one_call_per_page(
    sandbox: Sandbox,
) -> None:
    page, calls = read(sandbox, lambda call: None)
    assert [s.user_id for s in page.subscribers] == USERS
    assert page.total == len(USERS)
    assert calls == 3


def test_a_malformed_item_ends_the_read_and_the_page_asked_ahead_is_dropped(
    sandbox: Sandbox,
) -> None:
    def bent(call: Call) -> dict[str, Any] | None:
        if call.command != "get_subscriber_info" or call.count != 1:
            return None
        doc = call.honest()
        doc["SubscriberList"][7]["Subscriber_Account"] = {"id": "u0007"}
        return doc

    error, calls = read(sandbox, bent)
    assert error == (
        f"tencent (get_subscriber_info) on {ACCOUNT}: malformed answer:"
        " SubscriberList[7].Subscriber_Account is {'id': 'u0007'}, not a string"
    )
    assert calls in (1, 2)  # the page asked ahead may have left before it was dropped
