"""A hostile vendor: the real CLI against a server that answers badly, every way we could think of.

Each scenario runs `reconciler plan` (or `apply`) with a `tencent` target whose endpoint is a
`HostileVendor` on 127.0.0.1, seeded with one applied account. Every run must end within its time
bound with exit 1 (or 3 for an apply that did some work) and one clean error line naming the call,
or converge after a bounded retry with exactly the plan an honest vendor gives: never a hang, a
traceback, or a wrong plan. Answers that never finish are driven through the provider with a short
timeout (the CLI's is 10 s per wait); `RECONCILER_SLOW_TESTS=1` also runs them through the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from hostile_vendor import Call, Misbehave, Script, answer, hostile_vendor, tencent_client

from reconciler import cli
from reconciler.errors import ProviderError
from reconciler.providers import Pacer, RetryPolicy, TencentClient, WeChatClient
from reconciler.sandbox.server import Sandbox, SandboxOptions
from reconciler.secret import Secret

KEY = "hostile-im-key-5e0b"
WX = "hostile-wx-secret-77c2"
ENV = {"HV_KEY": KEY, "HV_WX": WX}
NEWS = "@TOA#_news"
SPORTS = "@TOA#_sports"

MANIFESTS = """apiVersion: reconciler/v1
kind: OfficialAccount
metadata: {id: news}
spec:
  owner: alice
  name: Daily News
  subscribers: {policy: exact, members: [bob, carol]}
---
apiVersion: reconciler/v1
kind: UserAccounts
metadata: {name: users}
spec: {members: [alice, bob, carol]}
---
apiVersion: reconciler/v1
kind: MassSpeed
metadata: {name: wechat-main}
spec: {speed: 2}
"""
# Planned against the seeded state: a create (so the read asks `get_official_account_info` for
# an unknown id and `account_check` for a new user) and a membership change on `news`.
MORE = """---
apiVersion: reconciler/v1
kind: OfficialAccount
metadata: {id: sports}
spec:
  owner: dave
  name: Sports
  subscribers: {members: [bob, erin]}
---
apiVersion: reconciler/v1
kind: UserAccounts
metadata: {name: more-users}
spec: {members: [dave, erin]}
"""
CONFIG = """defaultTarget: hostile
targets:
  hostile:
    type: tencent
    endpoint: {url}
    sdkAppId: 1400000000
    identifier: administrator
    secretKey: ${{HV_KEY}}
    wechat: {{appId: wxsandbox00000000, secret: "${{HV_WX}}", endpoint: "{url}"}}
"""
#: What a run may take at most: the slowest scenario is a full retry storm (0.4+0.8+1.6+3.2 s).
BOUND = 30.0


def options(db: Path) -> SandboxOptions:
    return SandboxOptions(db_path=db, secret_key=KEY, wechat_secret=WX)


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    out: str
    err: str


def run_cli(args: list[str], bound: float = BOUND) -> Run:
    """`cli.main(args)` in a thread, bounded: a run that outlives `bound` fails the test."""
    out, err = io.StringIO(), io.StringIO()
    result: list[int] = []

    def target() -> None:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result.append(cli.main(args))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(bound)
    if thread.is_alive():
        pytest.fail(f"reconciler {' '.join(args)} still running after {bound}s (a hang)")
    return Run(result[0], out.getvalue(), err.getvalue())


class Project:
    """A directory with manifests and a reconciler.yaml pointing at a hostile vendor."""

    def __init__(self, root: Path, sandbox: Sandbox) -> None:
        self.root = root
        self.sandbox = sandbox

    @contextlib.contextmanager
    def vendor(self, script: Script) -> Iterator[Callable[..., Run]]:
        with hostile_vendor(self.sandbox, script) as server:
            (self.root / "reconciler.yaml").write_text(CONFIG.format(url=server.base_url))

            def run(*args: str, bound: float = BOUND) -> Run:
                return run_cli([*args, "--config", str(self.root / "reconciler.yaml")], bound)

            yield run


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sandbox db where `news` (bob, carol), the users and the speed were applied honestly."""
    root = tmp_path_factory.mktemp("seed")
    (root / "m").mkdir()
    (root / "m" / "a.yaml").write_text(MANIFESTS)
    box = Sandbox(options(root / "sandbox.db"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENV.items():
            patch.setenv(name, value)
        patch.chdir(root)
        with hostile_vendor(box, lambda call: None) as server:
            (root / "reconciler.yaml").write_text(CONFIG.format(url=server.base_url))
            applied = run_cli(["apply", "m", "--auto-approve"])
    box.close()
    assert applied.code == 0, applied
    return root / "sandbox.db"


@pytest.fixture
def project(tmp_path: Path, seeded: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    shutil.copy(seeded, tmp_path / "sandbox.db")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(MANIFESTS + MORE)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    box = Sandbox(options(tmp_path / "sandbox.db"))
    yield Project(tmp_path, box)
    box.close()


@pytest.fixture(scope="module")
def honest_plan(seeded: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The plan an honest vendor gives for MANIFESTS + MORE over the seeded state."""
    root = tmp_path_factory.mktemp("honest")
    shutil.copy(seeded, root / "sandbox.db")
    (root / "m").mkdir()
    (root / "m" / "a.yaml").write_text(MANIFESTS + MORE)
    box = Sandbox(options(root / "sandbox.db"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENV.items():
            patch.setenv(name, value)
        patch.chdir(root)
        with Project(root, box).vendor(lambda call: None) as run:
            result = run("plan", "m")
    box.close()
    assert result.code == 0 and result.err == "", result
    return _stable(result.out)


def _stable(plan: str) -> str:
    """The plan without the target line (its port differs per server) and the read's call count
    (retries are calls)."""
    lines = [line for line in plan.splitlines() if not line.startswith("Target: ")]
    return re.sub(r" \(the read took \d+ calls\)", "", "\n".join(lines))


# -- scripts ---------------------------------------------------------------------------------------


def on(command: str, reply: Callable[[Call], Misbehave | dict[str, Any] | None]) -> Script:
    """Misbehave on `command` only; every other call is answered honestly."""
    return lambda call: reply(call) if call.command == command else None


def bent(command: str, change: Callable[[dict[str, Any]], Any]) -> Script:
    """The honest answer to `command`, changed in place by `change`."""

    def reply(call: Call) -> dict[str, Any]:
        doc = call.honest()
        change(doc)
        return doc

    return on(command, reply)


def on_account(account: str, script: Script) -> Script:
    """`script` for the calls on `account` only (the inventory ledger's slots, created by every
    apply with creates, get honest answers: reconciler/ledger.py)."""

    def only(call: Call) -> Any:
        body = call.json()
        named = body.get("OfficialAccountUserID") or body.get("Official_Account")
        return script(call) if named == account else None

    return only


def raw(body: bytes, **kw: Any) -> Callable[[Call], Misbehave]:
    return lambda call: Misbehave(body, **kw)


def first(n: int, reply: Misbehave) -> Callable[[Call], Misbehave | None]:
    """`reply` to the first `n` requests, honest answers after."""
    return lambda call: reply if call.count <= n else None


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.__setitem__(key, value)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.pop(key)


def _item(
    list_key: str, change: Callable[[dict[str, Any]], Any]
) -> Callable[[dict[str, Any]], Any]:
    return lambda doc: change(doc[list_key][0])


def _twice(list_key: str, **changes: Any) -> Callable[[dict[str, Any]], None]:
    """The list's first item listed again at its end, with `changes`."""
    return lambda doc: doc[list_key].append({**doc[list_key][0], **changes})


def _news(change: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    """`change` applied to `news` in the inventory walk's answer."""

    def apply(doc: dict[str, Any]) -> None:
        for item in doc["OfficialAccountInfoList"]:
            if item["Official_Account"] == NEWS:
                change(item)

    return apply


def _news_twice(**changes: Any) -> Callable[[dict[str, Any]], None]:
    """`news` listed again at the end of the inventory walk's answer, with `changes`."""

    def apply(doc: dict[str, Any]) -> None:
        items = doc["OfficialAccountInfoList"]
        items.append({**next(i for i in items if i["Official_Account"] == NEWS), **changes})

    return apply


def _endless_cursor() -> Callable[[Call], dict[str, Any]]:
    def reply(call: Call) -> dict[str, Any]:
        doc = call.honest(Next="")  # the first page, whatever cursor was sent
        doc["Next"] = f"cursor-{call.count}"  # always a new cursor, never the end
        return doc

    return reply


def _cursor_cycle(call: Call) -> dict[str, Any]:
    doc = call.honest(Next="")
    doc["Next"] = ["A", "B"][call.count % 2]
    return doc


def _endless_offsets(call: Call) -> dict[str, Any]:
    doc = call.honest(Offset=0)
    doc["CompleteFlag"] = 0
    doc["Next"] = 1000 * call.count
    return doc


def _huge_page(call: Call) -> dict[str, Any]:
    doc = call.honest()
    doc["SubscriberList"] = [
        {"Subscriber_Account": f"u{i}", "CustomString": "", "SubscribeTime": 0, "MsgFlag": ""}
        for i in range(5000)
    ]
    return doc


def _gzip_bomb(call: Call) -> Misbehave:
    body = gzip.compress(b'{"a": "' + b" " * (20 * 1024 * 1024) + b'"}', compresslevel=9)
    return Misbehave(
        body, headers=(("content-type", "application/json"), ("content-encoding", "gzip"))
    )


INFO = "get_official_account_info"
SUBSCRIBERS = "get_subscriber_info"
OWNED = "get_subscribed_official_account_list"
CHECK = "account_check"
TOKEN = "stable_token"
SPEED = "message/mass/speed/get"
#: How errors name each call (api, action, object).
AT_OWNED = f"tencent ({OWNED}) on reconciler-inventory"
AT_SUBSCRIBERS = f"tencent ({SUBSCRIBERS}) on {NEWS}"
AT_INFO = f"tencent ({INFO}) on {SPORTS}"
AT_CHECK = f"tencent ({CHECK}) on dave (+1 more)"

#: (name, script, the one line on stderr). Each ends with exit 1 and nothing on stdout.
ERRORS: list[tuple[str, Script, str]] = [
    # malformed JSON
    (
        "html",
        on(INFO, raw(b"<html>Bad Gateway</html>")),
        f"{AT_INFO}: response is not JSON",
    ),
    (
        "truncated",
        on(INFO, raw(b'{"ActionStatus": "OK", "Offic')),
        f"{AT_INFO}: response is not JSON",
    ),
    (
        "empty",
        on(OWNED, raw(b"")),
        f"{AT_OWNED}: response is not JSON",
    ),
    (
        "nested",
        on(OWNED, raw(b"[" * 100_000 + b"]" * 100_000)),
        f"{AT_OWNED}: response is not JSON",
    ),
    (
        "array",
        on(SUBSCRIBERS, raw(b"[1, 2]")),
        f"{AT_SUBSCRIBERS}: response is not a JSON object",
    ),
    (
        "not-utf8",
        on(CHECK, raw(b'{"ActionStatus": "\xff\xfe"}')),
        f"{AT_CHECK}: response is not JSON",
    ),
    # missing fields
    (
        "no-subscriber-num",
        bent(SUBSCRIBERS, _drop("SubscriberNum")),
        f"{AT_SUBSCRIBERS}: malformed answer: SubscriberNum is missing",
    ),
    (
        "no-next",
        bent(SUBSCRIBERS, _drop("Next")),
        f"{AT_SUBSCRIBERS}: malformed answer: Next is missing",
    ),
    (
        "no-subscriber-id",
        bent(SUBSCRIBERS, _item("SubscriberList", _drop("Subscriber_Account"))),
        f"{AT_SUBSCRIBERS}: malformed answer: SubscriberList[0].Subscriber_Account is missing",
    ),
    (
        "no-account-id",
        bent(OWNED, _item("OfficialAccountInfoList", _drop("Official_Account"))),
        f"{AT_OWNED}: malformed answer: OfficialAccountInfoList[0].Official_Account is missing",
    ),
    (
        "no-user-id",
        bent(CHECK, _item("ResultItem", _drop("UserID"))),
        f"{AT_CHECK}: malformed answer: ResultItem[0].UserID is missing",
    ),
    (
        "info-silent",
        bent(INFO, _set("OfficialAccountInfoList", [])),
        f"{AT_INFO}: no answer for some accounts",
    ),
    (
        "token-missing",
        bent(TOKEN, _drop("access_token")),
        "wechat (stable_token) on wxsandbox00000000: token answer lacks access_token/expires_in",
    ),
    (
        "speed-missing",
        bent(SPEED, _drop("speed")),
        "wechat (mass_speed_get): speed answer lacks speed/realspeed",
    ),
    # wrong types
    (
        "list-is-text",
        bent(SUBSCRIBERS, _set("SubscriberList", "bob,carol")),
        f"{AT_SUBSCRIBERS}: malformed answer: SubscriberList is 'bob,carol', not an array",
    ),
    (
        "items-are-text",
        bent(OWNED, _set("OfficialAccountInfoList", ["@TOA#_news"])),
        f"{AT_OWNED}: malformed answer: OfficialAccountInfoList[0] is '@TOA#_news', not an object",
    ),
    (
        "count-is-text",
        bent(OWNED, _item("OfficialAccountInfoList", _set("MaxSubscriberNum", "lots"))),
        f"{AT_OWNED}: malformed answer: OfficialAccountInfoList[0].MaxSubscriberNum is 'lots',"
        " not an integer",
    ),
    (
        "name-is-object",
        bent(OWNED, _item("OfficialAccountInfoList", _set("Name", {"zh": "新闻"}))),
        f"{AT_OWNED}: malformed answer: OfficialAccountInfoList[0].Name is {{'zh': '新闻'}},"
        " not a string",
    ),
    (
        "selfinfo-is-text",
        bent(OWNED, _item("OfficialAccountInfoList", _set("SelfInfo", "x"))),
        f"{AT_OWNED}: malformed answer: OfficialAccountInfoList[0].SelfInfo is not an object",
    ),
    (
        "next-is-list",
        bent(SUBSCRIBERS, _set("Next", ["x"])),
        f"{AT_SUBSCRIBERS}: malformed answer: Next is ['x'], not a string",
    ),
    (
        "flag-is-float",
        bent(OWNED, _set("CompleteFlag", 0.5)),
        f"{AT_OWNED}: malformed answer: CompleteFlag is 0.5, not an integer",
    ),
    (
        "errcode-is-text",
        bent(SPEED, _set("errcode", "0")),
        "wechat (mass_speed_get) on wxsandbox00000000: errcode is not an integer",
    ),
    (
        "speed-is-text",
        bent(SPEED, _set("speed", "fast")),
        "wechat (mass_speed_get): speed answer lacks speed/realspeed",
    ),
    (
        "stranger",
        bent(INFO, _item("OfficialAccountInfoList", _set("Official_Account", "@TOA#_other"))),
        f"{AT_INFO}: answered for '@TOA#_other', which was not asked for",
    ),
    # impossible values (issue 12, items 4 and 11)
    (
        "count-1e400",
        bent(SUBSCRIBERS, _set("SubscriberNum", 10**400)),
        f"{AT_SUBSCRIBERS}: malformed answer: SubscriberNum is an integer of about 401 digits,"
        " not a possible count (0 to 4294967295)",
    ),
    (
        "count-1e12",
        bent(SUBSCRIBERS, _set("SubscriberNum", 10**12)),
        f"{AT_SUBSCRIBERS}: malformed answer: SubscriberNum is 1000000000000, not a possible"
        " count (0 to 4294967295)",
    ),
    (
        "count-negative",
        bent(SUBSCRIBERS, _set("SubscriberNum", -3)),
        f"{AT_SUBSCRIBERS}: malformed answer: SubscriberNum is -3, not a possible count"
        " (0 to 4294967295)",
    ),
    (
        "count-negative-text",
        bent(SUBSCRIBERS, _set("SubscriberNum", "-3")),
        f"{AT_SUBSCRIBERS}: malformed answer: SubscriberNum is '-3', not a possible count"
        " (0 to 4294967295)",
    ),
    (
        "count-float",
        bent(SUBSCRIBERS, _set("SubscriberNum", 3.0)),
        f"{AT_SUBSCRIBERS}: malformed answer: SubscriberNum is 3.0, not an integer",
    ),
    (
        "count-5000-digits-as-text",
        bent(SUBSCRIBERS, _set("SubscriberNum", "7" * 5000)),
        f"{AT_SUBSCRIBERS}: malformed answer: SubscriberNum is '{'7' * 36}..., not an integer",
    ),
    (
        "count-superscript-digit",
        bent(SUBSCRIBERS, _set("SubscriberNum", "\u00b2")),
        f"{AT_SUBSCRIBERS}: malformed answer: SubscriberNum is '\u00b2', not an integer",
    ),
    (
        "total-count-1e400",
        bent(OWNED, _set("TotalCount", 10**400)),
        f"{AT_OWNED}: malformed answer: TotalCount is an integer of about 401 digits, not a"
        " possible count (0 to 4294967295)",
    ),
    (
        "max-subscribers-negative",
        bent(OWNED, _news(_set("MaxSubscriberNum", -1))),
        f"{AT_OWNED}: malformed answer: OfficialAccountInfoList[0].MaxSubscriberNum is -1, not a"
        " possible count (0 to 4294967295)",
    ),
    (
        "subscriber-twice",
        bent(SUBSCRIBERS, _twice("SubscriberList", CustomString="someone else's")),
        f"{AT_SUBSCRIBERS}: malformed answer: SubscriberList lists 'bob' twice, with different"
        " CustomStrings",
    ),
    (
        "account-twice",
        bent(OWNED, _news_twice(SelfInfo={"CustomString": "{}"})),
        f"{AT_OWNED}: malformed answer: OfficialAccountInfoList lists '{NEWS}' twice, differently",
    ),
    (
        "info-twice",
        bent(
            INFO,
            _twice("OfficialAccountInfoList", ErrorCode=0, Owner_Account="dave", Name="Sports"),
        ),
        f"{AT_INFO}: answered twice, differently",
    ),
    (
        "speed-99",
        bent(SPEED, _set("speed", 99)),
        "wechat (mass_speed_get): speed answer holds speed 99, not a level 0..4",
    ),
    (
        "speed-negative",
        bent(SPEED, _set("speed", -1)),
        "wechat (mass_speed_get): speed answer holds speed -1, not a level 0..4",
    ),
    (
        "speed-huge",
        bent(SPEED, _set("speed", 10**400)),
        "wechat (mass_speed_get): speed answer holds speed an integer of about 401 digits,"
        " not a level 0..4",
    ),
    (
        "realspeed-negative",
        bent(SPEED, _set("realspeed", -3)),
        "wechat (mass_speed_get): speed answer holds realspeed -3, below 0",
    ),
    (
        "realspeed-boolean",
        bent(SPEED, _set("realspeed", True)),
        "wechat (mass_speed_get): speed answer lacks speed/realspeed",
    ),
    # huge answers
    (
        "huge-page",
        on(SUBSCRIBERS, _huge_page),
        f"{AT_SUBSCRIBERS}: a page held 5000 subscribers, over the 200 asked",
    ),
    (
        "huge-body",
        on(INFO, raw(b'{"x": "' + b"a" * (9 * 1024 * 1024) + b'"}')),
        f"{AT_INFO}: answer is larger than 8,388,608 bytes; refused",
    ),
    (
        "gzip-bomb",
        on(OWNED, _gzip_bomb),
        f"{AT_OWNED}: answer is larger than 8,388,608 bytes; refused",
    ),
    # endless paging
    (
        "endless-next",
        on(SUBSCRIBERS, _endless_cursor()),
        f"{AT_SUBSCRIBERS}: paging did not end after 4 pages for 3 subscribers",
    ),
    (
        "cursor-cycle",
        on(SUBSCRIBERS, _cursor_cycle),
        f"{AT_SUBSCRIBERS}: paging cursor did not advance",
    ),
    (
        "endless-offsets",
        on(OWNED, _endless_offsets),
        # news (the apply's inventory ledger slot was destroyed at its end, reconciler/ledger.py)
        f"{AT_OWNED}: paging did not end after 4 pages for 1 accounts",
    ),
    # statuses that are not retried
    (
        "http-404",
        on(INFO, raw(b"not here", status=404)),
        f"{AT_INFO}: unexpected HTTP status 404",
    ),
    (
        "http-401",
        on(TOKEN, raw(b"{}", status=401)),
        "wechat (stable_token) on wxsandbox00000000: unexpected HTTP status 401",
    ),
]


@pytest.mark.parametrize(
    ("script", "message"),
    [pytest.param(s, m, id=n) for n, s, m in ERRORS],
)
def test_a_bad_answer_ends_the_plan_with_one_clean_error(
    project: Project, script: Script, message: str
) -> None:
    with project.vendor(script) as run:
        result = run("plan", "m")
    assert (result.code, result.out, result.err) == (1, "", f"error: {message}\n")


#: (name, script, calls of the misbehaving command): transient faults retried, then an honest
#: answer; the plan is exactly the honest one.
RECOVERED: list[tuple[str, Script, tuple[str, int]]] = [
    ("503-twice", on(OWNED, first(2, Misbehave(b"<html>busy</html>", status=503))), (OWNED, 3)),
    ("429-once", on(SUBSCRIBERS, first(1, Misbehave(b"", status=429))), (SUBSCRIBERS, 2)),
    (
        "busy-code",
        on(
            INFO,
            first(2, answer({"ActionStatus": "FAIL", "ErrorCode": 60007, "ErrorInfo": "busy"})),
        ),
        (INFO, 3),
    ),
    (
        "cut-mid-body",
        on(
            CHECK,
            lambda c: (
                Misbehave(json.dumps(c.honest()).encode(), mode="cut") if c.count == 1 else None
            ),
        ),
        (CHECK, 2),
    ),
    (
        "system-busy",
        on(SPEED, first(1, answer({"errcode": -1, "errmsg": "system busy"}))),
        (SPEED, 2),
    ),
]


@pytest.mark.parametrize(
    ("script", "calls"), [(s, c) for _, s, c in RECOVERED], ids=[n for n, _, _ in RECOVERED]
)
def test_transient_faults_are_retried_and_the_plan_is_the_honest_one(
    project: Project, honest_plan: str, script: Script, calls: tuple[str, int]
) -> None:
    command, expected = calls
    with hostile_vendor(project.sandbox, script) as server:
        (project.root / "reconciler.yaml").write_text(CONFIG.format(url=server.base_url))
        result = run_cli(["plan", "m", "--config", "reconciler.yaml"])
        assert server.calls[command] == expected
    assert (result.code, result.err) == (0, "")
    assert _stable(result.out) == honest_plan


def test_a_storm_of_429_gives_up_after_five_attempts(project: Project) -> None:
    started = time.monotonic()
    with project.vendor(on(OWNED, raw(b"slow down", status=429))) as run:
        result = run("plan", "m")
    # 0.4 + 0.8 + 1.6 + 3.2 s of backoff (±20% jitter), then a clean error
    assert 4.5 < time.monotonic() - started < BOUND
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"error: tencent ({OWNED}) on reconciler-inventory: gave up after 5 attempts: HTTP 429\n"
    )


# -- apply against a hostile vendor ----------------------------------------------------------------


def test_a_garbled_membership_answer_fails_those_items_and_the_next_plan_holds_them(
    project: Project,
) -> None:
    script = on_account("@TOA#_sports", bent("add_subscriber", _set("SubscriberList", {"bob": 1})))
    with project.vendor(script) as run:
        result = run("apply", "m", "--auto-approve")
    assert result.code == 3, result
    assert "malformed answer: SubscriberList is {'bob': 1}, not an array" in result.out
    assert result.err == ""
    assert "unverified @TOA#_sports: 3 subscribers, expected 0" in result.out
    # The vendor did apply the calls; an honest re-read sees that, and only the inventory record
    # (written after an account's changes succeed) remains.
    with project.vendor(lambda call: None) as run:
        after = run("plan", "m", "--detailed-exitcode")
        assert (after.code, after.err) == (2, ""), after
        assert "Inventory records to update (bookkeeping only): 1: @TOA#_sports" in after.out
        assert "subscribers:" not in after.out
        assert run("apply", "m", "--auto-approve").code == 0
        assert run("plan", "m", "--detailed-exitcode").code == 0


def test_a_create_answered_with_garbage_is_a_failure_of_that_account(project: Project) -> None:
    script = on_account(
        "@TOA#_sports",
        bent("create_official_account", _set("OfficialAccountUserID", ["@TOA#_sports"])),
    )
    with project.vendor(script) as run:
        result = run("apply", "m", "--auto-approve")
    assert result.code == 3, result
    assert (
        "tencent (create_official_account) on @TOA#_sports: malformed answer:"
        " OfficialAccountUserID is ['@TOA#_sports'], not a string" in result.out
    )
    with project.vendor(lambda call: None) as run:
        assert run("apply", "m", "--auto-approve").code == 0
        assert run("plan", "m", "--detailed-exitcode").code == 0


def test_import_against_a_bad_answer_is_one_clean_error(project: Project) -> None:
    script = bent(SUBSCRIBERS, _drop("SubscriberNum"))
    with project.vendor(script) as run:
        result = run("import", "news", "--out", "imported")
    assert (result.code, result.err) == (
        1,
        f"error: {AT_SUBSCRIBERS}: malformed answer: SubscriberNum is missing\n",
    )
    assert not (project.root / "imported").exists()


# -- answers that never finish (through the provider, with a short timeout) ------------------------


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (
            Misbehave(b'{"ActionStatus": "OK"}' + b" " * 1000, mode="drip", pace=0.05),
            "timed out: no complete answer within 0.6s",
        ),
        (Misbehave(b"", mode="silent"), "timed out (ReadTimeout)"),
        (Misbehave(b'{"ActionStatus": "OK"}', mode="headers"), "timed out (ReadTimeout)"),
    ],
    ids=["slow-loris", "silent", "headers-only"],
)
def test_an_answer_that_never_finishes_times_out_and_is_retried_a_bounded_number_of_times(
    tmp_path: Path, reply: Misbehave, reason: str
) -> None:
    box = Sandbox(options(tmp_path / "sandbox.db"))

    async def main(url: str) -> ProviderError:
        async with httpx.AsyncClient() as http:
            client = TencentClient(
                http,
                sdkappid=1400000000,
                identifier="administrator",
                secret_key=Secret(KEY),
                pacer=Pacer(),
                endpoint=url,
                retry=RetryPolicy(attempts=2),
                timeout=0.3,
                sleep=_no_sleep,
            )
            with pytest.raises(ProviderError) as caught:
                await client.get_subscriptions("reconciler-inventory")
            return caught.value

    started = time.monotonic()
    with hostile_vendor(box, on(OWNED, lambda call: reply)) as server:
        error = asyncio.run(main(server.base_url))
        assert server.calls[OWNED] == 2
    box.close()
    assert time.monotonic() - started < 3.0
    assert str(error).startswith(f"{AT_OWNED}: gave up after 2 attempts: {reason}")
    assert KEY not in str(error)


def test_a_token_answer_that_never_finishes_times_out(tmp_path: Path) -> None:
    box = Sandbox(options(tmp_path / "sandbox.db"))
    reply = Misbehave(
        b'{"access_token": "t", "expires_in": 7200}' + b" " * 100, mode="drip", pace=0.05
    )

    async def main(url: str) -> ProviderError:
        async with httpx.AsyncClient() as http:
            client = WeChatClient(
                http,
                app_id="wxsandbox00000000",
                secret=Secret(WX),
                pacer=Pacer(),
                endpoint=url,
                retry=RetryPolicy(attempts=1),
                timeout=0.2,
            )
            with pytest.raises(ProviderError) as caught:
                await client.get_mass_speed()
            return caught.value

    with hostile_vendor(box, on(TOKEN, lambda call: reply)) as server:
        error = asyncio.run(main(server.base_url))
    box.close()
    assert str(error) == (
        "wechat (stable_token) on wxsandbox00000000: gave up after 1 attempts:"
        " timed out: no complete answer within 0.4s"
    )


def test_the_cli_ends_an_answer_that_never_finishes(project: Project) -> None:
    """Through the real process: 5 attempts of at most 2 × limits.timeoutSeconds each, then a
    clean error (a short timeout keeps the test quick; the default is 10 s)."""
    reply = Misbehave(b'{"ActionStatus": "OK"}' + b" " * 100_000, mode="drip", pace=0.05)
    with hostile_vendor(project.sandbox, on(OWNED, lambda call: reply)) as server:
        (project.root / "reconciler.yaml").write_text(
            CONFIG.format(url=server.base_url) + "limits: {timeoutSeconds: 0.3}\n"
        )
        process = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", "m"],
            cwd=project.root,
            env={**os.environ, **ENV},
            capture_output=True,
            text=True,
            timeout=150,
        )
    assert (process.returncode, process.stdout) == (1, "")
    assert process.stderr == (
        f"error: tencent ({OWNED}) on reconciler-inventory: gave up after 5 attempts:"
        " timed out: no complete answer within 0.6s\n"
    )


def test_the_real_process_exits_cleanly_on_a_bad_answer(project: Project) -> None:
    with hostile_vendor(project.sandbox, on(INFO, raw(b"]]]"))) as server:
        (project.root / "reconciler.yaml").write_text(CONFIG.format(url=server.base_url))
        process = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", "m"],
            cwd=project.root,
            env={**os.environ, **ENV},
            capture_output=True,
            text=True,
            timeout=BOUND,
        )
    assert (process.returncode, process.stdout, process.stderr) == (
        1,
        "",
        f"error: tencent ({INFO}) on {SPORTS}: response is not JSON\n",
    )


# -- provider-level odds and ends ------------------------------------------------------------------


def _run_client(project: Project, script: Script, body: Callable[[TencentClient], Any]) -> Any:
    async def main(url: str) -> Any:
        async with httpx.AsyncClient() as http:
            return await body(tencent_client(http, url, KEY))

    with hostile_vendor(project.sandbox, script) as server:
        return asyncio.run(main(server.base_url))


def test_a_garbled_import_answer_fails_every_user_of_the_batch(project: Project) -> None:
    script = bent("multiaccount_import", _set("FailAccounts", "dave"))
    results = _run_client(project, script, lambda c: c.import_accounts(["dave", "erin"]))
    assert sorted(results.failed) == ["dave", "erin"]
    assert results.failed["dave"].message == (
        "tencent (multiaccount_import) on dave (+1 more): malformed answer: FailAccounts is not"
        " an array of ids"
    )


def test_membership_answers_about_users_not_asked_for_are_ignored(project: Project) -> None:
    def extra(doc: dict[str, Any]) -> None:
        doc["SubscriberList"].append({"Subscriber_Account": "mallory", "Result": 1})

    script = bent("add_subscriber", extra)
    results = _run_client(project, script, lambda c: c.add_subscribers(NEWS, ["alice"]))
    assert (results.changed, results.unchanged, dict(results.failed)) == (
        frozenset({"alice"}),
        frozenset(),
        {},
    )


def test_subscription_pages_are_bounded_and_their_self_info_checked(project: Project) -> None:
    def huge(doc: dict[str, Any]) -> None:
        item = doc["OfficialAccountInfoList"][0]
        doc["OfficialAccountInfoList"] = [
            {**item, "Official_Account": f"@TOA#_a{i}"} for i in range(201)
        ]

    def lacking(doc: dict[str, Any]) -> None:
        del doc["OfficialAccountInfoList"][0]["SelfInfo"]

    def odd_record(doc: dict[str, Any]) -> None:
        doc["OfficialAccountInfoList"][0]["SelfInfo"]["CustomString"] = ["r"]

    async def read(client: TencentClient) -> Any:
        try:
            return await client.get_subscriptions("reconciler-inventory")
        except ProviderError as exc:
            return str(exc)

    assert _run_client(project, bent(OWNED, huge), read) == (
        f"{AT_OWNED}: a page held 201 accounts, over the 200 asked"
    )
    # the first item (news: the apply's ledger slot was destroyed at its end) lacks its
    # SelfInfo: read as an empty one
    (only,) = _run_client(project, bent(OWNED, lacking), read)
    assert (only.custom_string, only.account.id) == ("", NEWS)
    assert _run_client(project, bent(OWNED, odd_record), read) == (
        f"{AT_OWNED}: malformed answer: OfficialAccountInfoList[0].SelfInfo.CustomString is"
        " ['r'], not a string"
    )


def test_field_readers() -> None:
    from reconciler.providers.records import (
        MalformedAnswer,
        count_field,
        int_field,
        object_list,
    )

    assert [int_field({"t": v}, "t") for v in (True, 7, " 12", "-3", "soon", 1.5, None)] == [
        1,
        7,
        12,
        -3,
        0,
        0,
        0,
    ]
    assert count_field({"n": "42"}, "n") == 42 and count_field({}, "n") == 0
    assert object_list({}, "l") == []
    for read, item, message in [
        (lambda i: count_field(i, "n", required=True), {}, "n is missing"),
        (lambda i: object_list(i, "l", required=True), {}, "l is missing"),
        (lambda i: object_list(i, "l"), {"l": [{}, 3]}, "l[1] is 3, not an object"),
        (
            lambda i: count_field(i, "n"),
            {"n": "x" * 50},
            "n is 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..., not an integer",
        ),
    ]:
        with pytest.raises(MalformedAnswer) as caught:
            read(item)
        assert str(caught.value) == message


# -- a vendor quoting the credentials it was sent (issue 12, item 1) -------------------------------


def _sent(call: Call, name: str) -> tuple[str, str]:
    """The credential `name` of a request's query: as sent on the wire (URL-encoded) and decoded."""
    wire = re.search(rf"(?:^|&){name}=([^&]*)", call.query)
    assert wire is not None
    return wire.group(1), parse_qs(call.query)[name][0]


def _quoting_sigs(sent: list[str]) -> Script:
    """The inventory walk is refused, quoting the sig: first as expired (70001, which makes the
    client drop the sig and retry with a fresh one), then as invalid (70009, not retried),
    quoting both sigs, the second as it came on the wire (URL-encoded)."""

    def reply(call: Call) -> dict[str, Any]:
        wire, sig = _sent(call, "usersig")
        sent.extend([wire, sig])
        if call.count == 1:
            return {"ActionStatus": "FAIL", "ErrorCode": 70001, "ErrorInfo": f"expired: {sig}"}
        return {
            "ActionStatus": "FAIL",
            "ErrorCode": 70009,
            "ErrorInfo": f"sig {wire} invalid, and so was {sent[1]}",
        }

    return on(OWNED, reply)


def _quoting_tokens(sent: list[str]) -> Script:
    """The speed read is refused as a bad token (40001: the client drops it, fetches another,
    which the vendor makes a new one, and re-issues once), quoting every token it was sent and
    the AppSecret."""

    def reply(call: Call) -> dict[str, Any] | None:
        if call.command == TOKEN and call.count > 1:
            return {"access_token": "a-second-token-of-the-hostile-vendor", "expires_in": 7200}
        if call.command != SPEED:
            return None
        wire, token = _sent(call, "access_token")
        sent.extend([wire, token])
        quoted = ", ".join(sent[1::2])
        return {"errcode": 40001, "errmsg": f"invalid credential {quoted}; appsecret {WX}"}

    return reply


def _leaked(texts: list[str], secrets: list[str]) -> list[str]:
    """The secrets (or their first 24 characters) found in any of `texts`."""
    return sorted({s for s in secrets for t in texts if s in t or s[:24] in t})


@pytest.mark.parametrize("verbosity", ["-v", "-vv"])
@pytest.mark.parametrize(
    ("quoting", "message"),
    [
        (
            _quoting_sigs,
            f"{AT_OWNED}: sig *** invalid, and so was *** [vendor code 70009]",
        ),
        (
            _quoting_tokens,
            "wechat (mass_speed_get) on wxsandbox00000000: invalid credential ***, ***;"
            " appsecret *** [vendor code 40001]",
        ),
    ],
    ids=["usersig", "access-token"],
)
def test_a_credential_the_vendor_quotes_is_masked_in_every_output(
    project: Project,
    tmp_path: Path,
    verbosity: str,
    quoting: Callable[[list[str]], Script],
    message: str,
) -> None:
    """Through the real process, its log on stderr written to a file: the credential a vendor
    quotes (the sig it calls expired and the client then drops, the token it rejects and the
    client then replaces, the AppSecret) shows nowhere. Fixed: the sig just dropped was no
    longer masked, and `gave up after 5 attempts: vendor code 70001: usersig expired: <sig>`
    printed a valid UserSig."""
    sent: list[str] = []
    log = tmp_path / "stderr.log"
    with hostile_vendor(project.sandbox, quoting(sent)) as server:
        (project.root / "reconciler.yaml").write_text(CONFIG.format(url=server.base_url))
        with log.open("w") as stderr:
            process = subprocess.run(
                [sys.executable, "-m", "reconciler", "plan", "m", verbosity],
                cwd=project.root,
                env={**os.environ, **ENV},
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                timeout=BOUND,
            )
    logged = log.read_text()
    assert (process.returncode, process.stdout) == (1, "")
    assert logged.endswith(f"\nerror: {message}\n"), logged
    assert "retry" in logged or "refreshing" in logged  # the logs were on, quoting the vendor
    assert len(sent) == 4  # two requests' sigs or tokens, each as sent and decoded
    assert _leaked([process.stdout, logged], [*sent, KEY, WX]) == []


def test_a_credential_quoted_in_an_answer_s_data_is_masked_there_too(project: Project) -> None:
    """A vendor quoting the sig in a field (the account's name), or in a field of the wrong type
    (its introduction, which the error quotes truncated): the plan and the error show `***`."""
    sent: list[str] = []

    def quoting(key: str, value: Callable[[str], Any]) -> Script:
        def change(call: Call) -> dict[str, Any]:
            sent.append(_sent(call, "usersig")[1])
            doc = call.honest()
            for item in doc["OfficialAccountInfoList"]:
                if item["Official_Account"] == NEWS:
                    item[key] = value(sent[-1])
            return doc

        return on(OWNED, change)

    with project.vendor(quoting("Name", lambda sig: sig)) as run:
        renamed = run("plan", "m")
    assert (renamed.code, renamed.err) == (0, "")
    assert 'name: "***" → "Daily News"' in renamed.out
    with project.vendor(quoting("Introduction", lambda sig: [sig])) as run:
        garbled = run("plan", "m")
    assert (garbled.code, garbled.out) == (1, "")
    assert garbled.err == (
        f"error: {AT_OWNED}: malformed answer: OfficialAccountInfoList[0].Introduction is"
        " ['***'], not a string\n"
    )
    assert sent and _leaked([renamed.out, garbled.err], sent) == []


# -- counts that cannot be true (issue 12, items 4 and 11) -----------------------------------------


def _lying_pages(total: int) -> Callable[[Call], dict[str, Any]]:
    """Every page a fresh cursor and 200 new ids, counting `total` subscribers."""

    def reply(call: Call) -> dict[str, Any]:
        return {
            "ActionStatus": "OK",
            "ErrorCode": 0,
            "ErrorInfo": "",
            "SubscriberNum": total,
            "Next": f"cursor-{call.count}",
            "SubscriberList": [
                {"Subscriber_Account": f"u{call.count}-{i}", "CustomString": "", "MsgFlag": ""}
                for i in range(200)
            ],
        }

    return reply


def test_a_count_the_account_cannot_hold_bounds_the_paging_by_what_it_can(
    project: Project,
) -> None:
    """The vendor counts 10**9 subscribers (a possible 32-bit count) and keeps handing out fresh
    cursors with 200 new ids: paging stops after the pages `news` can fill, its MaxSubscriberNum
    (100,000, the vendor's default) / 200 + 3 of slack. Fixed: the budget trusted the count and
    kept `plan` paging past 17,000 pages and 650 MB."""
    with hostile_vendor(project.sandbox, on(SUBSCRIBERS, _lying_pages(10**9))) as server:
        (project.root / "reconciler.yaml").write_text(CONFIG.format(url=server.base_url))
        result = run_cli(["plan", "m", "--config", "reconciler.yaml"])
        assert server.calls[SUBSCRIBERS] == 503
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"error: {AT_SUBSCRIBERS}: paging did not end after 503 pages: the answers count"
        " 1000000000 subscribers, but the account holds at most 100000\n"
    )


def test_a_vendor_lying_about_what_the_account_holds_too_meets_the_read_deadline(
    project: Project,
) -> None:
    """MaxSubscriberNum and SubscriberNum both 4,000,000,000: only `limits.readDeadlineSeconds`
    (here 0.5 s) ends the read."""
    script = bent(OWNED, _news(_set("MaxSubscriberNum", 4 * 10**9)))

    def lying(call: Call) -> Misbehave | dict[str, Any] | None:
        return _lying_pages(4 * 10**9)(call) if call.command == SUBSCRIBERS else script(call)

    started = time.monotonic()
    with hostile_vendor(project.sandbox, lying) as server:
        (project.root / "reconciler.yaml").write_text(
            CONFIG.format(url=server.base_url) + "limits: {readDeadlineSeconds: 0.5}\n"
        )
        result = run_cli(["plan", "m", "--config", "reconciler.yaml"])
        pages = server.calls[SUBSCRIBERS]
    assert time.monotonic() - started < BOUND
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"error: {AT_SUBSCRIBERS}: paging did not end within 0.5s (limits.readDeadlineSeconds),"
        f" after {pages} pages\n"
    )
    assert 1 < pages < 1000


def test_the_read_deadline_counts_from_the_first_page(project: Project) -> None:
    """Through the provider with a clock that moves 1 s a page: a deadline of 10 s ends the read
    at its 10th page, asked for by both paged reads."""
    ticks = iter(range(1_000_000))

    async def main(url: str) -> tuple[str, str]:
        async with httpx.AsyncClient() as http:
            client = TencentClient(
                http,
                sdkappid=1400000000,
                identifier="administrator",
                secret_key=Secret(KEY),
                pacer=Pacer(),
                endpoint=url,
                retry=RetryPolicy(attempts=1),
                read_deadline=10,
                clock=lambda: float(next(ticks)),
            )
            errors = []
            for read in (
                client.get_subscribers(NEWS),
                client.get_subscriptions("reconciler-inventory"),
            ):
                with pytest.raises(ProviderError) as caught:
                    await read
                errors.append(str(caught.value))
            return errors[0], errors[1]

    def endless(call: Call) -> dict[str, Any] | None:
        if call.command == SUBSCRIBERS:
            return _lying_pages(4 * 10**9)(call)
        if call.command == OWNED:
            return {**_endless_offsets(call), "TotalCount": 4 * 10**9}
        return None

    with hostile_vendor(project.sandbox, endless) as server:
        subscribers, owned = asyncio.run(main(server.base_url))
        assert (server.calls[SUBSCRIBERS], server.calls[OWNED]) == (10, 10)
    assert subscribers == (
        f"{AT_SUBSCRIBERS}: paging did not end within 10s (limits.readDeadlineSeconds),"
        " after 10 pages"
    )
    assert owned == (
        f"{AT_OWNED}: paging did not end within 10s (limits.readDeadlineSeconds), after 10 pages"
    )


@pytest.mark.parametrize(
    "script",
    [
        bent(SUBSCRIBERS, _twice("SubscriberList")),
        bent(OWNED, _news_twice()),
        bent(INFO, _twice("OfficialAccountInfoList")),
    ],
    ids=["subscriber", "subscription", "account-info"],
)
def test_an_item_listed_twice_alike_is_read_once(
    project: Project, honest_plan: str, script: Script
) -> None:
    """A member may move between pages while they are read: listed twice with the same data, it
    is one item (with different data, it is refused: ERRORS above)."""
    with project.vendor(script) as run:
        result = run("plan", "m")
    assert (result.code, result.err) == (0, "")
    assert _stable(result.out) == honest_plan
