"""Progress on stderr for long reads and applies, only when stderr is a terminal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.status import Status
from rich.text import Text

Advance = Callable[[int], None]


class RateColumn(ProgressColumn):
    """Calls per second so far (rich's own speed columns speak of bytes)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f}/s")


def _silent(n: int) -> None:
    del n


@contextmanager
def progress(stream: TextIO, description: str, total: int) -> Iterator[Advance]:
    """Yield `advance(n)`; draws a bar (calls done/total, rate, elapsed) on a terminal, else
    nothing."""
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()) or total <= 0:
        yield _silent
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("calls"),
        RateColumn(),
        TimeElapsedColumn(),
        console=Console(file=stream),
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


@asynccontextmanager
async def reading(
    stream: TextIO, calls: Callable[[], int], *, interval: float = 0.2
) -> AsyncIterator[None]:
    """While the body runs, show `reading live state… N calls` on a terminal (a spinner)."""
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        yield
        return
    status = Status("reading live state…", console=Console(file=stream))

    async def tick() -> None:
        while True:
            status.update(f"reading live state… {calls():,} calls")
            await asyncio.sleep(interval)

    with status:
        ticker = asyncio.create_task(tick())
        try:
            yield
        finally:
            ticker.cancel()
