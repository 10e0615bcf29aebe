"""Read the live state: only what the desired state and the inventory name, each call once.

The vendor cannot list an app's official accounts, so ownership lives in the inventory user's
subscriptions (DESIGN section 5). One read runs in dependent steps, each step's calls concurrent
within the shared pacer:

1. the inventory walk (every owned account with its base info and last-applied record, and the
   slots of the inventory ledger with their content, `reconciler.ledger`) and, when a mass speed
   is declared, the WeChat speed;
2. the declared accounts the walk did not return and the ledger's ids it did not return, by id
   in the same batches of 50; subscriber lists of the declared accounts that declare subscribers
   (owned ones at once, adopted ones when found). A ledger id that exists but is neither owned nor
   declared was created by an interrupted apply: it is read as `pending`, for the diff to adopt
   (or, with `--prune`, destroy); one that does not exist is noted as `missing`;
3. the existence of the users that must exist and were not seen subscribed somewhere: owners,
   `UserAccounts` members and subscribers still to add, in batches of 100.

A user seen as a subscriber of any account read exists (the vendor only subscribes imported users),
so a no-op plan of a large membership costs its subscriber pages and nothing per member.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from typing import Final

from reconciler.errors import ReconcilerError
from reconciler.kinds import registered
from reconciler.ledger import Ledger, Slot, expired, read_slot, slot_index
from reconciler.live import LiveAccount, LiveState
from reconciler.model import DesiredState
from reconciler.providers import (
    AccountInfo,
    IMProvider,
    MassSpeedProvider,
    SubscriberPage,
    Subscription,
)
from reconciler.record import decode_record

logger = logging.getLogger(__name__)

#: How many accounts' subscriber lists are paged at the same time.
PAGING_ACCOUNTS: Final = 64


def _live_account(
    info: AccountInfo, page: SubscriberPage | None, *, owned: bool, record: str = ""
) -> LiveAccount:
    subscribers = profiles = None
    if page is not None:
        # Ids are interned: the decoder makes a new string for every id it reads, and a user who
        # follows ten accounts would be held ten times over (1,000,000 memberships of 100,000
        # users: about 60 MB of copies; bench/scale.py S5).
        intern = sys.intern
        subscribers = frozenset([intern(s.user_id) for s in page.subscribers])
        # only non-empty profiles are kept: an absent key reads as "" and 100,000 empty strings
        # would cost memory for nothing
        profiles = {intern(s.user_id): s.custom_string for s in page.subscribers if s.custom_string}
    return LiveAccount(
        id=info.id,
        owner=info.owner,
        profile=info.profile,
        subscriber_count=page.total if page is not None else info.subscriber_num,
        subscribers=subscribers,
        subscriber_profiles=profiles,
        owned=owned,
        last_applied=decode_record(record) if owned else decode_record(None),
    )


def _pager(
    im: IMProvider, with_subscribers: Collection[str]
) -> Callable[[str], Awaitable[SubscriberPage | None]]:
    """Reads the subscriber list of an account in `with_subscribers` (None for any other).

    At most `PAGING_ACCOUNTS` accounts are paged at once: enough to keep every place in flight
    busy, few enough that 1,000 half-read lists never sit in memory together (BENCHMARKS.md, S5).
    """
    paging = asyncio.Semaphore(PAGING_ACCOUNTS)

    async def subscribers(account_id: str) -> SubscriberPage | None:
        if account_id not in with_subscribers:
            return None
        async with paging:
            return await im.get_subscribers(account_id)

    return subscribers


#: Where kinds record their sends in the live system, in accounts the inventory user subscribes
#: to: a mass message's record (`reconciler.kinds.mass_message.record`).
RECORD_PREFIXES: Final = ("@TOA#_rcm-",)


def is_record_account(account_id: str) -> bool:
    """Whether `account_id` is a kind's record account (not owned as a managed account)."""
    return account_id.startswith(RECORD_PREFIXES)


def split_ledger(
    subscriptions: Iterable[Subscription], inventory_user: str
) -> tuple[dict[str, Subscription], dict[int, Slot]]:
    """The inventory walk's answer as owned accounts and ledger slots (invisible to users).

    A slot whose CustomString is not a ledger's reads as empty, with a warning: it is rewritten
    when apply next uses it, and an unreadable slot never stops a run.
    """
    owned: dict[str, Subscription] = {}
    slots: dict[int, Slot] = {}
    for sub in subscriptions:
        info = sub.account
        if is_record_account(info.id):
            continue  # a kind's own record (`Kind.read` is given it), never a managed account
        index = slot_index(inventory_user, info.id)
        if index is None:
            owned[info.id] = sub
            continue
        read = read_slot(info.custom_string)
        if read is None:
            logger.warning(
                "inventory ledger slot %s holds text that is not a ledger's; read as empty",
                info.id,
            )
            slots[index] = Slot(index, info.id, readable=False)
        else:
            ids, claim = read
            # a slot naming a slot (edited by hand) must not make the reader adopt the ledger
            slots[index] = Slot(
                index,
                info.id,
                frozenset(i for i in ids if slot_index(inventory_user, i) is None),
                live=not expired(claim, time.time()),
            )
    return owned, dict(sorted(slots.items()))


def _users_that_must_exist(desired: DesiredState, accounts: Mapping[str, LiveAccount]) -> set[str]:
    """Owners, `UserAccounts` members and the subscribers still to add."""
    needed = set(desired.users)
    for account in desired.accounts.values():
        needed.add(account.owner)
        if account.subscribers is None:
            continue
        live = accounts.get(account.id)
        current = live.subscribers if live is not None and live.subscribers else frozenset()
        needed.update(account.subscribers.members - current - account.subscribers.absent)
    return needed


@contextlib.contextmanager
def plain_errors() -> Iterator[None]:
    """Raise a failed call's own error, not the `ExceptionGroup` its TaskGroup wraps it in.

    `cli.main` turns a `ReconcilerError` (a vendor that keeps failing, say) into one clean line;
    wrapped in a group it would be reported as a bug. A group holding anything else (a bug) is
    raised unchanged so that nothing is hidden.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        ours, rest = group.split(ReconcilerError)
        if ours is None or rest is not None:
            raise
        first: BaseException = ours
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from group


async def read_live(
    desired: DesiredState,
    im: IMProvider,
    *,
    inventory_user: str,
    mass: MassSpeedProvider | None = None,
) -> LiveState:
    """Read what `desired` and the inventory name; see the module docstring for the steps."""
    with plain_errors():
        return await _read_live(desired, im, inventory_user=inventory_user, mass=mass)


async def _read_live(
    desired: DesiredState,
    im: IMProvider,
    *,
    inventory_user: str,
    mass: MassSpeedProvider | None,
) -> LiveState:
    before: Counter[str] = Counter(im.calls)
    mass_before: Counter[str] = Counter(mass.calls) if mass is not None else Counter()

    async def speed() -> int | None:
        if desired.mass_speed is None or mass is None:
            return None
        return (await mass.get_mass_speed()).speed

    async with asyncio.TaskGroup() as group:
        walk = group.create_task(im.get_subscriptions(inventory_user))
        speed_task = group.create_task(speed())
    subscriptions = walk.result()
    owned, slots = split_ledger(subscriptions, inventory_user)
    pending = frozenset().union(*(s.ids for s in slots.values())) - set(owned)
    logger.info("inventory %s owns %d account(s)", inventory_user, len(owned))

    subscribers = _pager(im, {a.id for a in desired.accounts.values() if a.subscribers is not None})
    accounts: dict[str, LiveAccount] = {}

    async def owned_account(account_id: str) -> None:
        sub = owned[account_id]
        page = await subscribers(account_id)
        accounts[account_id] = _live_account(
            sub.account, page, owned=True, record=sub.custom_string
        )

    async def unowned_account(info: AccountInfo) -> None:
        accounts[info.id] = _live_account(info, await subscribers(info.id), owned=False)

    missing: set[str] = set()

    async def not_owned(ids: Iterable[str]) -> None:
        wanted = sorted(ids)
        if not wanted:
            return
        found = await im.get_accounts(wanted)
        missing.update(pending - set(found))
        async with asyncio.TaskGroup() as inner:
            for info in found.values():
                if info.id in desired.accounts:
                    inner.create_task(unowned_account(info))
                else:  # created by an interrupted apply; its members are not needed
                    accounts[info.id] = LiveAccount(
                        id=info.id,
                        owner=info.owner,
                        profile=info.profile,
                        subscriber_count=info.subscriber_num,
                        pending=True,
                    )

    async with asyncio.TaskGroup() as group:
        for account_id in sorted(owned):
            group.create_task(owned_account(account_id))
        group.create_task(not_owned((set(desired.accounts) | pending) - set(owned)))

    needed = _users_that_must_exist(desired, accounts)
    unknown = set(needed)
    for live in accounts.values():
        unknown.discard(live.owner)
        if live.subscribers:
            unknown -= live.subscribers
    unknown.discard(inventory_user)
    if not subscriptions:
        unknown.add(inventory_user)  # owning nothing, it may not exist yet
    checked = await im.check_accounts(sorted(unknown)) if unknown else {}
    existing = (needed - unknown) | {user for user, imported in checked.items() if imported}

    records: list[object] = []
    recorded = [s.account for s in subscriptions if is_record_account(s.account.id)]
    for kind in registered():  # the kinds that read a live state of their own
        if kind.read is not None:
            records.extend(await kind.read(desired, im, mass, recorded))

    read_calls = Counter(im.calls) - before
    if mass is not None:
        read_calls += Counter(mass.calls) - mass_before
    return LiveState(
        accounts=dict(sorted(accounts.items())),
        existing_users=frozenset(existing),
        inventory_user=inventory_user,
        inventory_exists=bool(subscriptions) or checked.get(inventory_user, False),
        mass_speed=speed_task.result(),
        read_calls=dict(read_calls),
        ledger=Ledger(slots, frozenset(missing)),
        records=tuple(records),
    )


async def read_fingerprinted(
    account_ids: Iterable[str],
    with_members: Iterable[str],
    im: IMProvider,
    *,
    inventory_user: str,
    mass: MassSpeedProvider | None = None,
    owned_members: bool = False,
) -> LiveState:
    """Read the inventory (the ledger's slots with it), the other accounts by id, the subscriber
    lists of `with_members` (and of every owned account with `owned_members`) and the mass speed
    when asked: what a saved plan fingerprinted, re-read to refuse it when stale, or the accounts
    `import` writes."""
    with plain_errors():
        return await _read_fingerprinted(
            account_ids,
            with_members,
            im,
            inventory_user=inventory_user,
            mass=mass,
            owned_members=owned_members,
        )


async def _read_fingerprinted(
    account_ids: Iterable[str],
    with_members: Iterable[str],
    im: IMProvider,
    *,
    inventory_user: str,
    mass: MassSpeedProvider | None,
    owned_members: bool,
) -> LiveState:
    wanted = set(account_ids)
    members = set(with_members)

    async def speed() -> int | None:
        return None if mass is None else (await mass.get_mass_speed()).speed

    async with asyncio.TaskGroup() as group:
        walk = group.create_task(im.get_subscriptions(inventory_user))
        speed_task = group.create_task(speed())
    owned, slots = split_ledger(walk.result(), inventory_user)
    subscribers = _pager(im, members | set(owned) if owned_members else members)
    accounts: dict[str, LiveAccount] = {}

    async def one(info: AccountInfo, record: str | None) -> None:
        page = await subscribers(info.id)
        accounts[info.id] = _live_account(info, page, owned=record is not None, record=record or "")

    others = sorted(wanted - set(owned))
    found = await im.get_accounts(others) if others else {}
    async with asyncio.TaskGroup() as group:
        for sub in owned.values():
            group.create_task(one(sub.account, sub.custom_string))
        for info in found.values():
            group.create_task(one(info, None))
    return LiveState(
        accounts=dict(sorted(accounts.items())),
        existing_users=frozenset(),
        inventory_user=inventory_user,
        inventory_exists=bool(owned or slots),
        mass_speed=speed_task.result(),
        ledger=Ledger(slots),
    )
