"""What the sending kinds share (`Broadcast`, issue 15; `MassMessage`, issue 16), written once.

A message is a one-shot action wearing a declarative document (DESIGN section 10). Both sending
kinds need the same five things, and this module is where they live. Its signatures are stable:
add to it, do not change them.

Identity (never from a time, a run id or a commit)
    `content_digest(value) -> str`
        `sha256:<hex>` of the canonical JSON of `value` (sorted keys, no spaces, UTF-8).
    `stable_id(*parts) -> str`
        64 hex characters: SHA-256 of the parts, each length-prefixed (`("ab", "c")` and
        `("a", "bc")` differ). What a vendor idempotency key is cut from.
    `stable_u32(*parts) -> int`
        a number in [1, 2**32 - 1] from `stable_id(*parts)` (Tencent's `Random`; never 0, which
        the vendor also reports for a send without one).

Window (`spec.window`: `notBefore` optional, `notAfter` required)
    `parse_window(spec, fallback, *, history_days) -> (Window | None, [Problem])`
        from a schema-validated `spec` Node (the schema leaves both values untyped: YAML reads
        an unquoted `2026-12-08T09:00:00+08:00` as a datetime, a quoted one is a string; both are
        accepted here). Problems, positioned: not a date-time, no UTC offset, `notBefore` not
        before `notAfter`, a window longer than `history_days` (the vendor's history retention:
        a send could then fall out of the history that proves it was sent).
    `Window.not_before`, `Window.not_after`: aware datetimes (None: no `notBefore`).
    `Window.start(history_days) -> float`: the first second a send may go: `notBefore`, or
        without one `notAfter - history_days` (earlier, a send could outlive its own proof).
    `Window.state(now, history_days) -> WindowState` (`NOT_YET_OPEN`, `OPEN`, `CLOSED`).
    `Window.render(tz) -> str`: `2026-12-08 09:00 CST (01:00 UTC) → 2026-12-08 21:00 CST
        (13:00 UTC)`, or `until ...` without `notBefore`.
    `Window.data -> dict`: `{"notBefore": iso | None, "notAfter": iso}` (UTC, `Z`).
    `Window.from_data(data) -> Window`: its inverse (plan files).
    `time_zone(name) -> tzinfo`: an IANA name (`Asia/Shanghai`) or `UTC`; ValueError otherwise.
    `format_instant(ts, tz) -> str`: `2026-12-08 09:02 CST (01:02 UTC)`.

Send caps (`safety.maxBroadcasts`, default 1 per apply, `--allow-broadcasts N`, `--force`)
    `SendCap(rule, flag, noun, default)` and `SEND_CAPS` (defined in the light module
        `reconciler.caps`, re-exported here): one entry per sending kind. Issue 16 adds
        `SendCap("maxMassMessages", "--allow-mass-messages", "mass message")` and the same
        property in `schemas/reconciler.schema.json`'s `safety`; config, the CLI flag,
        the plan file and the safety check then follow from the table.
    A change type that sends sets the class attribute `send_cap = "<rule>"` (a `Change`
    subclass; `count_sends` reads it with getattr, so no base class is needed).
    `count_sends(changes) -> {rule: n}`: every cap's count (0 when none).
    `reconciler.safety.send_violations(changes, safety, allow_sends, force)`: the violations.
    `Safety.max_sends`: the configured caps, `((rule, n), ...)`; `send_limit(max_sends, rule)`.

Quota (a due send over the vendor's cap is deferred, never bursted)
    `Quota(count, period_seconds, interval_seconds)`: at most `count` sends per sliding
        `period_seconds`, and `interval_seconds` between two sends.
    `Quota.slots(sent, due, now) -> [float]`: the earliest time of each of `due` more sends,
        given the times already `sent` (from the live system, by hand included). A slot `> now`
        is a deferral.
    `Quota.used(sent, now) -> int`: sends inside the period ending at `now`.
    `deferral_line(what, until, tz) -> str`: `news/x: deferred until 2026-12-08 10:02 CST
        (02:02 UTC), over the quota` (a notice or plan line).

Content diff
    `changed_paths(old, new) -> [str]`: the paths that differ, deepdiff-based, in the
        manifest's own dotted form (`body[1].custom.desc`), sorted.

Clock
    `wall_clock() -> float`: now, in seconds since the epoch. Reads the environment variable
        `RECONCILER_CLOCK_OFFSET` (seconds, tests only: a CLI in a subprocess follows a sandbox
        whose clock was moved).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconciler.caps import SEND_CAPS, SendCap, count_sends, send_cap, send_limit
from reconciler.errors import Problem
from reconciler.load import position_of
from reconciler.model import Position

log = logging.getLogger(__name__)

# -- identity ------------------------------------------------------------------------------------


def canonical(value: Any) -> str:
    """The canonical JSON of `value`: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_digest(value: Any) -> str:
    """`sha256:` + hex of the canonical JSON of `value`."""
    return "sha256:" + hashlib.sha256(canonical(value).encode("utf-8")).hexdigest()


def stable_id(*parts: str) -> str:
    """SHA-256 (hex) of the parts, each length-prefixed so that no two splits collide."""
    h = hashlib.sha256()
    for part in parts:
        raw = part.encode("utf-8")
        h.update(len(raw).to_bytes(8, "big"))
        h.update(raw)
    return h.hexdigest()


def stable_u32(*parts: str) -> int:
    """A number in [1, 2**32 - 1] derived from the parts (Tencent's send `Random`)."""
    return int(stable_id(*parts)[:8], 16) % (2**32 - 1) + 1


# -- window --------------------------------------------------------------------------------------


class WindowState(enum.Enum):
    NOT_YET_OPEN = "not yet open"
    OPEN = "open"
    CLOSED = "closed"


UTC: Final = dt.UTC


def time_zone(name: str) -> dt.tzinfo:
    """An IANA time zone (`Asia/Shanghai`) or `UTC`; ValueError when there is none of that name."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_instant(ts: float, tz: dt.tzinfo) -> str:
    """`2026-12-08 09:02 CST (01:02 UTC)`; the UTC part alone when `tz` is UTC."""
    moment = dt.datetime.fromtimestamp(ts, UTC)
    utc = moment.strftime("%Y-%m-%d %H:%M UTC")
    if tz is UTC:
        return utc
    local = moment.astimezone(tz)
    same_day = local.date() == moment.date()
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({moment:%H:%M} UTC" + (
        ")" if same_day else f" {moment:%m-%d})"
    )


@dataclass(frozen=True, slots=True)
class Window:
    """When a message may be sent: never before `not_before`, never after `not_after`."""

    not_before: dt.datetime | None
    not_after: dt.datetime
    position: Position | None = field(default=None, compare=False)

    def start(self, history_days: int) -> float:
        """The first second a send may go (see the module docstring)."""
        if self.not_before is not None:
            return self.not_before.timestamp()
        return self.not_after.timestamp() - history_days * 86400

    def state(self, now: float, history_days: int) -> WindowState:
        if now < self.start(history_days):
            return WindowState.NOT_YET_OPEN
        if now > self.not_after.timestamp():
            return WindowState.CLOSED
        return WindowState.OPEN

    def render(self, tz: dt.tzinfo) -> str:
        end = format_instant(self.not_after.timestamp(), tz)
        if self.not_before is None:
            return f"until {end}"
        return f"{format_instant(self.not_before.timestamp(), tz)} → {end}"

    @property
    def data(self) -> dict[str, str | None]:
        return {
            "notBefore": None if self.not_before is None else _iso(self.not_before),
            "notAfter": _iso(self.not_after),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, str | None]) -> Window:
        before, after = data.get("notBefore"), data.get("notAfter")
        if not isinstance(after, str):
            raise ValueError("a window needs notAfter")
        return cls(
            None if before is None else _parse_instant(before),
            _parse_instant(after),
        )


def _parse_instant(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment


_DATE_TIME: Final = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?")


def _instant(value: object) -> tuple[dt.datetime | None, str]:
    """(the aware datetime, "") or (None, why not)."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        return None, "needs a time and a UTC offset, not only a date"
    elif isinstance(value, str) and _DATE_TIME.match(value):
        try:
            moment = dt.datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            return None, f"{value!r} is not a date-time"
    else:
        return None, "must be a date-time such as 2026-12-08T09:00:00+08:00"
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None, "needs a UTC offset (such as +08:00 or Z)"
    return moment, ""


def parse_window(
    spec: Mapping[str, Any], fallback: Position, *, history_days: int
) -> tuple[Window | None, list[Problem]]:
    """`spec.window` of a schema-validated document; None and the problems when it is invalid."""
    raw = spec.get("window")
    where = position_of(spec, "window") or fallback
    if not isinstance(raw, Mapping) or "notAfter" not in raw:
        return None, [_problem(where, "spec.window: needs notAfter (a message is never stale)")]
    problems: list[Problem] = []
    found: dict[str, dt.datetime | None] = {"notBefore": None}
    for key in ("notBefore", "notAfter"):
        if key not in raw:
            continue
        moment, why = _instant(raw[key])
        if moment is None:
            pos = position_of(raw, key) or where
            problems.append(_problem(pos, f"spec.window.{key}: {why}"))
        found[key] = moment
    after, before = found.get("notAfter"), found["notBefore"]
    if problems or after is None:
        return None, problems
    if before is not None and before >= after:
        return None, [_problem(where, "spec.window: notBefore must be before notAfter")]
    too_long = None if before is None else longer_than_retention(after - before, history_days)
    if too_long is not None:
        return None, [_problem(where, too_long)]
    return Window(before, after, where), []


def longer_than_retention(length: dt.timedelta, history_days: int) -> str | None:
    """Why a window of `length` cannot be sent in (None when it can): a send could not be
    proven from the history once it left the retention."""
    if length.total_seconds() <= history_days * 86400:
        return None
    return (
        f"spec.window: {length.total_seconds() / 86400:.4g} days is longer than the"
        f" {history_days}-day history retention (limits.historyDays): a send could not be"
        " proven once it left it"
    )


def _problem(pos: Position, message: str) -> Problem:
    return Problem(pos.file, pos.line, pos.col, message)


# -- send caps: in `reconciler.caps` (the CLI builds its flags from it without importing kinds)

__all__ = ["SEND_CAPS", "SendCap", "count_sends", "send_cap", "send_limit"]


# -- quota ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quota:
    """At most `count` sends per sliding `period_seconds`, `interval_seconds` apart."""

    count: int
    period_seconds: float
    interval_seconds: float = 0.0

    def used(self, sent: Iterable[float], now: float) -> int:
        return sum(1 for t in sent if now - self.period_seconds < t <= now)

    def slots(self, sent: Iterable[float], due: int, now: float) -> list[float]:
        """The earliest time of each of `due` further sends after those `sent`."""
        times = sorted(t for t in sent if t > now - self.period_seconds)
        out: list[float] = []
        for _ in range(due):
            at = now
            if times:
                at = max(at, times[-1] + self.interval_seconds)
            if len(times) >= self.count:
                # the oldest of the last `count` sends must leave the period first
                at = max(at, times[-self.count] + self.period_seconds)
            times.append(at)
            out.append(at)
        return out


def deferral_line(what: str, until: float, tz: dt.tzinfo) -> str:
    return f"{what}: deferred until {format_instant(until, tz)}, over the quota"


# -- content diff --------------------------------------------------------------------------------

_ROOT_PART: Final = re.compile(r"\['([^']*)'\]|\[(\d+)\]")


def _dotted(path: str) -> str:
    out = ""
    for name, index in _ROOT_PART.findall(path.removeprefix("root")):
        out += f"[{index}]" if index else ("." if out else "") + name
    return out or "(the whole value)"


def changed_paths(old: Any, new: Any) -> list[str]:
    """The paths whose values differ between `old` and `new`, as `body[1].custom.desc`."""
    from deepdiff import DeepDiff  # lazily: a plan without edits never loads it

    tree = DeepDiff(old, new, view="tree")
    return sorted({_dotted(level.path()) for levels in tree.values() for level in levels})


# -- clock ---------------------------------------------------------------------------------------

CLOCK_OFFSET_ENV: Final = "RECONCILER_CLOCK_OFFSET"


def wall_clock() -> float:
    """Now (seconds since the epoch), moved by `RECONCILER_CLOCK_OFFSET` in tests."""
    offset = os.environ.get(CLOCK_OFFSET_ENV, "")
    try:
        seconds = float(offset) if offset else 0.0
    except ValueError:
        seconds = 0.0
    if seconds and offset not in _warned:
        # never silent: a clock moved by hand decides which windows are open and which sends fit
        _warned.add(offset)
        log.warning(
            "%s=%s moves this run's clock by %+g s: windows and quotas are judged at that time",
            CLOCK_OFFSET_ENV,
            offset,
            seconds,
        )
    return time.time() + seconds


_warned: set[str] = set()
