"""The sandbox's state in SQLite: schema, connection settings, and the per-call log.

One connection per `Sandbox`, WAL journal and a busy timeout so that concurrent requests (and a
second process on the same file) wait for each other instead of failing. Every request runs in one
`BEGIN IMMEDIATE` transaction. Memberships are keyed `(account, subscriber)` so a page of an
account's subscribers is one index range scan (keyset paging), and a second index on
`(subscriber, id)` serves the list of accounts a user follows; both stay fast with millions of rows.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Final

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    nick TEXT NOT NULL DEFAULT '',
    face_url TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts (
    oa_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    introduction TEXT NOT NULL DEFAULT '',
    face_url TEXT NOT NULL DEFAULT '',
    organization TEXT NOT NULL DEFAULT '',
    custom_string TEXT NOT NULL DEFAULT '',
    max_subscriber_num INTEGER NOT NULL,
    subscriber_num INTEGER NOT NULL DEFAULT 0,
    create_time INTEGER NOT NULL,
    last_msg_time INTEGER NOT NULL DEFAULT 0,
    next_seq INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    subscribe_time INTEGER NOT NULL,
    custom_string TEXT NOT NULL DEFAULT '',
    msg_flag TEXT NOT NULL DEFAULT 'AcceptAndNotify',
    UNIQUE (account, subscriber)
);
CREATE INDEX IF NOT EXISTS subscriptions_by_subscriber ON subscriptions (subscriber, id);
CREATE TABLE IF NOT EXISTS messages (
    account TEXT NOT NULL,
    seq INTEGER NOT NULL,
    msg_time INTEGER NOT NULL,
    random INTEGER NOT NULL,
    body TEXT NOT NULL,
    cloud_custom_data TEXT NOT NULL DEFAULT '',
    digest TEXT NOT NULL,
    recalled INTEGER NOT NULL DEFAULT 0,
    placeholder INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wx_tokens (
    token TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    issued INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    superseded INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wx_media (
    media_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    payload TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wx_mass (
    msg_id INTEGER PRIMARY KEY,
    msg_data_id INTEGER,
    clientmsgid TEXT NOT NULL,
    created INTEGER NOT NULL,
    msgtype TEXT NOT NULL,
    status TEXT NOT NULL,
    finish_at INTEGER NOT NULL DEFAULT 0,
    scope TEXT NOT NULL DEFAULT '',
    articles INTEGER NOT NULL DEFAULT 0,
    deleted TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS wx_mass_by_clientmsgid ON wx_mass (clientmsgid, created);
CREATE TABLE IF NOT EXISTS quota (
    name TEXT NOT NULL,
    day INTEGER NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (name, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS call_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    api TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    code INTEGER NOT NULL,
    fault TEXT NOT NULL DEFAULT '',
    effects TEXT NOT NULL DEFAULT '[]'
);
"""


#: Columns added after a file may have been created: (table, column, declaration).
_ADDED_COLUMNS: Final = (
    ("messages", "placeholder", "INTEGER NOT NULL DEFAULT 0"),
    ("wx_mass", "finish_at", "INTEGER NOT NULL DEFAULT 0"),
    ("wx_mass", "scope", "TEXT NOT NULL DEFAULT ''"),
    ("wx_mass", "articles", "INTEGER NOT NULL DEFAULT 0"),
    ("wx_mass", "deleted", "TEXT NOT NULL DEFAULT ''"),
)


def _add_columns(conn: sqlite3.Connection) -> None:
    """Bring a file made by an earlier version up to the schema (new columns, old rows kept).

    In one immediate transaction, so a second process opening the same file waits, then finds
    the columns there."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column, declaration in _ADDED_COLUMNS:
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def connect(db_path: Path | str) -> sqlite3.Connection:
    """Open (and create or migrate) the sandbox database at `db_path` (":memory:" allowed)."""
    path = str(db_path)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per request.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    if path != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose the
    # last commits, which is fine for an emulator and keeps each request free of fsyncs.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.executescript(_SCHEMA)
    _add_columns(conn)
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )
    return conn


def log_call(
    conn: sqlite3.Connection,
    *,
    time: float,
    api: str,
    http_status: int,
    code: int,
    fault: str,
    effects: list[list[str]],
) -> None:
    """Record one call (inside the request's transaction, so log and state agree)."""
    conn.execute(
        "INSERT INTO call_log (time, api, http_status, code, fault, effects)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (time, api, http_status, code, fault, json.dumps(effects, separators=(",", ":"))),
    )


def read_log(conn: sqlite3.Connection, since: int, limit: int) -> dict[str, Any]:
    """The call log after id `since`: `{"entries": [...], "next": <id to pass as since>}`."""
    rows = conn.execute(
        "SELECT id, time, api, http_status, code, fault, effects FROM call_log"
        " WHERE id > ? ORDER BY id LIMIT ?",
        (since, limit),
    ).fetchall()
    entries = [
        {
            "id": row[0],
            "time": row[1],
            "api": row[2],
            "http_status": row[3],
            "code": row[4],
            "fault": row[5],
            "effects": json.loads(row[6]),
        }
        for row in rows
    ]
    return {"entries": entries, "next": rows[-1][0] if rows else since}


def bulk_load(
    conn: sqlite3.Connection,
    *,
    owner: str,
    memberships: dict[str, list[str]],
    now: int,
) -> None:
    """Seed users, accounts and memberships directly (benchmarks and scale tests).

    Creates `owner`, every subscriber as an imported user, one account per key of `memberships`
    (named after the key, owned by `owner`) and its subscriptions, in one transaction. Nothing is
    written to the call log: this is state set up, not traffic.
    """
    users = {owner}
    for members in memberships.values():
        users.update(members)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT OR IGNORE INTO users (user_id, created) VALUES (?, ?)",
            ((user, now) for user in sorted(users)),
        )
        for oa_id, members in memberships.items():
            conn.execute(
                "INSERT INTO accounts (oa_id, owner, name, max_subscriber_num, subscriber_num,"
                " create_time) VALUES (?, ?, ?, ?, ?, ?)",
                (oa_id, owner, oa_id, max(100000, len(members)), len(members), now),
            )
            conn.executemany(
                "INSERT INTO subscriptions (account, subscriber, subscribe_time) VALUES (?, ?, ?)",
                ((oa_id, member, now) for member in members),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
