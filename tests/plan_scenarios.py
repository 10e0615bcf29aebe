"""Builders for desired and live states shared by the diff, plan, render and drift tests.

Plain data only: the diff is pure, so its tests need no sandbox. `simulate_apply` plays a list of
changes onto a live state the way the vendor would, so tests can check that a plan converges.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx

from reconciler.changes import Change
from reconciler.config import SandboxTarget, TencentTarget, WeChatCredentials
from reconciler.diff import diff
from reconciler.kinds.inventory import ImportInventoryUser
from reconciler.kinds.mass_speed import SetMassSpeed
from reconciler.kinds.official_account import (
    AddSubscribers,
    CreateAccount,
    DestroyAccount,
    ModifyAccount,
    Record,
    RemoveSubscribers,
    SetSubscriberProfiles,
)
from reconciler.kinds.user_accounts import ImportUsers
from reconciler.live import LiveAccount, LiveState
from reconciler.model import (
    Account,
    DesiredState,
    MassSpeed,
    Position,
    ProfileField,
    ProfileValue,
    SubscriberPolicy,
    Subscribers,
    canonical_account_id,
)
from reconciler.plan import Plan, TargetIdentity, plan_from_read
from reconciler.providers import Pacer, TencentClient, WeChatClient
from reconciler.read import read_live
from reconciler.record import decode_record, encode_record, record_for
from reconciler.sandbox import defaults
from reconciler.sandbox.server import Sandbox
from reconciler.secret import Secret

T = TypeVar("T")

INVENTORY = "reconciler-inventory"
SANDBOX = TargetIdentity.from_target(SandboxTarget("sandbox", Path(".reconciler/sandbox.db")))
PROD_SECRET = "prod-secret-key-0123456789abcdef"
WECHAT_SECRET = "wechat-app-secret-fedcba9876543210"
PROD_TARGET = TencentTarget(
    "prod",
    "https://console.tim.qq.com",
    1400123456,
    "administrator",
    Secret(PROD_SECRET),
    WeChatCredentials("wx1234567890abcdef", Secret(WECHAT_SECRET)),
    "cn",
)
PROD = TargetIdentity.from_target(PROD_TARGET)

F = ProfileField


def account(
    raw_id: str,
    *,
    owner: str = "ops_admin",
    profile: Mapping[ProfileField, ProfileValue] | None = None,
    members: Iterable[str] | None = None,
    policy: SubscriberPolicy = SubscriberPolicy.ADDITIVE,
    absent: Iterable[str] = (),
    profiles: Mapping[str, str] | None = None,
    protect: bool = False,
    ignore: Iterable[ProfileField] = (),
    labels: Mapping[str, str] | None = None,
) -> Account:
    """A declared account; `members=None` means the manifest says nothing about subscribers."""
    subscribers = None
    if members is not None:
        subscribers = Subscribers(
            policy, frozenset(members), frozenset(absent), dict(profiles or {})
        )
    return Account(
        id=canonical_account_id(raw_id),
        owner=owner,
        profile=dict(profile if profile is not None else {F.NAME: raw_id.title()}),
        position=Position("accounts.yaml", 1, 1),
        labels=dict(labels or {}),
        protect=protect,
        ignore_changes=frozenset(ignore),
        subscribers=subscribers,
    )


def desired(
    *accounts: Account, users: Iterable[str] = (), speed: int | None = None
) -> DesiredState:
    mass = None if speed is None else MassSpeed("wechat-main", speed, Position("speed.yaml", 1, 1))
    return DesiredState(
        {a.id: a for a in sorted(accounts, key=lambda a: a.id)}, frozenset(users), mass, 0
    )


def live_account(
    raw_id: str,
    *,
    owner: str = "ops_admin",
    profile: Mapping[ProfileField, ProfileValue] | None = None,
    members: Iterable[str] | None = None,
    profiles: Mapping[str, str] | None = None,
    owned_by: Account | None = None,
    record: str | None = None,
) -> LiveAccount:
    """A live account; owned when `owned_by` (its record is that account's) or `record` is given."""
    owned = owned_by is not None or record is not None
    text = encode_record(record_for(owned_by)) if owned_by is not None else record
    subscribers = (
        None if members is None else frozenset(members) | ({INVENTORY} if owned else set())
    )
    full = {f: ("" if f is not F.MAX_SUBSCRIBER_NUM else 100000) for f in ProfileField}
    full.update(profile if profile is not None else {F.NAME: raw_id.title()})
    return LiveAccount(
        id=canonical_account_id(raw_id),
        owner=owner,
        profile=full,
        subscriber_count=len(subscribers) if subscribers is not None else 7,
        subscribers=subscribers,
        subscriber_profiles=None if subscribers is None else dict(profiles or {}),
        owned=owned,
        last_applied=decode_record(text),
    )


def live(
    *accounts: LiveAccount,
    users: Iterable[str] = ("ops_admin",),
    speed: int | None = None,
    inventory_exists: bool = True,
) -> LiveState:
    existing = frozenset(users)
    for a in accounts:
        existing |= a.subscribers or frozenset()
    return LiveState(
        {a.id: a for a in accounts},
        existing - {INVENTORY},
        INVENTORY,
        inventory_exists,
        speed,
    )


def simulate_apply(changes: Iterable[Change], state: LiveState) -> LiveState:
    """The live state after every change succeeded (the vendor's behaviour, simplified)."""
    accounts = dict(state.accounts)
    users = set(state.existing_users)
    inventory_exists, speed = state.inventory_exists, state.mass_speed

    def put(account_id: str, **kw: object) -> None:
        accounts[account_id] = dataclasses.replace(accounts[account_id], **kw)  # type: ignore[arg-type]

    for c in changes:
        if isinstance(c, ImportUsers):
            users |= c.users
        elif isinstance(c, ImportInventoryUser):
            inventory_exists = True
        elif isinstance(c, CreateAccount):
            profile: dict[ProfileField, ProfileValue] = {
                f: ("" if f is not F.MAX_SUBSCRIBER_NUM else 100000) for f in ProfileField
            }
            profile.update(dict(c.profile))
            accounts[c.account_id] = LiveAccount(
                c.account_id, c.owner, profile, 0, frozenset(), {}, False
            )
        elif isinstance(c, Record):
            a = accounts[c.account_id]
            subs = (a.subscribers or frozenset()) | {INVENTORY}
            put(
                c.account_id,
                owned=True,
                last_applied=decode_record(encode_record(c.record)),
                subscribers=subs if a.subscribers is not None else None,
            )
        elif isinstance(c, ModifyAccount):
            a = accounts[c.account_id]
            put(c.account_id, profile={**a.profile, **{f.field: f.new for f in c.fields}})
        elif isinstance(c, AddSubscribers):
            a = accounts[c.account_id]
            put(c.account_id, subscribers=(a.subscribers or frozenset()) | c.users)
        elif isinstance(c, RemoveSubscribers):
            a = accounts[c.account_id]
            put(c.account_id, subscribers=(a.subscribers or frozenset()) - c.users)
        elif isinstance(c, SetSubscriberProfiles):
            a = accounts[c.account_id]
            put(
                c.account_id,
                subscriber_profiles={
                    **(a.subscriber_profiles or {}),
                    **{p.user: p.new for p in c.profiles},
                },
            )
        elif isinstance(c, DestroyAccount):
            del accounts[c.account_id]
        elif isinstance(c, SetMassSpeed):
            speed = c.new
    for account_id, a in accounts.items():
        if a.subscribers is not None:
            accounts[account_id] = dataclasses.replace(a, subscriber_count=len(a.subscribers))
    return LiveState(
        dict(sorted(accounts.items())),
        frozenset(users),
        state.inventory_user,
        inventory_exists,
        speed,
    )


GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, text: str) -> None:
    """Exact comparison with `tests/golden/<name>`; `RECONCILER_UPDATE_GOLDEN=1` rewrites it."""
    path = GOLDEN / name
    if os.environ.get("RECONCILER_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"differs from {path}"


# -- against the sandbox ------------------------------------------------------------------------


def on_sandbox(sandbox: Sandbox, body: Callable[[TencentClient, WeChatClient], Awaitable[T]]) -> T:
    """Run `body` with vendor clients talking to the in-process sandbox."""

    async def main() -> T:
        async with httpx.AsyncClient(transport=sandbox.async_transport()) as http:
            pacer = Pacer(1_000_000, 16)
            im = TencentClient(
                http,
                sdkappid=defaults.SDKAPPID,
                identifier=defaults.ADMIN,
                secret_key=Secret(defaults.SECRET_KEY),
                pacer=pacer,
                endpoint="https://console.tim.qq.com",
                rng=random.Random(0),
            )
            wx = WeChatClient(
                http,
                app_id=defaults.WECHAT_APPID,
                secret=Secret(defaults.WECHAT_SECRET),
                pacer=pacer,
            )
            return await body(im, wx)

    return asyncio.run(main())


async def plan_on(
    im: TencentClient, wx: WeChatClient, d: DesiredState, *, prune: bool = False
) -> Plan:
    """read → diff → plan, the way `reconciler plan` runs them."""
    state = await read_live(d, im, inventory_user=INVENTORY, mass=wx)
    changes = diff(d, state, prune=prune, inventory_user=INVENTORY)
    return plan_from_read(changes, desired=d, live=state, target=SANDBOX, prune=prune)


async def execute(plan: Plan, im: TencentClient, wx: WeChatClient) -> None:
    """Carry out a plan's changes one by one (a test stand-in for apply, which is not built yet)."""
    for c in plan.changes:
        if isinstance(c, ImportUsers):
            await im.import_accounts(sorted(c.users))
        elif isinstance(c, ImportInventoryUser):
            await im.import_account(c.user)
        elif isinstance(c, CreateAccount):
            await im.create_account(c.account_id, c.owner, dict(c.profile))
        elif isinstance(c, Record):
            if c.subscribe:
                await im.add_subscribers(c.account_id, [INVENTORY])
            await im.set_subscriber_profile(c.account_id, INVENTORY, encode_record(c.record))
        elif isinstance(c, ModifyAccount):
            await im.modify_account(c.account_id, {f.field: f.new for f in c.fields})
        elif isinstance(c, AddSubscribers):
            await im.add_subscribers(c.account_id, sorted(c.users))
        elif isinstance(c, SetSubscriberProfiles):
            for p in c.profiles:
                await im.set_subscriber_profile(c.account_id, p.user, p.new)
        elif isinstance(c, RemoveSubscribers):
            await im.remove_subscribers(c.account_id, sorted(c.users))
        elif isinstance(c, DestroyAccount):
            await im.destroy_account(c.account_id)
        elif isinstance(c, SetMassSpeed):
            await wx.set_mass_speed(c.new)
