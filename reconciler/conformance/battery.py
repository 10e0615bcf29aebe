"""The conformance battery: the small vendor calls the sandbox's behaviour rests on.

Each probe is one raw call (`wire.py`); what it answered is recorded as observations, each a
probe, an aspect and a value that does not depend on the vendor's state or clock: a code, the
JSON type of every field (so a field present on one side only shows), a per-item result, a limit,
whether an answer repeats what was sent. The same battery runs against the target and against an
in-process sandbox, and the two sets of observations are compared (`report.py`).

Reads only, unless writes are allowed: then one throw-away official account,
`@TOA#_rcl-conformance-<random>` (owned and subscribed by the App admin, so that no user is
imported), takes one create, modify, subscribe, unsubscribe, broadcast, recall and destroy, and
the probes of the points where the reference is silent or its sources disagree: the answer to a
duplicate broadcast and what makes one, `MsgRandom` in history, what a recalled message looks like
there, and the field names `delete_subscriber` takes (reference 5.7, 5.11, 7.1, 9). The account is
destroyed at the end, even when the battery stops early on a signal.

Not probed, on purpose: WeChat mass sends (a real send reaches real followers: the clientmsgid
replay, the daily quota and the admin's confirmation cannot be tried without one), and history
retention (it takes days).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from reconciler.conformance.wire import Answer, Wire
from reconciler.interrupt import StopSignal
from reconciler.sandbox.wechat import REALSPEED

#: The documented limits the battery tries at and one past (reference 3.3, 5.4, 5.5, 5.6, 5.12).
CHECK_MAX: Final = 100
INFO_MAX: Final = 50
PAGE_MAX: Final = 200
MEMBERSHIP_MAX: Final = 100
RECALL_MAX: Final = 10
NAME_MAX_BYTES: Final = 150
MSG_KEY: Final = re.compile(r"^[0-9]+_1_[0-9]+$")
PREFIX: Final = "rcl-conformance-"

Observations = dict[str, dict[str, Any]]


@dataclass(slots=True)
class Context:
    """What one run of the battery works on; `token` is shared by both sides of a comparison."""

    admin: str
    token: str
    #: the target has WeChat credentials: the WeChat probes run (on both sides)
    wechat: bool = True
    #: told the throw-away account's id just before its create is sent
    announce: Callable[[str], None] = lambda account: None
    #: the create was sent (its answer may have been lost): the account must be destroyed
    create_sent: bool = False
    destroyed: bool = False

    @property
    def name(self) -> str:
        return PREFIX + self.token

    @property
    def account(self) -> str:
        """The throw-away official account's custom id (reference 4.4)."""
        return "@TOA#_" + self.name

    @property
    def stranger(self) -> str:
        """A user id nobody imported."""
        return self.name


class Halt(Exception):
    """The run is stopping (a signal, or a target that does not answer): no further probe."""


@dataclass(slots=True)
class Recorder:
    """Sends the probes and keeps what they showed."""

    wire: Wire
    stop: StopSignal = field(default_factory=StopSignal)
    observed: Observations = field(default_factory=dict)
    #: per probe, the vendor's own words (`ErrorInfo`/`errmsg`) when its code was not 0
    info: dict[str, str] = field(default_factory=dict)
    #: why the first call got no answer: the target is unreachable or not a vendor, and the
    #: rest of the battery (each call retried with backoff) would only say so fifty times more
    unanswered: str | None = None
    sent: int = 0

    def note(self, probe: str, aspect: str, value: Any) -> None:
        self.observed.setdefault(probe, {})[aspect] = value

    def shape(self, probe: str, answer: Answer) -> None:
        """The JSON type of every field of the answer (the first item standing for a list's)."""
        for path, kind in fields(answer.body):
            self.note(probe, f"field {path}", kind)

    def _next(self) -> None:
        if self.stop.stopping or self.unanswered is not None:
            raise Halt
        self.sent += 1

    async def im(self, probe: str, command: str, body: Mapping[str, Any]) -> Answer:
        self._next()
        answer = await self.wire.im(command, body)
        self._record(probe, answer)
        return answer

    async def wechat(self, probe: str, path: str, body: Mapping[str, Any]) -> Answer:
        self._next()
        answer = await self.wire.wechat(probe.partition(":")[0], path, body)
        self._record(probe, answer)
        return answer

    def _record(self, probe: str, answer: Answer) -> None:
        self.note(probe, "code", answer.outcome)
        if answer.failed and self.sent == 1:
            self.unanswered = answer.info
        if answer.code != 0 and answer.info:
            self.info[probe] = answer.info


def kind(value: Any) -> str:
    """A JSON value's type, as JSON Schema names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def fields(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """`(path, type)` for every field under `value`; a list's first item stands for all."""
    if isinstance(value, Mapping):
        for key in sorted(value):
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path, kind(value[key])
            yield from fields(value[key], path)
    elif isinstance(value, list) and value:
        yield f"{prefix}[]", kind(value[0])
        yield from fields(value[0], f"{prefix}[]")


def items(answer: Answer, key: str) -> list[Mapping[str, Any]]:
    """The objects in the answer's list `key` (nothing when it is not a list)."""
    found = answer.body.get(key)
    return [i for i in found if isinstance(i, Mapping)] if isinstance(found, list) else []


def first(answer: Answer, key: str) -> Mapping[str, Any]:
    found = items(answer, key)
    return found[0] if found else {}


def results(answer: Answer) -> list[Any]:
    """The per-item `Result` of a subscribe or unsubscribe answer."""
    return [item.get("Result") for item in items(answer, "SubscriberList")]


# -- reads ------------------------------------------------------------------------------------


async def reads(rec: Recorder, ctx: Context) -> None:
    """Probes that change nothing: each is a vendor read, so the read-only guard lets it pass."""
    stranger, ghost = ctx.stranger, ctx.account
    check = await rec.im(
        "account_check: the admin and an unknown user",
        "account_check",
        {"CheckItem": [{"UserID": ctx.admin}, {"UserID": stranger}]},
    )
    rec.shape("account_check: the admin and an unknown user", check)
    status = {i.get("UserID"): i.get("AccountStatus") for i in items(check, "ResultItem")}
    rec.note("account_check: the admin and an unknown user", "admin", status.get(ctx.admin))
    rec.note("account_check: the admin and an unknown user", "unknown user", status.get(stranger))
    for count in (CHECK_MAX, CHECK_MAX + 1):
        ids = [{"UserID": f"{stranger}-{n}"} for n in range(count)]
        await rec.im(f"account_check: {count} users", "account_check", {"CheckItem": ids})

    probe = "get_official_account_info: an unknown account"
    info = await rec.im(
        probe, "get_official_account_info", {"OfficialAccountIdList": [{"Official_Account": ghost}]}
    )
    rec.shape(probe, info)
    rec.note(probe, "item code", first(info, "OfficialAccountInfoList").get("ErrorCode"))
    for count in (INFO_MAX, INFO_MAX + 1):
        ids = [{"Official_Account": f"{ghost}-{n}"} for n in range(count)]
        await rec.im(
            f"get_official_account_info: {count} ids",
            "get_official_account_info",
            {"OfficialAccountIdList": ids},
        )
    await rec.im("get_official_account_info: no id list", "get_official_account_info", {})

    await rec.im(
        "get_subscriber_info: an unknown account",
        "get_subscriber_info",
        {"Official_Account": ghost, "Limit": 1, "Next": ""},
    )
    await rec.im(
        "official_account_msg_get_simple: an unknown account",
        "official_account_msg_get_simple",
        {"Official_Account": ghost},
    )

    probe = "get_subscribed_official_account_list: an unknown user"
    listed = await rec.im(
        probe,
        "get_subscribed_official_account_list",
        {"Subscriber_Account": stranger, "Limit": 1},
    )
    rec.shape(probe, listed)
    rec.note(probe, "CompleteFlag", listed.body.get("CompleteFlag"))
    rec.note(probe, "TotalCount", listed.body.get("TotalCount"))
    bad_pages: dict[str, Mapping[str, Any]] = {
        f"Limit {PAGE_MAX}": {"Limit": PAGE_MAX},
        f"Limit {PAGE_MAX + 1}": {"Limit": PAGE_MAX + 1},
        "Limit 0": {"Limit": 0},
        "Offset -1": {"Offset": -1},
        'Limit "1" (a string)': {"Limit": "1"},
    }
    for case, extra in bad_pages.items():
        await rec.im(
            f"get_subscribed_official_account_list: {case}",
            "get_subscribed_official_account_list",
            {"Subscriber_Account": stranger, **extra},
        )
    await rec.im(
        "get_subscribed_official_account_list: no Subscriber_Account",
        "get_subscribed_official_account_list",
        {"Limit": 1},
    )
    if ctx.wechat:
        await wechat_reads(rec)


async def wechat_reads(rec: Recorder) -> None:
    probe = "mass_speed_get"
    speed = await rec.wechat(probe, "/cgi-bin/message/mass/speed/get", {})
    rec.shape(probe, speed)
    level, real = speed.body.get("speed"), speed.body.get("realspeed")
    rec.note(probe, "speed is a level 0..4", type(level) is int and level in REALSPEED)
    # reference wechat 13.1: the doc's sample (speed 3, realspeed 15) contradicts its table
    rec.note(
        probe, "realspeed is the doc table's", type(level) is int and REALSPEED.get(level) == real
    )
    await rec.wechat("mass_get: an unknown msg_id", "/cgi-bin/message/mass/get", {"msg_id": "1"})


# -- writes -----------------------------------------------------------------------------------


async def writes(rec: Recorder, ctx: Context) -> None:
    """One throw-away account through its whole life; `destroy` (here or in `cleanup`) ends it."""
    oa = ctx.account
    probe = "create_official_account"
    create = {
        "Owner_Account": ctx.admin,
        "OfficialAccountUserID": oa,
        "Name": ctx.name,
        "Introduction": "reconciler conformance run: a throw-away account, safe to destroy",
    }
    ctx.announce(oa)
    ctx.create_sent = True  # before the call: its answer may be lost and the account made
    created = await rec.im(probe, "create_official_account", create)
    rec.shape(probe, created)
    rec.note(probe, "id is the one asked for", created.body.get("OfficialAccountUserID") == oa)
    if created.code != 0:
        # a refusal made nothing (130008: the id is someone else's, left alone); a lost answer
        # may have made the account, and `run` destroys it
        ctx.create_sent = created.failed
        return  # nothing below can be observed without the account
    await rec.im("create_official_account: the same id again", "create_official_account", create)
    await _account_info(rec, ctx)
    await _memberships(rec, ctx)
    await _broadcasts(rec, ctx)
    await rec.im(
        "official_account_open_http_svc: an unknown command",
        "rcl_conformance_no_such_command",
        {"Official_Account": oa},
    )
    await destroy(rec, ctx)
    await rec.im(
        "destroy_official_account: again", "destroy_official_account", {"Official_Account": oa}
    )
    probe = "get_official_account_info: the destroyed account"
    gone = await rec.im(
        probe, "get_official_account_info", {"OfficialAccountIdList": [{"Official_Account": oa}]}
    )
    rec.note(probe, "item code", first(gone, "OfficialAccountInfoList").get("ErrorCode"))


async def destroy(rec: Recorder, ctx: Context) -> None:
    answer = await rec.im(
        "destroy_official_account", "destroy_official_account", {"Official_Account": ctx.account}
    )
    ctx.destroyed = answer.code == 0


async def _account_info(rec: Recorder, ctx: Context) -> None:
    oa = ctx.account
    probe = "get_official_account_info: the new account"
    ask = {"OfficialAccountIdList": [{"Official_Account": oa}]}
    info = await rec.im(probe, "get_official_account_info", ask)
    rec.shape(probe, info)
    item = first(info, "OfficialAccountInfoList")
    for key in ("MaxSubscriberNum", "SubscriberNum", "LastMsgTime"):
        rec.note(probe, key, item.get(key))
    rec.note(probe, "Owner_Account is the admin", item.get("Owner_Account") == ctx.admin)
    modify = "modify_official_account_base_info"
    await rec.im(f"{modify}: Introduction", modify, {"Official_Account": oa, "Introduction": "x"})
    # reference 9.1: the doocs SDK names the id `OfficialAccount`
    await rec.im(
        f"{modify}: the id as OfficialAccount", modify, {"OfficialAccount": oa, "FaceUrl": "y"}
    )
    long_name = "n" * (NAME_MAX_BYTES + 1)
    await rec.im(
        f"{modify}: Name of 151 bytes", modify, {"Official_Account": oa, "Name": long_name}
    )
    probe = "get_official_account_info: filtered to Introduction and FaceUrl"
    filtered = {
        **ask,
        "ResponseFilter": {"OfficialAccountBaseInfoFilter": ["Introduction", "FaceUrl"]},
    }
    info = await rec.im(probe, "get_official_account_info", filtered)
    rec.shape(probe, info)
    item = first(info, "OfficialAccountInfoList")
    rec.note(probe, "Introduction changed", item.get("Introduction") == "x")
    rec.note(probe, "FaceUrl changed", item.get("FaceUrl") == "y")


async def _memberships(rec: Recorder, ctx: Context) -> None:
    oa, admin = ctx.account, ctx.admin
    add = "add_subscriber"
    one = {"Official_Account": oa, "SubscriberList": [{"Subscriber_Account": admin}]}
    for probe in (f"{add}: the admin", f"{add}: the admin again"):
        rec.note(probe, "results", results(await rec.im(probe, add, one)))
    probe = f"{add}: an unknown user"
    stranger = {"Official_Account": oa, "SubscriberList": [{"Subscriber_Account": ctx.stranger}]}
    rec.note(probe, "results", results(await rec.im(probe, add, stranger)))
    many = [{"Subscriber_Account": f"{ctx.stranger}-{n}"} for n in range(MEMBERSHIP_MAX + 1)]
    await rec.im(f"{add}: 101 users", add, {"Official_Account": oa, "SubscriberList": many})
    number = {"Official_Account": oa, "SubscriberList": [{"Subscriber_Account": 7}]}
    await rec.im(f"{add}: a number as the user", add, number)

    page = "get_subscriber_info"
    probe = f"{page}: Limit 1"
    got = await rec.im(probe, page, {"Official_Account": oa, "Limit": 1, "Next": ""})
    rec.shape(probe, got)
    rec.note(probe, "Next", got.body.get("Next"))
    rec.note(probe, "SubscriberNum", got.body.get("SubscriberNum"))
    rec.note(probe, "MsgFlag", first(got, "SubscriberList").get("MsgFlag"))
    bad: dict[str, Mapping[str, Any]] = {
        f"Limit {PAGE_MAX}": {"Limit": PAGE_MAX, "Next": ""},
        f"Limit {PAGE_MAX + 1}": {"Limit": PAGE_MAX + 1, "Next": ""},
        "Limit 0": {"Limit": 0, "Next": ""},
        "a Next it never gave": {"Limit": 1, "Next": "rcl-not-a-cursor"},
        "no Next": {"Limit": 1},
    }
    for case, extra in bad.items():
        await rec.im(f"{page}: {case}", page, {"Official_Account": oa, **extra})

    probe = "get_subscribed_official_account_list: the admin"
    mine = await rec.im(
        probe, "get_subscribed_official_account_list", {"Subscriber_Account": admin, "Limit": 1}
    )
    rec.shape(probe, mine)

    modify = "modify_subscriber_info"
    profile = {"Official_Account": oa, "Subscriber_Account": admin, "CustomString": "c"}
    await rec.im(f"{modify}: the admin", modify, profile)
    await rec.im(
        f"{modify}: a user who does not subscribe",
        modify,
        {**profile, "Subscriber_Account": ctx.stranger},
    )
    await rec.im(
        f"{modify}: no CustomString", modify, {"Official_Account": oa, "Subscriber_Account": admin}
    )

    delete = "delete_subscriber"
    # reference 9.2: the sample and doocs send SubscriberToDel_Account, the field table
    # SubscriberList [{Subscriber_Account}]
    by_name = {"Official_Account": oa, "SubscriberToDel_Account": [admin]}
    for probe in (f"{delete}: SubscriberToDel_Account", f"{delete}: SubscriberToDel_Account again"):
        rec.note(probe, "results", results(await rec.im(probe, delete, by_name)))
    await rec.im(f"{add}: the admin once more", add, one)
    probe = f"{delete}: SubscriberList"
    by_table = {"Official_Account": oa, "SubscriberList": [{"Subscriber_Account": admin}]}
    rec.note(probe, "results", results(await rec.im(probe, delete, by_table)))


async def _broadcasts(rec: Recorder, ctx: Context) -> None:
    oa = ctx.account
    send = "send_official_account_msg"
    body = [{"MsgType": "TIMTextElem", "MsgContent": {"Text": f"conformance {ctx.token}"}}]
    message = {"Official_Account": oa, "Random": 20240601, "MsgBody": body}
    probe = f"{send}: a text"
    sent = await rec.im(probe, send, message)
    rec.shape(probe, sent)
    key = sent.body.get("MsgKey")
    rec.note(probe, "MsgKey is Seq_1_ServerTime", isinstance(key, str) and bool(MSG_KEY.match(key)))
    # reference 7.1: whether a duplicate is an error or the original's MsgKey, and whether
    # `Random` takes part in "the same content", are not documented
    for case, again in (
        ("the same body and Random", message),
        ("the same body, another Random", {**message, "Random": 20240602}),
    ):
        probe = f"{send}: {case}"
        answer = await rec.im(probe, send, again)
        rec.note(probe, "MsgKey is the first one's", answer.body.get("MsgKey") == key)

    history = "official_account_msg_get_simple"
    probe = f"{history}: after one broadcast"
    page = await rec.im(probe, history, {"Official_Account": oa, "ReqMsgNumber": 20})
    rec.shape(probe, page)
    _messages(rec, probe, page, key)

    recall = "official_account_msg_recall"
    keys = [key] if isinstance(key, str) else []
    for case in ("the broadcast", "the broadcast again"):
        probe = f"{recall}: {case}"
        answer = await rec.im(probe, recall, {"Official_Account": oa, "MsgKeyList": keys})
        rec.shape(probe, answer)
        rec.note(probe, "RetCode", [i.get("RetCode") for i in items(answer, "RecallRetList")])
    probe = f"{recall}: a MsgKey never sent"
    answer = await rec.im(probe, recall, {"Official_Account": oa, "MsgKeyList": ["1_1_1"]})
    rec.note(probe, "RetCode", [i.get("RetCode") for i in items(answer, "RecallRetList")])
    many = [f"{n}_1_1" for n in range(1, RECALL_MAX + 2)]
    await rec.im(f"{recall}: 11 MsgKeys", recall, {"Official_Account": oa, "MsgKeyList": many})

    probe = f"{history}: after the recall"
    page = await rec.im(probe, history, {"Official_Account": oa})
    rec.note(probe, "messages", len(items(page, "RspMsgList")))
    probe = f"{history}: after the recall, WithRecalledMsg 1"
    page = await rec.im(probe, history, {"Official_Account": oa, "WithRecalledMsg": 1})
    rec.shape(probe, page)
    _messages(rec, probe, page, key)


def _messages(rec: Recorder, probe: str, page: Answer, key: Any) -> None:
    """What history says of the battery's broadcast (reference 5.11: MsgRandom, IsPlaceMsg)."""
    listed = items(page, "RspMsgList")
    rec.note(probe, "messages", len(listed))
    rec.note(probe, "IsFinished", page.body.get("IsFinished"))
    ours = next((m for m in listed if m.get("MsgKey") == key), {})
    rec.note(probe, "IsPlaceMsg", ours.get("IsPlaceMsg"))
    rec.note(probe, "MsgBody items", len(ours.get("MsgBody") or []))
    rec.note(probe, "MsgRandom is the Random sent", ours.get("MsgRandom") == 20240601)


async def run(rec: Recorder, ctx: Context, *, writes_allowed: bool) -> bool:
    """The battery, reads then (if allowed) writes; True when it ran to its end. The throw-away
    account is destroyed whatever happens once its create was sent (a probe's failure, a signal)."""
    try:
        await reads(rec, ctx)
        if writes_allowed:
            await writes(rec, ctx)
    except Halt:
        return False
    finally:
        if ctx.create_sent and not ctx.destroyed:
            await cleanup(rec.wire, ctx)
    return True


async def cleanup(wire: Wire, ctx: Context) -> None:
    """Destroy the throw-away account (a signal does not stop this call); 130004: never made."""
    answer = await wire.im("destroy_official_account", {"Official_Account": ctx.account})
    ctx.destroyed = answer.code in (0, 130004)
