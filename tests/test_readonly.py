"""The read-only guard refuses writes before they leave the process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from reconciler.config import Limits, SandboxTarget
from reconciler.connect import connect
from reconciler.errors import ReadOnlyViolation
from reconciler.readonly import is_read, refuse_writes
from reconciler.sandbox.server import Sandbox


@pytest.mark.parametrize(
    ("path", "read"),
    [
        ("/v4/official_account_open_http_svc/get_subscriber_info", True),
        ("/v4/official_account_open_http_svc/get_official_account_info", True),
        ("/v4/official_account_open_http_svc/get_subscribed_official_account_list", True),
        ("/v4/im_open_login_svc/account_check", True),
        ("/cgi-bin/stable_token", True),
        ("/cgi-bin/message/mass/speed/get", True),
        ("/v4/official_account_open_http_svc/add_subscriber", False),
        ("/v4/official_account_open_http_svc/modify_subscriber_info", False),
        ("/v4/im_open_login_svc/multiaccount_import", False),
        ("/v4/x/y/get_subscriber_info", False),
        ("/cgi-bin/message/mass/speed/set", False),
        ("/cgi-bin/message/mass/sendall", False),
        ("/__sandbox/stats/reset", False),
    ],
)
def test_is_read(path: str, read: bool) -> None:
    assert is_read(path) is read


def test_a_write_never_reaches_the_vendor(sandbox: Sandbox) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(
            transport=sandbox.async_transport(),
            base_url="https://console.tim.qq.com",
            event_hooks={"request": [refuse_writes]},
        ) as http:
            with pytest.raises(ReadOnlyViolation) as info:
                await http.post("/v4/im_open_login_svc/multiaccount_import", json={})
            assert str(info.value) == (
                "this run is read-only: refused to send POST /v4/im_open_login_svc/"
                "multiaccount_import"
            )

    asyncio.run(main())
    with httpx.Client(transport=sandbox.transport(), base_url="https://x") as http:
        assert http.get("/__sandbox/stats").json()["calls"] == {}


def test_connect_read_only_refuses_a_write_and_allows_reads(tmp_path: Path) -> None:
    target = SandboxTarget("sandbox", tmp_path / "sandbox.db")

    async def main() -> None:
        async with connect(target, Limits(), read_only=True) as providers:
            assert await providers.im.check_accounts(["alice"]) == {"alice": False}
            assert providers.wechat is not None
            assert (await providers.wechat.get_mass_speed()).speed == 0
            with pytest.raises(ReadOnlyViolation):
                await providers.im.import_accounts(["alice"])
            with pytest.raises(ReadOnlyViolation):
                await providers.wechat.set_mass_speed(3)
        async with connect(target, Limits()) as providers:
            assert await providers.im.check_accounts(["alice"]) == {"alice": False}
            assert providers.wechat is not None
            assert (await providers.wechat.get_mass_speed()).speed == 0

    asyncio.run(main())
