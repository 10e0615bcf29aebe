"""The changes of an account's subscribers: add, set their profiles, remove; each with its
plan-file form."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from reconciler.changes import (
    PHASE_ADD,
    PHASE_PROFILE,
    PHASE_REMOVE,
    Action,
    ApplyRun,
    DriftItem,
    Schedule,
    Wire,
    batched,
    members_summary,
    show_ids,
    show_value,
)
from reconciler.digest import members_digest
from reconciler.errors import ProviderError
from reconciler.kinds.official_account.base import InLane, accounts_of, ridden
from reconciler.kinds.official_account.run import (
    Lane,
    send_members,
)
from reconciler.outcome import (
    AccountReport,
    failure,
)
from reconciler.providers.calls import (
    API_ADD,
    API_DELETE,
    API_SUBSCRIBER_INFO,
    SUBSCRIBER_BATCH,
)

SUBSCRIBERS = "subscribers"


def _users(users: frozenset[str], first: int) -> dict[str, Any]:
    return members_summary(users, first=first)


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """A subscriber's CustomString on one account: old (None for a new subscriber) → new."""

    user: str
    old: str | None
    new: str


class AddSubscribersWire(Wire, frozen=True, tag="addSubscribers"):
    """The plan-file form of `AddSubscribers`."""

    account: str
    users: list[str]

    def change(self) -> AddSubscribers:
        return AddSubscribers(self.account, frozenset(self.users))


class ProfileWire(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One item of a change's plan-file form (ProfileChange)."""

    user: str
    old: str | None
    new: str


class SetSubscriberProfilesWire(Wire, frozen=True, tag="setSubscriberProfiles"):
    """The plan-file form of `SetSubscriberProfiles`."""

    account: str
    profiles: list[ProfileWire]

    def change(self) -> SetSubscriberProfiles:
        return SetSubscriberProfiles(
            self.account, tuple(ProfileChange(p.user, p.old, p.new) for p in self.profiles)
        )


class RemoveSubscribersWire(Wire, frozen=True, tag="removeSubscribers"):
    """The plan-file form of `RemoveSubscribers`."""

    account: str
    users: list[str]
    liveCount: int
    reason: str

    def change(self) -> RemoveSubscribers:
        return RemoveSubscribers(self.account, frozenset(self.users), self.liveCount, self.reason)


def _membership_lines(
    symbol: str, text: str, users: frozenset[str], *, show_all: bool, first: int
) -> list[tuple[str, str]]:
    if show_all:
        return [(symbol, text), *((symbol, f"  {u}") for u in sorted(users))]
    lines = [(symbol, f"{text}: {show_ids(users, first)}")]
    if len(users) > first:
        lines.append((" ", f"  all {len(users):,}: {members_digest(users)}"))
    return lines


@dataclass(frozen=True, slots=True)
class AddSubscribers(InLane):
    """Declared subscribers not subscribed yet (add_subscriber, 100 per call)."""

    kind: ClassVar[str] = "addSubscribers"
    phase: ClassVar[int] = PHASE_ADD
    wire_type: ClassVar[type[Wire]] = AddSubscribersWire
    account_id: str
    users: frozenset[str]

    @property
    def ride_role(self) -> str | None:
        return "add"

    def wire(self) -> AddSubscribersWire:
        return AddSubscribersWire(self.account_id, sorted(self.users))

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        return {"type": self.kind, "account": self.account_id, "users": _users(self.users, first)}

    def actions(self, schedule: Schedule) -> list[Action]:
        batches = batched(self.users, SUBSCRIBER_BATCH)
        if self.account_id in schedule.derived(ridden) and len(self.users) % SUBSCRIBER_BATCH == 0:
            batches.append(())  # the inventory user's subscription, alone
        return [Action(f"{self._key()}/{n}", API_ADD, self, b) for n, b in enumerate(batches)]

    def count(self, summary: dict[str, int]) -> None:
        summary["subscribersAdded"] += len(self.users)

    def member_items(self) -> Iterable[tuple[str, str, str]]:
        return ((self.account_id, "add", user) for user in sorted(self.users))

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        text = f"subscribers: {len(self.users):,} to add"
        return _membership_lines("+", text, self.users, show_all=show_all, first=first)

    def drift(self) -> list[DriftItem]:
        return [DriftItem(self.account_id, SUBSCRIBERS, removed_by_hand=self.users)]

    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        # the inventory user rides in the last batch (planned with room for it, or alone)
        ride = accounts_of(run).rides(self.account_id)
        state.inventory = await send_members(
            run, accounts_of(run), self.account_id, actions, report, add=True, inventory=ride
        )


@dataclass(frozen=True, slots=True)
class SetSubscriberProfiles(InLane):
    """Subscriber CustomStrings to set (modify_subscriber_info, one call each)."""

    kind: ClassVar[str] = "setSubscriberProfiles"
    phase: ClassVar[int] = PHASE_PROFILE
    wire_type: ClassVar[type[Wire]] = SetSubscriberProfilesWire
    account_id: str
    profiles: tuple[ProfileChange, ...]

    def wire(self) -> SetSubscriberProfilesWire:
        return SetSubscriberProfilesWire(
            self.account_id, [ProfileWire(p.user, p.old, p.new) for p in self.profiles]
        )

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        return {
            "type": self.kind,
            "account": self.account_id,
            "profiles": [
                {"user": p.user, "old": p.old, "new": p.new} for p in self.profiles[:first]
            ],
            "count": len(self.profiles),
        }

    def actions(self, schedule: Schedule) -> list[Action]:
        return [
            Action(f"{self._key()}/{n}", API_SUBSCRIBER_INFO, self, (p.user,))
            for n, p in enumerate(self.profiles)
        ]

    def count(self, summary: dict[str, int]) -> None:
        summary["subscriberProfiles"] += len(self.profiles)

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        shown = self.profiles if show_all else self.profiles[:first]
        lines = [("~", f"subscriber profiles: {len(self.profiles):,} to set")]
        lines.extend(
            (
                "~",
                f"  {p.user}: {show_value(p.new)}"
                if p.old is None
                else f"  {p.user}: {show_value(p.old)} → {show_value(p.new)}",
            )
            for p in shown
        )
        if len(shown) < len(self.profiles):
            lines.append(("~", f"  … ({len(self.profiles) - len(shown):,} more)"))
        return lines

    def drift(self) -> list[DriftItem]:
        return [
            DriftItem(
                self.account_id,
                "subscriberProfiles",
                {p.user: p.new for p in self.profiles},
                {p.user: p.old for p in self.profiles},
            )
        ]

    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        account_id = self.account_id
        unsubscribed = run.missing_users | accounts_of(run).failed_adds.get(account_id, set())
        wanted = {p.user: p.new for p in self.profiles if p.user not in unsubscribed}

        done = 0

        async def one(user: str, value: str) -> None:
            nonlocal done
            try:
                await run.im.set_subscriber_profile(account_id, user, value)
            except ProviderError as exc:
                report.failed.append(failure(f"subscriber profile {user}", exc))
            else:
                run.result.profiles_set += 1
                done += 1
            run.progress(1)

        for p in self.profiles:
            if p.user in unsubscribed:
                report.skipped.append(f"subscriber profile {p.user}: not subscribed")
        async with asyncio.TaskGroup() as group:
            for action in actions:
                (user,) = action.items
                if user in wanted:
                    group.create_task(one(user, wanted[user]))
        if done:  # fewer than wanted when some failed, or the run stopped on a signal
            report.applied.append(f"set {done} subscriber profiles")


@dataclass(frozen=True, slots=True)
class RemoveSubscribers(InLane):
    """Subscribers to remove (delete_subscriber, 100 per call); `live_count` for the percentage."""

    kind: ClassVar[str] = "removeSubscribers"
    phase: ClassVar[int] = PHASE_REMOVE
    wire_type: ClassVar[type[Wire]] = RemoveSubscribersWire
    account_id: str
    users: frozenset[str]
    #: subscribers before the plan, the inventory user not counted
    live_count: int
    #: "absent" (additive policy) or "exact"
    reason: str

    @property
    def percent(self) -> float:
        return 100.0 * len(self.users) / self.live_count if self.live_count else 0.0

    def wire(self) -> RemoveSubscribersWire:
        return RemoveSubscribersWire(
            self.account_id, sorted(self.users), self.live_count, self.reason
        )

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        return {
            "type": self.kind,
            "account": self.account_id,
            "users": _users(self.users, first),
            "liveCount": self.live_count,
            "reason": self.reason,
        }

    def actions(self, schedule: Schedule) -> list[Action]:
        batches = batched(self.users, SUBSCRIBER_BATCH)
        return [Action(f"{self._key()}/{n}", API_DELETE, self, b) for n, b in enumerate(batches)]

    def count(self, summary: dict[str, int]) -> None:
        summary["subscribersRemoved"] += len(self.users)

    def member_items(self) -> Iterable[tuple[str, str, str]]:
        return ((self.account_id, "remove", user) for user in sorted(self.users))

    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        text = f"subscribers: {len(self.users):,} to remove, {self.reason}"
        return _membership_lines("-", text, self.users, show_all=show_all, first=first)

    def drift(self) -> list[DriftItem]:
        return [DriftItem(self.account_id, SUBSCRIBERS, added_by_hand=self.users)]

    async def _run(
        self, run: ApplyRun, state: Lane, report: AccountReport, actions: Sequence[Action]
    ) -> None:
        await send_members(run, accounts_of(run), self.account_id, actions, report, add=False)
