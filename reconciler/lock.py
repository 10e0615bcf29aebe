"""One run at a time per target: an exclusive advisory file lock held for a whole apply or import.

Two applies against one target would each read the same live state, plan the same creates and
membership changes, and write the inventory records over each other. The lock makes the second
run refuse at once, before it reads anything, instead of waiting or interleaving.

- The embedded `sandbox` target locks a file beside its database (`sandbox.db.lock`): every run
  that can open that database on this machine sees the lock.
- A `tencent` target locks `.reconciler/locks/tencent-<sdkappid>.lock` (relative to the working
  directory, like the embedded sandbox's database). This protects runs started on one machine from
  one checkout only. A cross-machine lock would need an atomic compare-and-set in the vendor API,
  and it has none: an account's `CustomString` or a subscription's `CustomString` is written with
  a blind `modify_*` (reference 5.3, 5.8) that neither returns the previous value nor takes an
  expected one, so two runs could both "take" such a lock. Serialise runs across machines in CI
  instead (one pipeline, a concurrency group per target).

The lock is `fcntl.flock` (non-blocking, released by the kernel when the process dies, so a killed
run never leaves a stale lock). The file is never deleted: removing a locked file would let a third
run lock a new file of the same name while the second still holds the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from reconciler.config import SandboxTarget, Target
from reconciler.errors import ConfigError, LockedError

logger = logging.getLogger(__name__)

#: Where tencent targets' locks live, relative to the working directory.
LOCK_DIR: Final = Path(".reconciler/locks")


def lock_path(target: Target, lock_dir: Path = LOCK_DIR) -> Path:
    """The lock file of `target`: beside the sandbox db, or keyed by SDKAppID under `lock_dir`."""
    if isinstance(target, SandboxTarget):
        return target.path.with_name(target.path.name + ".lock")
    return lock_dir / f"tencent-{target.sdkappid}.lock"


@contextlib.contextmanager
def run_lock(target: Target, *, lock_dir: Path = LOCK_DIR) -> Iterator[Path]:
    """Hold `target`'s lock for the block; raise `LockedError` at once if another run holds it.

    Yields the lock file's path. Locks are per open file, so a second `run_lock` on the same target
    in the same process refuses too.
    """
    path = lock_path(target, lock_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {path}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            raise LockedError(
                f"another reconciler run{holder} holds the lock on {path}, retry when it finishes"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot lock {path}: {exc.strerror or exc}") from exc
        # Who holds it, for the message the next run shows (informative only: the flock decides).
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        logger.debug("locked %s", path)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            logger.debug("unlocked %s", path)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """` (pid N)` from the lock file, or nothing when it cannot be read."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""
