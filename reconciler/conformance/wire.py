"""Raw vendor calls for the conformance battery: what the vendor answered, as it answered it.

Conformance observes the wire, so a probe gets the decoded JSON object whatever its code (a typed
client method would turn the interesting answers into errors). The calls still go through the
run's `Caller` (pacing, timeouts, retries on HTTP faults, secrets scrubbed from every answer) and,
on a read-only run, through the read-only guard, which refuses anything but a vendor read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from reconciler.errors import ProviderError
from reconciler.providers import TencentClient, WeChatClient
from reconciler.providers.http import Caller, Request

#: Which service each Tencent command lives in (reference sections 3 and 5).
ACCOUNT_SERVICE: Final = "im_open_login_svc"
OA_SERVICE: Final = "official_account_open_http_svc"
#: What is recorded as the code of a call that got no JSON answer, or one without a code.
NO_ANSWER: Final = "no answer"
NO_CODE: Final = "no code"
_ACCOUNT_COMMANDS: Final = frozenset(
    {"account_import", "multiaccount_import", "account_check", "account_delete"}
)


@dataclass(frozen=True, slots=True)
class Answer:
    """One call's outcome: the decoded JSON object and its vendor code, or why there was none."""

    body: Mapping[str, Any] = field(default_factory=dict)
    #: `ErrorCode` (Tencent) or `errcode` (WeChat, 0 when a data answer leaves it out); None when
    #: there is no answer or the code is not an integer
    code: int | None = None
    #: `ErrorInfo` / `errmsg` (scrubbed of credentials), or what went wrong with the call
    info: str = ""
    #: True when no JSON answer came back (a transport failure, an HTTP error, not JSON)
    failed: bool = False

    @property
    def outcome(self) -> int | str:
        """What the battery records as the call's code."""
        if self.failed:
            return NO_ANSWER
        return self.code if self.code is not None else NO_CODE


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _caller(client: TencentClient | WeChatClient) -> Caller:
    # The clients' `Caller` is theirs; the battery sends its own raw requests through it, so
    # that they are paced, timed out, retried, scrubbed and guarded exactly as the clients' are.
    return client._caller


class Wire:
    """Sends raw vendor calls with the credentials of a run's clients."""

    def __init__(self, im: TencentClient, wechat: WeChatClient | None) -> None:
        self.im_client = im
        self.wechat_client = wechat

    @property
    def admin(self) -> str:
        """The App admin identifier the Tencent calls are made as."""
        return self.im_client.sig.identifier

    async def im(self, command: str, body: Mapping[str, Any]) -> Answer:
        """POST `/v4/<service>/<command>`, signed as the admin; the answer whatever its code."""
        service = ACCOUNT_SERVICE if command in _ACCOUNT_COMMANDS else OA_SERVICE
        caller = _caller(self.im_client)
        request = Request(
            api=command, action=command, method="POST", path=f"/v4/{service}/{command}", body=body
        )
        sig = self.im_client.sig
        rand = str(caller.rng.randrange(2**32))

        def params() -> dict[str, str]:
            return {
                "sdkappid": str(sig.sdkappid),
                "identifier": sig.identifier,
                "usersig": sig.current().reveal(),
                "random": rand,
                "contenttype": "json",
            }

        return await _send(caller, request, params, "ErrorCode", "ErrorInfo")

    async def wechat(self, api: str, path: str, body: Mapping[str, Any]) -> Answer:
        """POST a WeChat path with the access token; the answer whatever its errcode."""
        client = self.wechat_client
        assert client is not None, "no WeChat credentials: the battery skips the WeChat probes"
        try:
            token = await client.access_token()
        except ProviderError as exc:
            return Answer(code=exc.code, info=str(exc), failed=exc.code is None)
        request = Request(api=api, action=api, method="POST", path=path, body=body)
        answer = await _send(
            _caller(client), request, lambda: {"access_token": token.reveal()}, "errcode", "errmsg"
        )
        if not answer.failed and "errcode" not in answer.body:
            # section 1: a data answer may leave errcode out on success
            return Answer(answer.body, 0, answer.info)
        return answer


async def _send(
    caller: Caller,
    request: Request,
    params: Callable[[], Mapping[str, str]],
    code_key: str,
    info_key: str,
) -> Answer:
    try:
        body = await caller.call(request, params)
    except ProviderError as exc:
        return Answer(code=exc.code, info=str(exc), failed=True)
    info = body.get(info_key)
    return Answer(body, _int(body.get(code_key)), info if isinstance(info, str) else "")
