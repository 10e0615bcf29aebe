"""The one pipeline behind plan, drift and apply: open scope → read → narrow → diff → plan.

    manifests ─┐                                          ┌ .plan() ─ render, save    (plan)
               ├ Scope ─ read ─ narrow ─ diff ─ Compared ─┼ .changes ─ drift report    (drift)
    config ────┘         (live)                           └ .plan() ─ safety ─ apply  (apply)

`open_scope` loads everything local (no network); `compare` reads the live state through the
clients it is given, narrows both sides to the accounts the flags chose and diffs them;
`Compared.plan()` turns the result into a plan. `plan` and `drift` run it on read-only clients
(`compare_read_only`); `apply` on its own clients, which it then applies the plan with. `import`
and a saved plan's apply open their target with the same `open_target`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from reconciler.changes import plural
from reconciler.config import (
    Config,
    Target,
    TencentTarget,
    config_file,
    load_config,
    select_target,
    split_paths,
)
from reconciler.connect import Providers, connect
from reconciler.diff import Diff, diff
from reconciler.errors import ConfigError
from reconciler.live import LiveState
from reconciler.load import did_you_mean
from reconciler.model import ACCOUNT_ID_PREFIX, DesiredState, canonical_account_id
from reconciler.plan import Plan, TargetIdentity, plan_from_read
from reconciler.progress import reading
from reconciler.read import read_live
from reconciler.validate import load_desired_state


@dataclass(frozen=True, slots=True)
class Scope:
    """What a run reads and changes: manifests, target and the accounts chosen by flags."""

    config: Config
    target: Target
    identity: TargetIdentity
    #: every declared account (orphan detection needs them all)
    desired: DesiredState
    #: the accounts `--selector` and `--exclude` keep
    selected: DesiredState
    selector: Mapping[str, str]
    exclude: tuple[str, ...]

    @property
    def targeting(self) -> str | None:
        """`N accounts selected of M (selector k=v; excluded: x)` while a selector or exclude is
        in effect, like Terraform's "Resource targeting is in effect"; None without one."""
        return targeting_line(self.desired, self.selected, self.selector, self.exclude)

    def warnings(self) -> list[str]:
        """The targeting line, a selector that matches no account, an exclude naming none."""
        line = self.targeting
        if line is None:
            return []
        out = [line]
        declared = self.desired.accounts
        if self.selector and not self.selected.accounts:
            wanted = " ".join(f"{k}={v}" for k, v in self.selector.items())
            out.append(f"--selector {wanted} matches no declared account")
        for account_id in self.exclude:
            if account_id not in declared:
                bare = account_id.removeprefix(ACCOUNT_ID_PREFIX)
                hint = did_you_mean(bare, [d.removeprefix(ACCOUNT_ID_PREFIX) for d in declared])
                out.append(f"--exclude {bare} names no declared account{hint}")
        return out


def parse_selector(items: Sequence[str]) -> dict[str, str]:
    """`--selector team=content` (repeatable) → {"team": "content"}."""
    selector: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--selector {item!r}: expected KEY=VALUE")
        selector[key.strip()] = value.strip()
    return selector


def targeting_line(
    desired: DesiredState,
    selected: DesiredState,
    selector: Mapping[str, str],
    exclude: Sequence[str],
) -> str | None:
    """The one line a targeted run prints (stderr) and its plan carries (header, JSON)."""
    if not selector and not exclude:
        return None
    parts = []
    if selector:
        parts.append("selector " + " ".join(f"{k}={v}" for k, v in selector.items()))
    if exclude:
        parts.append("excluded: " + ", ".join(exclude))
    total = len(desired.accounts)
    line = f"{plural(len(selected.accounts), 'account')} selected of {total} ({'; '.join(parts)})"
    if desired.mass_speed is not None:
        line += "; mass speed skipped (it belongs to no account)"
    return line


def open_target(
    config: str | None,
    target: str | None,
    *,
    paths: Sequence[str] = (),
    recorded: str | None = None,
    environ: Mapping[str, str] | None = None,
    parallelism: int | None = None,
) -> tuple[Config, Target]:
    """Load reconciler.yaml (`config.config_file` says which) and choose the target."""
    loaded = with_parallelism(
        load_config(
            config_file(config, paths, recorded=recorded),
            environ=os.environ if environ is None else environ,
        ),
        parallelism,
    )
    return loaded, select_target(loaded, target)


def with_parallelism(config: Config, parallelism: int | None) -> Config:
    """`--parallelism N`: `limits.concurrency` for this run only."""
    if parallelism is None:
        return config
    limits = dataclasses.replace(config.limits, concurrency=parallelism)
    return dataclasses.replace(config, limits=limits)


def open_scope(
    paths: Sequence[str],
    *,
    config: str | None,
    target: str | None,
    selector: Sequence[str] = (),
    exclude: Sequence[str] = (),
    stdin: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    parallelism: int | None = None,
) -> Scope:
    """Load config and manifests (no network) and choose the target and the accounts."""
    chosen = parse_selector(selector)
    loaded, where = open_target(
        config, target, paths=paths, environ=environ, parallelism=parallelism
    )
    manifests, _ = split_paths(paths)
    desired = load_desired_state(manifests, stdin=stdin, config=loaded.path)
    excluded = tuple(sorted({canonical_account_id(e) for e in exclude}))
    selected = select(desired, selector=chosen, exclude=excluded)
    return Scope(
        loaded, where, TargetIdentity.from_target(where), desired, selected, chosen, excluded
    )


def select(
    desired: DesiredState,
    *,
    selector: Mapping[str, str] | None = None,
    exclude: Iterable[str] = (),
) -> DesiredState:
    """The declared accounts that carry every `--selector` label and are not `--exclude`d.

    While either is in effect, what is not an account is left out as Terraform leaves untargeted
    resources out: the mass speed, and the users no selected account needs (owners, subscribers).
    """
    excluded = frozenset(exclude)
    if not selector and not excluded:
        return desired
    selected = {
        account_id: account
        for account_id, account in desired.accounts.items()
        if account_id not in excluded
        and all(account.labels.get(k) == v for k, v in (selector or {}).items())
    }
    needed = {a.owner for a in selected.values()}
    for account in selected.values():
        if account.subscribers is not None:
            needed |= account.subscribers.members
    records = tuple(  # a kind's record of an account (a Broadcast) goes with its account
        r for r in desired.records if getattr(r, "account", None) in (None, *selected)
    )
    return dataclasses.replace(
        desired, accounts=selected, mass_speed=None, users=desired.users & needed, records=records
    )


def narrow(
    desired: DesiredState,
    live: LiveState,
    *,
    selector: Mapping[str, str] | None = None,
    exclude: Iterable[str] = (),
) -> tuple[DesiredState, LiveState]:
    """`--selector k=v` and `--exclude ID`: keep only the chosen declared accounts.

    With a selector, orphans are out of scope (they carry no labels any more), so undeclared live
    accounts are dropped too; excluded ids are dropped from both sides.
    """
    excluded = frozenset(exclude)
    selected = select(desired, selector=selector, exclude=excluded)
    kept = {
        account_id: account
        for account_id, account in live.accounts.items()
        if account_id in selected.accounts
        or (not selector and account_id not in excluded and account_id not in desired.accounts)
    }
    return selected, dataclasses.replace(live, accounts=kept)


async def read(
    scope: Scope, providers: Providers, stderr: TextIO | None = None
) -> tuple[DesiredState, LiveState]:
    """Read live state for the chosen accounts, with a call counter on stderr when it is a
    terminal; both sides narrowed to them."""
    im = providers.im
    with_speed = providers.wechat

    def calls() -> int:
        return sum(im.calls.values()) + (sum(with_speed.calls.values()) if with_speed else 0)

    async with reading(stderr or io.StringIO(), calls):
        live = await read_live(
            scope.selected, im, inventory_user=scope.config.inventory, mass=providers.wechat
        )
    return narrow(scope.desired, live, selector=scope.selector, exclude=scope.exclude)


def diff_scope(scope: Scope, desired: DesiredState, live: LiveState, *, prune: bool) -> Diff:
    """`diff`, plus what only the target can tell: a Tencent target without WeChat credentials
    cannot read or set a declared MassSpeed (the mass speed kind makes that a problem)."""
    target = scope.target
    wechat_missing = (
        target.name if isinstance(target, TencentTarget) and target.wechat is None else None
    )
    return diff(
        desired,
        live,
        prune=prune,
        inventory_user=scope.config.inventory,
        wechat_missing=wechat_missing,
        history_days=scope.config.limits.history_days,
        time_zone=scope.config.time_zone,
        wechat_account_type=(
            target.wechat.account_type
            if isinstance(target, TencentTarget) and target.wechat is not None
            else None
        ),
    )


@dataclass(frozen=True, slots=True)
class Compared:
    """One read and diff of a scope: both sides narrowed to the chosen accounts, and the changes."""

    scope: Scope
    desired: DesiredState
    live: LiveState
    changes: Diff
    prune: bool

    def plan(self) -> Plan:
        """The plan of these changes (what `plan` shows and `apply` runs)."""
        config = self.scope.config
        made = plan_from_read(
            self.changes,
            desired=self.desired,
            live=self.live,
            target=self.scope.identity,
            limits=config.limits,
            safety=config.safety,
            prune=self.prune,
        )
        return dataclasses.replace(made, targeting=self.scope.targeting)


async def compare(
    scope: Scope, providers: Providers, *, prune: bool, stderr: TextIO | None = None
) -> Compared:
    """Read, narrow and diff through `providers`: the pipeline every command against the manifests
    runs."""
    desired, live = await read(scope, providers, stderr)
    return compared(scope, desired, live, prune=prune)


def compared(scope: Scope, desired: DesiredState, live: LiveState, *, prune: bool) -> Compared:
    """The diff of what `read` returned."""
    return Compared(scope, desired, live, diff_scope(scope, desired, live, prune=prune), prune)


def compare_read_only(scope: Scope, *, prune: bool, stderr: TextIO | None = None) -> Compared:
    """`compare` on read-only clients (plan, drift): a write is refused before it is sent.

    The diff runs once the clients are closed and the event loop is gone: diffing while they were
    open raised a no-op plan's peak RSS from 100 to 122 MB (bench/scale.py S2).
    """

    async def run() -> tuple[DesiredState, LiveState]:
        async with connect(scope.target, scope.config.limits, read_only=True) as providers:
            return await read(scope, providers, stderr)

    desired, live = asyncio.run(run())
    return compared(scope, desired, live, prune=prune)
