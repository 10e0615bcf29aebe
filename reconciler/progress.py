"""Progress on stderr for long reads and applies, only when stderr is a terminal.

`NO_COLOR` (any non-empty value, https://no-color.org; `--no-color` sets it for the run) draws them
without colour and without the spinner's animation: the counts still update in place.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.status import Status
from rich.text import Text


def _console(stream: TextIO) -> Console:
    return Console(file=stream, no_color=_plain())


def _plain() -> bool:
    return bool(os.environ.get("NO_COLOR"))


class RateColumn(ProgressColumn):
    """Calls per second so far (rich's own speed columns speak of bytes)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f}/s")


class Phases:
    """`advance(n)` moves the current phase's bar; `phase(name)` says which phase runs now."""

    def __init__(self, bar: Progress | None = None, tasks: Mapping[str, TaskID] = {}) -> None:
        self._bar = bar
        self._tasks = dict(tasks)
        self._current = ""

    def phase(self, name: str) -> None:
        self._current = name
        task = self._tasks.get(name)
        if self._bar is not None and task is not None:
            self._bar.start_task(task)  # its clock (and so its rate) starts with the phase

    def __call__(self, n: int) -> None:
        task = self._tasks.get(self._current)
        if self._bar is not None and task is not None:
            self._bar.advance(task, n)


@contextmanager
def progress(stream: TextIO, totals: Mapping[str, int]) -> Iterator[Phases]:
    """One bar per phase with calls to make (done/total calls, rate, elapsed), drawn only on a
    terminal; yields the `Phases` that moves them."""
    isatty = getattr(stream, "isatty", None)
    wanted = {name: total for name, total in totals.items() if total > 0}
    if not (isatty and isatty()) or not wanted:
        yield Phases()
        return
    bar = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("calls"),
        RateColumn(),
        TimeElapsedColumn(),
        console=_console(stream),
        transient=True,
    )
    with bar:
        tasks = {name: bar.add_task(name, total=t, start=False) for name, t in wanted.items()}
        yield Phases(bar, tasks)


@asynccontextmanager
async def reading(
    stream: TextIO, calls: Callable[[], int], *, interval: float = 0.2
) -> AsyncIterator[None]:
    """While the body runs, show `reading live state… N calls` on a terminal (a spinner)."""
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        yield
        return
    text = "reading live state…"
    # a Status spins a glyph on a timer; plain, a Live that redraws only when the count is read
    status: Status | Live = (
        Live(Text(text), console=_console(stream), auto_refresh=False, transient=True)
        if _plain()
        else Status(text, console=_console(stream))
    )

    async def tick() -> None:
        while True:
            line = f"{text} {calls():,} calls"
            if isinstance(status, Live):
                status.update(Text(line), refresh=True)
            else:
                status.update(line)
            await asyncio.sleep(interval)

    with status:
        ticker = asyncio.create_task(tick())
        try:
            yield
        finally:
            ticker.cancel()
