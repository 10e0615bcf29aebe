"""`official_account_open_http_svc`: broadcasts, history and recall (reference 5.10-5.12, 7).

Choices where the reference is silent or unsure (the most plausible documented code in each case):
- Broadcasts: a second message in the same second is 60018 and a third within an hour is 60019
  ("too frequent, retry later", section 1.6). Identical `MsgBody` within 5 minutes is discarded and
  answered with the original message's `MsgKey`/`MsgTime` (so a retried send is idempotent); the
  answer to a discarded duplicate is not documented (7.1), this is the kindest reading. What is
  identical is a `Behaviour` choice: the body alone (default, the doc's wording) or the body and
  `Random` (`broadcast_duplicate="body_and_random"`, the doocs SDK's wording: the stricter test of
  a client's exactly-once, since only a retry that reuses `Random` is then discarded). A recalled
  message still counts as the original of a duplicate and towards the hourly cap (it was sent).
  A discarded duplicate changes nothing (no effect in the call log) and counts towards no cap.
  A body over 12 KB (usage-limits page) is 6017. `OnlineOnlyFlag=1` with
  `SendMsgControl: ["NoLastMsg"]` is 6017.
- The call log's `message_sent` effect is `[account, MsgKey, body digest]`, the digest being
  `body_digest(MsgBody)` (SHA-256 of the canonical JSON), so tests count sends per account and body.
- History keeps messages `Behaviour.history_days` (default 7, trial/Pro retention, section 7.3; the
  reference only implies broadcasts follow it). `ReqMsgNumber` omitted means 20;
  more than 20 returns 20. `IsFinished` is 1 when nothing older remains, 0 when older messages
  remain, 2 when only expired ones remain. Messages come newest first; the response `LastMsgKey` is
  the oldest one returned. `MsgRandom` is the sent `Random` (0 when omitted; the reference lists
  the field, silent on its value). Recalled messages are left out unless `WithRecalledMsg` is 1,
  then they come with `IsPlaceMsg` 2, an empty `MsgBody` and their `MsgRandom` kept (silent in the
  reference). A placeholder (`IsPlaceMsg` 1, only made by `POST /__sandbox/placeholder`) is always
  listed, with an empty `MsgBody` and `MsgRandom` 0: nothing in it identifies what was sent.
- Recall uses the group-style codes of its own page (section 5.12): 10004 invalid parameter, 10010
  unknown account; per item `RetCode` 10030 for a MsgKey that does not exist or has expired, 0 for a
  message recalled now or before (recall is idempotent).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Final

from reconciler.sandbox.common import (
    JSON,
    ApiError,
    Call,
    Handler,
    get_int,
    get_list,
    get_str,
    utf8_len,
)
from reconciler.sandbox.official import INVALID, account_id_field, load_account

TOO_FAST: Final = 60018
HOURLY_CAP: Final = 60019
RECALL_INVALID: Final = 10004
RECALL_NO_ACCOUNT: Final = 10010
RECALL_NO_MESSAGE: Final = 10030
RECALL_MAX: Final = 10  # section 5.12
RECALL_REASON_MAX_BYTES: Final = 100
HISTORY_MAX: Final = 20  # section 5.11
MESSAGE_MAX_BYTES: Final = 12 * 1024  # usage-limits page
DUPLICATE_WINDOW: Final = 300  # section 7.1: identical content within 5 minutes
HOURLY_MAX: Final = 2  # section 7.1: 2 broadcasts per hour
_MSG_KEY: Final = re.compile(r"^([0-9]+)_1_([0-9]+)$")
MSG_TYPES: Final = frozenset(
    {
        "TIMTextElem",
        "TIMFaceElem",
        "TIMCustomElem",
        "TIMLocationElem",
        "TIMImageElem",
        "TIMSoundElem",
        "TIMFileElem",
        "TIMVideoFileElem",
    }
)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def body_digest(msg_body: list[Any]) -> str:
    """The digest of a `MsgBody` the call log carries: `sha256:` + hex of its canonical JSON."""
    return "sha256:" + hashlib.sha256(_canonical(msg_body).encode("utf-8")).hexdigest()


def _check_body(body: JSON) -> list[Any]:
    msg_body = get_list(body, "MsgBody", code=INVALID, maximum=10**6)
    for elem in msg_body:
        if (
            not isinstance(elem, dict)
            or elem.get("MsgType") not in MSG_TYPES
            or not isinstance(elem.get("MsgContent"), dict)
        ):
            raise ApiError(INVALID, "every MsgBody element needs a known MsgType and MsgContent")
    return msg_body


def send_official_account_msg(call: Call, body: JSON) -> JSON:
    oa_id = account_id_field(body)
    msg_body = _check_body(body)
    random = get_int(body, "Random", code=INVALID, minimum=0, maximum=2**32 - 1, default=0)
    cloud = get_str(body, "CloudCustomData", code=INVALID, default="")
    online_only = get_int(body, "OnlineOnlyFlag", code=INVALID, minimum=0, maximum=1, default=0)
    control = body.get("SendMsgControl", [])
    if not isinstance(control, list):
        raise ApiError(INVALID, "SendMsgControl must be an array")
    if online_only == 1 and "NoLastMsg" in control:
        raise ApiError(INVALID, "NoLastMsg cannot be combined with OnlineOnlyFlag 1")
    text = _canonical(msg_body)
    if utf8_len(text) > MESSAGE_MAX_BYTES:
        raise ApiError(INVALID, "message is larger than 12 KB")
    assert random is not None and cloud is not None
    load_account(call, oa_id)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    now = call.ts
    query = "SELECT seq, msg_time FROM messages WHERE account = ? AND digest = ? AND msg_time > ?"
    params: tuple[Any, ...] = (oa_id, digest, now - DUPLICATE_WINDOW)
    if call.behaviour.broadcast_duplicate == "body_and_random":
        query, params = query + " AND random = ?", (*params, random)
    duplicate = call.db.execute(query + " ORDER BY seq DESC LIMIT 1", params).fetchone()
    if duplicate is not None:
        seq, msg_time = duplicate
        return {"MsgTime": msg_time, "MsgKey": f"{seq}_1_{msg_time}"}
    (same_second, last_hour) = call.db.execute(
        "SELECT count(*) FILTER (WHERE msg_time >= ?), count(*) FROM messages"
        " WHERE account = ? AND msg_time > ?",
        (now, oa_id, now - 3600),
    ).fetchone()
    if same_second:
        raise ApiError(TOO_FAST, "an official account sends at most 1 message per second")
    if last_hour >= HOURLY_MAX:
        raise ApiError(HOURLY_CAP, "an official account sends at most 2 broadcasts per hour")
    (seq,) = call.db.execute(
        "UPDATE accounts SET next_seq = next_seq + 1, last_msg_time = ? WHERE oa_id = ?"
        " RETURNING next_seq - 1",
        (now, oa_id),
    ).fetchone()
    call.db.execute(
        "INSERT INTO messages (account, seq, msg_time, random, body, cloud_custom_data, digest)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (oa_id, seq, now, random, text, cloud, digest),
    )
    key = f"{seq}_1_{now}"
    call.effect("message_sent", oa_id, key, "sha256:" + digest)
    return {"MsgTime": now, "MsgKey": key}


def _parse_key(key: Any, code: int) -> tuple[int, int]:
    match = _MSG_KEY.match(key) if isinstance(key, str) else None
    if match is None:
        raise ApiError(code, "MsgKey must look like Seq_1_ServerTime")
    return int(match[1]), int(match[2])


def official_account_msg_get_simple(call: Call, body: JSON) -> JSON:
    oa_id = account_id_field(body)
    last_key = get_str(body, "LastMsgKey", code=INVALID)
    wanted = get_int(body, "ReqMsgNumber", code=INVALID, minimum=1, default=HISTORY_MAX)
    with_recalled = get_int(body, "WithRecalledMsg", code=INVALID, minimum=0, maximum=1, default=0)
    assert wanted is not None
    before = _parse_key(last_key, INVALID)[0] if last_key else 2**62
    load_account(call, oa_id)
    count = min(wanted, HISTORY_MAX)
    cutoff = call.ts - call.behaviour.retention
    recalled_clause = "" if with_recalled else " AND recalled = 0"
    rows = call.db.execute(
        "SELECT seq, msg_time, random, body, recalled, placeholder FROM messages"
        " WHERE account = ? AND seq < ?" + recalled_clause + " ORDER BY seq DESC LIMIT ?",
        (oa_id, before, count + 1),
    ).fetchall()
    live = [r for r in rows if r[1] >= cutoff]
    expired_left = len(live) < len(rows)
    more = len(live) > count
    live = live[:count]
    messages = [
        {
            "From_Account": oa_id,
            "IsPlaceMsg": 1 if placeholder else 2 if recalled else 0,
            "MsgBody": [] if recalled or placeholder else json.loads(text),
            "IsSystemMsg": 0,
            "MsgPriority": 2,
            "MsgRandom": 0 if placeholder else random,
            "MsgKey": f"{seq}_1_{msg_time}",
            "MsgSeq": seq,
            "MsgTimeStamp": msg_time,
        }
        for seq, msg_time, random, text, recalled, placeholder in live
    ]
    if more:
        finished = 0
    elif expired_left:
        finished = 2
    else:
        finished = 1
    return {
        "Official_Account": oa_id,
        "IsFinished": finished,
        "LastMsgKey": messages[-1]["MsgKey"] if messages else (last_key or ""),
        "RspMsgList": messages,
    }


def official_account_msg_recall(call: Call, body: JSON) -> JSON:
    oa_id = body.get("Official_Account")
    if not isinstance(oa_id, str) or not oa_id:
        raise ApiError(RECALL_INVALID, "Official_Account is required")
    keys = get_list(body, "MsgKeyList", code=RECALL_INVALID, maximum=RECALL_MAX)
    get_str(body, "Reason", code=RECALL_INVALID, max_bytes=RECALL_REASON_MAX_BYTES)
    if not all(isinstance(k, str) for k in keys):
        raise ApiError(RECALL_INVALID, "MsgKeyList must hold strings")
    load_account(call, oa_id, RECALL_NO_ACCOUNT)
    out: list[JSON] = []
    for key in keys:
        try:
            seq, msg_time = _parse_key(key, RECALL_INVALID)
        except ApiError:
            out.append({"MsgKey": key, "RetCode": RECALL_NO_MESSAGE})
            continue
        row = call.db.execute(
            "SELECT recalled FROM messages WHERE account = ? AND seq = ? AND msg_time = ?"
            " AND msg_time >= ?",
            (oa_id, seq, msg_time, call.ts - call.behaviour.retention),
        ).fetchone()
        if row is None:
            out.append({"MsgKey": key, "RetCode": RECALL_NO_MESSAGE})
            continue
        if not row[0]:
            call.db.execute(
                "UPDATE messages SET recalled = 1 WHERE account = ? AND seq = ?", (oa_id, seq)
            )
            call.effect("message_recalled", oa_id, key)
        out.append({"MsgKey": key, "RetCode": 0})
    return {"RecallRetList": out}


HANDLERS: Final[dict[str, Handler]] = {
    "send_official_account_msg": send_official_account_msg,
    "official_account_msg_get_simple": official_account_msg_get_simple,
    "official_account_msg_recall": official_account_msg_recall,
}

#: Reference section 5: 200 requests/second (the recall page's value was not visible; assumed).
RATES: Final[dict[str, int]] = dict.fromkeys(HANDLERS, 200)
