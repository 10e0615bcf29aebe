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
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from reconciler.config import (
    Config,
    Limits,
    Target,
    TencentTarget,
    config_file,
    load_config,
    select_target,
)
from reconciler.connect import connect, probe_client
from reconciler.doctor_checks import (
    IM_CHECKS,
    IM_PROBE,
    WECHAT_CHECKS,
    WECHAT_PROBE,
    Check,
    Probe,
    Verdict,
    check_clock,
    endpoint_check,
    failing,
    im_checks,
    passing,
    probe,
    skipping,
    wechat_checks,
)
from reconciler.plan import TargetIdentity
from reconciler.providers.tencent import DEFAULT_CEILING, RATE_CEILINGS

FORMAT_VERSION: Final = 1
#: Reference tencent 3: a UserID's longest.
USER_ID_MAX_BYTES: Final = 32
_WECHAT_APPID: Final = re.compile(r"wx[0-9A-Za-z]{1,32}")


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
        return passing("credentials", "the embedded sandbox needs none")
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
        return failing(
            "credentials",
            "; ".join(problems),
            "copy them again from the IM console (Applications > the app: SDKAppID, key) and the"
            " WeChat MP console (Settings and Development > Basic configuration: AppID, AppSecret)",
        )
    wechat = "" if target.wechat is None else f"; WeChat appId {target.wechat.app_id}, secret set"
    return passing(
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
        return failing(
            "calls-per-second",
            f"{where} is {rate:g}, above {vendor}",
            f"set limits.callsPerSecond to {DEFAULT_CEILING:g} or less: calls over the vendor's"
            " rate are refused (60007) and retried",
        )
    return passing("calls-per-second", f"{where} is {rate:g}, within {vendor}")


# -- the run ---------------------------------------------------------------------------------


async def _probes(
    target: TencentTarget, limits: Limits, clock: Callable[[], float]
) -> tuple[Probe, Probe | None]:
    """The credential-free probes of the IM endpoint and, when there is one, WeChat's."""
    async with probe_client(target, limits) as http:
        where = f"targets.{target.name}"
        im = await probe(
            http,
            target.endpoint + IM_PROBE,
            field="ErrorCode",
            setting=f"{where}.endpoint (or region)",
            timeout=limits.timeout_seconds,
            clock=clock,
        )
        wechat = target.wechat
        wx = (
            None
            if wechat is None
            else await probe(
                http,
                wechat.endpoint + WECHAT_PROBE,
                field="errcode",
                setting=f"{where}.wechat.endpoint",
                timeout=limits.timeout_seconds,
                clock=clock,
            )
        )
    return im, wx


async def diagnose(
    config: Config, target: Target, *, clock: Callable[[], float] = time.time
) -> list[Check]:
    """Every check for `target`, in the order they are shown."""
    credentials = check_credentials(target)
    limits = check_calls_per_second(config)
    has_wechat = not isinstance(target, TencentTarget) or target.wechat is not None
    wechat_names = ("wechat-endpoint", *WECHAT_CHECKS) if has_wechat else ()
    if credentials.verdict is Verdict.FAIL:
        names = ("endpoint", "clock", *IM_CHECKS, *wechat_names)
        return [credentials, *skipping(names, "needs well-formed credentials"), limits]
    local = "the embedded sandbox runs in-process: no network"
    if isinstance(target, TencentTarget):
        im, wx = await _probes(target, config.limits, clock)
        network = [
            endpoint_check("endpoint", im),
            *(
                skipping(["clock"], "needs an answer from the endpoint")
                if im.failure
                else [check_clock(im)]
            ),
        ]
        wechat_endpoint = [] if wx is None else [endpoint_check("wechat-endpoint", wx)]
        im_ok, wechat_ok = not im.failure, wx is None or not wx.failure
    else:
        network = skipping(["endpoint", "clock"], local)
        wechat_endpoint = skipping(["wechat-endpoint"], local)
        im_ok = wechat_ok = True
    async with connect(target, config.limits, read_only=True) as providers:
        vendor = (
            await im_checks(providers, config.inventory)
            if im_ok
            else skipping(IM_CHECKS, "needs an answer from the endpoint")
        )
        wechat = (
            []
            if not has_wechat
            else await wechat_checks(providers)
            if wechat_ok
            else skipping(WECHAT_CHECKS, "needs an answer from the WeChat endpoint")
        )
    return [credentials, *network, *vendor, *wechat_endpoint, *wechat, limits]


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
        checks: Sequence[Check] = [failing("credentials", why, "set the variables it names")]
        report = Report(f"{name!r} (unusable)", {"name": name}, tuple(checks))
    else:
        where = select_target(loaded, target)
        identity = TargetIdentity.from_target(where)
        checks = asyncio.run(diagnose(loaded, where))
        report = Report(identity.label, identity.data, tuple(checks))
    stdout.write(render_json(report) if fmt == "json" else render_text(report))
    return 0 if report.passed else 1
