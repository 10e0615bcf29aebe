"""One run per target on a machine, whatever the directory or config file names it: two processes
contend for `run_lock`; the second refuses at once."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.config import SandboxTarget, TencentTarget
from reconciler.errors import ConfigError, LockedError
from reconciler.lock import lock_dir, lock_identity, lock_path, run_lock
from reconciler.secret import Secret

HOLDER = """
import os, sys
from pathlib import Path
from reconciler.config import SandboxTarget, TencentTarget
from reconciler.lock import run_lock
from reconciler.secret import Secret

kind, where, cwd = sys.argv[1], sys.argv[2], sys.argv[3]
os.chdir(cwd)
if kind == "sandbox":
    target = SandboxTarget("sandbox", Path(where))
else:
    target = TencentTarget("prod", where, 1400000001, "admin", Secret("k"))
with run_lock(target):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""

HOST = socket.gethostname()
CONSOLE = "https://console.tim.qq.com"


def _tencent(sdkappid: int = 1400000001, endpoint: str = CONSOLE) -> TencentTarget:
    return TencentTarget("prod", endpoint, sdkappid, "admin", Secret("key"))


def _take(target: SandboxTarget | TencentTarget) -> None:
    with run_lock(target):
        pass


@contextmanager
def holder(kind: str, where: str | Path, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process, started in `cwd`, holding the lock of a target until its stdin gets a
    line (the lock directory comes from the environment it inherits, tests/conftest.py)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, kind, str(where), str(cwd)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        assert process.stdout.readline() == "held\n"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.stdin.close()
        process.stdout.close()


def test_the_lock_is_keyed_to_the_target_whatever_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    db = tmp_path / "a" / "sandbox.db"
    monkeypatch.chdir(tmp_path / "a" / "deep")
    names = [
        db,
        Path("../sandbox.db"),
        tmp_path / "link" / "sandbox.db",
        Path("../../a/x/../sandbox.db"),
    ]
    assert {lock_identity(SandboxTarget("s", n)) for n in names} == {f"sandbox {db}"}
    assert len({lock_path(SandboxTarget(f"s{i}", n)) for i, n in enumerate(names)}) == 1
    assert lock_path(SandboxTarget("s", tmp_path / "other.db")) != lock_path(SandboxTarget("s", db))
    endpoints = [CONSOLE, "HTTPS://Console.TIM.qq.com:443/", "https://console.tim.qq.com/"]
    assert {lock_identity(_tencent(endpoint=e)) for e in endpoints} == {
        f"tencent 1400000001 {CONSOLE}"
    }
    others = [
        _tencent(1400000002),
        _tencent(endpoint="https://adminapisgp.im.qcloud.com"),
        _tencent(endpoint="https://console.tim.qq.com:8443"),
        _tencent(endpoint="https://gw.internal/im"),
    ]
    paths = {lock_path(t) for t in [_tencent(), *others]}
    assert len(paths) == 5
    assert lock_identity(others[2]) == "tencent 1400000001 https://console.tim.qq.com:8443"
    assert lock_identity(others[3]) == "tencent 1400000001 https://gw.internal/im"
    assert lock_identity(_tencent(endpoint="http://[::1]:80/")) == "tencent 1400000001 http://[::1]"
    assert lock_identity(_tencent(endpoint="http://[::1")) == "tencent 1400000001 http://[::1"
    # credentials in an endpoint never reach the identity (it is written in the lock file)
    assert lock_identity(_tencent(endpoint="https://u:pw@console.tim.qq.com")) == (
        f"tencent 1400000001 {CONSOLE}"
    )


def test_the_lock_directory_is_per_user(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    assert lock_dir({"XDG_RUNTIME_DIR": str(runtime), "HOME": "/h"}) == runtime / "reconciler/locks"
    # a runtime dir that is not there (or not absolute) is passed over
    state = {"XDG_RUNTIME_DIR": str(tmp_path / "gone"), "XDG_STATE_HOME": "/s", "HOME": "/h"}
    assert lock_dir(state) == Path("/s/reconciler/locks")
    assert lock_dir({"XDG_RUNTIME_DIR": "run", "HOME": "/h"}) == Path(
        "/h/.local/state/reconciler/locks"
    )
    assert lock_dir({"XDG_STATE_HOME": "rel", "HOME": ""}) == (
        Path(tempfile.gettempdir()) / f"reconciler-{os.getuid()}" / "locks"
    )
    assert lock_path(_tencent()).parent == Path(os.environ["XDG_RUNTIME_DIR"]) / "reconciler/locks"
    assert lock_path(_tencent(), tmp_path).parent == tmp_path


def test_the_lock_file_says_who_holds_it_and_holds_no_secret(tmp_path: Path) -> None:
    target = TencentTarget("prod", CONSOLE, 1400000001, "admin", Secret("s3cr3t-key"))
    with run_lock(target, directory=tmp_path) as path:
        text = path.read_text()
        assert text == f"pid {os.getpid()} on {HOST}\ntencent 1400000001 {CONSOLE}\n"
        assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_a_second_process_in_another_directory_refuses_at_once(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    db = tmp_path / "state" / "sandbox.db"
    with holder("sandbox", "../state/sandbox.db", tmp_path / "one") as process:
        started = time.monotonic()
        with pytest.raises(LockedError) as caught, run_lock(SandboxTarget("sandbox", db)):
            pytest.fail("the lock was taken twice")  # pragma: no cover
        assert time.monotonic() - started < 1.0  # refused, not waited
        assert str(caught.value) == (
            f"another reconciler run (pid {process.pid} on {HOST}) holds the lock on"
            f" sandbox {db}, retry when it finishes"
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline() == "released\n"
        with run_lock(SandboxTarget("sandbox", db)) as path:  # free again once the first run ends
            assert path == lock_path(SandboxTarget("sandbox", db))
    assert not db.exists()  # the lock never creates the database


def test_tencent_targets_lock_per_sdkappid_and_endpoint(tmp_path: Path) -> None:
    with holder("tencent", "HTTPS://CONSOLE.tim.qq.com:443/", tmp_path):
        with pytest.raises(LockedError, match=r"holds the lock on tencent 1400000001 https://con"):
            _take(_tencent())
        with run_lock(_tencent(1400000002)):  # another app is independent
            pass
        with run_lock(_tencent(endpoint="https://adminapisgp.im.qcloud.com")):  # another vendor
            pass


def test_a_killed_holder_never_leaves_a_stale_lock(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    with holder("sandbox", db, tmp_path) as process:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        with run_lock(SandboxTarget("sandbox", db)):
            pass


def test_an_unreadable_holder_line_is_not_shown(tmp_path: Path) -> None:
    target = SandboxTarget("sandbox", tmp_path / "sandbox.db")
    with run_lock(target) as path:
        path.write_text("pid 12 on evil host\x1b[31m\n")
        with pytest.raises(LockedError) as caught:
            _take(target)
    assert str(caught.value) == (
        f"another reconciler run holds the lock on sandbox {tmp_path}/sandbox.db,"
        " retry when it finishes"
    )


def test_the_same_process_cannot_take_the_lock_twice(tmp_path: Path) -> None:
    target = SandboxTarget("sandbox", tmp_path / "sandbox.db")
    with run_lock(target), pytest.raises(LockedError):
        _take(target)
    with run_lock(target), run_lock(SandboxTarget("other", tmp_path / "other.db")):
        pass


def test_an_unusable_lock_directory_is_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    unusable = r"^cannot open the lock file .*/file/[0-9a-f]{32}\.lock"
    with pytest.raises(ConfigError, match=unusable), run_lock(_tencent(), directory=blocker):
        pass  # pragma: no cover


# -- through the CLI -------------------------------------------------------------------------------

SPEED = "apiVersion: reconciler/v1\nkind: MassSpeed\nmetadata: {name: s}\nspec: {speed: 3}\n"
ACCOUNT = (
    "apiVersion: reconciler/v1\nkind: OfficialAccount\nmetadata: {id: news}\n"
    "spec: {owner: alice, name: News, subscribers: {members: [bob]}}\n---\n"
    "apiVersion: reconciler/v1\nkind: UserAccounts\nmetadata: {name: u}\n"
    "spec: {members: [alice, bob]}\n"
)


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(ACCOUNT + "---\n" + SPEED)
    monkeypatch.chdir(tmp_path)
    return tmp_path


EMBEDDED = SandboxTarget("sandbox", Path(".reconciler/sandbox.db"))


def refused(db: Path) -> str:
    return (
        f"error: another reconciler run (pid {os.getpid()} on {HOST}) holds the lock on"
        f" sandbox {db}, retry when it finishes\n"
    )


def test_apply_refuses_while_another_run_holds_the_target_and_nothing_is_touched(
    project: Path,
) -> None:
    db = project / ".reconciler" / "sandbox.db"
    with run_lock(EMBEDDED):
        assert _cli("apply", "m", "--auto-approve") == (1, "", refused(db))
    assert not db.exists()  # not even read
    assert _cli("apply", "m", "--auto-approve")[0] == 0
    assert _cli("plan", "m", "--detailed-exitcode")[0] == 0


def test_import_refuses_while_another_run_holds_the_target(project: Path) -> None:
    assert _cli("apply", "m", "--auto-approve")[0] == 0
    with run_lock(EMBEDDED):
        assert _cli("import", "--all-owned", "--out", "imported") == (
            1,
            "",
            refused(project / ".reconciler" / "sandbox.db"),
        )
    assert not (project / "imported").exists()


def test_applies_from_two_directories_and_with_config_refuse_while_one_holds_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: the lock lived in ./.reconciler/locks, so a second checkout (or `--config` from
    elsewhere) of one target ran at the same time as the first."""
    db = tmp_path / "shared" / "sandbox.db"
    for name in ("one", "two"):
        (tmp_path / name / "m").mkdir(parents=True)
        (tmp_path / name / "m" / "a.yaml").write_text(ACCOUNT)
        (tmp_path / name / "reconciler.yaml").write_text(
            f"targets:\n  sandbox: {{type: sandbox, path: {db}}}\n"
        )
    monkeypatch.chdir(tmp_path / "two")
    with holder("sandbox", "../shared/sandbox.db", tmp_path / "one") as process:
        message = (
            f"error: another reconciler run (pid {process.pid} on {HOST}) holds the lock on"
            f" sandbox {db}, retry when it finishes\n"
        )
        assert _cli("apply", "m", "--auto-approve") == (1, "", message)
        monkeypatch.chdir(tmp_path)
        config = str(tmp_path / "one" / "reconciler.yaml")
        assert _cli("apply", "two/m", "--auto-approve", "--config", config) == (1, "", message)
        assert not db.exists()  # nothing read
    assert _cli("apply", "two/m", "--auto-approve", "--config", config)[0] == 0
