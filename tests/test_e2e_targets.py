"""Targets as a user names them (issue 12, items 9 and 10; issue 14, item 8), through the CLI.

- A `tencent` target behind a gateway that serves the vendor under a path prefix
  (`endpoint: http://127.0.0.1:PORT/im`): apply, plan and drift all work, and the read-only guard
  of plan and drift still refuses a write behind the prefix.
- The embedded sandbox is named by its absolute path: a saved plan applied from another directory
  goes to the database it was made against (or is refused), and a read-only command never
  creates a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from reconciler.errors import ReadOnlyViolation
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


# -- the embedded sandbox, named by its absolute path ------------------------------------------

CONFIG = "defaultTarget: box\ntargets:\n  box: {type: sandbox, path: state/box.db}\n"
ACCOUNT = account_doc("news", owner="boss", name="News")
OWNERS = users("boss")


def _cli(project: Project, where: Path, *args: str) -> Any:
    """The CLI in-process with `where` as the working directory."""
    old = Path.cwd()
    os.chdir(where)
    try:
        return project.cli(*args)
    finally:
        os.chdir(old)


@pytest.fixture
def embedded(tmp_path: Path) -> Project:
    """`tmp_path/repo` with a reconciler.yaml whose sandbox lives at `state/box.db` beside it,
    and a sibling directory `tmp_path/elsewhere` to run commands from."""
    root = tmp_path / "repo"
    (tmp_path / "elsewhere").mkdir()
    project = Project(root, "", root.resolve() / "state" / "box.db")
    project.write("reconciler.yaml", CONFIG)
    project.manifests(ACCOUNT, OWNERS)
    return project


def test_a_saved_plan_applies_to_its_database_from_any_directory(
    tmp_path: Path, embedded: Project
) -> None:
    repo, elsewhere = embedded.root, tmp_path / "elsewhere"
    made = _cli(embedded, repo, "plan", "m", "--out", "../plan.json")
    assert made.code == 0, made.text
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["body"]["target"]["path"] == str(embedded.db_path)
    assert made.lines[0] == f"Target: sandbox 'box', embedded sandbox at {embedded.db_path}"

    applied = _cli(embedded, elsewhere, "apply", "../plan.json", "--auto-approve")
    assert applied.code == 0, applied.text
    assert applied.lines[0] == f"Target: sandbox 'box', embedded sandbox at {embedded.db_path}"
    assert embedded.db_path.is_file()
    assert sorted(p.name for p in elsewhere.iterdir()) == []  # no database of its own
    no_changes(_cli(embedded, repo, "plan", "m", "--detailed-exitcode"))


def test_a_saved_plan_for_another_database_is_refused(tmp_path: Path, embedded: Project) -> None:
    """A reconciler.yaml in the applying directory wins, and its sandbox is another database."""
    elsewhere = tmp_path / "elsewhere"
    assert _cli(embedded, embedded.root, "plan", "m", "--out", "../plan.json").code == 0
    (elsewhere / "reconciler.yaml").write_text(CONFIG)
    refused = _cli(embedded, elsewhere, "apply", "../plan.json", "--auto-approve")
    other = elsewhere.resolve() / "state" / "box.db"
    assert (refused.code, refused.out) == (1, "")
    assert refused.err == (
        f"error: the plan was made for sandbox 'box', embedded sandbox at {embedded.db_path},"
        f" not for sandbox 'box', embedded sandbox at {other}\n"
    )
    assert not other.exists() and not embedded.db_path.exists()


@pytest.mark.parametrize("command", ["plan", "drift", "validate"])
def test_a_read_only_command_creates_no_database(
    tmp_path: Path, embedded: Project, command: str
) -> None:
    result = _cli(embedded, embedded.root, command, "m")
    assert result.code == (2 if command == "drift" else 0), result.text
    if command == "plan":
        assert "+ account @TOA#_news will be created" in result.lines  # read as empty
    assert not (embedded.root / "state").exists()
