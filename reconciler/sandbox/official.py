"""`official_account_open_http_svc`: the twelve official-account commands (reference sections 4-7).

Choices where the reference is silent or unsure (the most plausible documented code in each case):
- Parameter errors (missing or mistyped field, a byte limit exceeded, a batch over its maximum,
  `Limit` outside 1..200, a malformed cursor or MsgKey) are 6017 "request parameter invalid", from
  the common OA error table (section 5). A Subscriber_Account that is not a string is 60015
  (section 1.6, "accounts must be strings").
- An `Owner_Account` that is not an imported user is 70107 ("account has not been imported",
  section 1.6). The App admin counts as imported everywhere.
- `delete_subscriber` takes at most 100 ids (undocumented; add_subscriber's bound). A user who is
  not imported is "was not subscribed" (Result 2); an id that is not a valid UserID is Result 0.
- `modify_subscriber_info` for a user who does not follow the account: 6017.
- `get_official_account_info`: items are in request order, each carries `Official_Account` and its
  own `ActionStatus`/`ErrorCode`/`ErrorInfo`; an unknown id is an item with ErrorCode 130004 while
  the request itself succeeds. `MaxSubscriberNum` is returned when no filter is given or when the
  filter names it.
- `get_subscriber_info`: `Limit` omitted means 200 (the doc's "fetch all" is copied from the group
  API). `Next` is an opaque keyset cursor on the subscriber id, so a walk never skips or repeats a
  subscriber present for the whole walk, whatever changes between pages.
- `get_subscribed_official_account_list`: `Next` is a keyset position (the subscription row id + 1),
  fed back as `Offset`; `Offset` 0 starts at the beginning. Rows never change id, so the walk is
  stable while subscriptions change. A user who is not imported follows nothing (empty list).
- Broadcasts: a second message in the same second is 60018 and a third within an hour is 60019
  ("too frequent, retry later", section 1.6). Identical `MsgBody` within 5 minutes is discarded and
  answered with the original message's `MsgKey`/`MsgTime` (so a retried send is idempotent). A body
  over 12 KB (usage-limits page) is 6017. `OnlineOnlyFlag=1` with `SendMsgControl: ["NoLastMsg"]`
  is 6017.
- History keeps messages 7 days (trial/Pro retention, section 7.3). `ReqMsgNumber` omitted means 20;
  more than 20 returns 20. `IsFinished` is 1 when nothing older remains, 0 when older messages
  remain, 2 when only expired ones remain. Messages come newest first; the response `LastMsgKey` is
  the oldest one returned. Recalled messages are left out unless `WithRecalledMsg` is 1, then they
  come with `IsPlaceMsg` 2 and an empty `MsgBody`.
- Recall uses the group-style codes of its own page (section 5.12): 10004 invalid parameter, 10010
  unknown account; per item `RetCode` 10030 for a MsgKey that does not exist or has expired, 0 for a
  message recalled now or before (recall is idempotent).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import sqlite3
from typing import Any, Final

from reconciler.sandbox.accounts import user_exists, valid_user_id
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

INVALID: Final = 6017
NOT_STRING: Final = 60015
NO_ACCOUNT: Final = 130004
BAD_ID: Final = 130007
ID_IN_USE: Final = 130008
NOT_IMPORTED: Final = 70107
TOO_FAST: Final = 60018
HOURLY_CAP: Final = 60019
RECALL_INVALID: Final = 10004
RECALL_NO_ACCOUNT: Final = 10010
RECALL_NO_MESSAGE: Final = 10030

#: Section 4.2: UTF-8 byte limits of the profile fields.
PROFILE_LIMITS: Final = {
    "Name": 150,
    "Introduction": 400,
    "FaceUrl": 500,
    "Organization": 500,
    "CustomString": 3000,
}
_COLUMNS: Final = {
    "Name": "name",
    "Introduction": "introduction",
    "FaceUrl": "face_url",
    "Organization": "organization",
    "CustomString": "custom_string",
    "MaxSubscriberNum": "max_subscriber_num",
    "Owner_Account": "owner",
    "CreateTime": "create_time",
    "LastMsgTime": "last_msg_time",
    "SubscriberNum": "subscriber_num",
}
_SELECT: Final = "SELECT oa_id, " + ", ".join(_COLUMNS.values()) + " FROM accounts"
DEFAULT_MAX_SUBSCRIBERS: Final = 100000
CUSTOM_ID_MAX_BYTES: Final = 48  # section 4.4
CUSTOM_ID_PREFIX: Final = "@TOA#_"
SYSTEM_ID_PREFIX: Final = "@TOA#_@TOA#"
INFO_MAX: Final = 50  # section 5.4
MEMBERSHIP_BATCH_MAX: Final = 100  # section 5.6
PAGE_MAX: Final = 200  # sections 5.5, 5.9
RECALL_MAX: Final = 10  # section 5.12
RECALL_REASON_MAX_BYTES: Final = 100
HISTORY_MAX: Final = 20  # section 5.11
MESSAGE_MAX_BYTES: Final = 12 * 1024  # usage-limits page
DUPLICATE_WINDOW: Final = 300  # section 7.1: identical content within 5 minutes
HOURLY_MAX: Final = 2  # section 7.1: 2 broadcasts per hour
RETENTION: Final = 7 * 86400  # section 7.3
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
_MSG_KEY: Final = re.compile(r"^([0-9]+)_1_([0-9]+)$")
SUBSCRIBER_CURSOR_PREFIX: Final = "s:"


def _account_id(body: JSON, *, keys: tuple[str, ...] = ("Official_Account",)) -> str:
    for key in keys:
        if key in body:
            value = get_str(body, key, code=INVALID, required=True)
            assert value is not None
            return value
    raise ApiError(INVALID, f"{keys[0]} is required")


def _load(call: Call, oa_id: str, code: int = NO_ACCOUNT) -> sqlite3.Row | tuple[Any, ...]:
    row: tuple[Any, ...] | None = call.db.execute(_SELECT + " WHERE oa_id = ?", (oa_id,)).fetchone()
    if row is None:
        raise ApiError(code, "official account does not exist or has been destroyed")
    return row


def _info(row: tuple[Any, ...] | sqlite3.Row, fields: list[str] | None) -> JSON:
    values = dict(zip(_COLUMNS, row[1:], strict=True))
    names = list(_COLUMNS) if fields is None else [f for f in _COLUMNS if f in fields]
    out: JSON = {"Official_Account": row[0]}
    out.update((name, values[name]) for name in names)
    return out


def _filter(body: JSON, key: str) -> list[str] | None:
    flt = body.get("ResponseFilter")
    if flt is None:
        return None
    if not isinstance(flt, dict):
        raise ApiError(INVALID, "ResponseFilter must be an object")
    names = flt.get(key)
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ApiError(INVALID, f"{key} must be an array of strings")
    return names


def _profile_updates(body: JSON) -> dict[str, Any]:
    updates: dict[str, Any] = {}
    for name, limit in PROFILE_LIMITS.items():
        value = get_str(body, name, code=INVALID, max_bytes=limit)
        if value is not None:
            updates[name] = value
    maximum = get_int(body, "MaxSubscriberNum", code=INVALID, minimum=1)
    if maximum is not None:
        updates["MaxSubscriberNum"] = maximum
    return updates


def _check_custom_id(value: str) -> None:
    # Section 4.4: printable ASCII, at most 48 bytes, "@TOA#_" prefix, not the system prefix.
    if (
        not value.startswith(CUSTOM_ID_PREFIX)
        or value.startswith(SYSTEM_ID_PREFIX)
        or len(value) > CUSTOM_ID_MAX_BYTES
        or not all(0x20 <= ord(ch) <= 0x7E for ch in value)
    ):
        raise ApiError(BAD_ID, "official account user id is invalid")


def create_official_account(call: Call, body: JSON) -> JSON:
    owner = get_str(body, "Owner_Account", code=INVALID, required=True)
    name = get_str(body, "Name", code=INVALID, required=True)
    custom = body.get("OfficialAccountUserID")
    if custom is not None and not isinstance(custom, str):
        raise ApiError(BAD_ID, "OfficialAccountUserID must be a string")
    updates = _profile_updates(body)
    assert owner is not None and name is not None
    if custom is not None:
        _check_custom_id(custom)
        oa_id = custom
        if call.db.execute("SELECT 1 FROM accounts WHERE oa_id = ?", (oa_id,)).fetchone():
            raise ApiError(ID_IN_USE, "official account user id is already in use")
    else:
        (counter,) = call.db.execute(
            "SELECT COALESCE(MAX(CAST(value AS INTEGER)), 0) FROM meta WHERE key = 'system_ids'"
        ).fetchone()
        counter += 1
        oa_id = f"{SYSTEM_ID_PREFIX}{counter:08x}"
        call.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('system_ids', ?)", (str(counter),)
        )
    if not user_exists(call, owner):
        raise ApiError(NOT_IMPORTED, "Owner_Account has not been imported")
    call.db.execute(
        "INSERT INTO accounts (oa_id, owner, name, introduction, face_url, organization,"
        " custom_string, max_subscriber_num, create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            oa_id,
            owner,
            name,
            updates.get("Introduction", ""),
            updates.get("FaceUrl", ""),
            updates.get("Organization", ""),
            updates.get("CustomString", ""),
            updates.get("MaxSubscriberNum", DEFAULT_MAX_SUBSCRIBERS),
            call.ts,
        ),
    )
    call.effect("account_created", oa_id)
    return {"OfficialAccountUserID": oa_id}


def destroy_official_account(call: Call, body: JSON) -> JSON:
    oa_id = _account_id(body)
    _load(call, oa_id)
    call.db.execute("DELETE FROM accounts WHERE oa_id = ?", (oa_id,))
    call.db.execute("DELETE FROM subscriptions WHERE account = ?", (oa_id,))
    call.db.execute("DELETE FROM messages WHERE account = ?", (oa_id,))
    call.effect("account_destroyed", oa_id)
    return {}


def modify_official_account_base_info(call: Call, body: JSON) -> JSON:
    # Docs say `Official_Account`, the doocs SDK sends `OfficialAccount` (section 9, item 1).
    oa_id = _account_id(body, keys=("Official_Account", "OfficialAccount"))
    updates = _profile_updates(body)
    _load(call, oa_id)
    if updates:
        sets = ", ".join(f"{_COLUMNS[name]} = ?" for name in updates)
        call.db.execute(
            f"UPDATE accounts SET {sets} WHERE oa_id = ?",  # column names are our constants
            (*updates.values(), oa_id),
        )
        call.effect("account_modified", oa_id, ",".join(sorted(updates)))
    return {}


def get_official_account_info(call: Call, body: JSON) -> JSON:
    items = get_list(body, "OfficialAccountIdList", code=INVALID, maximum=INFO_MAX)
    fields = _filter(body, "OfficialAccountBaseInfoFilter")
    out: list[JSON] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Official_Account"), str):
            raise ApiError(INVALID, "every OfficialAccountIdList item needs Official_Account")
        oa_id = item["Official_Account"]
        row = call.db.execute(_SELECT + " WHERE oa_id = ?", (oa_id,)).fetchone()
        if row is None:
            out.append(
                {
                    "ActionStatus": "FAIL",
                    "ErrorCode": NO_ACCOUNT,
                    "ErrorInfo": "official account does not exist or has been destroyed",
                    "Official_Account": oa_id,
                }
            )
            continue
        out.append({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", **_info(row, fields)})
    return {"OfficialAccountInfoList": out}


def encode_cursor(subscriber: str) -> str:
    raw = (SUBSCRIBER_CURSOR_PREFIX + subscriber).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_cursor(cursor: str) -> str:
    if cursor == "":
        return ""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise ApiError(INVALID, "Next is not a cursor this server returned") from exc
    if not text.startswith(SUBSCRIBER_CURSOR_PREFIX):
        raise ApiError(INVALID, "Next is not a cursor this server returned")
    return text[len(SUBSCRIBER_CURSOR_PREFIX) :]


def get_subscriber_info(call: Call, body: JSON) -> JSON:
    oa_id = _account_id(body)
    limit = get_int(body, "Limit", code=INVALID, minimum=1, maximum=PAGE_MAX, default=PAGE_MAX)
    cursor = get_str(body, "Next", code=INVALID, default="")
    assert limit is not None and cursor is not None
    after = _decode_cursor(cursor)
    row = _load(call, oa_id)
    rows = call.db.execute(
        "SELECT subscriber, subscribe_time, custom_string, msg_flag FROM subscriptions"
        " WHERE account = ? AND subscriber > ? ORDER BY subscriber LIMIT ?",
        (oa_id, after, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "Next": encode_cursor(rows[-1][0]) if more else "",
        "SubscriberNum": row[list(_COLUMNS).index("SubscriberNum") + 1],
        "SubscriberList": [
            {
                "Subscriber_Account": r[0],
                "SubscribeTime": r[1],
                "CustomString": r[2],
                "MsgFlag": r[3],
                "LastSendMsgTime": 0,
            }
            for r in rows
        ],
    }


def _subscriber_ids(body: JSON) -> list[Any]:
    # Section 9, item 2: the sample and doocs send `SubscriberToDel_Account` (strings), the field
    # table `SubscriberList` ([{Subscriber_Account}]). Accept both.
    if "SubscriberToDel_Account" in body:
        ids = get_list(body, "SubscriberToDel_Account", code=INVALID, maximum=MEMBERSHIP_BATCH_MAX)
    else:
        items = get_list(body, "SubscriberList", code=INVALID, maximum=MEMBERSHIP_BATCH_MAX)
        if not all(isinstance(item, dict) for item in items):
            raise ApiError(INVALID, "every SubscriberList item must be an object")
        ids = [item.get("Subscriber_Account") for item in items]
    if not all(isinstance(i, str) for i in ids):
        raise ApiError(NOT_STRING, "Subscriber_Account must be a string")
    return ids


def add_subscriber(call: Call, body: JSON) -> JSON:
    oa_id = _account_id(body)
    items = get_list(body, "SubscriberList", code=INVALID, maximum=MEMBERSHIP_BATCH_MAX)
    if not all(isinstance(item, dict) for item in items):
        raise ApiError(INVALID, "every SubscriberList item must be an object")
    ids = [item.get("Subscriber_Account") for item in items]
    if not all(isinstance(i, str) for i in ids):
        raise ApiError(NOT_STRING, "Subscriber_Account must be a string")
    row = _load(call, oa_id)
    values = dict(zip(_COLUMNS, row[1:], strict=True))
    count, maximum = values["SubscriberNum"], values["MaxSubscriberNum"]
    # Two set queries instead of two lookups per item: a batch of 100 costs a few statements.
    unique = sorted(set(ids))
    marks = ",".join("?" * len(unique))
    imported = {
        r[0]
        for r in call.db.execute(f"SELECT user_id FROM users WHERE user_id IN ({marks})", unique)
    }
    if call.admin in unique:
        imported.add(call.admin)
    subscribed = {
        r[0]
        for r in call.db.execute(
            f"SELECT subscriber FROM subscriptions WHERE account = ? AND subscriber IN ({marks})",
            (oa_id, *unique),
        )
    }
    out: list[JSON] = []
    added: list[tuple[str, str, int]] = []
    for user in ids:
        # Section 5.6: Result 0 = failed (not an imported user, or the account is full),
        # 1 = subscribed now, 2 = already subscribed.
        if user not in imported:
            result = 0
        elif user in subscribed:
            result = 2
        elif count >= maximum:
            result = 0
        else:
            added.append((oa_id, user, call.ts))
            subscribed.add(user)
            count += 1
            call.effect("subscriber_added", oa_id, user)
            result = 1
        out.append({"Subscriber_Account": user, "Result": result})
    if added:
        call.db.executemany(
            "INSERT INTO subscriptions (account, subscriber, subscribe_time) VALUES (?, ?, ?)",
            added,
        )
        call.db.execute("UPDATE accounts SET subscriber_num = ? WHERE oa_id = ?", (count, oa_id))
    return {"SubscriberList": out}


def delete_subscriber(call: Call, body: JSON) -> JSON:
    oa_id = _account_id(body)
    ids = _subscriber_ids(body)
    _load(call, oa_id)
    out: list[JSON] = []
    removed = 0
    for user in ids:
        # Section 5.7: Result 0 = failed, 1 = removed, 2 = was not subscribed.
        if not valid_user_id(user):
            result = 0
        elif call.db.execute(
            "DELETE FROM subscriptions WHERE account = ? AND subscriber = ?", (oa_id, user)
        ).rowcount:
            removed += 1
            call.effect("subscriber_removed", oa_id, user)
            result = 1
        else:
            result = 2
        out.append({"Subscriber_Account": user, "Result": result})
    if removed:
        call.db.execute(
            "UPDATE accounts SET subscriber_num = subscriber_num - ? WHERE oa_id = ?",
            (removed, oa_id),
        )
    return {"SubscriberList": out}


def modify_subscriber_info(call: Call, body: JSON) -> JSON:
    oa_id = _account_id(body)
    user = get_str(body, "Subscriber_Account", code=INVALID, required=True)
    custom = get_str(
        body, "CustomString", code=INVALID, required=False, max_bytes=PROFILE_LIMITS["CustomString"]
    )
    if custom is None:
        raise ApiError(INVALID, "CustomString is required")
    _load(call, oa_id)
    cur = call.db.execute(
        "UPDATE subscriptions SET custom_string = ? WHERE account = ? AND subscriber = ?",
        (custom, oa_id, user),
    )
    if not cur.rowcount:
        raise ApiError(INVALID, "Subscriber_Account does not follow this official account")
    call.effect("subscriber_modified", oa_id, str(user))
    return {}


def get_subscribed_official_account_list(call: Call, body: JSON) -> JSON:
    user = get_str(body, "Subscriber_Account", code=INVALID, required=True)
    limit = get_int(body, "Limit", code=INVALID, minimum=1, maximum=PAGE_MAX, default=PAGE_MAX)
    offset = get_int(body, "Offset", code=INVALID, minimum=0, default=0)
    fields = _filter(body, "OfficialAccountBaseInfoFilter")
    self_fields = _filter(body, "SelfInfoFilter")
    assert limit is not None and offset is not None
    (total,) = call.db.execute(
        "SELECT count(*) FROM subscriptions WHERE subscriber = ?", (user,)
    ).fetchone()
    rows = call.db.execute(
        "SELECT id, account, subscribe_time, custom_string FROM subscriptions"
        " WHERE subscriber = ? AND id >= ? ORDER BY id LIMIT ?",
        (user, offset, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    out: list[JSON] = []
    for sub_id, oa_id, subscribe_time, custom in rows:
        del sub_id
        account = call.db.execute(_SELECT + " WHERE oa_id = ?", (oa_id,)).fetchone()
        info = _info(account, fields)
        self_info = {"SubscribeTime": subscribe_time, "CustomString": custom}
        if self_fields is not None:
            self_info = {k: v for k, v in self_info.items() if k in self_fields}
        info["SelfInfo"] = self_info
        out.append(info)
    return {
        "OfficialAccountInfoList": out,
        "TotalCount": total,
        "CompleteFlag": 0 if more else 1,
        "Next": rows[-1][0] + 1 if rows else offset,
    }


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
    oa_id = _account_id(body)
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
    _load(call, oa_id)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    now = call.ts
    duplicate = call.db.execute(
        "SELECT seq, msg_time FROM messages WHERE account = ? AND digest = ? AND msg_time > ?"
        " ORDER BY seq DESC LIMIT 1",
        (oa_id, digest, now - DUPLICATE_WINDOW),
    ).fetchone()
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
    call.effect("message_sent", oa_id, key)
    return {"MsgTime": now, "MsgKey": key}


def _parse_key(key: Any, code: int) -> tuple[int, int]:
    match = _MSG_KEY.match(key) if isinstance(key, str) else None
    if match is None:
        raise ApiError(code, "MsgKey must look like Seq_1_ServerTime")
    return int(match[1]), int(match[2])


def official_account_msg_get_simple(call: Call, body: JSON) -> JSON:
    oa_id = _account_id(body)
    last_key = get_str(body, "LastMsgKey", code=INVALID)
    wanted = get_int(body, "ReqMsgNumber", code=INVALID, minimum=1, default=HISTORY_MAX)
    with_recalled = get_int(body, "WithRecalledMsg", code=INVALID, minimum=0, maximum=1, default=0)
    assert wanted is not None
    before = _parse_key(last_key, INVALID)[0] if last_key else 2**62
    _load(call, oa_id)
    count = min(wanted, HISTORY_MAX)
    cutoff = call.ts - RETENTION
    recalled_clause = "" if with_recalled else " AND recalled = 0"
    rows = call.db.execute(
        "SELECT seq, msg_time, random, body, recalled FROM messages WHERE account = ? AND seq < ?"
        + recalled_clause
        + " ORDER BY seq DESC LIMIT ?",
        (oa_id, before, count + 1),
    ).fetchall()
    live = [r for r in rows if r[1] >= cutoff]
    expired_left = len(live) < len(rows)
    more = len(live) > count
    live = live[:count]
    messages = [
        {
            "From_Account": oa_id,
            "IsPlaceMsg": 2 if recalled else 0,
            "MsgBody": [] if recalled else json.loads(text),
            "IsSystemMsg": 0,
            "MsgPriority": 2,
            "MsgRandom": random,
            "MsgKey": f"{seq}_1_{msg_time}",
            "MsgSeq": seq,
            "MsgTimeStamp": msg_time,
        }
        for seq, msg_time, random, text, recalled in live
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
    _load(call, oa_id, RECALL_NO_ACCOUNT)
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
            (oa_id, seq, msg_time, call.ts - RETENTION),
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
    "create_official_account": create_official_account,
    "destroy_official_account": destroy_official_account,
    "modify_official_account_base_info": modify_official_account_base_info,
    "get_official_account_info": get_official_account_info,
    "get_subscriber_info": get_subscriber_info,
    "add_subscriber": add_subscriber,
    "delete_subscriber": delete_subscriber,
    "modify_subscriber_info": modify_subscriber_info,
    "get_subscribed_official_account_list": get_subscribed_official_account_list,
    "send_official_account_msg": send_official_account_msg,
    "official_account_msg_get_simple": official_account_msg_get_simple,
    "official_account_msg_recall": official_account_msg_recall,
}

#: Reference section 5: 200 requests/second for every official-account command.
RATES: Final[dict[str, int]] = dict.fromkeys(HANDLERS, 200)
