"""The WeChat Official Accounts Platform client: access token, the mass-send speed, and mass
messages (upload, send, preview, delete, status; reference sections 6 to 11).

Every call carries `?access_token=…`; answers are `{"errcode", "errmsg"}` envelopes, and data
answers may omit `errcode` on success (reference/wechat-mp-mass-api.md section 1).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from reconciler.endpoints import WECHAT_ENDPOINT
from reconciler.errors import ConfigError, ProviderError
from reconciler.providers.http import (
    DEFAULT_TIMEOUT,
    Caller,
    CountedClient,
    Pacer,
    Request,
    RetryPolicy,
    Sleep,
    Transient,
    base_url,
    check_endpoint,
)
from reconciler.providers.records import shown
from reconciler.providers.wire import Wire
from reconciler.secret import Secret, SecretSet

logger = logging.getLogger(__name__)


#: Retry with backoff: -1 "system busy" (WxJava retries it), 45011 "minute quota" (section 3).
RETRY_CODES: Final = frozenset({-1, 45011})
#: The token is invalid, overwritten or expired: fetch a new one and re-issue once (section 1,
#: WxJava `ACCESS_TOKEN_ERROR_CODES`).
TOKEN_CODES: Final = frozenset({40001, 40014, 42001})

#: WxJava refreshes 200 s before `expires_in` ends (section 2.3); a short-lived token (the stable
#: endpoint may return as little as 300 s) is refreshed after 90% of its life instead.
TOKEN_MARGIN: Final = 200.0

SPEEDS: Final = range(5)  # 0 fastest … 4 slowest (section 5)

#: Section 6.1: a send whose clientmsgid the vendor saw in the last 24 h; the answer carries the
#: existing job's msg_id (how a lost answer is resolved).
CLIENTMSGID_EXISTS: Final = 45065
#: Section 6.1: the same clientmsgid again within a minute: wait a minute and replay.
CLIENTMSGID_TOO_FAST: Final = 45066
#: Section 6.1: a clientmsgid over 64 bytes; never retried.
CLIENTMSGID_TOO_LONG: Final = 45067
CLIENTMSGID_MAX_BYTES: Final = 64
REPLAY_WAIT: Final = 60.0
#: 45066 answers waited out before a send gives up (its record stays pending; the next run
#: replays it within the vendor's 24 hours)
REPLAYS: Final = 3
#: Sections 7 and 9.2: OpenIDs per send call, and the states `mass/get` answers.
OPENIDS_PER_SEND: Final = 10_000
OPENIDS_MIN: Final = 2
MASS_STATES: Final = frozenset({"SEND_SUCCESS", "SENDING", "SEND_FAIL", "DELETE"})


@dataclass(frozen=True, slots=True)
class MassSent:
    """A mass send's job (section 6): its msg_id, and whether the vendor answered it from an
    earlier send with the same clientmsgid (45065) rather than sending again."""

    msg_id: int
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class MassSpeedInfo:
    """The mass-send speed as read: the level and the platform's real speed (section 5.1)."""

    speed: int
    realspeed: float


class TokenCache:
    """One access token, kept until shortly before it expires; refreshed under a lock.

    `secrets` keeps every token ever put, dropped and expired ones included: a vendor may quote
    the token it has just rejected.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, secrets: SecretSet | None = None
    ) -> None:
        self._clock = clock
        self.secrets = SecretSet() if secrets is None else secrets
        self._token: Secret | None = None
        self._valid_until = 0.0
        self.lock = asyncio.Lock()

    def get(self) -> Secret | None:
        if self._token is not None and self._clock() < self._valid_until:
            return self._token
        return None

    def put(self, token: Secret, expires_in: float) -> None:
        margin = min(TOKEN_MARGIN, expires_in / 10)
        self._token = self.secrets.add(token)
        self._valid_until = self._clock() + expires_in - margin

    def drop(self, token: Secret) -> None:
        """Forget `token` if it is still the cached one (a concurrent refresh may have won)."""
        if self._token == token:
            self._token = None


class WeChatClient(CountedClient):
    """Async client for the WeChat mass-send speed, with access-token handling.

    Tokens come from `POST /cgi-bin/stable_token` (section 2.2): unlike `/cgi-bin/token`, fetching
    one does not invalidate the token the account's own services use, and the AppSecret travels
    in the body, not the URL. `calls` counts requests per API, retries and token fetches included.
    """

    def __init__(
        self,
        http: httpx.AsyncClient | Wire,
        *,
        app_id: str,
        secret: Secret,
        pacer: Pacer,
        endpoint: str | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        sleep: Sleep = asyncio.sleep,
        setting: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        base = endpoint if endpoint is not None else base_url(http) or WECHAT_ENDPOINT
        if not app_id:
            raise ConfigError("the WeChat client needs an AppID")
        self.app_id = app_id
        self._secret = secret
        self.tokens = TokenCache(clock, SecretSet(secret))
        self._sleep = sleep
        self._caller = Caller(
            http,
            vendor="wechat",
            endpoint=check_endpoint(base),
            pacer=pacer,
            secrets=self.tokens.secrets,
            retry=retry,
            rng=rng,
            timeout=timeout,
            sleep=sleep,
            setting=setting,
        )

    def __repr__(self) -> str:
        return f"WeChatClient(endpoint={self._caller.endpoint!r}, app_id={self.app_id!r})"

    def _check(self, request: Request, reply: dict[str, Any]) -> None:
        code = reply.get("errcode", 0)
        if not isinstance(code, int) or isinstance(code, bool):
            raise self._caller.error(request, "errcode is not an integer")
        if code == 0:
            return
        errmsg = reply.get("errmsg")
        message = self._caller.redact(errmsg if isinstance(errmsg, str) else "")
        if code in RETRY_CODES:
            raise Transient(f"errcode {code}: {message}", code)
        raise self._caller.error(request, message or "request failed", code)

    async def access_token(self) -> Secret:
        """The cached token, or a new one from `stable_token` when there is none or it expires."""
        token = self.tokens.get()
        if token is not None:
            return token
        async with self.tokens.lock:
            token = self.tokens.get()  # another task may have fetched it while we waited
            if token is not None:
                return token
            request = Request(
                api="stable_token",
                action="stable_token",
                method="POST",
                path="/cgi-bin/stable_token",
                object_id=self.app_id,
                body={
                    "grant_type": "client_credential",
                    "appid": self.app_id,
                    "secret": self._secret.reveal(),
                    "force_refresh": False,
                },
                issues_credential=True,
            )
            reply = await self._caller.call(request, lambda: {}, self._check)
            value = reply.get("access_token")
            expires_in = reply.get("expires_in")
            if not isinstance(value, str) or not value or not isinstance(expires_in, int):
                raise self._caller.error(request, "token answer lacks access_token/expires_in")
            token = Secret(value)
            self.tokens.put(token, float(expires_in))
            logger.debug("wechat: fetched an access token valid %ss", expires_in)
            return token

    async def _call(
        self, api: str, path: str, body: Mapping[str, Any], *, accept: int = 0
    ) -> dict[str, Any]:
        """A call with the access token; on 40001/40014/42001 refresh it and re-issue once.
        An answer with errcode `accept` is returned, not raised."""
        request = Request(
            api=api, action=api, method="POST", path=path, object_id=self.app_id, body=body
        )

        def check(request: Request, reply: dict[str, Any]) -> None:
            if not accept or reply.get("errcode") != accept:
                self._check(request, reply)

        for refreshed in (False, True):
            token = await self.access_token()
            try:
                return await self._caller.call(request, _token_params(token), check)
            except ProviderError as exc:
                if exc.code not in TOKEN_CODES or refreshed:
                    raise
                logger.info("wechat %s: token rejected (errcode %s), refreshing", api, exc.code)
                self.tokens.drop(token)
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_mass_speed(self) -> MassSpeedInfo:
        """Read the mass-send speed (section 5.1): a level 0 to 4 and a real speed of zero or
        more (in 10,000 messages a minute); any other answer is refused, not planned against."""
        reply = await self._call("mass_speed_get", "/cgi-bin/message/mass/speed/get", {})
        speed = reply.get("speed")
        realspeed = reply.get("realspeed", 0)
        if type(speed) is not int or type(realspeed) not in (int, float):
            problem = "speed answer lacks speed/realspeed"
        elif speed not in SPEEDS:
            problem = f"speed answer holds speed {shown(speed)}, not a level 0..4"
        elif realspeed < 0:
            problem = f"speed answer holds realspeed {shown(realspeed)}, below 0"
        else:
            return MassSpeedInfo(speed=speed, realspeed=float(realspeed))
        raise ProviderError(problem, api="wechat", action="mass_speed_get")

    async def set_mass_speed(self, speed: int) -> None:
        """Set the mass-send speed, 0 (fastest) to 4 (slowest) (section 5.2)."""
        if speed not in SPEEDS:
            raise ProviderError(
                f"speed {speed} is out of range 0..4", api="wechat", action="mass_speed_set"
            )
        await self._call("mass_speed_set", "/cgi-bin/message/mass/speed/set", {"speed": speed})

    async def upload_news(self, articles: list[Mapping[str, Any]]) -> str:
        """Upload 1 to 8 articles for one mass send (section 11.1); their media_id."""
        reply = await self._call(
            "mass_upload_news", "/cgi-bin/media/uploadnews", {"articles": articles}
        )
        return self._media_id(reply, "mass_upload_news")

    async def upload_video(self, media_id: str, title: str, description: str) -> str:
        """Turn a temporary video into a mass-send video (section 11.2); its media_id."""
        body = {"media_id": media_id, "title": title, "description": description}
        reply = await self._call("mass_upload_video", "/cgi-bin/media/uploadvideo", body)
        return self._media_id(reply, "mass_upload_video")

    def _media_id(self, reply: Mapping[str, Any], action: str) -> str:
        media_id = reply.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise ProviderError("upload answer lacks media_id", api="wechat", action=action)
        return media_id

    async def send_mass(
        self,
        message: Mapping[str, Any],
        *,
        clientmsgid: str,
        to_all: bool = False,
        tag: int | None = None,
        openids: list[str] | None = None,
        ignore_reprint: bool = False,
    ) -> MassSent:
        """Send one mass message to exactly one audience: everyone, a tag (sendall, section 6)
        or 2 to 10,000 OpenIDs (send, section 7), with `clientmsgid` (at most 64 bytes).

        A lost answer is retried inside the caller with the same clientmsgid: the vendor answers
        45065 with the job it already has, which is returned (`replayed`); 45066 (replayed within
        a minute) is waited out `REPLAYS` times. Anything else raises `ProviderError`."""
        if len(clientmsgid.encode()) > CLIENTMSGID_MAX_BYTES or not clientmsgid:
            raise ProviderError(
                f"clientmsgid must be 1 to {CLIENTMSGID_MAX_BYTES} bytes",
                api="wechat",
                action="mass_send",
                code=CLIENTMSGID_TOO_LONG,
            )
        audiences = (to_all, tag is not None, openids is not None)
        if sum(audiences) != 1:
            raise ProviderError(
                "a mass send needs exactly one audience", api="wechat", action="mass_send"
            )
        body: dict[str, Any] = {
            **message,
            "send_ignore_reprint": int(ignore_reprint),
            "clientmsgid": clientmsgid,
        }
        if openids is not None:
            if not OPENIDS_MIN <= len(openids) <= OPENIDS_PER_SEND:
                raise ProviderError(
                    f"a send by OpenID takes {OPENIDS_MIN} to {OPENIDS_PER_SEND:,} OpenIDs",
                    api="wechat",
                    action="mass_send",
                )
            api, path = "mass_send", "/cgi-bin/message/mass/send"
            body["touser"] = openids
        else:
            api, path = "mass_sendall", "/cgi-bin/message/mass/sendall"
            body["filter"] = {"is_to_all": True} if to_all else {"is_to_all": False, "tag_id": tag}
        for replay in range(REPLAYS + 1):
            try:
                reply = await self._call(api, path, body, accept=CLIENTMSGID_EXISTS)
            except ProviderError as exc:
                if exc.code != CLIENTMSGID_TOO_FAST or replay == REPLAYS:
                    raise
                logger.info("wechat %s: clientmsgid replayed too fast (45066), waiting", api)
                await self._sleep(REPLAY_WAIT)
                continue
            msg_id = _msg_id(reply.get("msg_id"))
            if msg_id is None:
                raise ProviderError("send answer lacks msg_id", api="wechat", action=api)
            return MassSent(msg_id, replayed=reply.get("errcode") == CLIENTMSGID_EXISTS)
        raise AssertionError("unreachable")  # pragma: no cover

    async def preview_mass(
        self, message: Mapping[str, Any], *, openid: str = "", wxname: str = ""
    ) -> int:
        """Send a preview to one follower, by OpenID or WeChat ID (section 8); its msg_id."""
        body: dict[str, Any] = dict(message)
        if wxname:
            body["towxname"] = wxname
        else:
            body["touser"] = openid
        reply = await self._call("mass_preview", "/cgi-bin/message/mass/preview", body)
        return _msg_id(reply.get("msg_id")) or 0

    async def delete_mass(self, msg_id: int, article_idx: int = 0) -> None:
        """Delete a sent mpnews or video (section 9.1): all articles, or the 1-based one."""
        body = {"msg_id": msg_id, "article_idx": article_idx}
        await self._call("mass_delete", "/cgi-bin/message/mass/delete", body)

    async def mass_status(self, msg_id: int) -> str:
        """A mass job's state (section 9.2): SEND_SUCCESS, SENDING, SEND_FAIL or DELETE."""
        reply = await self._call("mass_get", "/cgi-bin/message/mass/get", {"msg_id": msg_id})
        status = reply.get("msg_status")
        if status not in MASS_STATES:
            raise ProviderError(
                f"status answer holds {shown(status)}", api="wechat", action="mass_get"
            )
        return str(status)


def _msg_id(value: Any) -> int | None:
    if type(value) is int and value > 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _token_params(token: Secret) -> Callable[[], dict[str, str]]:
    return lambda: {"access_token": token.reveal()}
