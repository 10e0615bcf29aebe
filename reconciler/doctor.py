"""`reconciler doctor`: why a target does not work yet, found in one read-only run.

Each check has a verdict (ok, fail, skip) and, when it fails, what to do; a check whose premise
failed (no answer from the endpoint, a UserSig refused) is skipped rather than failed twice. The
run opens its clients with `connect(..., read_only=True)` and probes with `connect.probe_client`,
both behind `reconciler.readonly`'s guard: nothing but the vendors' reads can leave the process.

1. `credentials`: every credential present and well-formed (never shown): the SDKAppID a 32-bit
   number, the identifier a UserID (printable ASCII, at most 32 bytes), no key or secret empty or
   wrapped in whitespace (a pasted newline), the WeChat appId a `wx...` id.
2. `endpoint` (and `wechat-endpoint`): one request with no credentials at all, verified TLS and
   the environment's proxy, must be answered with the vendor's envelope.
3. `clock`: that answer's `Date` header against this machine's clock (UserSigs are signed here and
   checked on the vendor's clock).
4. `usersig`, `inventory-user`: one `account_check` of the inventory user, answered or refused
   with the code that says why (reference tencent 1.6 and 2.3).
5. `official-accounts`, `account-quota`: the inventory walk
   (`get_subscribed_official_account_list`).
6. `wechat-token`, `wechat-allow-list`, `wechat-verified`, `wechat-speed-api`: a stable token (it
   replaces no other caller's token, reference wechat 2.2) and `mass/speed/get`.
7. `calls-per-second`: `limits.callsPerSecond` against the vendor's per-API limit.

Choices where the vendors' documents are silent:
- The endpoint probe is `POST /v4/im_open_login_svc/account_check` (and WeChat's
  `POST /cgi-bin/message/mass/speed/get`) without credentials: a read, refused by the vendor
  (60012, 41001) before anything is looked up, and nothing secret travels over a connection not
  yet known to be the vendor's.
- A clock more than `MAX_SKEW` (300 s) off fails. No tolerance is documented: a UserSig is only
  refused as expired (its 24 h run out on the vendor's clock), and the 300 s are the margin WeChat
  keeps on its tokens (reference wechat 2.2), which a synchronised clock never comes near.
- No API says an app's edition. An edition without official accounts answers 131000 (reference
  tencent 4.1); the cap on accounts is reported from the documents (none stated for Ultimate and
  Enterprise, 5 for a developer or trial edition) beside what the inventory owns.
- The client signs its UserSig for the identifier it sends, so a wrong identifier passes the sig's
  checks and is refused as not an App admin: 70403 on the account service (60010 elsewhere).
- `wechat-verified` is read from `mass/speed/get`, which only verified accounts may call
  (reference wechat 4): 48001 there means the account is not verified for mass sending.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final, TextIO
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx

from reconciler.config import (
    Config,
    Limits,
    Target,
    TencentTarget,
    config_file,
    load_config,
    select_target,
)
from reconciler.connect import Providers, connect, probe_client
from reconciler.errors import ProviderError
from reconciler.plan import TargetIdentity
from reconciler.providers.http import redact
from reconciler.providers.tencent import DEFAULT_CEILING, RATE_CEILINGS, SIG_EXPIRE
from reconciler.read import split_ledger

FORMAT_VERSION: Final = 1
#: seconds this machine's clock may be off the vendor's (see the module docstring)
MAX_SKEW: Final = 300.0
IM_PROBE: Final = "/v4/im_open_login_svc/account_check"
WECHAT_PROBE: Final = "/cgi-bin/message/mass/speed/get"
#: Reference tencent 3 and 4.1: a UserID's longest; the documented caps of a trial edition.
USER_ID_MAX_BYTES: Final = 32
TRIAL_ACCOUNTS: Final = 5
NOT_ENABLED: Final = 131000
_WECHAT_APPID: Final = re.compile(r"wx[0-9A-Za-z]{1,32}")
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


def _ok(name: str, detail: str) -> Check:
    return Check(name, Verdict.OK, detail)


def _fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, Verdict.FAIL, detail, fix)


def _skip(names: Iterable[str], why: str) -> list[Check]:
    return [Check(name, Verdict.SKIP, why) for name in names]


@dataclass(frozen=True, slots=True)
class Report:
    """What `doctor` found for one target."""

    target: str
    identity: dict[str, Any]
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.verdict is not Verdict.FAIL for check in self.checks)


# -- credentials and limits (no network) ------------------------------------------------------


def _user_id_problem(value: str) -> str | None:
    if not value:
        return "is empty"
    if len(value.encode("utf-8")) > USER_ID_MAX_BYTES:
        return f"is longer than {USER_ID_MAX_BYTES} bytes"
    if not all(0x20 <= ord(ch) <= 0x7E for ch in value) or value != value.strip():
        return "holds characters a UserID may not (printable ASCII, no space at either end)"
    return None


def _secret_problem(value: str) -> str | None:
    if not value:
        return "is empty"
    if value != value.strip():
        return "starts or ends with whitespace (a pasted newline?)"
    if not value.isprintable():
        return "holds control characters"
    return None


def check_credentials(target: Target) -> Check:
    """The target's credentials present and well-formed; values are never shown."""
    if not isinstance(target, TencentTarget):
        return _ok("credentials", "the embedded sandbox needs none")
    where = f"targets.{target.name}"
    problems = []
    if not 0 < target.sdkappid < 2**32:
        problems.append(f"{where}.sdkAppId {target.sdkappid} is not an SDKAppID")
    reason = _user_id_problem(target.identifier)
    if reason is not None:
        problems.append(f"{where}.identifier {reason}")
    reason = _secret_problem(target.secret_key.reveal())
    if reason is not None:
        problems.append(f"{where}.secretKey {reason}")
    if target.wechat is not None:
        if not _WECHAT_APPID.fullmatch(target.wechat.app_id):
            problems.append(f"{where}.wechat.appId is not a WeChat AppID (wx...)")
        reason = _secret_problem(target.wechat.secret.reveal())
        if reason is not None:
            problems.append(f"{where}.wechat.secret {reason}")
    if problems:
        return _fail(
            "credentials",
            "; ".join(problems),
            "copy them again from the IM console (Applications > the app: SDKAppID, key) and the"
            " WeChat MP console (Settings and Development > Basic configuration: AppID, AppSecret)",
        )
    wechat = "" if target.wechat is None else f"; WeChat appId {target.wechat.app_id}, secret set"
    return _ok(
        "credentials",
        f"sdkAppId {target.sdkappid}, identifier {target.identifier!r}, secretKey set{wechat}",
    )


def check_calls_per_second(config: Config) -> Check:
    """`limits.callsPerSecond` at most the vendor's limit per API (reference tencent 1.5)."""
    rate = config.limits.calls_per_second
    where = "limits.callsPerSecond" + (" (default)" if rate == Limits().calls_per_second else "")
    slower = ", ".join(sorted(RATE_CEILINGS))
    vendor = f"the vendor's {DEFAULT_CEILING:g} calls/s per API (100 for {slower})"
    if rate > DEFAULT_CEILING:
        return _fail(
            "calls-per-second",
            f"{where} is {rate:g}, above {vendor}",
            f"set limits.callsPerSecond to {DEFAULT_CEILING:g} or less: calls over the vendor's"
            " rate are refused (60007) and retried",
        )
    return _ok("calls-per-second", f"{where} is {rate:g}, within {vendor}")


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


async def _probe(
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


def _endpoint_check(name: str, probe: Probe) -> Check:
    if probe.failure:
        return _fail(name, f"{redact(probe.url)}: {probe.failure}", probe.fix)
    proxy = _proxy(probe.url)
    via = f" through the proxy {proxy}" if proxy else ""
    tls = ", TLS verified" if probe.url.startswith("https:") else " (plain http: loopback only)"
    return _ok(name, f"{urlsplit(probe.url).netloc} answered{via}{tls}")


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
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
        return _ok("clock", f"within {_duration(max(abs(off), probe.error))} of the vendor's")
    side = "behind" if off > 0 else "ahead of"
    expired = (
        f"; UserSigs signed here are expired there (valid {_duration(SIG_EXPIRE)})"
        if off > SIG_EXPIRE
        else ""
    )
    return _fail(
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
_IM_CHECKS: Final = ("usersig", "inventory-user", "official-accounts", "account-quota")


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
            _fail("usersig", detail, fix),
            *_skip(_IM_CHECKS[1:], "needs an accepted UserSig"),
        ]
    checks = [_ok("usersig", f"accepted for the {who}")]
    reason = _user_id_problem(inventory)
    if imported:
        checks.append(_ok("inventory-user", f"{inventory!r} is imported"))
    elif reason is None:
        checks.append(
            _ok(
                "inventory-user",
                f"{inventory!r} is not imported yet: apply imports it (account_import)",
            )
        )
    else:
        checks.append(
            _fail(
                "inventory-user",
                f"{inventory!r} {reason}",
                "set `inventory:` in reconciler.yaml to a valid UserID",
            )
        )
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
            _fail("official-accounts", detail, fix),
            *_skip(["account-quota"], "needs official accounts"),
        ]
    owned, _ = split_ledger(subscriptions, inventory)
    count = f"{len(owned)} official account{'' if len(owned) == 1 else 's'}"
    return [
        *checks,
        _ok("official-accounts", "enabled for this app (the inventory walk was answered)"),
        _ok(
            "account-quota",
            f"the inventory owns {count}; no API says this app's cap: none is documented for"
            f" Ultimate and Enterprise, {TRIAL_ACCOUNTS} for a developer or trial edition",
        ),
    ]


# -- the WeChat side -------------------------------------------------------------------------

_WECHAT_CHECKS: Final = ("wechat-token", "wechat-allow-list", "wechat-verified", "wechat-speed-api")
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
                _fail(
                    "wechat-token",
                    f"refused: this machine's IP {ip} is not on the allow-list (40164)",
                    "see wechat-allow-list",
                ),
                _fail(
                    "wechat-allow-list",
                    f"{ip} is not on the account's IP allow-list (40164)",
                    f"add {ip} to the IP allow-list (MP console > Settings and Development > Basic"
                    " configuration > IP whitelist)",
                ),
                *_skip(_WECHAT_CHECKS[2:], "needs an access token"),
            ]
        meaning = _TOKEN_CODES.get(exc.code or 0, str(exc))
        code = f" (errcode {exc.code})" if exc.code is not None and exc.code in _TOKEN_CODES else ""
        return [
            _fail(
                "wechat-token",
                f"{meaning}{code}",
                "copy the AppID and AppSecret again (MP console > Settings and Development >"
                " Basic configuration)",
            ),
            *_skip(_WECHAT_CHECKS[1:], "needs an access token"),
        ]
    checks = [
        _ok("wechat-token", f"a stable token for {wechat.app_id} obtained"),
        _ok("wechat-allow-list", "this machine's IP is on the allow-list"),
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
                _fail(
                    "wechat-verified",
                    "api unauthorized (48001): the account is not verified for mass sending",
                    fix,
                ),
                _fail("wechat-speed-api", "not available to this account (48001)", fix),
            ]
        return [
            *checks,
            *_skip(["wechat-verified"], "the speed read failed"),
            _fail(
                "wechat-speed-api",
                str(exc),
                "see the errcode's meaning in the WeChat error-code list",
            ),
        ]
    return [
        *checks,
        _ok("wechat-verified", "verified for mass sending (the speed API answered)"),
        _ok("wechat-speed-api", f"available: speed {speed.speed} (realspeed {speed.realspeed:g})"),
    ]


# -- the run ---------------------------------------------------------------------------------


async def diagnose(
    config: Config, target: Target, *, clock: Callable[[], float] = time.time
) -> list[Check]:
    """Every check for `target`, in the order they are shown."""
    credentials = check_credentials(target)
    limits = check_calls_per_second(config)
    has_wechat = not isinstance(target, TencentTarget) or target.wechat is not None
    if credentials.verdict is Verdict.FAIL:
        wechat_names = ("wechat-endpoint", *_WECHAT_CHECKS) if has_wechat else ()
        names = ("endpoint", "clock", *_IM_CHECKS, *wechat_names)
        return [credentials, *_skip(names, "needs well-formed credentials"), limits]
    checks = [credentials]
    im_ok = wechat_ok = True
    wechat_probe: Check | None = None
    if isinstance(target, TencentTarget):
        async with probe_client(target, config.limits) as http:
            timeout = config.limits.timeout_seconds
            im = await _probe(
                http,
                target.endpoint + IM_PROBE,
                field="ErrorCode",
                setting=f"targets.{target.name}.endpoint (or region)",
                timeout=timeout,
                clock=clock,
            )
            if target.wechat is not None:
                wx = await _probe(
                    http,
                    target.wechat.endpoint + WECHAT_PROBE,
                    field="errcode",
                    setting=f"targets.{target.name}.wechat.endpoint",
                    timeout=timeout,
                    clock=clock,
                )
                wechat_probe = _endpoint_check("wechat-endpoint", wx)
                wechat_ok = not wx.failure
        im_ok = not im.failure
        checks += [
            _endpoint_check("endpoint", im),
            check_clock(im)
            if im_ok
            else Check("clock", Verdict.SKIP, "needs an answer from the endpoint"),
        ]
    else:
        checks += _skip(["endpoint", "clock"], "the embedded sandbox runs in-process: no network")
    async with connect(target, config.limits, read_only=True) as providers:
        checks += (
            await im_checks(providers, config.inventory)
            if im_ok
            else _skip(_IM_CHECKS, "needs an answer from the endpoint")
        )
        if providers.wechat is not None:
            checks += (
                [wechat_probe]
                if wechat_probe is not None
                else _skip(["wechat-endpoint"], "the embedded sandbox runs in-process: no network")
            )
            checks += (
                await wechat_checks(providers)
                if wechat_ok
                else _skip(_WECHAT_CHECKS, "needs an answer from the WeChat endpoint")
            )
    return [*checks, limits]


def render_text(report: Report) -> str:
    lines = [f"Target: {report.target}"]
    for check in report.checks:
        shown = (
            check.verdict.value.upper() if check.verdict is Verdict.FAIL else check.verdict.value
        )
        lines.append(f"  {shown:<5} {check.name:<18} {check.detail}")
        if check.fix:
            lines.append(f"  {'':<5} {'':<18} fix: {check.fix}")
    counts = {v: sum(c.verdict is v for c in report.checks) for v in Verdict}
    lines.append(
        f"{counts[Verdict.FAIL]} failed, {counts[Verdict.SKIP]} skipped, {counts[Verdict.OK]} ok"
    )
    return "\n".join(lines) + "\n"


def render_json(report: Report) -> str:
    doc = {
        "formatVersion": FORMAT_VERSION,
        "target": report.identity,
        "ok": report.passed,
        "checks": [check.data for check in report.checks],
    }
    return json.dumps(doc, sort_keys=True, indent=2) + "\n"


def command(*, config: str | None, target: str | None, fmt: str, stdout: TextIO) -> int:
    """`reconciler doctor`: 0 when every check passes, 1 otherwise; it never writes."""
    loaded = load_config(config_file(config), environ=os.environ)
    name = target or loaded.default_target
    if name in loaded.unresolved_targets:
        # the credentials check's own failure, not a stop: say which variables are missing
        why = "; ".join(loaded.unresolved_targets[name].splitlines())
        checks: Sequence[Check] = [_fail("credentials", why, "set the variables it names")]
        report = Report(f"{name!r} (unusable)", {"name": name}, tuple(checks))
    else:
        where = select_target(loaded, target)
        identity = TargetIdentity.from_target(where)
        checks = asyncio.run(diagnose(loaded, where))
        report = Report(identity.label, identity.data, tuple(checks))
    stdout.write(render_json(report) if fmt == "json" else render_text(report))
    return 0 if report.passed else 1
