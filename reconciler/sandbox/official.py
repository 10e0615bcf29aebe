"""`official_account_open_http_svc`: accounts and subscribers (reference sections 4-6).

Broadcasts, history and recall, the other three commands of the service, are in `messages.py`.

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
- `MaxSubscriberNum` above 2^32-1 (the reference types it Integer and gives no maximum): 6017.
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
"""

from __future__ import annotations

import base64
import binascii
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
)

INVALID: Final = 6017
NOT_STRING: Final = 60015
NO_ACCOUNT: Final = 130004
BAD_ID: Final = 130007
ID_IN_USE: Final = 130008
NOT_IMPORTED: Final = 70107

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
# an Integer field of the reference: a larger MaxSubscriberNum is a parameter error (6017)
UINT32_MAX: Final = 2**32 - 1
CUSTOM_ID_MAX_BYTES: Final = 48  # section 4.4
CUSTOM_ID_PREFIX: Final = "@TOA#_"
SYSTEM_ID_PREFIX: Final = "@TOA#_@TOA#"
INFO_MAX: Final = 50  # section 5.4
MEMBERSHIP_BATCH_MAX: Final = 100  # section 5.6
PAGE_MAX: Final = 200  # sections 5.5, 5.9
SUBSCRIBER_CURSOR_PREFIX: Final = "s:"


def account_id_field(body: JSON, *, keys: tuple[str, ...] = ("Official_Account",)) -> str:
    for key in keys:
        if key in body:
            value = get_str(body, key, code=INVALID, required=True)
            assert value is not None
            return value
    raise ApiError(INVALID, f"{keys[0]} is required")


def load_account(call: Call, oa_id: str, code: int = NO_ACCOUNT) -> sqlite3.Row | tuple[Any, ...]:
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
    maximum = get_int(body, "MaxSubscriberNum", code=INVALID, minimum=1, maximum=UINT32_MAX)
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
    oa_id = account_id_field(body)
    load_account(call, oa_id)
    call.db.execute("DELETE FROM accounts WHERE oa_id = ?", (oa_id,))
    call.db.execute("DELETE FROM subscriptions WHERE account = ?", (oa_id,))
    call.db.execute("DELETE FROM messages WHERE account = ?", (oa_id,))
    call.effect("account_destroyed", oa_id)
    return {}


def modify_official_account_base_info(call: Call, body: JSON) -> JSON:
    # Docs say `Official_Account`, the doocs SDK sends `OfficialAccount` (section 9, item 1).
    oa_id = account_id_field(body, keys=("Official_Account", "OfficialAccount"))
    updates = _profile_updates(body)
    load_account(call, oa_id)
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
    oa_id = account_id_field(body)
    page_max = call.behaviour.page_max  # PAGE_MAX unless a test plants another
    limit = get_int(body, "Limit", code=INVALID, minimum=1, maximum=page_max, default=page_max)
    cursor = get_str(body, "Next", code=INVALID, default="")
    assert limit is not None and cursor is not None
    after = _decode_cursor(cursor)
    row = load_account(call, oa_id)
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
    oa_id = account_id_field(body)
    items = get_list(body, "SubscriberList", code=INVALID, maximum=MEMBERSHIP_BATCH_MAX)
    if not all(isinstance(item, dict) for item in items):
        raise ApiError(INVALID, "every SubscriberList item must be an object")
    ids = [item.get("Subscriber_Account") for item in items]
    if not all(isinstance(i, str) for i in ids):
        raise ApiError(NOT_STRING, "Subscriber_Account must be a string")
    row = load_account(call, oa_id)
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
    oa_id = account_id_field(body)
    ids = _subscriber_ids(body)
    load_account(call, oa_id)
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
    oa_id = account_id_field(body)
    user = get_str(body, "Subscriber_Account", code=INVALID, required=True)
    custom = get_str(
        body, "CustomString", code=INVALID, required=False, max_bytes=PROFILE_LIMITS["CustomString"]
    )
    if custom is None:
        raise ApiError(INVALID, "CustomString is required")
    load_account(call, oa_id)
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
    page_max = call.behaviour.page_max
    limit = get_int(body, "Limit", code=INVALID, minimum=1, maximum=page_max, default=page_max)
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
}

#: Reference section 5: 200 requests/second for every official-account command.
RATES: Final[dict[str, int]] = dict.fromkeys(HANDLERS, 200)
