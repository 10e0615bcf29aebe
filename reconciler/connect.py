"""Turn a target into provider clients: the one place that builds HTTP clients and transports.

The embedded `sandbox` target runs the emulator in-process (its httpx transport, state in SQLite at
the target's path, the vendor's own rate limits), reached through an httpx client; a `tencent`
target's calls go over `AiohttpWire` (aiohttp's pool, C parser and TLS, with our policy around
them), with TLS verification always on (only a loopback endpoint may speak plain http: a local
`reconciler sandbox serve`) and the environment's proxies honoured.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from reconciler.config import Limits, SandboxTarget, Target, TencentTarget
from reconciler.endpoints import WECHAT_ENDPOINT
from reconciler.errors import ConfigError
from reconciler.interrupt import StoppablePacer, StopSignal
from reconciler.load import format_path
from reconciler.providers import Pacer, TencentClient, WeChatClient, check_endpoint
from reconciler.readonly import ReadOnlyGuard, refuse_writes
from reconciler.sandbox import defaults
from reconciler.secret import Secret

log = logging.getLogger(__name__)


#: What the clients of the embedded sandbox call: the in-process transport answers any host, and
#: `-v` logs this one, so that nobody reading them thinks the real vendor is being called.
SANDBOX_ENDPOINT: Final = "https://sandbox"


@dataclass(frozen=True, slots=True)
class Providers:
    """The clients of one run, sharing one pacer."""

    im: TencentClient
    #: None when the target declares no WeChat credentials
    wechat: WeChatClient | None
    pacer: Pacer


@asynccontextmanager
async def connect(
    target: Target, limits: Limits, *, read_only: bool = False, stop: StopSignal | None = None
) -> AsyncIterator[Providers]:
    """Open the clients for `target`; closes them (and an embedded sandbox) on exit.

    With `read_only` (plan, drift) every request that is not a vendor read is refused before it
    leaves the process, whatever the code above asks for. With `stop`, no call starts once it is
    set (`reconciler.interrupt`: an apply stopping on SIGINT or SIGTERM).
    """
    pacer = (
        Pacer(limits.calls_per_second, limits.concurrency)
        if stop is None
        else StoppablePacer(limits.calls_per_second, limits.concurrency, stop=stop)
    )
    if isinstance(target, SandboxTarget):
        async with _embedded(target, limits, pacer, read_only=read_only) as providers:
            yield providers
        return
    assert isinstance(target, TencentTarget)
    endpoint = check_endpoint(target.endpoint)
    wechat = target.wechat
    if wechat is not None:
        check_endpoint(wechat.endpoint)
    # behind a gateway (`endpoint: https://gw.internal/im`) the reads are `/im/v4/...`
    guard = ReadOnlyGuard.for_endpoints(endpoint, *([] if wechat is None else [wechat.endpoint]))
    # imported here: aiohttp (a fifth of a second to import) is only needed for this target
    from reconciler.providers.aio import AiohttpWire

    # Both vendors' calls share its connections; the read-only guard sees every request.
    async with AiohttpWire(limits.concurrency, guard=guard if read_only else None) as http:
        yield Providers(
            TencentClient(
                http,
                sdkappid=target.sdkappid,
                identifier=target.identifier,
                secret_key=target.secret_key,
                pacer=pacer,
                timeout=limits.timeout_seconds,
                read_deadline=limits.read_deadline_seconds,
                endpoint=endpoint,
                setting=format_path(("targets", target.name, "endpoint")),
            ),
            None
            if wechat is None
            else WeChatClient(
                http,
                app_id=wechat.app_id,
                secret=wechat.secret,
                pacer=pacer,
                timeout=limits.timeout_seconds,
                endpoint=wechat.endpoint,
                setting=_wechat_setting(target.name, wechat.endpoint),
            ),
            pacer,
        )


def _wechat_setting(target: str, endpoint: str) -> str:
    where = format_path(("targets", target, "wechat", "endpoint"))
    if endpoint == WECHAT_ENDPOINT:  # pointing at `sandbox serve`, this is the one forgotten
        return f"{where} (not set: WeChat calls go to {WECHAT_ENDPOINT})"
    return where


@asynccontextmanager
async def _embedded(
    target: SandboxTarget, limits: Limits, pacer: Pacer, *, read_only: bool
) -> AsyncIterator[Providers]:
    """The clients of the embedded sandbox, in-process over its database at `target.path`.

    A read-only run (plan, drift) creates nothing: without a database there yet, it reads an
    empty vendor (an in-memory one) and leaves the directory as it was.
    """
    # imported here: the sandbox (and its SQLite set-up) is only needed for this target
    from reconciler.sandbox.server import Sandbox, SandboxOptions

    db: Path | str = target.path
    try:
        if read_only and not target.path.exists():
            log.info("no sandbox database at %s yet: read as empty", target.path)
            db = ":memory:"
        sandbox = Sandbox(SandboxOptions(db_path=db))
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open the sandbox database {target.path}: {exc}") from exc
    hooks: dict[str, list[Any]] = {"request": [refuse_writes]} if read_only else {}
    try:
        async with httpx.AsyncClient(
            transport=sandbox.async_transport(), event_hooks=hooks
        ) as http:
            yield Providers(
                TencentClient(
                    http,
                    sdkappid=defaults.SDKAPPID,
                    identifier=defaults.ADMIN,
                    secret_key=Secret(defaults.SECRET_KEY),
                    pacer=pacer,
                    timeout=limits.timeout_seconds,
                    read_deadline=limits.read_deadline_seconds,
                    endpoint=SANDBOX_ENDPOINT,
                ),
                WeChatClient(
                    http,
                    app_id=defaults.WECHAT_APPID,
                    secret=Secret(defaults.WECHAT_SECRET),
                    pacer=pacer,
                    timeout=limits.timeout_seconds,
                    endpoint=SANDBOX_ENDPOINT,
                ),
                pacer,
            )
    finally:
        sandbox.close()


@asynccontextmanager
async def probe_client(target: TencentTarget, limits: Limits) -> AsyncIterator[httpx.AsyncClient]:
    """A plain client for credential-free probes of the target's endpoints (`reconciler
    doctor`): TLS verified against the trust the vendor clients use (httpx's, `SSL_CERT_FILE`
    honoured), the environment's proxy honoured, and read-only like `connect(read_only=True)`."""
    endpoints = [target.endpoint, *([] if target.wechat is None else [target.wechat.endpoint])]
    guard = ReadOnlyGuard.for_endpoints(*(check_endpoint(url) for url in endpoints))
    hooks: dict[str, list[Any]] = {"request": [guard.hook]}
    async with httpx.AsyncClient(
        verify=True, timeout=limits.timeout_seconds, event_hooks=hooks
    ) as http:
        yield http
