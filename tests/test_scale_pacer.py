"""The pacer at scale (issue 6): a busy API must not hold the places other APIs need.

Found by `bench/scale.py`: with 2,000 `add_subscriber` batches queued, calls waiting for that API's
budget held every concurrency place while they slept, so `modify_subscriber_info` (whose budget
was idle) waited behind them and S1's apply ran at one API's rate instead of two.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from reconciler.providers.http import SLACK, Pacer


def test_a_call_of_an_idle_api_is_not_queued_behind_a_busy_api() -> None:
    pacer = Pacer(20, concurrency=2)
    entered: list[str] = []

    async def call(api: str) -> None:
        async with pacer.slot(api):
            entered.append(api)
            await asyncio.sleep(0.001)

    async def main() -> None:
        busy = [asyncio.ensure_future(call("busy")) for _ in range(6)]
        await asyncio.sleep(0)  # the busy calls are queued first
        await call("idle")
        await asyncio.gather(*busy)

    asyncio.run(main())
    # "busy" is paced 50 ms apart; "idle" goes in right after the first busy call, not after all
    assert entered.index("idle") == 1
    assert entered.count("busy") == 6
    assert pacer.in_flight == 0


def test_calls_that_waited_for_a_place_stay_spaced_at_their_rate() -> None:
    pacer = Pacer(50, concurrency=2)  # 20 ms between calls of one API
    starts: list[float] = []

    async def slow() -> None:
        async with pacer.slot("slow", ceiling=1000):
            await asyncio.sleep(0.06)  # holds its place well past the paced API's interval

    async def paced() -> None:
        async with pacer.slot("paced"):
            starts.append(time.monotonic())
            await asyncio.sleep(0.001)

    async def main() -> None:
        await asyncio.gather(*(slow() for _ in range(4)), *(paced() for _ in range(6)))

    asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) == 6
    assert min(gaps) >= 1 / 50 - SLACK
    assert pacer.max_in_flight == 2


class _FakeTime:
    """A clock tests move by hand; sleeping moves it to the wake-up time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.wakeups: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.wakeups.append(round(self.now, 6))
        await asyncio.sleep(0)


async def _call(pacer: Pacer, api: str) -> None:
    async with pacer.slot(api):
        pass


def test_a_call_that_comes_a_little_late_keeps_its_apis_schedule() -> None:
    fake = _FakeTime()
    pacer = Pacer(100, clock=fake.clock, sleep=fake.sleep)  # due every 10 ms

    async def main() -> None:
        await _call(pacer, "x")  # at 0: the next is due at 0.010
        fake.now = 0.014  # comes 4 ms late (under half an interval): goes at once...
        await _call(pacer, "x")
        await _call(pacer, "x")  # ...and the next is still due at 0.020, not 0.024
        fake.now = 0.031  # 1 ms late
        await _call(pacer, "x")
        await _call(pacer, "x")

    asyncio.run(main())
    assert fake.wakeups == [0.02, 0.04]


def test_a_call_that_comes_much_later_starts_a_fresh_schedule() -> None:
    fake = _FakeTime()
    pacer = Pacer(100, clock=fake.clock, sleep=fake.sleep)

    async def main() -> None:
        await _call(pacer, "x")
        fake.now = 0.016  # 6 ms late: more than half an interval, no catching up
        await _call(pacer, "x")
        await _call(pacer, "x")

    asyncio.run(main())
    assert fake.wakeups == [0.026]
