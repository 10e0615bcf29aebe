"""A guard that makes an HTTP client read-only: `drift` cannot write, whatever the flags.

Installed by `connect(..., read_only=True)` as an httpx request hook and as the guard of the lean
transport (which sees the calls that skip httpx's client): every request whose path is not one of
the vendor's read endpoints is refused before it leaves the process. The guard does not
trust the code above it to call only reads; it checks what is actually sent.
"""

from __future__ import annotations

from typing import Final

import httpx

from reconciler.errors import ReadOnlyViolation

#: Tencent IM commands that change nothing (reference sections 3.3, 5.4, 5.5, 5.9, 5.11).
READ_COMMANDS: Final = frozenset(
    {
        "account_check",
        "get_official_account_info",
        "get_subscriber_info",
        "get_subscribed_official_account_list",
        "official_account_msg_get_simple",
    }
)
#: WeChat paths that change nothing but the caller's own access token (reference 2, 5.1, 9.2).
READ_WECHAT_PATHS: Final = frozenset(
    {
        "/cgi-bin/token",
        "/cgi-bin/stable_token",
        "/cgi-bin/message/mass/speed/get",
        "/cgi-bin/message/mass/get",
    }
)


def is_read(path: str) -> bool:
    """True when `path` (a URL path, no query) is a vendor read."""
    if path.startswith("/v4/"):
        return path.rstrip("/").rsplit("/", 1)[-1] in READ_COMMANDS and path.count("/") == 3
    return path.rstrip("/") in READ_WECHAT_PATHS


def refuse_write(method: str, path: str) -> None:
    """Raise `ReadOnlyViolation` for a request that is not a read (`LeanTransport`'s guard)."""
    if not is_read(path):
        raise ReadOnlyViolation(f"this run is read-only: refused to send {method} {path}")


async def refuse_writes(request: httpx.Request) -> None:
    """httpx request hook: raise `ReadOnlyViolation` for anything but a read."""
    refuse_write(request.method, request.url.path)
