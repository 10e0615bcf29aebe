"""What every change shares, and the two things a diff reports that are not changes.

A change is a small immutable record of one kind (`reconciler.kinds`): an ordering key, a `.data`
form for JSON and the plan file, and the behaviours the stages dispatch to (its vendor calls,
their apply phase, its drift items, its summary counts, its lines in a rendered plan). The base
class names those behaviours; each kind's module implements them for its own change types, and
`reconciler.kinds.REGISTRY` lists the types, so no stage holds an `isinstance` chain over them.

The phase numbers put every change in the DESIGN order (section 6): import users, the inventory
ledger's writes, create accounts, modify profiles, add subscribers, set subscriber profiles, remove
subscribers, inventory records, destroy accounts, set mass speed, send messages, recall them.

A `Notice` (an orphan left alone, a field the vendor cannot clear) and a `PlanProblem` (something
that would make apply fail; the plan is then an error) are what a diff reports beside its changes,
in their own fields (`reconciler.diff.Diff`).
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

import msgspec

from reconciler.digest import members_digest
from reconciler.live import LiveState
from reconciler.outcome import GLOBAL, ApplyResult, NoProgress, Progress

if TYPE_CHECKING:
    from reconciler.config import Limits
    from reconciler.errors import Problem
    from reconciler.load import Document
    from reconciler.model import DesiredState
    from reconciler.providers import AccountInfo, IMProvider, MassSpeedProvider

T = TypeVar("T")

PHASE_PROBLEM: Final = -1
PHASE_IMPORT: Final = 0
PHASE_LEDGER: Final = 1
PHASE_CREATE: Final = 2
PHASE_MODIFY: Final = 3
PHASE_ADD: Final = 4
PHASE_PROFILE: Final = 5
PHASE_REMOVE: Final = 6
PHASE_RECORD: Final = 7
PHASE_DESTROY: Final = 8
PHASE_SPEED: Final = 9
PHASE_SEND: Final = 10
PHASE_RECALL: Final = 11
PHASE_NOTICE: Final = 12

#: The phases of an apply, in order (DESIGN section 6): phases follow one another and the calls
#: of one phase run together. "ledger" is the inventory ledger rewritten after the accounts;
#: "messages" sends and recalls (after the accounts and their subscribers).
APPLY_PHASES: Final = (
    "users",
    "accounts",
    "destroy",
    "ledger",
    "mass speed",
    "messages",
    "verify",
)


F = TypeVar("F", bound=Callable[..., Any])


def required(method: F) -> F:
    """Marks a behaviour every change type must define itself (`kinds.missing_behaviours`)."""
    method.__required__ = True  # type: ignore[attr-defined]
    return method


def plural(n: int, word: str) -> str:
    """`1 subscriber`, `2 subscribers`, `1,500 subscribers`."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def first_ids(users: frozenset[str], n: int) -> list[str]:
    """The `n` smallest ids, without sorting the whole set."""
    return heapq.nsmallest(n, users)


def members_summary(users: frozenset[str], *, first: int = 10) -> dict[str, Any]:
    """A large membership as one attribute: count, the first ids and a digest of the full set."""
    return {"count": len(users), "first": first_ids(users, first), "digest": members_digest(users)}


@dataclass(frozen=True, slots=True)
class DriftItem:
    """One difference between git and the live system (`reconciler.drift`)."""

    #: an account id, `UserAccounts` or `MassSpeed/<name>`
    account: str
    #: a profile field, `account`, `subscribers`, `subscriberProfiles`, `users` or `speed`
    field: str
    git: Any = None
    live: Any = None
    #: live subscribers git does not declare (exact) or declares `absent`
    added_by_hand: frozenset[str] = frozenset()
    #: declared subscribers (or users) missing live
    removed_by_hand: frozenset[str] = frozenset()
    #: why it is reported although an ignore entry names it (the entry expired)
    note: str = ""

    def data(self, *, first: int = 10, show_all: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "account": self.account,
            "field": self.field,
            "git": self.git,
            "live": self.live,
            "note": self.note,
        }
        for key, users in (
            ("addedByHand", self.added_by_hand),
            ("removedByHand", self.removed_by_hand),
        ):
            body[key] = sorted(users) if show_all else members_summary(users, first=first)
        return body


class Wire(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    """A change's plan-file form: one tagged Struct per change type, validated by msgspec."""

    def change(self) -> Finding:
        """What this form encodes; ValueError when a value is out of its domain."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Action:
    """One vendor call: its stable id, the API, the change it serves and its batch of ids."""

    id: str
    api: str
    #: None for the verification reads that follow an apply
    change: Change | None
    #: the batch (users to import, add or remove; one subscriber for a profile) or empty
    items: tuple[str, ...] = ()


class Schedule:
    """What a change may know about the others when it lays out its calls: all of them, sorted,
    and what a kind derives from them once per plan (`derived`)."""

    def __init__(self, changes: Sequence[Change]) -> None:
        self.changes = changes
        self._derived: dict[Callable[..., Any], Any] = {}

    def derived(self, fn: Callable[[Sequence[Change]], T]) -> T:
        """`fn(self.changes)`, computed once per plan."""
        if fn not in self._derived:
            self._derived[fn] = fn(self.changes)
        value: T = self._derived[fn]
        return value


class Change:
    """A change of some kind; subclasses are frozen slotted dataclasses in a kind's module.

    The methods below are what the core stages dispatch to; `tests/test_kinds.py` fails when a
    registered type leaves one of them to this base.
    """

    __slots__ = ()
    kind: ClassVar[str]
    phase: ClassVar[int]
    #: its plan-file form
    wire_type: ClassVar[type[Wire]]
    #: bookkeeping: needed by apply, invisible as a change to the live system's users
    bookkeeping: ClassVar[bool] = False
    #: apply needs the inventory user to exist (it is imported first when it does not)
    needs_inventory_user: ClassVar[bool] = False

    @property
    def account(self) -> str:
        return ""

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (self.phase, self.account, self.kind)

    @property
    def lane(self) -> str:
        """Apply runs the changes of one lane in order, and lanes together: an account's."""
        return self.account

    # -- the plan file and JSON ----------------------------------------------------------------

    @required
    def wire(self) -> Wire:
        """The plan-file form (every id)."""
        raise NotImplementedError

    @property
    def data(self) -> dict[str, Any]:
        """The full JSON form (every id), as saved in a plan file."""
        built: dict[str, Any] = msgspec.to_builtins(self.wire())
        return built

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        """The JSON form for display: memberships as count, first ids and digest."""
        return self.data

    # -- plan ----------------------------------------------------------------------------------

    @required
    def actions(self, schedule: Schedule) -> list[Action]:
        """The vendor calls that carry this change out, batched, with stable ids."""
        raise NotImplementedError

    @required
    def apply_phase(self, action: Action) -> str:
        """The apply phase (`APPLY_PHASES`) that runs `action`, one of this change's."""
        raise NotImplementedError

    @required
    def count(self, summary: dict[str, int]) -> None:
        """Add this change to the plan's summary counts (`reconciler.kinds.summary_keys`)."""
        raise NotImplementedError

    def ledger_ids(self) -> tuple[str | None, str | None]:
        """(an id this change creates, which the inventory ledger records before it is sent;
        an id this change takes into the inventory or destroys, which the ledger need not hold)."""
        return None, None

    # -- render and drift ----------------------------------------------------------------------

    @required
    def headline(self) -> tuple[int, str, str] | None:
        """For a change of an account: (rank, symbol, verb) of the account's heading line in a
        rendered plan (the lowest rank of an account's changes wins); None: bookkeeping only."""
        raise NotImplementedError

    @required
    def detail_lines(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        """(symbol, text) lines under its account's heading, or its own block's lines."""
        raise NotImplementedError

    def block(self, *, show_all: bool, first: int) -> list[tuple[str, str]]:
        """For a change of no account: its own block in a text plan, (paint symbol, line)."""
        return []

    def markdown(self, *, first: int) -> list[str]:
        """For a change of no account: its lines in a markdown plan (escaped)."""
        return []

    def member_items(self) -> Iterable[tuple[str, str, str]]:
        """(account, "add" or "remove", subscriber) for `--members-out`, sorted."""
        return ()

    @required
    def drift(self) -> list[DriftItem]:
        """The differences from git this change stands for (a diff read the other way round)."""
        raise NotImplementedError

    # -- apply ---------------------------------------------------------------------------------

    @required
    async def run(self, run: ApplyRun, actions: Sequence[Action]) -> None:
        """Make the calls of `actions` (this change's, of one apply phase), one call each, and
        write what happened into `run.result`; a vendor failure is recorded, never raised."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Notice:
    """Not a change: something the reader of a plan should know (an orphan left alone, ...)."""

    kind: ClassVar[str] = "notice"
    phase: ClassVar[int] = PHASE_NOTICE
    account_id: str
    message: str
    #: "orphan" (owned, not declared, kept), "protected" (orphan kept by protect) or "field"
    reason: str

    @property
    def account(self) -> str:
        return self.account_id

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (self.phase, self.account, self.kind)

    @property
    def data(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "account": self.account_id,
            "message": self.message,
            "reason": self.reason,
        }

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        return self.data


@dataclass(frozen=True, slots=True)
class PlanProblem:
    """Something that would make apply fail; a plan with problems is an error (exit 1)."""

    kind: ClassVar[str] = "problem"
    phase: ClassVar[int] = PHASE_PROBLEM
    account_id: str
    message: str

    @property
    def account(self) -> str:
        return self.account_id

    @property
    def sort_key(self) -> tuple[int, str, str]:
        return (self.phase, self.account, self.kind)

    def __str__(self) -> str:
        return f"{self.account_id}: {self.message}" if self.account_id else self.message

    @property
    def data(self) -> dict[str, Any]:
        return {"type": self.kind, "account": self.account_id, "message": self.message}

    def summary_data(self, *, first: int = 10) -> dict[str, Any]:
        return self.data


class NoticeWire(Wire, frozen=True, tag="notice"):
    """The plan-file form of a `Notice`."""

    account: str
    message: str
    reason: str

    def change(self) -> Notice:
        return Notice(self.account, self.message, self.reason)


class ProblemWire(Wire, frozen=True, tag="problem"):
    """The plan-file form of a `PlanProblem`."""

    account: str
    message: str

    def change(self) -> PlanProblem:
        return PlanProblem(self.account, self.message)


Finding = Change | Notice | PlanProblem


def sort_key(item: Finding) -> tuple[int, str, str]:
    return item.sort_key


def by_account(changes: Sequence[Change]) -> Mapping[str, list[Change]]:
    """The changes of each account (in their order), accounts sorted; changes of none left out."""
    groups: dict[str, list[Change]] = {}
    for change in changes:
        if change.account:
            groups.setdefault(change.account, []).append(change)
    return dict(sorted(groups.items()))


def batched(users: Iterable[str], size: int) -> list[tuple[str, ...]]:
    """`users` sorted, in batches of `size` (the vendor's per-call maximum)."""
    ordered = sorted(users)
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), size)]


def show_value(value: object) -> str:
    """A value as a plan shows it: JSON, or `(unset)`."""
    return "(unset)" if value is None else json.dumps(value, ensure_ascii=False)


def show_ids(users: frozenset[str], n: int) -> str:
    """The first `n` ids and how many more."""
    shown = ", ".join(first_ids(users, n))
    return shown + (f", … ({len(users) - n:,} more)" if len(users) > n else "")


class ApplyRun:
    """One apply: the plan's changes, the vendor clients, the result, and each kind's state.

    State one kind keeps for the length of a run (which accounts were created, which ledger
    slots were written) is a small object of that kind's own, made on first use by `state`.
    """

    def __init__(
        self,
        changes: Sequence[Change],
        subscriber_counts: Mapping[str, int],
        im: IMProvider,
        wechat: MassSpeedProvider | None,
        inventory_user: str,
        progress: Progress | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        #: this run's clock (intervals) and the wall clock (ledger claims), passed in for tests
        self.clock = clock
        self.wall = wall
        #: the plan's changes
        self.changes = changes
        #: subscribers of each account as planned (the plan's fingerprints), for verify
        self.subscriber_counts = subscriber_counts
        self.im = im
        self.wechat = wechat
        self.inventory = inventory_user
        self.result = ApplyResult()
        self.result.report(GLOBAL)  # always a row of the summary: its width includes it
        self.progress: Progress = progress or NoProgress()
        #: users whose import failed: what needs them is skipped
        self.missing_users: set[str] = set()
        #: accounts that need no inventory ledger entry any more: subscribed by the inventory
        #: user in this run, destroyed, or whose create surely never happened
        self.settled: set[str] = set()
        #: verify re-reads the memberships that changed, not only the accounts' info
        self.verify_full = False
        self._states: dict[Callable[..., Any], Any] = {}

    def state(self, factory: Callable[[ApplyRun], T]) -> T:
        """The one `factory(self)` of this run (a kind's own state), made on first use."""
        if factory not in self._states:
            self._states[factory] = factory(self)
        made: T = self._states[factory]
        return made


def _none(_: object) -> list[Any]:
    return []


@dataclass(frozen=True, slots=True)
class Kind:
    """A manifest kind (or the inventory's bookkeeping) as the core stages see it: its change
    types, and the behaviours that are the kind's as a whole rather than one change's."""

    #: the manifest `kind:` (or "inventory")
    name: str
    #: its change types, each implementing every behaviour of `Change`
    changes: tuple[type[Change], ...]
    #: its documents (each passed its schema) → its desired records (`DesiredState.records`)
    #: and the problems found; None: resolved by `reconciler.resolve` itself (the first kinds)
    resolve: Callable[[Sequence[Document]], tuple[Sequence[object], Sequence[Problem]]] | None = (
        None
    )
    #: like `resolve`, for a kind whose documents name SubscriberSets: it is also given
    #: `members(node, path)`, the members of `node`'s `sets` and `members` and whether that is
    #: all of them (an unknown or broken set is reported, positioned, by the resolver)
    resolve_with_sets: (
        Callable[
            [Sequence[Document], Callable[[Any, str], tuple[frozenset[str], bool]]],
            tuple[Sequence[object], Sequence[Problem]],
        ]
        | None
    ) = None
    #: its live state, read through the clients (`LiveState.records`), also given the record
    #: accounts the inventory walk found (`reconciler.read.RECORD_PREFIXES`, a mass message's
    #: send record); None: nothing of its own
    read: (
        Callable[
            [DesiredState, IMProvider, MassSpeedProvider | None, Sequence[AccountInfo]],
            Awaitable[Sequence[object]],
        ]
        | None
    ) = None
    #: a digest of its desired records ("" when it has none: the digest is then as without the
    #: kind), for the saved plan's check that the manifests are the ones it was made from
    digest: Callable[[DesiredState], str] | None = None
    #: what it finds: desired + live (+ prune, inventory user) → changes, notices, problems
    diff: Callable[[DesiredState, LiveState, DiffOptions], Iterable[Finding]] | None = None
    #: its counts in a plan's summary, in the order they are shown
    summary_keys: tuple[str, ...] = ()
    #: its parts of the text summary line (`Plan: ...; ...`), given the counts
    summary_text: Callable[[Mapping[str, int]], list[str]] = _none
    #: its rows of the markdown summary table, given the counts
    summary_rows: Callable[[Mapping[str, int]], list[tuple[str, int]]] = _none
    #: the calls that follow every change's (the verification reads after an apply)
    closing_actions: Callable[[Sequence[Change]], list[Action]] = _none
    #: runs the closing actions
    verify: Callable[[ApplyRun], Awaitable[None]] | None = None
    #: what of its live state a saved plan is pinned to besides the accounts (a Broadcast's:
    #: each sending account's history): the plan's changes and live state → {key: fingerprint};
    #: written into the plan file only when some kind has one, so other plan files keep their bytes
    pins: Callable[[Sequence[Change], LiveState], Mapping[str, str]] | None = None
    #: the same pins read afresh for a saved plan's changes (given the plan's pins), and why some
    #: of them can no longer run (a send whose window closed): what `apply PLANFILE` checks
    repin: (
        Callable[
            [Sequence[Change], Mapping[str, str], IMProvider],
            Awaitable[tuple[Mapping[str, str], list[str]]],
        ]
        | None
    ) = None
    #: its problems that depend on `reconciler.yaml`'s limits (a Broadcast's window against
    #: `limits.historyDays`), positioned: `validate` reports them, as the plan does
    check: Callable[[DesiredState, Limits], Sequence[Problem]] | None = None


@dataclass(frozen=True, slots=True)
class DiffOptions:
    """What a kind's diff is told besides the two states."""

    prune: bool
    inventory_user: str
    #: the name of a target without WeChat credentials, when it is one
    wechat_missing: str | None = None
    #: `limits.historyDays`: how long a message window may be (the vendor's history retention)
    history_days: int = 7
    #: `timeZone`: where plans show message windows and send times, beside UTC
    time_zone: str = "UTC"
    #: `targets.<t>.wechat.accountType` ("subscription", "service"); None: not declared
    wechat_account_type: str | None = None
