"""The sandbox's test controls: vendor behaviours where the documents leave a choice, and its clock.

`Behaviour` is plain data, set by `SandboxOptions(behaviour=...)`, by the flags of `reconciler
sandbox serve` (`add_arguments`, `from_args`) or at run time through sandbox-only endpoints, so a
test over real HTTP moves time and flips switches without sleeping or restarting:

- `GET /__sandbox/clock` -> `{"now": <the sandbox's time>, "offset": <seconds added to the clock>}`;
  `POST /__sandbox/clock` with `{"advance": s}` (s >= 0) or `{"offset": s}` moves it, same answer.
  An offset is also how a skewed vendor clock is emulated: UserSigs are checked on the moved time.
- `GET /__sandbox/behaviour` -> every field below; `POST` with some of them changes those.
- `POST /__sandbox/placeholder` with `{"Official_Account", "MsgKey"}` turns a broadcast into a
  placeholder (`IsPlaceMsg` 1, "failed to store"), as history may show one (reference 5.11).

Bad input to these endpoints is HTTP 400 `{"error": ...}`; nothing is changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from reconciler.errors import ConfigError

JSON = dict[str, Any]

DUPLICATE_RULES: Final = ("body", "body_and_random")
ACCOUNT_TYPES: Final = ("service", "subscription")
#: Reference wechat section 4: an unconfirmed send-to-all fails after 30 minutes.
CONFIRM_DEADLINE: Final = 1800
_MSG_KEY: Final = re.compile(r"^([0-9]+)_1_([0-9]+)$")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Vendor behaviours a test may choose; the defaults are the sandbox's reading of the docs."""

    #: seconds added to the injected clock (`POST /__sandbox/clock` moves it)
    clock_offset: float = 0.0
    #: broadcast history retention in days (reference 7.3: 7 for trial and Pro editions)
    history_days: int = 7
    #: what makes a broadcast a duplicate within 5 minutes: the body alone (the doc's wording) or
    #: the body and `Random` (the doocs SDK's wording; reference 7.1)
    broadcast_duplicate: str = "body"
    #: `service` (服务号) or `subscription` (订阅号: sendall once a day, no send-by-OpenID)
    wechat_account_type: str = "service"
    #: followers a send to all or to a tag reaches (it sets how long the job stays SENDING)
    wechat_followers: int = 0
    #: 0: no mass-send protection; N: a send to all waits for the admin, who confirms after N s
    #: (more than 1800: never, and the job ends SEND_FAIL after 30 minutes)
    wechat_admin_confirm: int = 0
    #: when set, every WeChat call is refused with 40164 naming this caller IP
    wechat_blocked_ip: str = ""
    #: False: the app's edition has no official accounts; every official-account command is
    #: answered 131000 (reference tencent 4.1)
    official_accounts: bool = True
    #: False: the WeChat account is not verified; the mass-send family (speed included) is
    #: answered 48001 "api unauthorized" (reference wechat 3, 4: "verified accounts only")
    wechat_verified: bool = True
    #: the largest `Limit` of a subscriber or subscription page (reference 5.5, 5.9: 200); another
    #: value plants a difference for `reconciler conformance` to find
    page_max: int = 200
    #: seconds after a send during which its clientmsgid's replay is 45066 "wait 1 minute"
    #: (reference 6.1: one minute; 0 lets a test replay at once and get 45065)
    wechat_retry_gap: int = 60
    #: the first answer to every new mass send is lost: the send is applied, then answered
    #: HTTP 502, so the client must resolve it by replaying its clientmsgid (45065)
    wechat_lose_send_answers: bool = False

    def problems(self) -> list[str]:
        """What is wrong with these values (empty when they are usable)."""
        out = []
        if self.history_days < 1:
            out.append(f"history_days must be at least 1, not {self.history_days}")
        if self.broadcast_duplicate not in DUPLICATE_RULES:
            out.append(f"broadcast_duplicate must be one of {', '.join(DUPLICATE_RULES)}")
        if self.wechat_account_type not in ACCOUNT_TYPES:
            out.append(f"wechat_account_type must be one of {', '.join(ACCOUNT_TYPES)}")
        if self.wechat_followers < 0:
            out.append("wechat_followers must not be negative")
        if self.wechat_admin_confirm < 0:
            out.append("wechat_admin_confirm must not be negative")
        if self.page_max < 1:
            out.append(f"page_max must be at least 1, not {self.page_max}")
        if self.wechat_retry_gap < 0:
            out.append("wechat_retry_gap must not be negative")
        return out

    @property
    def retention(self) -> int:
        """History retention in seconds."""
        return self.history_days * 86400


_FIELDS: Final = {f.name: f for f in dataclasses.fields(Behaviour)}


def updated(behaviour: Behaviour, changes: Any) -> Behaviour:
    """`behaviour` with `changes` (a JSON object of some fields); `ValueError` if one is bad."""
    if not isinstance(changes, dict):
        raise ValueError("the body must be a JSON object of behaviour fields")
    for key, value in changes.items():
        if key not in _FIELDS:
            raise ValueError(f"unknown behaviour field {key!r}")
        want = type(getattr(behaviour, key))
        ok = type(value) in (int, float) if want is float else type(value) is want
        if not ok:
            raise ValueError(f"{key} must be a {want.__name__}")
    result = dataclasses.replace(behaviour, **changes)
    problems = result.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The behaviour flags of `reconciler sandbox serve`."""
    default = Behaviour()
    parser.add_argument(
        "--clock-offset",
        type=float,
        default=default.clock_offset,
        help="seconds added to the sandbox's clock (a skewed vendor clock)",
    )
    parser.add_argument(
        "--history-days",
        type=int,
        default=default.history_days,
        help=f"broadcast history retention in days (default {default.history_days})",
    )
    parser.add_argument(
        "--broadcast-duplicate",
        choices=DUPLICATE_RULES,
        default=default.broadcast_duplicate,
        help="what makes a broadcast within 5 minutes a duplicate (default: the body)",
    )
    parser.add_argument(
        "--wechat-account-type",
        choices=ACCOUNT_TYPES,
        default=default.wechat_account_type,
        help="the emulated WeChat account's type (default service)",
    )
    parser.add_argument(
        "--wechat-followers",
        type=int,
        default=default.wechat_followers,
        help="followers of a send to all or a tag (how long a job stays SENDING; default 0)",
    )
    parser.add_argument(
        "--wechat-admin-confirm",
        type=int,
        default=default.wechat_admin_confirm,
        metavar="SECONDS",
        help="mass-send protection: the admin confirms a send to all after SECONDS "
        "(0 = off, the default; over 1800 = never, the job fails)",
    )
    parser.add_argument(
        "--wechat-blocked-ip",
        default=default.wechat_blocked_ip,
        metavar="IP",
        help="refuse every WeChat call with 40164 naming IP (not on the allow-list)",
    )
    parser.add_argument(
        "--no-official-accounts",
        dest="official_accounts",
        action="store_false",
        help="an edition without official accounts: their commands answer 131000",
    )
    parser.add_argument(
        "--wechat-unverified",
        dest="wechat_verified",
        action="store_false",
        help="an unverified WeChat account: mass sending and its speed answer 48001",
    )
    parser.add_argument(
        "--page-max",
        type=int,
        default=default.page_max,
        metavar="N",
        help="the largest Limit of a subscriber page (default 200, the documented one; another"
        " value plants a difference for `reconciler conformance`)",
    )
    parser.add_argument(
        "--wechat-retry-gap",
        type=int,
        default=default.wechat_retry_gap,
        metavar="SECONDS",
        help="a mass send replayed within SECONDS answers 45066 (default 60)",
    )
    parser.add_argument(
        "--wechat-lose-send-answers",
        action="store_true",
        help="apply every new mass send, then lose its answer (HTTP 502)",
    )


def from_args(args: argparse.Namespace) -> Behaviour:
    """The `Behaviour` the flags describe; `ConfigError` when a value is out of range."""
    behaviour = Behaviour(
        clock_offset=args.clock_offset,
        history_days=args.history_days,
        broadcast_duplicate=args.broadcast_duplicate,
        wechat_account_type=args.wechat_account_type,
        wechat_followers=args.wechat_followers,
        wechat_admin_confirm=args.wechat_admin_confirm,
        wechat_blocked_ip=args.wechat_blocked_ip,
        official_accounts=args.official_accounts,
        wechat_verified=args.wechat_verified,
        page_max=args.page_max,
        wechat_retry_gap=args.wechat_retry_gap,
        wechat_lose_send_answers=args.wechat_lose_send_answers,
    )
    problems = behaviour.problems()
    if problems:
        raise ConfigError("sandbox serve: " + "; ".join(problems))
    return behaviour


class Controls:
    """The behaviour a running sandbox uses now, and the endpoints that change it."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    def now(self, clock: float) -> float:
        """The sandbox's time for the injected clock's reading."""
        return clock + self.behaviour.clock_offset

    def admin(
        self, db: sqlite3.Connection, clock: float, method: str, path: str, body: bytes
    ) -> tuple[int, JSON] | None:
        """Answer a control endpoint (status, JSON), or None when `path` is not one."""
        route = (method, path)
        if route not in _ROUTES:
            return None
        doc: Any = {}
        if method == "POST":
            try:
                doc = json.loads(body.decode("utf-8") or "{}")
            except (UnicodeDecodeError, ValueError):
                return 400, {"error": "the body must be JSON"}
        try:
            return 200, _ROUTES[route](self, db, clock, doc)
        except ValueError as exc:
            return 400, {"error": str(exc)}


def _clock_get(controls: Controls, db: sqlite3.Connection, clock: float, doc: Any) -> JSON:
    return {"now": controls.now(clock), "offset": controls.behaviour.clock_offset}


def _clock_set(controls: Controls, db: sqlite3.Connection, clock: float, doc: Any) -> JSON:
    if not isinstance(doc, dict) or len(doc) != 1 or not {"advance", "offset"} & set(doc):
        raise ValueError('the body must be {"advance": seconds} or {"offset": seconds}')
    ((key, value),) = doc.items()
    if type(value) not in (int, float):
        raise ValueError(f"{key} must be a number")
    if key == "advance":
        if value < 0:
            raise ValueError("the clock only advances; set an offset to go back")
        value += controls.behaviour.clock_offset
    controls.behaviour = dataclasses.replace(controls.behaviour, clock_offset=float(value))
    return _clock_get(controls, db, clock, doc)


def _behaviour_get(controls: Controls, db: sqlite3.Connection, clock: float, doc: Any) -> JSON:
    return dataclasses.asdict(controls.behaviour)


def _behaviour_set(controls: Controls, db: sqlite3.Connection, clock: float, doc: Any) -> JSON:
    controls.behaviour = updated(controls.behaviour, doc)
    return dataclasses.asdict(controls.behaviour)


def _placeholder(controls: Controls, db: sqlite3.Connection, clock: float, doc: Any) -> JSON:
    if not isinstance(doc, dict):
        raise ValueError("the body must be a JSON object")
    account, key = doc.get("Official_Account"), doc.get("MsgKey")
    match = _MSG_KEY.match(key) if isinstance(key, str) else None
    if not isinstance(account, str) or match is None:
        raise ValueError("Official_Account and a MsgKey Seq_1_ServerTime are required")
    cursor = db.execute(
        "UPDATE messages SET placeholder = 1 WHERE account = ? AND seq = ? AND msg_time = ?",
        (account, int(match[1]), int(match[2])),
    )
    if cursor.rowcount != 1:
        raise ValueError(f"no message {key} on {account}")
    return {"ok": True}


_ROUTES: Final = {
    ("GET", "/__sandbox/clock"): _clock_get,
    ("POST", "/__sandbox/clock"): _clock_set,
    ("GET", "/__sandbox/behaviour"): _behaviour_get,
    ("POST", "/__sandbox/behaviour"): _behaviour_set,
    ("POST", "/__sandbox/placeholder"): _placeholder,
}
