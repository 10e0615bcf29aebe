"""Targets as a user names them (issue 12, item 9), through the CLI.

- A `tencent` target behind a gateway that serves the vendor under a path prefix
  (`endpoint: http://127.0.0.1:PORT/im`): apply, plan and drift all work, and the read-only guard
  of plan and drift still refuses a write behind the prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from test_e2e_common import (
    Project,
    Vendor,
    account_doc,
    config_text,
    no_changes,
    users,
)

from reconciler.config import load_config, select_target
from reconciler.connect import connect
from reconciler.readonly import ReadOnlyViolation
from reconciler.sandbox.asgi import Receive, Scope, Send
from reconciler.sandbox.serve import base_url, bind

PREFIX = "/im"
NEWS = account_doc("news", name="Daily News", subscribers={"members": ["alice", "bob"]})
SPEED = "apiVersion: reconciler/v1\nkind: MassSpeed\nmetadata: {name: wx}\nspec: {speed: 2}"


class Gateway:
    """A gateway serving a vendor under `PREFIX`: `/im/<rest>` is forwarded to `upstream` as
    `/<rest>` (query and body as they came), anything else is 404. `seen` keeps every
    `METHOD /path` it was sent, as sent."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.seen: list[str] = []

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = scope["raw_path"].decode("ascii")
        self.seen.append(f"{scope['method']} {raw}")
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, out = 404, b'{"error":"outside the gateway\'s prefix"}'
        if raw.startswith(PREFIX + "/"):
            query = scope["query_string"].decode("ascii")
            url = self.upstream + raw[len(PREFIX) :] + (f"?{query}" if query else "")
            async with httpx.AsyncClient() as http:
                answer = await http.request(scope["method"], url, content=body)
            status, out = answer.status_code, answer.content
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})


@contextlib.contextmanager
def serving(gateway: Gateway) -> Iterator[str]:
    """Serve `gateway` on a free loopback port in a thread; yields its base URL."""
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(
        gateway.app, interface="asgi3", lifespan="off", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            threading.Event().wait(0.005)
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def gateway(project: Project) -> Iterator[Gateway]:
    """`project`'s sandbox behind a gateway at `<gateway>/im`, for both vendors."""
    front = Gateway(project.base_url)
    with serving(front) as url:
        project.write("reconciler.yaml", config_text(url + PREFIX))
        yield front


def test_plan_and_drift_work_behind_a_path_prefix(
    project: Project, vendor: Vendor, gateway: Gateway
) -> None:
    project.manifests(NEWS, users("ops_admin", "alice", "bob"), SPEED)
    applied = project.cli("apply", "m", "--auto-approve")
    assert applied.code == 0, applied.text
    # issue 12 item 9: these two failed with "this run is read-only: refused to send POST /im/v4/"
    no_changes(project.cli("plan", "m", "--detailed-exitcode"))
    drift = project.cli("drift", "m")
    assert (drift.code, drift.err) == (0, ""), drift.text
    assert (vendor.members("@TOA#_news"), vendor.speed()) == ({"alice", "bob"}, 2)
    assert gateway.seen, "nothing went through the gateway"
    assert all(line.split()[1].startswith(PREFIX + "/") for line in gateway.seen), gateway.seen


def test_the_read_only_guard_still_refuses_a_write_behind_the_prefix(
    project: Project, gateway: Gateway
) -> None:
    target = select_target(load_config(None, environ=os.environ), None)

    async def main() -> list[str]:
        refused = []
        async with connect(
            target, load_config(None, environ=os.environ).limits, read_only=True
        ) as (providers):
            assert await providers.im.check_accounts(["alice"]) == {"alice": False}
            assert providers.wechat is not None
            assert (await providers.wechat.get_mass_speed()).speed == 0
            for write in (
                providers.im.import_accounts(["alice"]),
                providers.wechat.set_mass_speed(3),
            ):
                with pytest.raises(ReadOnlyViolation) as info:
                    await write
                refused.append(str(info.value))
        return refused

    assert asyncio.run(main()) == [
        "this run is read-only: refused to send POST /im/v4/im_open_login_svc/multiaccount_import",
        "this run is read-only: refused to send POST /im/cgi-bin/message/mass/speed/set",
    ]
    sent = [line.split("?")[0] for line in gateway.seen]
    assert not any("multiaccount_import" in line or "speed/set" in line for line in sent), sent
