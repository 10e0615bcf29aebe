"""A guard that makes an HTTP client read-only: `drift` cannot write, whatever the flags.

Installed by `connect(..., read_only=True)` as an httpx request hook (the embedded sandbox) and as
the guard of the aiohttp wire (a `tencent` target's calls, `reconciler.providers.wire`): every
request whose path is not one of the vendor's read endpoints, behind the path prefix of one of the
target's endpoints, is refused before it leaves the process. The guard does not trust the code
above it to call only reads; it checks what is actually sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

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


def is_read(path: str, prefixes: Iterable[str] = ("",)) -> bool:
    """True when `path` (a URL path as sent, no query) is a vendor read behind one of
    `prefixes`, the path prefixes of the target's endpoints (`/im` for `http://gw.internal/im`;
    `""` for an endpoint at a host's root)."""
    for prefix in prefixes:
        if path.startswith(prefix + "/") and _is_vendor_read(path[len(prefix) :]):
            return True
    return False


def _is_vendor_read(path: str) -> bool:
    if path.startswith("/v4/"):
        return path.rstrip("/").rsplit("/", 1)[-1] in READ_COMMANDS and path.count("/") == 3
    return path.rstrip("/") in READ_WECHAT_PATHS


@dataclass(frozen=True, slots=True)
class ReadOnlyGuard:
    """Refuses every request but a vendor read, before it is sent: the guard `AiohttpWire`
    calls (`guard(method, path)`) and, through `hook`, an httpx request hook.

    A request is a read when its path is one of the vendor's read paths right behind the path
    prefix of one of the target's endpoints: a gateway at `http://gw.internal/im` gets
    `/im/v4/.../get_subscriber_info`. A write stays refused behind any prefix, and a read sent
    outside every endpoint's prefix is refused too (nothing of ours sends one).
    """

    prefixes: tuple[str, ...] = ("",)

    @classmethod
    def for_endpoints(cls, *endpoints: str) -> ReadOnlyGuard:
        """The guard for a target whose vendors live at these base URLs."""
        return cls(tuple(sorted({urlsplit(url).path.rstrip("/") for url in endpoints})) or ("",))

    def __call__(self, method: str, path: str) -> None:
        if not is_read(path, self.prefixes):
            raise ReadOnlyViolation(f"this run is read-only: refused to send {method} {path}")

    async def hook(self, request: httpx.Request) -> None:
        """httpx request hook: the path as it goes on the wire (not percent-decoded), like the
        one `AiohttpWire.fetch` checks."""
        self(request.method, request.url.raw_path.decode("ascii").partition("?")[0])


#: The guard of a target whose endpoints sit at their hosts' roots (the embedded sandbox).
refuse_write: Final = ReadOnlyGuard()
refuse_writes: Final = refuse_write.hook
