"""Progress shows only on a terminal, and says what it counts."""

from __future__ import annotations

import asyncio
import io

from reconciler.progress import progress, reading


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with progress(stream, "applying", 10) as advance:
        advance(3)
    assert stream.getvalue() == ""

    async def main() -> None:
        async with reading(stream, lambda: 5):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert stream.getvalue() == ""


def test_bar_on_a_terminal() -> None:
    stream = Terminal()
    with progress(stream, "applying", 10) as advance:
        advance(10)
    assert "applying" in stream.getvalue()
    assert "10/10" in stream.getvalue()
    assert "/s" in stream.getvalue()


def test_read_counter_on_a_terminal() -> None:
    stream = Terminal()
    count = [0]

    async def main() -> None:
        async with reading(stream, lambda: count[0], interval=0.01):
            count[0] = 1234
            await asyncio.sleep(0.05)

    asyncio.run(main())
    assert "reading live state… 1,234 calls" in stream.getvalue()
