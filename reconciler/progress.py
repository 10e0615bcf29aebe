"""Progress on stderr for long reads and applies, only when stderr is a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

Advance = Callable[[int], None]


def _silent(n: int) -> None:
    del n


@contextmanager
def progress(stream: TextIO, description: str, total: int) -> Iterator[Advance]:
    """Yield `advance(n)`; draws a bar (calls done/total, elapsed) on a terminal, else nothing."""
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()) or total <= 0:
        yield _silent
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("calls"),
        TimeElapsedColumn(),
        console=Console(file=stream),
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
