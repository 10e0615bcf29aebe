"""SIGINT and SIGTERM: stop starting calls, let those in flight finish, say what was applied.

SIGTERM is what GitLab, Kubernetes and systemd send to cancel a job, and it must end an apply the
way Ctrl-C does. `cli.main` handles both signals for the whole command (`handled`):

- while an apply sends its changes (`graceful`), the first signal sets a `StopSignal`: the run's
  pacer (`StoppablePacer`) refuses to start any call after it (`Stopped`, a cancellation of the
  task that would have made the call), calls already on the wire finish and are counted, and the
  apply returns what it did; the summary says it was interrupted and the command exits 128 + the
  signal's number (130 for SIGINT, 143 for SIGTERM). A second signal stops at once;
- anywhere else (reading, planning, the confirmation prompt, after the summary) the signal raises
  `Interrupted`, which `cli.main` turns into one line on stderr and the same exit status;
- once the command has returned its status, a signal that lands before the process exits (the
  interpreter's shutdown takes a while after a large run) still exits 128 + its number with a
  line, instead of dying of the signal with nothing said (exit -2 or -15).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Final

from reconciler.providers import Pacer

#: The signals handled.
SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class Interrupted(KeyboardInterrupt):
    """A signal outside the part of an apply that stops gracefully: the command ends at once.

    A KeyboardInterrupt, because asyncio lets only that (and SystemExit) out of a callback or a
    task: any other exception raised by a signal handler while the loop runs one is logged and
    swallowed.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal_name(signum))

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Stopped(asyncio.CancelledError):
    """A call that was not started because the run is stopping on a signal.

    A cancellation of the task that would have made it: task groups end that task and let the
    others run on to their own next call, so calls already on the wire finish and are counted.
    """


@dataclass(slots=True)
class StopSignal:
    """Set by the first SIGINT or SIGTERM while an apply sends its changes."""

    signum: int | None = None

    @property
    def stopping(self) -> bool:
        return self.signum is not None


class StoppablePacer(Pacer):
    """The run's pacer, refusing to start a call once `stop` is set (before and after the wait for
    the call's turn, so calls queued for their turn never leave either)."""

    def __init__(self, calls_per_second: float, concurrency: int, *, stop: StopSignal) -> None:
        super().__init__(calls_per_second, concurrency)
        self.stop = stop

    @contextlib.asynccontextmanager
    async def slot(self, api: str, ceiling: float | None = None) -> AsyncIterator[None]:
        if self.stop.stopping:
            raise Stopped(api)
        async with super().slot(api, ceiling):
            if self.stop.stopping:
                raise Stopped(api)
            yield


@dataclass(slots=True)
class _State:
    #: set while an apply sends changes: the first signal stops it instead of raising
    graceful: StopSignal | None = None
    #: the command has returned its status (and this process ends with it)
    finished: bool = False
    #: the command's outcome is known and printed (an apply's summary): a signal from here on is
    #: noted as late rather than raised into the teardown still running (connections, the loop)
    settled: bool = False
    late: int | None = None


_state = _State()


def _handler(signum: int, frame: FrameType | None) -> None:
    del frame
    stop = _state.graceful
    if stop is not None and not stop.stopping:
        stop.signum = signum
        return
    if _state.finished:  # pragma: no cover - ends the process (tests/test_signals.py runs one)
        # the command is done and this process is on its way out: exit as interrupted, with a
        # line, rather than dying of the signal in the middle of the interpreter's shutdown
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.write(
                f"interrupted by {signal_name(signum)} after the command finished"
                " (its output above is complete)\n"
            )
            sys.stderr.flush()
        os._exit(128 + signum)
    if _state.settled:
        _state.late = _state.late or signum
        return
    raise Interrupted(signum)


def settle(late: int | None = None) -> None:
    """The command's outcome is printed: a signal from now on (or `late`, one that came while it
    was being printed) is reported by `take_late` once the command returns, never raised into the
    teardown (an Interrupted inside `asyncio.run`'s clean-up left a half-closed loop that
    complained on stderr)."""
    _state.settled = True
    _state.late = _state.late or late


def take_late() -> int | None:
    """The signal that came after the command settled, if any (a later one is not reported: the
    command has returned)."""
    late, _state.late = _state.late, None
    return late


def last_word(code: int) -> int:
    """The exit status of the process's own command, which returned `code`, settled before the
    interpreter shuts down. Its shutdown puts the default handlers back, so a signal landing
    there killed the process without a word (exit -2). A signal that came in before this point
    is the late signal it is (a line, 128 + its number); one after it is ignored and the
    command's own status stands: its work is done and its output complete.
    """
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        return code
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    pending: list[int] = sorted(int(s) for s in signal.sigpending() if s in SIGNALS)
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # discards a pending one: it is in `pending`
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    if not pending:
        return code
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.write(
            f"interrupted by {signal_name(pending[0])} after the command finished"
            " (its output above is complete)\n"
        )
        sys.stderr.flush()
    return 128 + pending[0]


@contextlib.contextmanager
def graceful(stop: StopSignal) -> Iterator[StopSignal]:
    """While the block runs, the first SIGINT or SIGTERM sets `stop` instead of raising."""
    saved = _state.graceful
    _state.graceful = stop
    try:
        yield stop
    finally:
        _state.graceful = saved


@contextlib.contextmanager
def handled(*, own_process: bool) -> Iterator[Callable[[], None]]:
    """Handle SIGINT and SIGTERM for a whole command (in the main thread; elsewhere, and for a
    command that handles them itself, nothing changes).

    Yields `finished`, to call once the command's status is known. With `own_process` (the
    process ends when the command returns) the handlers stay installed after the block, so that
    a late signal still exits 128 + its number with a line; otherwise they are restored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    saved = {signum: signal.getsignal(signum) for signum in SIGNALS}
    _state.settled, _state.late = False, None
    for signum in SIGNALS:
        signal.signal(signum, _handler)

    def finished() -> None:
        _state.finished = own_process

    try:
        yield finished
    finally:
        if not own_process:  # pragma: no branch - the process's own command never restores
            _state.finished = _state.settled = False
            _state.late = None
            for signum, previous in saved.items():
                signal.signal(signum, previous)
