"""WeChat `/cgi-bin/...`: access tokens and the mass-send family (reference wechat-mp-mass-api.md).

Every endpoint but `token`/`stable_token` takes `?access_token=`: missing is 41001, unknown or
replaced is 40001, expired is 42001 (section 3). Success bodies are the documented payloads;
errors are `{"errcode", "errmsg"}` with HTTP 200.

Choices where the reference is silent (the most plausible documented code in each case):
- A wrong AppSecret is 40125 ("invalid AppSecret", section 2.1); a wrong AppID 40013; a grant_type
  other than client_credential 40002.
- A token stays valid 7200 s. Getting a new one (`token`, or `stable_token` with force_refresh, or a
  stable token renewed in its last 5 minutes) leaves the previous token valid 5 more minutes and
  kills any older one at once (so two forced refreshes kill a leaked token, section 2.2). The two
  kinds of token are independent. A forced refresh within 30 s of the last one refreshes nothing
  and returns the current token.
- Quotas count successful calls per UTC day: token 2,000; stable_token 500,000; forced refresh 20;
  sendall + send together 100; uploadnews 10; mass/delete 10; preview by WeChat ID 100; over is
  45009. sendall, send, preview and mass/delete also take at most 60 calls per clock minute; over
  is 45011 (section 4).
- A body that is not JSON is 47001; an empty body where one is required 44002; a missing or
  malformed required field (filter, msgtype object, articles) 47001; an unknown msgtype 40008; a
  missing or empty media_id 40007. Media ids are not checked against uploads (drafts are not
  emulated), only for being non-empty strings.
- `clientmsgid` (or, when omitted, a digest of audience + content) seen in the last 24 h: 45066 if
  that send was less than 1 minute ago, else 45065 with the existing `msg_id` (a 45065 or 45066
  answer uses no quota). Over 64 UTF-8 bytes is 45067; a non-string 47001. The minute is
  `Behaviour.wechat_retry_gap` (a test sets 0 to replay at once); with
  `Behaviour.wechat_lose_send_answers` the first answer of every new send is lost after the send
  was applied (HTTP 502, logged as fault `http_after`), so only a replay learns its `msg_id`.
- A job is SENDING, then SEND_SUCCESS once its audience is reached at the current mass speed:
  audience / (realspeed x 10,000 per minute), rounded down to whole seconds. A send to all or to a
  tag reaches `Behaviour.wechat_followers` (default 0: done at once; the sandbox keeps no
  followers or tags), a send to OpenIDs the distinct OpenIDs. `mass/get` reads the state on the
  sandbox clock. No other failure is emulated (content review, reprint checks, per-user caps).
- Mass-send protection (`Behaviour.wechat_admin_confirm` N > 0; section 4): a send to all is held
  SENDING until the admin confirms N seconds later, then runs as above; with N over 1800 nobody
  confirms and the job is SEND_FAIL 30 minutes after the send (the vendor has no status saying
  "waiting for the admin": SENDING is all `mass/get` shows). Sends to a tag or OpenIDs are not held.
- Account types (`Behaviour.wechat_account_type`, section 4): a subscription account succeeds with
  `sendall` once per UTC day and cannot send by OpenID (48001 "api unauthorized"); a service
  account may send to all 4 times per UTC calendar month. Over either: 45028 "has no masssend
  quota" (the code community threads give; its text is undocumented). Both also have the 100 a day.
- `mass/delete`: `article_idx` is 1-based, 0 or omitted deletes all; only a job whose state is
  SEND_SUCCESS can be deleted (40059 "message is not sent successfully" while SENDING or after
  SEND_FAIL; the reference gives no code); a deleted message or article deleted again answers 0
  and uses no quota. An mpnews sent with an `uploadnews` media_id has that upload's article count:
  an index past it is 47001, and so is a non-zero index on an mpvideo. The job reads DELETE once
  every article is deleted. Only mpnews and mpvideo can be deleted (40008 otherwise); an unknown
  msg_id is 40059, and so is a `url` (the sandbox never publishes article URLs).
- `uploadnews` checks the optional article fields' types (strings; 0/1 flags): 47001 otherwise.
  `uploadvideo` has no quota (none documented).
- The allow-list (`Behaviour.wechat_blocked_ip`): every call, the token ones first, is 40164
  "invalid ip <IP> ipv6 ::ffff:<IP>, not in whitelist" (the vendor's wording) naming the
  configured IP, not the socket's peer (the in-process transport has none).
- Call log effects: `mass_sent` is `[msg_id, audience, content digest]` with the audience `all`,
  `tag:<id>` or `openids:<count>:sha256:<hex of the sorted, distinct list>` (`audience_label`)
  and the digest `content_digest(msgtype, content)`; `mass_previewed` is `[towxname:<id> or
  touser:<openid>, content digest]`; `mass_deleted` is `[msg_id, all or the article index]`.
- The default mass speed is 0. `realspeed` follows the doc table (0→80 … 4→10, in 10,000/min).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any, Final

from reconciler.sandbox.behaviour import CONFIRM_DEADLINE
from reconciler.sandbox.common import JSON, ApiError, Call, utf8_len

TOKEN_TTL: Final = 7200
OVERLAP: Final = 300
FORCE_GAP: Final = 30
DAY: Final = 86400
#: Section 5.1: realspeed (in 10,000 messages/minute) per speed level.
REALSPEED: Final = {0: 80, 1: 60, 2: 45, 3: 30, 4: 10}
#: Section 4 and 2: daily quotas.
DAILY: Final = {
    "token": 2000,
    "stable_token": 500_000,
    "stable_token_force": 20,
    "mass_send": 100,
    "uploadnews": 10,
    "mass_delete": 10,
    "preview_wxname": 100,
}
PER_MINUTE: Final = 60
MINUTE_LIMITED: Final = frozenset(
    {"message/mass/sendall", "message/mass/send", "message/mass/preview", "message/mass/delete"}
)
MSG_TYPES: Final = frozenset({"mpnews", "text", "voice", "image", "mpvideo", "wxcard", "music"})
DELETABLE: Final = frozenset({"mpnews", "mpvideo"})
CLIENTMSGID_MAX_BYTES: Final = 64
OPENIDS_MIN, OPENIDS_MAX = 2, 10_000
ARTICLES_MAX: Final = 8
DEDUP_WINDOW: Final = DAY
MSG_DATA_ID_BASE: Final = 2_247_480_000
NO_MASS_QUOTA: Final = 45028
SERVICE_TO_ALL_PER_MONTH: Final = 4
ARTICLE_FLAGS: Final = ("show_cover_pic", "need_open_comment", "only_fans_can_comment")
ARTICLE_STRINGS: Final = ("author", "digest", "content_source_url")

ENDPOINTS: Final = (
    "token",
    "stable_token",
    "message/mass/speed/get",
    "message/mass/speed/set",
    "media/uploadnews",
    "media/uploadvideo",
    "message/mass/sendall",
    "message/mass/send",
    "message/mass/preview",
    "message/mass/delete",
    "message/mass/get",
)


_QUOTA_MESSAGES: Final = {
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit",
    NO_MASS_QUOTA: "has no masssend quota",
}


def _quota(call: Call, name: str, limit: int, window: int, code: int) -> None:
    """Count one use of `name` in `window`; `ApiError(code)` once `limit` is reached."""
    row = call.db.execute(
        "SELECT used FROM quota WHERE name = ? AND day = ?", (name, window)
    ).fetchone()
    used = row[0] if row else 0
    if used >= limit:
        raise ApiError(code, _QUOTA_MESSAGES[code])
    call.db.execute(
        "INSERT INTO quota (name, day, used) VALUES (?, ?, 1)"
        " ON CONFLICT (name, day) DO UPDATE SET used = used + 1",
        (name, window),
    )


def _daily(call: Call, name: str) -> None:
    _quota(call, name, DAILY[name], call.ts // DAY, 45009)


def allow_list(call: Call) -> None:
    """Section 2.1: a caller IP not on the account's allow-list is 40164, naming the IP."""
    ip = call.behaviour.wechat_blocked_ip
    if ip:
        raise ApiError(40164, f"invalid ip {ip} ipv6 ::ffff:{ip}, not in whitelist")


def _credentials(call: Call, grant: Any, appid: Any, secret: Any, want: tuple[str, str]) -> None:
    if grant != "client_credential":
        raise ApiError(40002, "invalid grant_type")
    if appid != want[0]:
        raise ApiError(40013, "invalid appid")
    if secret != want[1]:
        raise ApiError(40125, "invalid appsecret")


def _issue(call: Call, kind: str) -> JSON:
    now = call.ts
    # The token replaced now keeps OVERLAP seconds; anything replaced earlier dies at once.
    call.db.execute(
        "UPDATE wx_tokens SET superseded = ? WHERE kind = ? AND superseded IS NOT NULL",
        (now - OVERLAP - 1, kind),
    )
    call.db.execute(
        "UPDATE wx_tokens SET superseded = ? WHERE kind = ? AND superseded IS NULL", (now, kind)
    )
    token = secrets.token_urlsafe(96)
    call.db.execute(
        "INSERT INTO wx_tokens (token, kind, issued, expires) VALUES (?, ?, ?, ?)",
        (token, kind, now, now + TOKEN_TTL),
    )
    call.effect("token_issued", kind)
    return {"access_token": token, "expires_in": TOKEN_TTL}


def token(call: Call, query: dict[str, str], creds: tuple[str, str]) -> JSON:
    allow_list(call)
    _credentials(call, query.get("grant_type"), query.get("appid"), query.get("secret"), creds)
    _daily(call, "token")
    return _issue(call, "token")


def stable_token(call: Call, body: JSON, creds: tuple[str, str]) -> JSON:
    allow_list(call)
    _credentials(call, body.get("grant_type"), body.get("appid"), body.get("secret"), creds)
    force = body.get("force_refresh", False) is True
    _daily(call, "stable_token")
    now = call.ts
    current = call.db.execute(
        "SELECT token, issued, expires FROM wx_tokens WHERE kind = 'stable' AND superseded IS NULL"
        " AND expires >= ?",
        (now,),
    ).fetchone()
    if current is not None:
        tok, issued, expires = current
        if force and now - issued >= FORCE_GAP:
            _daily(call, "stable_token_force")
            return _issue(call, "stable")
        if force or expires - now > OVERLAP:
            return {"access_token": tok, "expires_in": expires - now}
    return _issue(call, "stable")


def check_token(call: Call, access_token: str | None) -> None:
    allow_list(call)
    if not access_token:
        raise ApiError(41001, "access_token missing")
    row = call.db.execute(
        "SELECT expires, superseded FROM wx_tokens WHERE token = ?", (access_token,)
    ).fetchone()
    if row is None:
        raise ApiError(40001, "invalid credential, access_token is invalid or not latest")
    expires, superseded = row
    if superseded is not None and call.ts > superseded + OVERLAP:
        raise ApiError(40001, "invalid credential, access_token is invalid or not latest")
    if call.ts > expires:
        raise ApiError(42001, "access_token expired")


def speed_get(call: Call, body: JSON) -> JSON:
    row = call.db.execute("SELECT value FROM meta WHERE key = 'wx_speed'").fetchone()
    speed = int(row[0]) if row else 0
    return {"speed": speed, "realspeed": REALSPEED[speed]}


def speed_set(call: Call, body: JSON) -> JSON:
    if "speed" not in body or body["speed"] is None:
        raise ApiError(45084, "No speed message")
    speed = body["speed"]
    if type(speed) is not int or speed not in REALSPEED:
        raise ApiError(45083, "the speed out of range")
    call.db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('wx_speed', ?)", (str(speed),)
    )
    call.effect("speed_set", str(speed))
    return {"errcode": 0, "errmsg": ""}


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _message(body: JSON) -> tuple[str, Any]:
    """The msgtype and its content object, checked; returns (msgtype, content)."""
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str):
        raise ApiError(47001, "data format error: msgtype")
    if msgtype not in MSG_TYPES:
        raise ApiError(40008, "invalid message type")
    # Section 6: multi-image sends use the `images` key, WxJava's single image uses `image`.
    key = "images" if msgtype == "image" and "images" in body else msgtype
    content = body.get(key)
    if not isinstance(content, dict):
        raise ApiError(47001, f"data format error: {key}")
    if msgtype == "text":
        if not _nonempty(content.get("content")):
            raise ApiError(47001, "data format error: text.content")
    elif key == "images":
        ids = content.get("media_ids")
        if not isinstance(ids, list) or not ids or not all(_nonempty(i) for i in ids):
            raise ApiError(40007, "invalid media_id")
    elif msgtype == "wxcard":
        if not _nonempty(content.get("card_id")):
            raise ApiError(47001, "data format error: wxcard.card_id")
    elif msgtype != "music" and not _nonempty(content.get("media_id")):
        raise ApiError(40007, "invalid media_id")
    return msgtype, content


def content_digest(msgtype: str, content: Any) -> str:
    """The digest of what a mass message says, as the call log carries it."""
    text = json.dumps([msgtype, content], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def audience_label(scope: str | list[str]) -> str:
    """`all`, `tag:<id>`, or `openids:<count>:sha256:<hex>` of the sorted, distinct OpenIDs."""
    if isinstance(scope, str):
        return scope
    ids = sorted(set(scope))
    digest = hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()
    return f"openids:{len(ids)}:sha256:{digest}"


def _account_rules(call: Call, scope: str | list[str]) -> None:
    """Section 4: what the account type allows beyond the 100 sends a day."""
    if call.behaviour.wechat_account_type == "subscription":
        if not isinstance(scope, str):
            raise ApiError(48001, "api unauthorized")
        _quota(call, "subscription_sendall", 1, call.ts // DAY, NO_MASS_QUOTA)
    elif scope == "all":
        day = time.gmtime(call.ts)
        month = day.tm_year * 12 + day.tm_mon
        _quota(call, "service_to_all", SERVICE_TO_ALL_PER_MONTH, month, NO_MASS_QUOTA)


def _schedule(call: Call, scope: str | list[str]) -> tuple[str, int]:
    """The job's final state and when it is reached (see the module docstring)."""
    row = call.db.execute("SELECT value FROM meta WHERE key = 'wx_speed'").fetchone()
    per_second = REALSPEED[int(row[0]) if row else 0] * 10_000 / 60
    reach = call.behaviour.wechat_followers if isinstance(scope, str) else len(set(scope))
    start = call.ts
    confirm = call.behaviour.wechat_admin_confirm
    if scope == "all" and confirm > 0:
        if confirm > CONFIRM_DEADLINE:
            return "SEND_FAIL", start + CONFIRM_DEADLINE
        start += confirm
    return "SEND_SUCCESS", start + int(reach / per_second)


def _articles(call: Call, msgtype: str, content: Any) -> int:
    """How many articles an mpnews has when its media_id is an upload of ours (0: unknown)."""
    if msgtype != "mpnews":
        return 0
    row = call.db.execute(
        "SELECT payload FROM wx_media WHERE media_id = ? AND type = 'news'",
        (content.get("media_id"),),
    ).fetchone()
    return len(json.loads(row[0])) if row else 0


def _send(call: Call, body: JSON, msgtype: str, content: Any, scope: str | list[str]) -> JSON:
    clientmsgid = body.get("clientmsgid")
    if clientmsgid is not None and not isinstance(clientmsgid, str):
        raise ApiError(47001, "data format error: clientmsgid")
    if clientmsgid and utf8_len(clientmsgid) > CLIENTMSGID_MAX_BYTES:
        raise ApiError(45067, "clientmsgid size out of limit")
    if not clientmsgid:
        # Section 6.1: without an id, WeChat derives one from the send scope and the content.
        digest = json.dumps([scope, msgtype, content], sort_keys=True, ensure_ascii=False)
        clientmsgid = "sha256:" + hashlib.sha256(digest.encode("utf-8")).hexdigest()
    seen = call.db.execute(
        "SELECT msg_id, created FROM wx_mass WHERE clientmsgid = ? AND created > ?"
        " ORDER BY created DESC LIMIT 1",
        (clientmsgid, call.ts - DEDUP_WINDOW),
    ).fetchone()
    if seen is not None:
        if call.ts - seen[1] < call.behaviour.wechat_retry_gap:
            raise ApiError(45066, "clientmsgid retried too fast, wait 1 minute")
        raise ApiError(45065, "clientmsgid exist", {"msg_id": seen[0]})
    _daily(call, "mass_send")
    _account_rules(call, scope)
    status, finish_at = _schedule(call, scope)
    label = audience_label(scope)
    (msg_id,) = call.db.execute(
        "INSERT INTO wx_mass (msg_id, clientmsgid, created, msgtype, status, finish_at, scope,"
        " articles) VALUES ((SELECT COALESCE(MAX(msg_id), 1000000000) + 1 FROM wx_mass),"
        " ?, ?, ?, ?, ?, ?, ?) RETURNING msg_id",
        (
            clientmsgid,
            call.ts,
            msgtype,
            status,
            finish_at,
            label,
            _articles(call, msgtype, content),
        ),
    ).fetchone()
    out: JSON = {"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id}
    if msgtype == "mpnews":
        out["msg_data_id"] = MSG_DATA_ID_BASE + msg_id
        call.db.execute(
            "UPDATE wx_mass SET msg_data_id = ? WHERE msg_id = ?", (out["msg_data_id"], msg_id)
        )
    call.effect("mass_sent", str(msg_id), label, content_digest(msgtype, content))
    call.lose_answer = call.behaviour.wechat_lose_send_answers
    return out


def sendall(call: Call, body: JSON) -> JSON:
    flt = body.get("filter")
    if not isinstance(flt, dict):
        raise ApiError(47001, "data format error: filter")
    to_all = flt.get("is_to_all", False) is True
    # wechatpy still sends the legacy `group_id` (section 12): accept it as the tag.
    tag = flt.get("tag_id", flt.get("group_id"))
    if not to_all and (type(tag) is not int and not (isinstance(tag, str) and tag.isdigit())):
        raise ApiError(47001, "data format error: filter.tag_id is required unless is_to_all")
    msgtype, content = _message(body)
    return _send(call, body, msgtype, content, "all" if to_all else f"tag:{tag}")


def send(call: Call, body: JSON) -> JSON:
    touser = body.get("touser")
    if not isinstance(touser, list):
        raise ApiError(47001, "data format error: touser")
    if len(touser) < OPENIDS_MIN:
        raise ApiError(40130, "invalid openid list size, at least two openid")
    if len(touser) > OPENIDS_MAX:
        raise ApiError(40032, "invalid openid list size")
    if not all(_nonempty(u) for u in touser):
        raise ApiError(40003, "invalid openid")
    msgtype, content = _message(body)
    return _send(call, body, msgtype, content, sorted(touser))


def preview(call: Call, body: JSON) -> JSON:
    wxname, openid = body.get("towxname"), body.get("touser")
    if not _nonempty(wxname) and not _nonempty(openid):
        raise ApiError(40003, "invalid openid")
    msgtype, content = _message(body)
    # Section 8: with both, towxname wins.
    to = f"towxname:{wxname}" if _nonempty(wxname) else f"touser:{openid}"
    if _nonempty(wxname):
        _daily(call, "preview_wxname")
    (counter,) = call.db.execute(
        "SELECT COALESCE(MAX(CAST(value AS INTEGER)), 3000000000) + 1 FROM meta"
        " WHERE key = 'wx_preview'"
    ).fetchone()
    call.db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('wx_preview', ?)", (str(counter),)
    )
    call.effect("mass_previewed", to, content_digest(msgtype, content))
    return {"errcode": 0, "errmsg": "preview success", "msg_id": counter}


def _msg_id(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _status(call: Call, status: str, finish_at: int) -> str:
    """A job's state now: SENDING until `finish_at`, then its final state (or DELETE)."""
    if status != "DELETE" and call.ts < finish_at:
        return "SENDING"
    return status


def delete(call: Call, body: JSON) -> JSON:
    msg_id = _msg_id(body.get("msg_id"))
    idx = body.get("article_idx")
    if idx is not None and (type(idx) is not int or idx < 0):
        raise ApiError(47001, "data format error: article_idx")
    if msg_id is None:
        if body.get("msg_id") is None and not _nonempty(body.get("url")):
            raise ApiError(47001, "data format error: msg_id or url is required")
        raise ApiError(40059, "invalid msg id")
    row = call.db.execute(
        "SELECT msgtype, status, finish_at, articles, deleted FROM wx_mass WHERE msg_id = ?",
        (msg_id,),
    ).fetchone()
    if row is None:
        raise ApiError(40059, "invalid msg id")
    msgtype, status, finish_at, articles, deleted = row
    if msgtype not in DELETABLE:
        raise ApiError(40008, "invalid message type")
    if idx and (msgtype != "mpnews" or idx > (articles or ARTICLES_MAX)):
        raise ApiError(47001, "data format error: article_idx out of range")
    done = {int(i) for i in deleted.split(",") if i}
    if status == "DELETE" or (idx and idx in done):
        return {"errcode": 0, "errmsg": "ok"}
    if _status(call, status, finish_at) != "SEND_SUCCESS":
        raise ApiError(40059, "invalid msg id: message is not sent successfully")
    _daily(call, "mass_delete")
    done.add(idx or 0)
    everything = 0 in done or (articles > 0 and done >= set(range(1, articles + 1)))
    call.db.execute(
        "UPDATE wx_mass SET status = ?, deleted = ? WHERE msg_id = ?",
        ("DELETE" if everything else status, ",".join(map(str, sorted(done))), msg_id),
    )
    call.effect("mass_deleted", str(msg_id), str(idx) if idx else "all")
    return {"errcode": 0, "errmsg": "ok"}


def get(call: Call, body: JSON) -> JSON:
    msg_id = _msg_id(body.get("msg_id"))
    row = (
        None
        if msg_id is None
        else call.db.execute(
            "SELECT status, finish_at FROM wx_mass WHERE msg_id = ?", (msg_id,)
        ).fetchone()
    )
    if row is None:
        raise ApiError(40059, "invalid msg id")
    return {"msg_id": msg_id, "msg_status": _status(call, *row)}


def uploadnews(call: Call, body: JSON) -> JSON:
    articles = body.get("articles")
    if not isinstance(articles, list) or not 1 <= len(articles) <= ARTICLES_MAX:
        raise ApiError(47001, "data format error: articles must hold 1 to 8 items")
    for article in articles:
        if not isinstance(article, dict):
            raise ApiError(47001, "data format error: article")
        if not _nonempty(article.get("thumb_media_id")):
            raise ApiError(40007, "invalid media_id")
        if not _nonempty(article.get("title")) or not _nonempty(article.get("content")):
            raise ApiError(47001, "data format error: title and content are required")
        for key in ARTICLE_STRINGS:
            if article.get(key) is not None and not isinstance(article[key], str):
                raise ApiError(47001, f"data format error: {key}")
        for key in ARTICLE_FLAGS:
            flag = article.get(key)
            if flag is not None and (type(flag) is not int or flag not in (0, 1)):
                raise ApiError(47001, f"data format error: {key}")
    _daily(call, "uploadnews")
    return _store_media(call, "news", articles)


def uploadvideo(call: Call, body: JSON) -> JSON:
    if not _nonempty(body.get("media_id")):
        raise ApiError(40007, "invalid media_id")
    for key in ("title", "description"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise ApiError(47001, f"data format error: {key}")
    return _store_media(call, "video", body)


def _store_media(call: Call, kind: str, payload: Any) -> JSON:
    media_id = secrets.token_urlsafe(48)
    call.db.execute(
        "INSERT INTO wx_media (media_id, type, created_at, payload) VALUES (?, ?, ?, ?)",
        (media_id, kind, call.ts, json.dumps(payload, ensure_ascii=False)),
    )
    call.effect("media_uploaded", kind, media_id)
    return {"type": kind, "media_id": media_id, "created_at": call.ts}


BODY_HANDLERS: Final = {
    "message/mass/speed/get": speed_get,
    "message/mass/speed/set": speed_set,
    "media/uploadnews": uploadnews,
    "media/uploadvideo": uploadvideo,
    "message/mass/sendall": sendall,
    "message/mass/send": send,
    "message/mass/preview": preview,
    "message/mass/delete": delete,
    "message/mass/get": get,
}


def minute_limit(call: Call, endpoint: str) -> None:
    """Section 4: mass-send endpoints take at most 60 requests a minute (45011)."""
    if endpoint in MINUTE_LIMITED:
        _quota(call, "minute:" + endpoint, PER_MINUTE, call.ts // 60, 45011)
