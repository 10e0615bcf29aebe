"""The read-only guard refuses writes before they leave the process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from reconciler.config import Limits, SandboxTarget
from reconciler.connect import connect
from reconciler.errors import ReadOnlyViolation
from reconciler.readonly import ReadOnlyGuard, is_read, refuse_writes
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


GATEWAY = ReadOnlyGuard.for_endpoints("https://gw.internal/im/", "https://gw.internal/im")


@pytest.mark.parametrize(
    ("path", "read"),
    [
        ("/im/v4/official_account_open_http_svc/get_subscriber_info", True),
        ("/im/v4/im_open_login_svc/account_check", True),
        ("/im/cgi-bin/stable_token", True),
        ("/im/cgi-bin/message/mass/speed/get", True),
        # writes stay refused behind the prefix
        ("/im/v4/official_account_open_http_svc/add_subscriber", False),
        ("/im/v4/im_open_login_svc/multiaccount_import", False),
        ("/im/cgi-bin/message/mass/speed/set", False),
        ("/im/v4/x/y/get_subscriber_info", False),
        # reads outside the endpoint's prefix are not ours to send
        ("/v4/official_account_open_http_svc/get_subscriber_info", False),
        ("/imx/v4/official_account_open_http_svc/get_subscriber_info", False),
        ("/other/im/v4/official_account_open_http_svc/get_subscriber_info", False),
        ("/im", False),
    ],
)
def test_a_guard_for_an_endpoint_behind_a_path_prefix(path: str, read: bool) -> None:
    assert GATEWAY.prefixes == ("/im",)
    assert is_read(path, GATEWAY.prefixes) is read
    if read:
        GATEWAY("POST", path)
    else:
        with pytest.raises(
            ReadOnlyViolation, match=f"^this run is read-only: refused to send POST {path}$"
        ):
            GATEWAY("POST", path)


def test_a_guard_takes_every_endpoint_prefix_of_the_target() -> None:
    guard = ReadOnlyGuard.for_endpoints("https://gw.internal/tim", "https://api.weixin.qq.com")
    assert guard.prefixes == ("", "/tim")
    assert is_read("/tim/v4/im_open_login_svc/account_check", guard.prefixes)
    assert is_read("/cgi-bin/message/mass/speed/get", guard.prefixes)
    assert not is_read("/tim/cgi-bin/message/mass/speed/set", guard.prefixes)


def test_the_hook_checks_the_path_as_sent_not_percent_decoded(sandbox: Sandbox) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(
            transport=sandbox.async_transport(),
            base_url="https://gw.internal",
            event_hooks={"request": [GATEWAY.hook]},
        ) as http:
            ok = await http.post("/im/v4/im_open_login_svc/account_check", json={})
            assert ok.status_code == 404  # let through; the sandbox serves no /im prefix
            with pytest.raises(ReadOnlyViolation) as info:
                await http.post("/im/v4/im_open_login_svc/account%5Fcheck", json={})
            assert str(info.value) == (
                "this run is read-only: refused to send POST"
                " /im/v4/im_open_login_svc/account%5Fcheck"
            )

    asyncio.run(main())
