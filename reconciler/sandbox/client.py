"""A minimal client of the vendor wire protocol, for the sandbox's tests, benchmark and demos.

It signs requests exactly as the vendor docs say (UserSig for the admin in the query string, WeChat
`access_token` in the query string) and does nothing clever: no retries, no pacing. The real
providers live elsewhere; this exists so tests and benchmarks read like the vendor docs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from reconciler import usersig
from reconciler.sandbox.server import SandboxOptions

JSON = dict[str, Any]
#: Reference wechat section 1: codes that mean "fetch a new access token".
TOKEN_ERRORS = frozenset({40001, 40014, 42001})


def im_query(
    options: SandboxOptions,
    *,
    now: int,
    identifier: str | None = None,
    key: str | None = None,
    sdkappid: int | None = None,
    random: int = 1,
) -> dict[str, str]:
    """The query string of a Tencent IM REST call (reference section 1.1), signed for `now`."""
    who = options.admin if identifier is None else identifier
    app = options.sdkappid if sdkappid is None else sdkappid
    sig = usersig.generate(app, options.secret_key if key is None else key, who, now=now)
    return {
        "sdkappid": str(app),
        "identifier": who,
        "usersig": sig,
        "random": str(random),
        "contenttype": "json",
    }


class SandboxClient:
    """Calls a sandbox (or the vendor) the way the docs describe; returns decoded JSON."""

    def __init__(
        self,
        http: httpx.Client,
        options: SandboxOptions,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self.options = options
        self.clock = clock
        self._token: str | None = None

    def im_raw(self, api: str, body: JSON | bytes, **query: Any) -> httpx.Response:
        """POST `/v4/<api>` with a fresh UserSig; `query` overrides `im_query` arguments."""
        params = im_query(self.options, now=int(self.clock()), **query)
        content = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        return self.http.post(f"/v4/{api}", params=params, content=content)

    def im(self, api: str, body: JSON | bytes, **query: Any) -> JSON:
        """`im_raw`, requiring HTTP 200, decoded."""
        response = self.im_raw(api, body, **query)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code} from {api}")
        doc: JSON = response.json()
        return doc

    def oa(self, command: str, body: JSON | bytes, **query: Any) -> JSON:
        return self.im(f"official_account_open_http_svc/{command}", body, **query)

    def account(self, command: str, body: JSON | bytes, **query: Any) -> JSON:
        return self.im(f"im_open_login_svc/{command}", body, **query)

    def token(self) -> str:
        """A WeChat access token from `GET /cgi-bin/token` (fetched once, then reused)."""
        if self._token is None:
            response = self.http.get(
                "/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": self.options.wechat_appid,
                    "secret": self.options.wechat_secret,
                },
            )
            self._token = str(response.json()["access_token"])
        return self._token

    def wx(self, endpoint: str, body: JSON | bytes | None = None) -> JSON:
        """POST `/cgi-bin/<endpoint>?access_token=...`, decoded."""
        content = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body)
        for _ in range(2):
            response = self.http.post(
                f"/cgi-bin/{endpoint}", params={"access_token": self.token()}, content=content
            )
            doc: JSON = response.json()
            # As WxJava and wechatpy do: a stale token is fetched again and the call re-issued once.
            if doc.get("errcode") not in TOKEN_ERRORS:
                break
            self._token = None
        return doc

    def stats(self) -> JSON:
        doc: JSON = self.http.get("/__sandbox/stats").json()
        return doc

    def log(self, since: int = 0) -> list[JSON]:
        entries: list[JSON] = self.http.get("/__sandbox/log", params={"since": since}).json()[
            "entries"
        ]
        return entries

    def advance(self, seconds: float) -> float:
        """Move the sandbox's clock on by `seconds` (`POST /__sandbox/clock`); its new time."""
        doc: JSON = self.http.post("/__sandbox/clock", json={"advance": seconds}).json()
        return float(doc["now"])

    def behave(self, **changes: Any) -> JSON:
        """Change some `Behaviour` fields of a running sandbox; all of them afterwards."""
        response = self.http.post("/__sandbox/behaviour", json=changes)
        if response.status_code != 200:
            raise RuntimeError(f"sandbox behaviour refused: {response.json()['error']}")
        doc: JSON = response.json()
        return doc

    def placeholder(self, account: str, msg_key: str) -> None:
        """Make a sent broadcast a placeholder (`IsPlaceMsg` 1) in the account's history."""
        response = self.http.post(
            "/__sandbox/placeholder", json={"Official_Account": account, "MsgKey": msg_key}
        )
        if response.status_code != 200:
            raise RuntimeError(f"sandbox placeholder refused: {response.json()['error']}")
