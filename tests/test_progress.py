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
    with progress(stream, {"users": 10}) as advance:
        advance.phase("users")
        advance(3)
    assert stream.getvalue() == ""

    async def main() -> None:
        async with reading(stream, lambda: 5):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert stream.getvalue() == ""


def test_a_bar_per_phase_on_a_terminal() -> None:
    stream = Terminal()
    with progress(stream, {"users": 2, "accounts": 10, "destroy": 0}) as advance:
        advance.phase("users")
        advance(2)
        advance.phase("accounts")
        advance(10)
        advance.phase("destroy")  # no calls planned: no bar, and advancing is harmless
        advance(1)
    shown = stream.getvalue()
    assert "users" in shown and "2/2" in shown
    assert "accounts" in shown and "10/10" in shown
    assert "destroy" not in shown
    assert "/s" in shown


def test_phase_totals_follow_the_plan() -> None:
    from pathlib import Path

    from reconciler.apply import phase_totals
    from reconciler.config import Limits, Safety
    from reconciler.diff import Diff
    from reconciler.kinds.mass_speed import SetMassSpeed
    from reconciler.kinds.official_account import AddSubscribers, DestroyAccount
    from reconciler.kinds.user_accounts import ImportUsers
    from reconciler.plan import TargetIdentity, assemble_plan

    plan = assemble_plan(
        Diff.of(
            [
                ImportUsers(frozenset(f"u{i}" for i in range(150))),
                AddSubscribers("@TOA#_a", frozenset(f"u{i}" for i in range(150))),
                DestroyAccount("@TOA#_b", "boss", 0),
                SetMassSpeed("wx", 0, 2),
            ]
        ),
        target=TargetIdentity("sandbox", "sandbox", path=str(Path("x"))),
        desired_digest="sha256:x",
        fingerprints={},
        live_mass_speed=None,
        limits=Limits(),
        safety=Safety(),
    )
    assert phase_totals(plan) == {
        "users": 2,
        "accounts": 2,
        "destroy": 1,
        "mass speed": 1,
        "verify": 1,
    }


def test_read_counter_on_a_terminal() -> None:
    stream = Terminal()
    count = [0]

    async def main() -> None:
        async with reading(stream, lambda: count[0], interval=0.01):
            count[0] = 1234
            await asyncio.sleep(0.05)

    asyncio.run(main())
    assert "reading live state… 1,234 calls" in stream.getvalue()
