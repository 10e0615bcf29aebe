"""One run per target: two processes contend for `run_lock`; the second refuses at once."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.config import SandboxTarget, TencentTarget
from reconciler.errors import ConfigError, LockedError
from reconciler.lock import lock_path, run_lock
from reconciler.secret import Secret

HOLDER = """
import sys
from pathlib import Path
from reconciler.config import SandboxTarget, TencentTarget
from reconciler.lock import run_lock
from reconciler.secret import Secret

kind, where = sys.argv[1], Path(sys.argv[2])
if kind == "sandbox":
    target = SandboxTarget("sandbox", where)
else:
    target = TencentTarget("prod", "https://console.tim.qq.com", 1400000001, "admin", Secret("k"))
with run_lock(target, lock_dir=where):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


def _tencent(sdkappid: int = 1400000001) -> TencentTarget:
    return TencentTarget("prod", "https://console.tim.qq.com", sdkappid, "admin", Secret("key"))


def _take(target: SandboxTarget | TencentTarget, lock_dir: Path | None = None) -> None:
    with run_lock(target, **({} if lock_dir is None else {"lock_dir": lock_dir})):
        pass


@contextmanager
def holder(kind: str, where: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of a target until its stdin gets a line."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, kind, str(where)],
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


def test_lock_files_sit_beside_the_sandbox_db_and_per_sdkappid(tmp_path: Path) -> None:
    assert lock_path(SandboxTarget("s", tmp_path / "x" / "sandbox.db")) == (
        tmp_path / "x" / "sandbox.db.lock"
    )
    assert lock_path(_tencent(1400000002), tmp_path) == tmp_path / "tencent-1400000002.lock"
    assert lock_path(_tencent()) == Path(".reconciler/locks/tencent-1400000001.lock")


def test_a_second_process_refuses_at_once_while_the_first_holds_the_sandbox_lock(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state" / "sandbox.db"
    target = SandboxTarget("sandbox", db)
    with holder("sandbox", db) as process:
        started = time.monotonic()
        with pytest.raises(LockedError) as caught, run_lock(target):
            pytest.fail("the lock was taken twice")  # pragma: no cover
        assert time.monotonic() - started < 1.0  # refused, not waited
        assert str(caught.value) == (
            f"another reconciler run (pid {process.pid}) holds the lock on {db}.lock,"
            " retry when it finishes"
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline() == "released\n"
        with run_lock(target) as path:  # free again once the first run ends
            assert path == tmp_path / "state" / "sandbox.db.lock"
    assert not db.exists()  # the lock never creates the database


def test_tencent_targets_lock_per_sdkappid(tmp_path: Path) -> None:
    with holder("tencent", tmp_path):
        with pytest.raises(LockedError, match=r"tencent-1400000001\.lock, retry when"):
            _take(_tencent(), tmp_path)
        with run_lock(_tencent(1400000002), lock_dir=tmp_path):  # another app is independent
            pass


def test_a_killed_holder_never_leaves_a_stale_lock(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    with holder("sandbox", db) as process:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        with run_lock(SandboxTarget("sandbox", db)):
            pass


def test_the_same_process_cannot_take_the_lock_twice(tmp_path: Path) -> None:
    target = SandboxTarget("sandbox", tmp_path / "sandbox.db")
    with run_lock(target), pytest.raises(LockedError):
        _take(target)
    with run_lock(target), run_lock(SandboxTarget("other", tmp_path / "other.db")):
        pass


def test_an_unusable_lock_directory_is_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"^cannot open the lock file .*file/tencent-1400000001"):
        _take(_tencent(), blocker)


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


def _embedded(project: Path) -> SandboxTarget:
    """The embedded target as the CLI run in `project` names it (by its absolute path)."""
    return SandboxTarget("sandbox", project.resolve() / ".reconciler/sandbox.db")


def _refused(project: Path) -> str:
    return (
        f"error: another reconciler run (pid {os.getpid()}) holds the lock on"
        f" {project.resolve()}/.reconciler/sandbox.db.lock, retry when it finishes\n"
    )


def test_apply_refuses_while_another_run_holds_the_target_and_nothing_is_touched(
    project: Path,
) -> None:
    with run_lock(_embedded(project)):
        assert _cli("apply", "m", "--auto-approve") == (1, "", _refused(project))
    assert not (project / ".reconciler" / "sandbox.db").exists()  # not even read
    assert _cli("apply", "m", "--auto-approve")[0] == 0
    assert _cli("plan", "m", "--detailed-exitcode")[0] == 0


def test_import_refuses_while_another_run_holds_the_target(project: Path) -> None:
    assert _cli("apply", "m", "--auto-approve")[0] == 0
    with run_lock(_embedded(project)):
        assert _cli("import", "--all-owned", "--out", "imported") == (1, "", _refused(project))
    assert not (project / "imported").exists()
