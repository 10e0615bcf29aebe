"""Credentials and limits the sandbox uses unless told otherwise.

The embedded `sandbox` target and `reconciler sandbox serve` share them, so a newcomer needs no
credentials at all. They are test values, not secrets.
"""

from __future__ import annotations

import argparse
from typing import Final

from reconciler.sandbox import behaviour

SDKAPPID: Final = 1400000000
SECRET_KEY: Final = "sandbox-secret-key-not-a-secret"
ADMIN: Final = "administrator"
WECHAT_APPID: Final = "wxsandbox00000000"
WECHAT_SECRET: Final = "sandbox-wechat-secret-not-a-secret"
PORT: Final = 8754
DB_PATH: Final = ".reconciler/sandbox.db"
#: The largest request body the sandbox reads; a larger one is answered HTTP 413. The vendors'
#: largest bodies are far smaller: a send to 10,000 OpenIDs (the most `message/mass/send` takes,
#: wechat-mp-mass-api.md section 7) is about 310 KB, a `multiaccount_import` of 100 ids about
#: 4 KB, an IM message at most 12 KB (tencent-im-official-account-api.md, usage limits).
MAX_BODY_BYTES: Final = 1024 * 1024


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `reconciler sandbox serve` (DESIGN section 4)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=PORT, help=f"port (default {PORT}; 0 = any free)"
    )
    parser.add_argument("--db", default=DB_PATH, help=f"SQLite state file (default {DB_PATH})")
    parser.add_argument("--sdkappid", type=int, default=SDKAPPID, help="SDKAppID to accept")
    parser.add_argument("--secret-key", default=SECRET_KEY, help="UserSig secret key to accept")
    parser.add_argument("--admin", default=ADMIN, help="App admin identifier to accept")
    parser.add_argument("--wechat-appid", default=WECHAT_APPID, help="WeChat AppID to accept")
    parser.add_argument("--wechat-secret", default=WECHAT_SECRET, help="WeChat AppSecret to accept")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="round trip per call in ms, the sandbox's own handling counted inside it",
    )
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        help="share of calls answered with a retryable vendor error or HTTP 5xx (0..1)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for --fail-rate (repeatable faults)"
    )
    parser.add_argument(
        "--calls-per-second",
        type=float,
        default=None,
        help="per-API rate limit (default: the vendor's, 200/s or 100/s per API; 0 = unlimited)",
    )
    behaviour.add_arguments(parser)
