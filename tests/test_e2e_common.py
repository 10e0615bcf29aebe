"""Shared pieces of the end-to-end scenarios (`tests/test_e2e_*.py`); this module holds no tests.

The scenarios drive the real CLI, either in a subprocess (`python -m reconciler ...`, cwd a tmp
project) or in-process (`reconciler.cli.main`, for speed), against a sandbox served over real HTTP
on 127.0.0.1: `reconciler sandbox serve --port 0` in a subprocess (`ServedSandbox`, for latency and
faults) or the in-thread server of `conftest.make_sandbox_server`. Final state is checked with raw
vendor calls (`Vendor`), never through reconciler's own read.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import cli
from reconciler.ledger import read_slot
from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.serve import RunningServer
from reconciler.sandbox.server import SandboxOptions

#: Credentials of the e2e sandboxes: not the defaults, so a leak of them is recognisable.
IM_SECRET = "e2e-im-secret-key-7c1f0a9b55d4"
WECHAT_SECRET = "e2e-wechat-secret-93d2e7aa0be1"
#: The environment variables reconciler.yaml reads them from.
ENV = {"E2E_IM_KEY": IM_SECRET, "E2E_WX_SECRET": WECHAT_SECRET}
INVENTORY = "reconciler-inventory"
#: how the ids of the inventory ledger's slots start (sha256("reconciler-inventory")[:12])
LEDGER_SLOT = "@TOA#_rcl-f60a3fdba772-"
PROFILE_KEYS = ("Name", "Introduction", "FaceUrl", "Organization", "CustomString")


def sandbox_options(db_path: Path, **overrides: Any) -> SandboxOptions:
    """The e2e sandbox's options (its own secrets, the default ids)."""
    return SandboxOptions(
        db_path=db_path, secret_key=IM_SECRET, wechat_secret=WECHAT_SECRET, **overrides
    )


@dataclass(frozen=True, slots=True)
class Result:
    """What one CLI run returned."""

    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def text(self) -> str:
        return self.out + self.err


class ServedSandbox:
    """`reconciler sandbox serve --port 0` in a subprocess; `base_url` parsed from its banner.

    Its stderr goes to a file beside the database (a pipe nobody reads could fill and stall it).
    """

    def __init__(self, db_path: Path, *flags: str, start_timeout: float = 30) -> None:
        self.db_path = db_path
        self.log_path = db_path.with_name(db_path.name + ".serve.log")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reconciler",
                    "sandbox",
                    "serve",
                    "--port",
                    "0",
                    "--db",
                    str(db_path),
                    "--secret-key",
                    IM_SECRET,
                    "--wechat-secret",
                    WECHAT_SECRET,
                    *flags,
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], start_timeout)
        first = self.process.stdout.readline() if ready else ""
        if not first.startswith("reconciler sandbox listening on "):
            self.stop()
            log_text = self.log_path.read_text(errors="replace")
            raise RuntimeError(f"sandbox serve did not start: {first!r}\n{log_text}")
        self.base_url = first.split()[-1]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def served_sandbox(db_path: Path, *flags: str) -> Iterator[ServedSandbox]:
    server = ServedSandbox(db_path, *flags)
    try:
        yield server
    finally:
        server.stop()


class Vendor:
    """Raw vendor-protocol calls against a sandbox: out-of-band changes and final-state checks."""

    def __init__(
        self, base_url: str, db_path: Path, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30, transport=transport)
        self.client = SandboxClient(self.http, sandbox_options(db_path))

    def close(self) -> None:
        self.http.close()

    def _ok(self, doc: dict[str, Any]) -> dict[str, Any]:
        assert doc.get("ActionStatus") == "OK", doc
        return doc

    # -- reads ----------------------------------------------------------------------------------

    def account(self, account_id: str) -> dict[str, Any] | None:
        """The account's base info, or None when it does not exist."""
        doc = self._ok(
            self.client.oa(
                "get_official_account_info",
                {"OfficialAccountIdList": [{"Official_Account": account_id}]},
            )
        )
        (item,) = doc["OfficialAccountInfoList"]
        if item.get("ActionStatus") != "OK":
            return None
        return dict(item)

    def profile(self, account_id: str) -> dict[str, Any]:
        """Owner, the five text fields and MaxSubscriberNum of an account that must exist."""
        info = self.account(account_id)
        assert info is not None, f"{account_id} does not exist"
        keys = ("Owner_Account", *PROFILE_KEYS, "MaxSubscriberNum")
        return {k: info[k] for k in keys}

    def subscribers(self, account_id: str, *, with_inventory: bool = False) -> dict[str, str]:
        """Every subscriber with its CustomString (the inventory user left out unless asked)."""
        found: dict[str, str] = {}
        cursor = ""
        while True:
            doc = self._ok(
                self.client.oa(
                    "get_subscriber_info",
                    {"Official_Account": account_id, "Limit": 200, "Next": cursor},
                )
            )
            for item in doc["SubscriberList"]:
                found[item["Subscriber_Account"]] = item["CustomString"]
            cursor = doc["Next"]
            if not cursor:
                break
        if not with_inventory:
            found.pop(INVENTORY, None)
        return found

    def members(self, account_id: str) -> set[str]:
        return set(self.subscribers(account_id))

    def _subscribed(self) -> list[dict[str, Any]]:
        doc = self._ok(
            self.client.oa(
                "get_subscribed_official_account_list",
                {"Subscriber_Account": INVENTORY, "Limit": 200},
            )
        )
        assert doc["CompleteFlag"] == 1
        return list(doc["OfficialAccountInfoList"])

    def owned(self) -> set[str]:
        """The accounts the inventory user subscribes to, its ledger's slots left out."""
        return {
            item["Official_Account"]
            for item in self._subscribed()
            if not item["Official_Account"].startswith(LEDGER_SLOT)
        }

    def ledger(self) -> dict[str, list[str]]:
        """The inventory ledger's slots the inventory user subscribes to: id → the ids held
        (their CustomString after its header line, as stored)."""
        slots = {}
        for item in self._subscribed():
            if item["Official_Account"].startswith(LEDGER_SLOT):
                read = read_slot(item["CustomString"])
                assert read is not None, item
                slots[item["Official_Account"]] = sorted(read[0])
        return slots

    def imported(self, users: Iterable[str]) -> dict[str, bool]:
        wanted = sorted(set(users))
        doc = self._ok(
            self.client.account("account_check", {"CheckItem": [{"UserID": u} for u in wanted]})
        )
        return {i["UserID"]: i["AccountStatus"] == "Imported" for i in doc["ResultItem"]}

    def speed(self) -> int:
        doc = self.client.wx("message/mass/speed/get")
        return int(doc["speed"])

    def log(self) -> list[dict[str, Any]]:
        """The whole persistent call log."""
        entries: list[dict[str, Any]] = []
        since = 0
        while True:
            page = self.http.get("/__sandbox/log", params={"since": since, "limit": 5000}).json()
            if not page["entries"]:
                return entries
            entries += page["entries"]
            since = page["next"]

    def effects(self) -> Counter[tuple[str, ...]]:
        """How many times each state change happened (a subscriber added twice counts 2)."""
        return Counter(tuple(e) for entry in self.log() for e in entry["effects"])

    # -- out-of-band writes ---------------------------------------------------------------------

    def import_users(self, *users: str) -> None:
        self._ok(self.client.account("multiaccount_import", {"Accounts": list(users)}))

    def create(self, account_id: str, owner: str, name: str, **fields: Any) -> None:
        body = {"Owner_Account": owner, "OfficialAccountUserID": account_id, "Name": name}
        self._ok(self.client.oa("create_official_account", {**body, **fields}))

    def modify(self, account_id: str, **fields: Any) -> None:
        body = {"Official_Account": account_id, **fields}
        self._ok(self.client.oa("modify_official_account_base_info", body))

    def add(self, account_id: str, *users: str) -> None:
        items = [{"Subscriber_Account": u} for u in users]
        doc = self._ok(
            self.client.oa(
                "add_subscriber", {"Official_Account": account_id, "SubscriberList": items}
            )
        )
        assert all(i["Result"] in (1, 2) for i in doc["SubscriberList"]), doc

    def remove(self, account_id: str, *users: str) -> None:
        body = {"Official_Account": account_id, "SubscriberToDel_Account": list(users)}
        self._ok(self.client.oa("delete_subscriber", body))

    def set_profile(self, account_id: str, user: str, value: str) -> None:
        body = {"Official_Account": account_id, "Subscriber_Account": user, "CustomString": value}
        self._ok(self.client.oa("modify_subscriber_info", body))

    def delete_users(self, *users: str) -> None:
        body = {"DeleteItem": [{"UserID": u} for u in users]}
        doc = self._ok(self.client.account("account_delete", body))
        assert all(i["ResultCode"] == 0 for i in doc["ResultItem"]), doc

    def destroy(self, account_id: str) -> None:
        self._ok(self.client.oa("destroy_official_account", {"Official_Account": account_id}))

    def set_speed(self, speed: int) -> None:
        doc = self.client.wx("message/mass/speed/set", {"speed": speed})
        assert doc.get("errcode", 0) == 0, doc


def config_text(
    base_url: str,
    *,
    safety: Mapping[str, Any] | None = None,
    limits: Mapping[str, Any] | None = None,
) -> str:
    """reconciler.yaml for a `tencent` target at `base_url`, secrets from the environment."""
    lines = [
        "defaultTarget: local",
        "targets:",
        "  local:",
        "    type: tencent",
        f"    endpoint: {base_url}",
        "    sdkAppId: 1400000000",
        "    identifier: administrator",
        "    secretKey: ${E2E_IM_KEY}",
        "    wechat:",
        "      appId: wxsandbox00000000",
        "      secret: ${E2E_WX_SECRET}",
        f"      endpoint: {base_url}",
    ]
    if safety:
        lines.append(f"safety: {json.dumps(dict(safety))}")
    if limits:
        lines.append(f"limits: {json.dumps(dict(limits))}")
    return "\n".join(lines) + "\n"


def account_doc(account_id: str, owner: str = "ops_admin", **spec: Any) -> str:
    """An OfficialAccount document (JSON is YAML); `labels=` goes to metadata."""
    labels = spec.pop("labels", None)
    metadata: dict[str, Any] = {"id": account_id}
    if labels:
        metadata["labels"] = labels
    body = {
        "apiVersion": "reconciler/v1",
        "kind": "OfficialAccount",
        "metadata": metadata,
        "spec": {"owner": owner, **spec},
    }
    return json.dumps(body, ensure_ascii=False)


def users(*names: str) -> str:
    """A UserAccounts document naming these users."""
    return (
        "apiVersion: reconciler/v1\nkind: UserAccounts\nmetadata: {name: people}\n"
        f"spec: {{members: [{', '.join(names)}]}}"
    )


def docs(*documents: str) -> str:
    return "\n---\n".join(documents) + "\n"


@dataclass
class Project:
    """A tmp project directory with a reconciler.yaml pointing at one sandbox server."""

    root: Path
    base_url: str
    db_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def configure(self, **kwargs: Any) -> None:
        self.write("reconciler.yaml", config_text(self.base_url, **kwargs))

    def manifests(self, *documents: str, name: str = "m/accounts.yaml") -> None:
        self.write(name, docs(*documents))

    def vendor(self) -> Vendor:
        return Vendor(self.base_url, self.db_path)

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> Result:
        """The CLI in a subprocess (stdin a pipe, never a terminal)."""
        env = {**os.environ, **ENV, **self.env, "NO_COLOR": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env=env,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def cli(self, *args: str) -> Result:
        """The CLI in-process (`cli.main`); the caller has chdir'd here and set `ENV`."""
        out, err = io.StringIO(), io.StringIO()
        stdin = io.StringIO("")
        old_stdin = sys.stdin
        sys.stdin = stdin
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(list(args))
        finally:
            sys.stdin = old_stdin
        return Result(code, out.getvalue(), err.getvalue())


def in_process_project(
    tmp_path: Path,
    make_sandbox_server: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
    **server_options: Any,
) -> Project:
    """A project in `tmp_path/project` (the current directory from now on, `ENV` set) whose
    reconciler.yaml points at a new in-thread sandbox server over real HTTP."""
    server = make_sandbox_server(
        secret_key=IM_SECRET, wechat_secret=WECHAT_SECRET, **server_options
    )
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NO_COLOR", "1")
    project = Project(root, server.base_url, Path(server.db_path))
    project.configure()
    return project


def vendor_accounts(db_path: Path) -> tuple[set[str], set[str], set[str]]:
    """Every account the sandbox's store holds, those the inventory user subscribes to, and the
    ids the inventory ledger's slots that it subscribes to name: one snapshot, read from the
    store itself."""
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as conn, conn:
        conn.execute("BEGIN")
        rows = conn.execute("SELECT oa_id, custom_string FROM accounts").fetchall()
        owned = {
            r[0]
            for r in conn.execute(
                "SELECT account FROM subscriptions WHERE subscriber = ?", (INVENTORY,)
            )
        }
    # only a slot the inventory user subscribes to is found by a run: what an unsubscribed one
    # names is lost (the claim protocol sends no create before the subscription)
    named = {
        account
        for oa_id, text in rows
        if oa_id.startswith(LEDGER_SLOT) and oa_id in owned
        for account in (read_slot(str(text)) or (frozenset(), None))[0]
    }
    return {r[0] for r in rows}, owned, named


def unowned(db_path: Path) -> set[str]:
    """Accounts that are neither owned by the inventory user nor a ledger slot."""
    every, owned, _ = vendor_accounts(db_path)
    return {a for a in every - owned if not a.startswith(LEDGER_SLOT)}


def unrecorded(db_path: Path) -> set[str]:
    """Accounts neither owned, nor a ledger slot, nor named in one: what no run could find."""
    _, _, named = vendor_accounts(db_path)
    return unowned(db_path) - named


def assert_lines(result: Result, *expected: str) -> None:
    """Every expected line appears in stdout, in this order."""
    lines = result.lines
    at = 0
    for line in expected:
        assert line in lines[at:], f"{line!r} not in output (after line {at}):\n{result.out}"
        at = lines.index(line, at) + 1


def no_changes(result: Result) -> None:
    assert result.code == 0, result.text
    assert "No changes. The live system matches the manifests." in result.lines, result.out


#: a UserSig or access token shown anywhere but as `***`
_CREDENTIAL_IN_URL = re.compile(r"(usersig|access_token|secret)=(?!\*\*\*)", re.IGNORECASE)


def secrets_absent(texts: Sequence[str]) -> None:
    """No secret key, app secret, UserSig or access token in any of `texts`."""
    for text in texts:
        for secret in (IM_SECRET, WECHAT_SECRET):
            assert secret not in text
        found = _CREDENTIAL_IN_URL.search(text)
        assert found is None, text[max(found.start() - 200, 0) : found.end() + 200]


def apply(project: Project, *flags: str) -> Result:
    """`apply m --auto-approve` in-process."""
    return project.cli("apply", "m", "--auto-approve", *flags)


def converged(project: Project, *flags: str) -> None:
    """The acceptance property: after apply, a fresh plan has no changes."""
    result = project.cli("plan", "m", "--detailed-exitcode", *flags)
    no_changes(result)


def summary(result: Result) -> str:
    """The apply summary line without its timing (calls and seconds vary)."""
    (line,) = [x for x in result.lines if x.startswith("Applied: ")]
    return line.rsplit(";", 1)[0]
