"""The vendor-facing checks of `reconciler doctor` (see `reconciler.doctor` for the list and the
choices made where the vendors' documents are silent), and the `Check` each one returns.

Every request here goes through clients opened read-only: the credential-free probes through
`connect.probe_client`, the rest through `connect(..., read_only=True)`'s vendor clients.
"""

from __future__ import annotations

import enum
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx

from reconciler.connect import Providers
from reconciler.errors import ProviderError
from reconciler.providers.http import redact
from reconciler.providers.tencent import SIG_EXPIRE
from reconciler.read import split_ledger

#: seconds this machine's clock may be off the vendor's (see `reconciler.doctor`)
MAX_SKEW: Final = 300.0
IM_PROBE: Final = "/v4/im_open_login_svc/account_check"
WECHAT_PROBE: Final = "/cgi-bin/message/mass/speed/get"
#: Reference tencent 4.1: the most official accounts of a developer or trial edition.
TRIAL_ACCOUNTS: Final = 5
NOT_ENABLED: Final = 131000
_BLOCKED_IP: Final = re.compile(r"invalid ip ([0-9A-Fa-f:.]+)")


class Verdict(enum.Enum):
    OK = "ok"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome: `fix` says what to do when it failed."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""

    @property
    def data(self) -> dict[str, str]:
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "fix": self.fix,
        }


def passing(name: str, detail: str) -> Check:
    return Check(name, Verdict.OK, detail)


def failing(name: str, detail: str, fix: str) -> Check:
    return Check(name, Verdict.FAIL, detail, fix)


def skipping(names: Iterable[str], why: str) -> list[Check]:
    return [Check(name, Verdict.SKIP, why) for name in names]


# -- the endpoint probes ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """One credential-free request's outcome: why it got no usable answer, or the answer."""

    url: str
    failure: str = ""
    fix: str = ""
    #: the vendor's `Date` less this machine's time halfway through the exchange, and its error
    skew: float | None = None
    error: float = 0.0


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (user info masked), None when it goes direct."""
    parts = urlsplit(url)
    proxies = getproxies()
    chosen = proxies.get(parts.scheme) or proxies.get("all")
    if not chosen or proxy_bypass(parts.hostname or ""):
        return None
    return redact(re.sub(r"//[^/@]*@", "//***@", chosen))


def _unreached(url: str, exc: httpx.HTTPError, setting: str, timeout: float) -> Probe:
    host = urlsplit(url).hostname
    proxy = _proxy(url)
    cert = _cause(exc, ssl.SSLCertVerificationError)
    if isinstance(cert, ssl.SSLCertVerificationError):
        reason = cert.verify_message or cert.reason or "certificate verify failed"
        return Probe(
            url,
            f"the TLS certificate of {host} cannot be verified: {reason}",
            f"check {setting} names the vendor; behind a TLS-inspecting proxy, point SSL_CERT_FILE"
            " at a bundle holding its CA (verification is never turned off)",
        )
    if isinstance(exc, httpx.ProxyError):
        return Probe(url, f"the proxy {proxy} refused: {exc}", "check HTTPS_PROXY / NO_PROXY")
    unknown = _cause(exc, socket.gaierror)
    if unknown is not None:
        return Probe(url, f"the host {host} does not resolve ({unknown})", f"check {setting}")
    via = f" through the proxy {proxy}" if proxy else ""
    if isinstance(exc, httpx.TimeoutException):
        what = f"no answer within {timeout:g}s{via}"
    else:
        what = f"cannot connect to {host}{via}: {redact(str(exc)) or type(exc).__name__}"
    return Probe(
        url,
        what,
        f"check {setting}, that this machine may reach it (firewall, egress rules), and"
        " HTTPS_PROXY if outbound traffic needs a proxy",
    )


async def probe(
    http: httpx.AsyncClient,
    url: str,
    *,
    field: str,
    setting: str,
    timeout: float,
    clock: Callable[[], float],
) -> Probe:
    """POST `{}` to `url` without credentials; the vendor must answer with its envelope
    (`field`: `ErrorCode` for IM, `errcode` for WeChat)."""
    before = clock()
    try:
        response = await http.post(url, content=b"{}", headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        return _unreached(url, exc, setting, timeout)
    after = clock()
    try:
        body = response.json()
    except ValueError:
        body = None
    if (
        response.status_code != 200
        or not isinstance(body, dict)
        or type(body.get(field)) is not int
    ):
        return Probe(
            url,
            f"answered HTTP {response.status_code} without the vendor's envelope ({field})",
            f"check {setting}: a base URL (scheme, host, gateway path), nothing after it",
        )
    try:
        vendor = parsedate_to_datetime(response.headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return Probe(url)
    # `Date` has whole seconds, cut down: the vendor's time is within [date, date + 1)
    return Probe(url, skew=vendor + 0.5 - (before + after) / 2, error=0.5 + (after - before) / 2)


def endpoint_check(name: str, probe: Probe) -> Check:
    if probe.failure:
        return failing(name, f"{redact(probe.url)}: {probe.failure}", probe.fix)
    proxy = _proxy(probe.url)
    via = f" through the proxy {proxy}" if proxy else ""
    tls = ", TLS verified" if probe.url.startswith("https:") else " (plain http: loopback only)"
    return passing(name, f"{urlsplit(probe.url).netloc} answered{via}{tls}")


def _duration(seconds: float) -> str:
    seconds = round(abs(seconds))
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def check_clock(probe: Probe) -> Check:
    """This machine's clock against the vendor's `Date`."""
    if probe.skew is None:
        return Check("clock", Verdict.SKIP, "the endpoint's answer carries no Date header")
    off = probe.skew
    if abs(off) <= MAX_SKEW:
        return passing("clock", f"within {_duration(max(abs(off), probe.error))} of the vendor's")
    side = "behind" if off > 0 else "ahead of"
    expired = (
        f"; UserSigs signed here are expired there (valid {_duration(SIG_EXPIRE)})"
        if off > SIG_EXPIRE
        else ""
    )
    return failing(
        "clock",
        f"this machine's clock is {_duration(off)} {side} the vendor's{expired}",
        "synchronise this machine's clock (NTP: `timedatectl set-ntp true`, chrony or ntpd)",
    )


# -- the IM side -----------------------------------------------------------------------------

#: vendor code → (what it means, what to do), for the UserSig check (reference tencent 1.6, 2.3)
_SIG_CODES: Final[dict[int, tuple[str, str]]] = {
    70001: (
        "the UserSig is expired on the vendor's clock",
        "synchronise this machine's clock (see `clock`): a sig is signed here, valid 24 h",
    ),
    70003: ("the UserSig could not be parsed", "report this: reconciler made a garbled sig"),
    70009: (
        "the UserSig does not verify: the secret key is wrong",
        "copy the key of this SDKAppID again (IM console > Applications > the app > key); a key"
        " of another app fails the same way",
    ),
    70013: (
        "the UserSig was made for another identifier",
        "report this: reconciler signs the identifier it sends",
    ),
    70014: (
        "the UserSig was made for another SDKAppID",
        "check sdkAppId and secretKey are of one app",
    ),
    70016: (
        "no key for this SDKAppID in this data centre",
        "set region (or endpoint) to the data centre the app was created in",
    ),
    70020: (
        "the SDKAppID does not exist here",
        "check sdkAppId, and that region (or endpoint) is the data centre the app was created in",
    ),
    60006: ("the SDKAppID is invalid", "check sdkAppId"),
    60016: ("the SDKAppID is disabled", "enable the app in the IM console"),
    60020: ("the paid package expired and the app is suspended", "renew it in the IM console"),
    60021: (
        "this machine's IP may not call the REST API",
        "add it to the app's REST API IP allow-list",
    ),
    70403: (
        "the identifier is not an App admin",
        "use an App admin UserID (IM console > the app > App admins), or make this one admin",
    ),
    60010: (
        "the identifier is not an App admin",
        "use an App admin UserID (IM console > the app > App admins), or make this one admin",
    ),
}
IM_CHECKS: Final = ("usersig", "inventory-user", "official-accounts", "account-quota")


async def im_checks(providers: Providers, inventory: str) -> list[Check]:
    """The UserSig, the inventory user, official accounts enabled, how many are owned."""
    im = providers.im
    who = f"identifier {im.sig.identifier!r} of SDKAppID {im.sig.sdkappid}"
    try:
        imported = (await im.check_accounts([inventory])).get(inventory, False)
    except ProviderError as exc:
        known = _SIG_CODES.get(exc.code or 0)
        detail, fix = (
            (f"{who}: {known[0]} (vendor code {exc.code})", known[1])
            if known is not None
            else (str(exc), "see the vendor code's meaning in the IM error-code list")
        )
        return [
            failing("usersig", detail, fix),
            *skipping(IM_CHECKS[1:], "needs an accepted UserSig"),
        ]
    # `inventory:` is a valid UserID (the config schema holds it to that): absent, it is creatable
    state = "is imported" if imported else "is not imported yet: apply imports it (account_import)"
    checks = [
        passing("usersig", f"accepted for the {who}"),
        passing("inventory-user", f"{inventory!r} {state}"),
    ]
    try:
        subscriptions = await im.get_subscriptions(inventory)
    except ProviderError as exc:
        if exc.code == NOT_ENABLED:
            detail = "this app has not enabled official accounts (vendor code 131000)"
            fix = (
                "official accounts need the Ultimate or Enterprise edition (Enterprise on the"
                " international site), or a developer/trial edition holding at most"
                f" {TRIAL_ACCOUNTS}: upgrade the app in the IM console"
            )
        else:
            detail, fix = str(exc), "see the vendor code's meaning in the IM error-code list"
        return [
            *checks,
            failing("official-accounts", detail, fix),
            *skipping(["account-quota"], "needs official accounts"),
        ]
    owned, _ = split_ledger(subscriptions, inventory)
    count = f"{len(owned)} official account{'' if len(owned) == 1 else 's'}"
    return [
        *checks,
        passing("official-accounts", "enabled for this app (the inventory walk was answered)"),
        passing(
            "account-quota",
            f"the inventory owns {count}; no API says this app's cap: none is documented for"
            f" Ultimate and Enterprise, {TRIAL_ACCOUNTS} for a developer or trial edition",
        ),
    ]


# -- the WeChat side -------------------------------------------------------------------------

WECHAT_CHECKS: Final = ("wechat-token", "wechat-allow-list", "wechat-verified", "wechat-speed-api")
_TOKEN_CODES: Final[dict[int, str]] = {
    40013: "the appId is not a WeChat AppID",
    40125: "the AppSecret is wrong",
    40001: "the AppSecret is wrong",
    40243: "the AppSecret is frozen",
}


async def wechat_checks(providers: Providers) -> list[Check]:
    """A token (the allow-list), then the speed read (verified, speed API available)."""
    wechat = providers.wechat
    assert wechat is not None
    try:
        await wechat.access_token()
    except ProviderError as exc:
        blocked = _BLOCKED_IP.search(str(exc)) if exc.code == 40164 else None
        if blocked is not None:
            ip = blocked.group(1)
            return [
                failing(
                    "wechat-token",
                    f"refused: this machine's IP {ip} is not on the allow-list (40164)",
                    "see wechat-allow-list",
                ),
                failing(
                    "wechat-allow-list",
                    f"{ip} is not on the account's IP allow-list (40164)",
                    f"add {ip} to the IP allow-list (MP console > Settings and Development > Basic"
                    " configuration > IP whitelist)",
                ),
                *skipping(WECHAT_CHECKS[2:], "needs an access token"),
            ]
        meaning = _TOKEN_CODES.get(exc.code or 0, str(exc))
        code = f" (errcode {exc.code})" if exc.code is not None and exc.code in _TOKEN_CODES else ""
        return [
            failing(
                "wechat-token",
                f"{meaning}{code}",
                "copy the AppID and AppSecret again (MP console > Settings and Development >"
                " Basic configuration)",
            ),
            *skipping(WECHAT_CHECKS[1:], "needs an access token"),
        ]
    checks = [
        passing("wechat-token", f"a stable token for {wechat.app_id} obtained"),
        passing("wechat-allow-list", "this machine's IP is on the allow-list"),
    ]
    try:
        speed = await wechat.get_mass_speed()
    except ProviderError as exc:
        if exc.code == 48001:
            fix = (
                "verify the account (MP console > WeChat verification): mass sending and its"
                " speed are for verified accounts only"
            )
            return [
                *checks,
                failing(
                    "wechat-verified",
                    "api unauthorized (48001): the account is not verified for mass sending",
                    fix,
                ),
                failing("wechat-speed-api", "not available to this account (48001)", fix),
            ]
        return [
            *checks,
            *skipping(["wechat-verified"], "the speed read failed"),
            failing(
                "wechat-speed-api",
                str(exc),
                "see the errcode's meaning in the WeChat error-code list",
            ),
        ]
    return [
        *checks,
        passing("wechat-verified", "verified for mass sending (the speed API answered)"),
        passing(
            "wechat-speed-api", f"available: speed {speed.speed} (realspeed {speed.realspeed:g})"
        ),
    ]
