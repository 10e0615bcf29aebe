"""No secret ever shows: every command, every format, every log level, every file it writes.

A `reconciler sandbox serve` subprocess accepts distinctive credentials; a `tencent` target reads
them from the environment. Every command runs with `-v` and `-vv`, its log records going both to
a captured stream and to a log file (Python logging, as an operator would configure it), and a few
run as real processes (logs on their stderr). Then the secret key, every UserSig the client can
have generated for it during the run, the WeChat AppSecret and every access token the sandbox
issued are looked for in stdout, stderr, the log files and every file the commands wrote.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from reconciler import cli, usersig
from reconciler.providers.tencent import SIG_EXPIRE

SECRET_KEY = "s3cr3t-im-key-4a1f9c0d2e7b"
WX_SECRET = "s3cr3t-wx-secret-b83e61f0aa52"
SDKAPPID = 1400000777
ADMIN = "administrator"
WX_APPID = "wxsecrets0000001"
ENV = {"SEC_IM_KEY": SECRET_KEY, "SEC_WX_SECRET": WX_SECRET}

MANIFESTS = """apiVersion: reconciler/v1
kind: OfficialAccount
metadata: {id: news}
spec:
  owner: alice
  name: Daily News
  subscribers: {policy: exact, members: [bob, carol], profiles: {bob: vip}}
---
apiVersion: reconciler/v1
kind: UserAccounts
metadata: {name: users}
spec: {members: [alice, bob, carol]}
---
apiVersion: reconciler/v1
kind: MassSpeed
metadata: {name: wechat-main}
spec: {speed: 3}
"""
CONFIG = """defaultTarget: served
targets:
  served:
    type: tencent
    endpoint: {url}
    sdkAppId: {sdkappid}
    identifier: {admin}
    secretKey: ${{SEC_IM_KEY}}
    wechat:
      appId: {appid}
      secret: ${{SEC_WX_SECRET}}
      endpoint: {url}
"""


@dataclass(slots=True)
class Texts:
    """Everything the commands showed or wrote, by where it came from."""

    items: list[tuple[str, str]]

    def add(self, where: str, text: str) -> None:
        self.items.append((where, text))


class Served:
    """`reconciler sandbox serve -vv` with the distinctive credentials; output to files (a pipe
    nobody reads could fill and stall it)."""

    def __init__(self, db: Path, out: Path) -> None:
        self.db = db
        self.out, self.err = out.with_suffix(".out"), out.with_suffix(".err")
        with self.out.open("w") as stdout, self.err.open("w") as stderr:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reconciler",
                    "sandbox",
                    "serve",
                    "-vv",
                    "--port",
                    "0",
                    "--db",
                    str(db),
                    "--sdkappid",
                    str(SDKAPPID),
                    "--admin",
                    ADMIN,
                    "--secret-key",
                    SECRET_KEY,
                    "--wechat-appid",
                    WX_APPID,
                    "--wechat-secret",
                    WX_SECRET,
                ],
                stdout=stdout,
                stderr=stderr,
                text=True,
            )
        deadline = time.monotonic() + 20
        while "Press Ctrl+C" not in self.out.read_text():
            assert self.process.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, "sandbox serve did not start"
            time.sleep(0.02)
        first = self.out.read_text().splitlines()[0]
        assert first.startswith("reconciler sandbox listening on "), first
        self.base_url = first.split()[-1]

    def stop(self) -> tuple[str, str]:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=20) == 0
        return self.out.read_text(), self.err.read_text()


@contextlib.contextmanager
def logs_to(stream: io.StringIO, file: Path, verbosity: int) -> Iterator[None]:
    """Root logging as `-v`/`-vv` sets it, into `stream` and `file` (cli.main's basicConfig
    leaves a configured root alone)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    file_handler = logging.FileHandler(file, encoding="utf-8")
    handlers: list[logging.Handler] = [logging.StreamHandler(stream), file_handler]
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.handlers = handlers
    root.setLevel(logging.WARNING - 10 * verbosity)
    try:
        yield
    finally:
        root.handlers, level = saved
        root.setLevel(level)
        file_handler.close()


def run_in_process(texts: Texts, logs: Path, verbosity: int, *args: str) -> int:
    flag = "-" + "v" * verbosity
    out, err, log_stream = io.StringIO(), io.StringIO(), io.StringIO()
    with (
        logs_to(log_stream, logs / f"{len(texts.items)}.log", verbosity),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = cli.main([*args, flag])
    name = " ".join([*args, flag])
    texts.add(f"{name}: stdout", out.getvalue())
    texts.add(f"{name}: stderr", err.getvalue())
    texts.add(f"{name}: log stream", log_stream.getvalue())
    return code


def run_process(texts: Texts, root: Path, *args: str) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=root,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    texts.add(f"process {' '.join(args)}: stdout", done.stdout)
    texts.add(f"process {' '.join(args)}: stderr", done.stderr)
    return done.returncode


def usersigs(since: float, until: float) -> set[str]:
    """Every UserSig the client can have made for the admin in [since, until] (one a second)."""
    return {
        usersig.generate(SDKAPPID, SECRET_KEY, ADMIN, now=t, expire=SIG_EXPIRE)
        for t in range(int(since) - 1, int(until) + 2)
    }


def issued_tokens(db: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {row[0] for row in conn.execute("SELECT token FROM wx_tokens")}


def leaks(texts: Texts, secrets: dict[str, set[str]]) -> list[str]:
    """`where: what` for every secret (or its first 24 characters) found in a text."""
    found = []
    for where, text in texts.items:
        for kind, values in secrets.items():
            for value in values:
                if value in text or value[:24] in text:
                    found.append(f"{where}: {kind}")
    return found


def test_no_command_shows_or_writes_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    root = tmp_path / "project"
    (root / "m").mkdir(parents=True)
    (root / "m" / "all.yaml").write_text(MANIFESTS)
    logs = tmp_path / "logs"
    logs.mkdir()
    monkeypatch.chdir(root)
    texts = Texts([])
    since = time.time()
    server = Served(tmp_path / "sandbox.db", tmp_path / "serve")
    try:
        (root / "reconciler.yaml").write_text(
            CONFIG.format(url=server.base_url, sdkappid=SDKAPPID, admin=ADMIN, appid=WX_APPID)
        )
        for v in (1, 2):
            assert run_in_process(texts, logs, v, "validate", "m") == 0
            for fmt in ("text", "json", "markdown"):
                plan = run_in_process(
                    texts,
                    logs,
                    v,
                    "plan",
                    "m",
                    "--format",
                    fmt,
                    "--out",
                    f"plan-{v}-{fmt}.json",
                    "--members-out",
                    f"members-{v}-{fmt}.ndjson",
                )
                assert plan == 0
        assert run_in_process(texts, logs, 1, "apply", "plan-1-text.json") == 0
        # an out-of-band change, so that drift and apply have something to say
        with httpx.Client(base_url=server.base_url) as http:
            from reconciler.sandbox.client import SandboxClient
            from reconciler.sandbox.server import SandboxOptions

            vendor = SandboxClient(
                http,
                SandboxOptions(
                    db_path=server.db,
                    sdkappid=SDKAPPID,
                    admin=ADMIN,
                    secret_key=SECRET_KEY,
                    wechat_appid=WX_APPID,
                    wechat_secret=WX_SECRET,
                ),
            )
            changed = vendor.oa(
                "modify_official_account_base_info",
                {"Official_Account": "@TOA#_news", "Name": "Renamed"},
            )
            assert changed["ErrorCode"] == 0
        for v in (1, 2):
            for fmt in ("text", "json", "markdown"):
                assert run_in_process(texts, logs, v, "drift", "m", "--format", fmt) == 2
        assert run_in_process(texts, logs, 2, "apply", "m", "--auto-approve") == 0
        for v in (1, 2):
            imported = run_in_process(
                texts, logs, v, "import", "--all-owned", "--out", f"imported-{v}"
            )
            assert imported == 0
        # errors: a refused key (the vendor answers 70009) and a vendor that is gone
        monkeypatch.setenv("SEC_IM_KEY", SECRET_KEY + "-wrong")
        assert run_in_process(texts, logs, 2, "plan", "m") == 1
        monkeypatch.setenv("SEC_IM_KEY", SECRET_KEY)
        # real processes: logging configured by cli.main itself, onto stderr
        assert run_process(texts, root, "plan", "m", "-vv", "--format", "json") == 0
        assert run_process(texts, root, "drift", "m", "-vv") == 0
        assert run_process(texts, root, "apply", "m", "--auto-approve", "-vv") == 0
    finally:
        served_out, served_err = server.stop()
    until = time.time()

    for path in sorted(root.rglob("*")) + sorted(logs.rglob("*")):
        if path.is_file() and path.name != "reconciler.yaml":
            texts.add(str(path.relative_to(tmp_path)), path.read_text(encoding="utf-8"))
    written = [where for where, _ in texts.items if not where.startswith(("process", "validate"))]
    assert any(w.startswith("project/imported-2/") for w in written)
    assert any(w.startswith("project/plan-2-json.json") for w in written)
    assert any("DEBUG" in text for _, text in texts.items)  # the logs were really on
    assert any("HTTP Request: POST" in text for _, text in texts.items)  # request URLs logged

    sigs = usersigs(since, until)
    tokens = issued_tokens(tmp_path / "sandbox.db")
    assert tokens  # the WeChat client did fetch tokens
    secrets = {
        "secret key": {SECRET_KEY},
        "UserSig": sigs,
        "app secret": {WX_SECRET},
        "access token": tokens,
    }
    assert leaks(texts, secrets) == []
    # the search itself finds what it looks for (a planted sig, token, key)
    planted = Texts([("a", f"x{min(sigs)}x"), ("b", min(tokens)[:30]), ("c", SECRET_KEY)])
    assert leaks(planted, secrets) == ["a: UserSig", "b: access token", "c: secret key"]

    # `sandbox serve` prints the credentials it accepts, once, at start; never a request's
    served = Texts([("serve stdout", served_out), ("serve stderr", served_err)])
    assert served_out.count(SECRET_KEY) == 1 and served_out.count(WX_SECRET) == 1
    assert f"    secret key:   {SECRET_KEY}\n" in served_out
    assert leaks(served, {"UserSig": sigs, "access token": tokens}) == []


def test_usersigs_are_deterministic_so_the_search_above_finds_them() -> None:
    now = int(time.time())
    assert usersig.generate(SDKAPPID, SECRET_KEY, ADMIN, now=now, expire=SIG_EXPIRE) == (
        usersig.generate(SDKAPPID, SECRET_KEY, ADMIN, now=now, expire=SIG_EXPIRE)
    )
    assert len(usersigs(now, now)) == 3


LITERAL = """targets:
  prod:
    type: tencent
    region: cn
    sdkAppId: 1400000001
    identifier: admin
    secretKey: literal-key-0f3b
    wechat: {appId: wx1, secret: literal-wx-9d2c}
"""


def test_literal_secrets_in_reconciler_yaml_draw_a_warning_that_names_no_value(
    tmp_path: Path,
) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "all.yaml").write_text(MANIFESTS)
    (tmp_path / "reconciler.yaml").write_text(LITERAL)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "m"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        "WARNING reconciler.config: reconciler.yaml:7:16: targets.prod.secretKey is written in"
        " the file; use ${VAR} and keep it out of git\n"
        "WARNING reconciler.config: reconciler.yaml:8:34: targets.prod.wechat.secret is written"
        " in the file; use ${VAR} and keep it out of git\n"
    )
    assert "literal-key-0f3b" not in done.stdout + done.stderr
    assert "literal-wx-9d2c" not in done.stdout + done.stderr
    # placeholders draw no warning
    (tmp_path / "reconciler.yaml").write_text(
        LITERAL.replace("literal-key-0f3b", "${K}").replace("literal-wx-9d2c", '"${W}"')
    )
    quiet = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "m"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (quiet.returncode, quiet.stderr) == (0, "")
