"""`im_open_login_svc`: importing, checking and deleting IM user accounts (reference section 3).

Choices where the reference is silent (each is the most plausible documented code):
- A request-level parameter problem (missing or mistyped field, batch over 100, UserID empty or over
  32 bytes in `account_import`) is 70402 "invalid parameters"; an over-long Nick/FaceUrl is 40601
  (section 3.1, "profile value > 500 bytes").
- In `multiaccount_import`, an invalid UserID is listed in `FailAccounts`; the rest are imported.
- The App admin identifier always exists: `account_check` reports it `Imported`, and
  `account_delete` refuses it per item with 70402.
- `account_delete` also removes the user's subscriptions (IM deletes the relationship chain) but
  leaves official accounts the user owns. Deleted users can be imported again at once (the
  3-month block of non-trial editions is not emulated; the sandbox behaves as a trial app).
"""

from __future__ import annotations

from typing import Any, Final

from reconciler.sandbox.common import JSON, ApiError, Call, Handler, get_list, get_str, utf8_len

#: section 3: UserID ≤ 32 bytes; section 3.1: profile values ≤ 500 bytes (40601).
USER_ID_MAX_BYTES: Final = 32
PROFILE_MAX_BYTES: Final = 500
BATCH_MAX: Final = 100

INVALID: Final = 70402
PROFILE_TOO_LONG: Final = 40601
NOT_IMPORTED: Final = 70107


def valid_user_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < utf8_len(value) <= USER_ID_MAX_BYTES


def user_exists(call: Call, user_id: str) -> bool:
    if user_id == call.admin:
        return True
    row = call.db.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone()
    return row is not None


def _import(call: Call, user_id: str, nick: str | None, face_url: str | None) -> None:
    """Create or update one user; only a new user is an effect (import is idempotent)."""
    if user_id == call.admin:
        return
    cur = call.db.execute(
        "INSERT OR IGNORE INTO users (user_id, nick, face_url, created) VALUES (?, ?, ?, ?)",
        (user_id, nick or "", face_url or "", call.ts),
    )
    if cur.rowcount:
        call.effect("user_imported", user_id)
        return
    if nick is not None:
        call.db.execute("UPDATE users SET nick = ? WHERE user_id = ?", (nick, user_id))
    if face_url is not None:
        call.db.execute("UPDATE users SET face_url = ? WHERE user_id = ?", (face_url, user_id))


def _profile(item: JSON) -> tuple[str | None, str | None]:
    nick = get_str(item, "Nick", code=INVALID)
    face = get_str(item, "FaceUrl", code=INVALID)
    for value in (nick, face):
        if value is not None and utf8_len(value) > PROFILE_MAX_BYTES:
            raise ApiError(PROFILE_TOO_LONG, f"profile value longer than {PROFILE_MAX_BYTES} bytes")
    return nick, face


def account_import(call: Call, body: JSON) -> JSON:
    # Older intl pages call the field `Identifier` (reference section 9, item 10): accept both.
    key = "UserID" if "UserID" in body else "Identifier"
    user_id = get_str(body, key, code=INVALID, required=True, max_bytes=USER_ID_MAX_BYTES)
    assert user_id is not None
    nick, face = _profile(body)
    _import(call, user_id, nick, face)
    return {}


def multiaccount_import(call: Call, body: JSON) -> JSON:
    fail: list[Any] = []
    if "AccountList" in body:
        items = get_list(body, "AccountList", code=INVALID, maximum=BATCH_MAX)
        for item in items:
            if not isinstance(item, dict) or not valid_user_id(item.get("UserID")):
                fail.append(item.get("UserID") if isinstance(item, dict) else item)
                continue
            try:
                nick, face = _profile(item)
            except ApiError:
                fail.append(item["UserID"])
                continue
            _import(call, item["UserID"], nick, face)
    else:
        accounts = get_list(body, "Accounts", code=INVALID, maximum=BATCH_MAX)
        for user_id in accounts:
            if not valid_user_id(user_id):
                fail.append(user_id)
                continue
            _import(call, user_id, None, None)
    return {"FailAccounts": fail}


def _user_items(body: JSON, key: str) -> list[str]:
    items = get_list(body, key, code=INVALID, maximum=BATCH_MAX)
    ids: list[str] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("UserID"), str):
            raise ApiError(INVALID, f"every {key} item needs a string UserID")
        ids.append(item["UserID"])
    return ids


def account_check(call: Call, body: JSON) -> JSON:
    result = [
        {
            "UserID": user_id,
            "ResultCode": 0,
            "ResultInfo": "",
            "AccountStatus": "Imported" if user_exists(call, user_id) else "NotImported",
        }
        for user_id in _user_items(body, "CheckItem")
    ]
    return {"ResultItem": result}


def account_delete(call: Call, body: JSON) -> JSON:
    result: list[JSON] = []
    for user_id in _user_items(body, "DeleteItem"):
        if user_id == call.admin:
            result.append(
                {
                    "ResultCode": INVALID,
                    "ResultInfo": "cannot delete the App admin",
                    "UserID": user_id,
                }
            )
            continue
        cur = call.db.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
        if not cur.rowcount:
            result.append(
                {
                    "ResultCode": NOT_IMPORTED,
                    "ResultInfo": "Err_TLS_PT_Open_Login_Account_Not_Exist",
                    "UserID": user_id,
                }
            )
            continue
        call.effect("user_deleted", user_id)
        followed = call.db.execute(
            "SELECT account FROM subscriptions WHERE subscriber = ?", (user_id,)
        ).fetchall()
        for (account,) in followed:
            call.db.execute(
                "UPDATE accounts SET subscriber_num = subscriber_num - 1 WHERE oa_id = ?",
                (account,),
            )
        call.db.execute("DELETE FROM subscriptions WHERE subscriber = ?", (user_id,))
        result.append({"ResultCode": 0, "ResultInfo": "", "UserID": user_id})
    return {"ResultItem": result}


HANDLERS: Final[dict[str, Handler]] = {
    "account_import": account_import,
    "multiaccount_import": multiaccount_import,
    "account_check": account_check,
    "account_delete": account_delete,
}

#: Reference section 1.5: account_import 200/s; the other three 100/s.
RATES: Final[dict[str, int]] = {
    "account_import": 200,
    "multiaccount_import": 100,
    "account_check": 100,
    "account_delete": 100,
}
