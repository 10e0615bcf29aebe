"""One run at a time per target on this machine: an exclusive advisory file lock held for a whole
apply or import.

Two applies against one target would each read the same live state, plan the same creates and
membership changes, and write the inventory records over each other. The lock makes the second
run refuse at once, before it reads anything, instead of waiting or interleaving.

The lock is keyed to what the run changes, not to where it was started: a `tencent` target by its
SDKAppID and its endpoint (normalised: scheme and host in lower case, default port and trailing
slash dropped), the embedded sandbox by its database's absolute, resolved path. Two checkouts, two
working directories or two `--config` files naming one target therefore share one lock. The lock
files live in one per-user directory (`$XDG_RUNTIME_DIR/reconciler/locks`, else
`$XDG_STATE_HOME/reconciler/locks`, else `~/.local/state/reconciler/locks`, else
`<tmp>/reconciler-<uid>/locks`), each named by a hash of the identity and holding who holds it
(pid, host, the identity: an SDKAppID, an endpoint without credentials or a path; never a secret).

The lock covers one machine (and one user). Across machines there is nothing to build one on: the
vendor API has no atomic compare-and-set on anything a run could write (`modify_*` neither returns
the previous value nor takes an expected one, reference 5.3, 5.8). What must stay safe across
machines is the inventory ledger, which is written so that two runs never overwrite each other's
records (`reconciler.ledger`).

The lock is `fcntl.flock` (non-blocking, released by the kernel when the process dies, so a killed
run never leaves a stale lock). The file is never deleted: removing a locked file would let a third
run lock a new file of the same name while the second still holds the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.config import SandboxTarget, Target
from reconciler.errors import ConfigError, LockedError

logger = logging.getLogger(__name__)

#: what a lock file's holder line may show at most (it is read back into an error message)
_HOLDER_MAX = 512


def lock_identity(target: Target) -> str:
    """What a target's lock is keyed to: the same string for every way of naming one target."""
    if isinstance(target, SandboxTarget):
        # realpath, not Path.resolve(): a symlink loop is named as written (opening it fails)
        return f"sandbox {os.path.realpath(target.path.expanduser())}"
    return f"tencent {target.sdkappid} {normalise_endpoint(target.endpoint)}"


def normalise_endpoint(endpoint: str) -> str:
    """`HTTPS://Console.TIM.qq.com:443/` → `https://console.tim.qq.com`; never any credentials."""
    try:
        parts = urlsplit(endpoint.strip())
        port = parts.port
    except ValueError:  # checked when the config is loaded; keyed as written otherwise
        return endpoint.strip().rstrip("/")
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    shown = f"[{host}]" if ":" in host else host
    default = {"https": 443, "http": 80}.get(scheme)
    authority = shown if port is None or port == default else f"{shown}:{port}"
    return f"{scheme}://{authority}{parts.path.rstrip('/')}"


def lock_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user directory of lock files (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and Path(runtime).is_absolute() and Path(runtime).is_dir():
        return Path(runtime) / "reconciler" / "locks"
    state = env.get("XDG_STATE_HOME", "")
    if state and Path(state).is_absolute():
        return Path(state) / "reconciler" / "locks"
    home = env.get("HOME", "")
    if home and Path(home).is_absolute():
        return Path(home) / ".local" / "state" / "reconciler" / "locks"
    return Path(tempfile.gettempdir()) / f"reconciler-{os.getuid()}" / "locks"


def lock_path(target: Target, directory: Path | None = None) -> Path:
    """The lock file of `target`: a hash of its identity under `directory` (else `lock_dir()`)."""
    digest = hashlib.sha256(lock_identity(target).encode()).hexdigest()[:32]
    return (lock_dir() if directory is None else directory) / f"{digest}.lock"


@contextlib.contextmanager
def run_lock(target: Target, *, directory: Path | None = None) -> Iterator[Path]:
    """Hold `target`'s lock for the block; raise `LockedError` at once if another run holds it.

    Yields the lock file's path. Locks are per open file, so a second `run_lock` on the same target
    in the same process refuses too.
    """
    path = lock_path(target, directory)
    try:
        # private: the holder line names a host and a path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {path}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"another reconciler run{_holder(fd)} holds the lock on {lock_identity(target)},"
                " retry when it finishes"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot lock {path}: {exc.strerror or exc}") from exc
        # Who holds it, for the message the next run shows (informative only: the flock decides).
        os.ftruncate(fd, 0)
        holder = f"pid {os.getpid()} on {socket.gethostname()}\n{lock_identity(target)}\n"
        os.write(fd, holder.encode()[:_HOLDER_MAX])
        logger.debug("locked %s (%s)", path, lock_identity(target))
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            logger.debug("unlocked %s", path)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """` (pid N on HOST)` from the lock file's first line, or nothing when it cannot be read."""
    try:
        text = os.pread(fd, _HOLDER_MAX, 0).decode("ascii", "replace")
    except OSError:
        return ""
    first = text.split("\n", 1)[0].strip()
    words = first.split()
    valid = (
        len(words) == 4
        and words[0] == "pid"
        and words[1].isdigit()
        and words[2] == "on"
        and all(ch.isalnum() or ch in "-._" for ch in words[3])
    )
    return f" ({first})" if valid else ""
