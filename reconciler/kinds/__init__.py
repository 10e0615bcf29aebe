"""The registry of kinds: every manifest kind's module, and the inventory's bookkeeping.

The core stages (diff, plan, render, drift, cost, apply, the plan-file codec) know changes only
through the `Change` base class (`reconciler.changes`) and the `Kind` records listed here: a
kind's diff, its summary counts and lines, its closing actions (the verification reads) and their
verify. Everything else a stage needs from a change is a method of the change's own type, written
in its kind's module: its vendor calls, their apply phase, its summary counts, its lines in a
rendered plan, its drift items, how it is applied, and its plan-file form (a msgspec `Struct`
tagged with the change's `kind`).

Why a tuple of records and methods, not `functools.singledispatch`: mypy --strict checks every
method a kind's change type defines against the base's signature, and checks each `Kind` field's
callable type where the record is built; a singledispatch registration is typed `Callable[...,
Any]` and a kind that forgot a stage would only fail at run time. What mypy cannot see (a change
type that leaves a behaviour to the base class, which raises) `tests/test_kinds.py` checks for
every registered type.

`SubscriberSet` is a manifest kind with no changes and no live state of its own: it resolves into
the memberships of the accounts that name it (`reconciler.resolve`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

from reconciler.changes import Change, Kind, NoticeWire, ProblemWire, Wire
from reconciler.kinds import (
    broadcast,
    inventory,
    mass_message,
    mass_speed,
    official_account,
    user_accounts,
)

#: Every kind, in the order of its lines in a plan's summary; the inventory's bookkeeping last.
REGISTRY: Final[tuple[Kind, ...]] = (
    official_account.KIND,
    user_accounts.KIND,
    mass_speed.KIND,
    mass_message.KIND,
    broadcast.KIND,
    inventory.KIND,
)
_plugged: list[Kind] = []


def registered() -> tuple[Kind, ...]:
    """Every kind the stages dispatch to: the registry, then any plugged in (`plugged`)."""
    return (*REGISTRY, *_plugged)


@contextlib.contextmanager
def plugged(kind: Kind) -> Iterator[Kind]:
    """`kind` registered for the length of the block: how a test plugs in a kind of its own."""
    _plugged.append(kind)
    try:
        yield kind
    finally:
        _plugged.remove(kind)


def change_types() -> dict[str, type[Change]]:
    """Every change type, by its `kind` (the `type` of its JSON form)."""
    return {change.kind: change for kind in registered() for change in kind.changes}


def missing_behaviours(change: type[Change]) -> list[str]:
    """The behaviours the core stages call that `change` leaves to a base class (which raises),
    and its plan-file form when its tag is not its `kind`."""
    missing = [
        name
        for name in sorted(dir(change))
        if getattr(getattr(change, name, None), "__required__", False)
    ]
    for name in ("kind", "phase", "wire_type"):
        if not hasattr(change, name):
            missing.append(name)
    if hasattr(change, "wire_type") and change.wire_type.__struct_config__.tag != change.kind:
        missing.append("wire_type (tagged with its kind)")
    return missing


def summary_keys() -> dict[str, int]:
    """A plan's summary counts, all zero, in the kinds' order."""
    return {key: 0 for kind in registered() for key in kind.summary_keys}


def wire_types() -> tuple[type[Wire], ...]:
    """The tagged plan-file forms of every change, notices and problems."""
    return (*(c.wire_type for c in change_types().values()), NoticeWire, ProblemWire)
