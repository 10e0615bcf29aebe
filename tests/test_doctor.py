"""`reconciler doctor`: every check's failing case through the real CLI, against a sandbox served
over real HTTP with the condition (in a thread, or `reconciler sandbox serve` in a subprocess
started with the flag), an unreachable port and a TLS server with a self-signed certificate.

Read-only: everything doctor sent is a vendor read (the sandbox's call log shows no effect but the
stable token), and the clients it opens refuse a write before it leaves the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hostile_vendor import Misbehave, hostile_vendor
from test_e2e_common import ENV, IM_SECRET, Project, Result, in_process_project, served_sandbox

from reconciler import doctor_checks
from reconciler.config import Limits, TencentTarget, WeChatCredentials
from reconciler.connect import probe_client
from reconciler.doctor import check_credentials
from reconciler.errors import ReadOnlyViolation
from reconciler.readonly import READ_COMMANDS, READ_WECHAT_PATHS
from reconciler.sandbox import behaviour
from reconciler.sandbox.behaviour import Behaviour
from reconciler.sandbox.serve import RunningServer
from reconciler.sandbox.server import Sandbox, SandboxOptions
from reconciler.secret import Secret

IM = ("credentials", "endpoint", "clock", "usersig", "inventory-user", "official-accounts")
WECHAT = (
    "wechat-endpoint",
    "wechat-token",
    "wechat-allow-list",
    "wechat-verified",
    "wechat-speed-api",
)
ALL = (*IM, "account-quota", *WECHAT, "calls-per-second")


def checks(result: Result) -> dict[str, dict[str, str]]:
    """The JSON report's checks by name, in order."""
    doc = json.loads(result.out)
    assert doc["formatVersion"] == 1
    assert doc["ok"] is (result.code == 0)
    return {check["name"]: check for check in doc["checks"]}


def verdicts(result: Result) -> dict[str, str]:
    return {name: check["verdict"] for name, check in checks(result).items()}


def expect(**changed: str) -> dict[str, str]:
    """Every check ok but those named (`wechat_token="fail"`)."""
    return {name: changed.get(name.replace("-", "_"), "ok") for name in ALL}


def no_secret(result: Result) -> None:
    for secret in ENV.values():
        assert secret not in result.text


@pytest.fixture
def make_project(
    tmp_path: Path,
    make_sandbox_server: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Project]:
    return lambda **options: in_process_project(
        tmp_path, make_sandbox_server, monkeypatch, **options
    )


# -- all pass, and read-only --------------------------------------------------------------------


def test_a_working_target_passes_every_check_and_sends_only_reads(
    make_project: Callable[..., Project],
) -> None:
    project = make_project()
    result = project.cli("doctor", "--format", "json")
    assert (result.code, result.err, verdicts(result)) == (0, "", expect())
    found = checks(result)
    assert found["usersig"]["detail"] == (
        "accepted for the identifier 'administrator' of SDKAppID 1400000000"
    )
    assert found["wechat-speed-api"]["detail"] == "available: speed 0 (realspeed 80)"
    assert json.loads(result.out)["target"]["name"] == "local"
    no_secret(result)
    vendor = project.vendor()
    try:
        log = vendor.log()
    finally:
        vendor.close()
    sent = {entry["api"] for entry in log}
    reads = {f"im_open_login_svc/{c}" for c in READ_COMMANDS} | {
        f"official_account_open_http_svc/{c}" for c in READ_COMMANDS
    }
    reads |= {path.lstrip("/") for path in READ_WECHAT_PATHS}
    assert sent <= reads, sent - reads
    assert [e for entry in log for e in entry["effects"]] == [["token_issued", "stable"]]


def test_the_text_report_says_what_failed_and_what_to_do(
    make_project: Callable[..., Project],
) -> None:
    project = make_project()
    project.write(
        "reconciler.yaml",
        project.root.joinpath("reconciler.yaml")
        .read_text()
        .replace("${E2E_IM_KEY}", "not-the-key"),
    )
    result = project.cli("doctor")
    port = project.base_url.rsplit(":", 1)[1]
    text = re.sub(r"within \d+ s", "within N s", result.out.replace(port, "PORT"))
    assert (result.code, result.err) == (1, "")
    assert text == (
        "Target: tencent 'local', sdkappid 1400000000 at http://127.0.0.1:PORT,"
        " WeChat appid wxsandbox00000000\n"
        "  ok    credentials        sdkAppId 1400000000, identifier 'administrator', secretKey"
        " set; WeChat appId wxsandbox00000000, secret set\n"
        "  ok    endpoint           127.0.0.1:PORT answered (plain http: loopback only)\n"
        "  ok    clock              within N s of the vendor's\n"
        "  FAIL  usersig            identifier 'administrator' of SDKAppID 1400000000: the"
        " UserSig does not verify: the secret key is wrong (vendor code 70009)\n"
        "                           fix: copy the key of this SDKAppID again (IM console >"
        " Applications > the app > key); a key of another app fails the same way\n"
        "  skip  inventory-user     needs an accepted UserSig\n"
        "  skip  official-accounts  needs an accepted UserSig\n"
        "  skip  account-quota      needs an accepted UserSig\n"
        "  ok    wechat-endpoint    127.0.0.1:PORT answered (plain http: loopback only)\n"
        "  ok    wechat-token       a stable token for wxsandbox00000000 obtained\n"
        "  ok    wechat-allow-list  this machine's IP is on the allow-list\n"
        "  ok    wechat-verified    verified for mass sending (the speed API answered)\n"
        "  ok    wechat-speed-api   available: speed 0 (realspeed 80)\n"
        "  ok    calls-per-second   limits.callsPerSecond (default) is 200, within the vendor's"
        " 200 calls/s per API (100 for account_check, account_delete, multiaccount_import)\n"
        "1 failed, 3 skipped, 9 ok\n"
    )


def test_the_clients_doctor_opens_refuse_a_write(sandbox_server: RunningServer) -> None:
    target = TencentTarget("t", sandbox_server.base_url, 1400000000, "administrator", Secret("k"))

    async def main() -> None:
        async with probe_client(target, Limits()) as http:
            with pytest.raises(ReadOnlyViolation):
                await http.post(
                    target.endpoint + "/v4/official_account_open_http_svc/create_official_account",
                    json={"Owner_Account": "a", "Name": "x"},
                )
            with pytest.raises(ReadOnlyViolation):
                await http.post(target.endpoint + "/cgi-bin/message/mass/speed/set")

    asyncio.run(main())
    assert sandbox_server.sandbox.stats()["calls"] == {}


# -- the UserSig: wrong key, sdkAppId, identifier; expired on a skewed vendor clock ---------------


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        (
            "sdkAppId: 1400000000",
            "sdkAppId: 1400000001",
            "identifier 'administrator' of SDKAppID 1400000001: the SDKAppID does not exist here"
            " (vendor code 70020)",
        ),
        (
            "identifier: administrator",
            "identifier: ops",
            "identifier 'ops' of SDKAppID 1400000000: the identifier is not an App admin"
            " (vendor code 70403)",
        ),
    ],
)
def test_a_wrong_sdkappid_or_identifier_is_named(
    make_project: Callable[..., Project], field: str, value: str, detail: str
) -> None:
    project = make_project()
    config = project.root / "reconciler.yaml"
    config.write_text(config.read_text().replace(field, value))
    result = project.cli("doctor", "--format", "json")
    want = expect(
        usersig="fail", inventory_user="skip", official_accounts="skip", account_quota="skip"
    )
    assert (result.code, verdicts(result)) == (1, want)
    assert checks(result)["usersig"]["detail"] == detail


def test_a_skewed_vendor_clock_fails_the_clock_check(make_project: Callable[..., Project]) -> None:
    project = make_project()
    httpx.post(project.base_url + "/__sandbox/clock", json={"offset": -600}).raise_for_status()
    result = project.cli("doctor", "--format", "json")
    assert (result.code, verdicts(result)) == (1, expect(clock="fail"))
    found = checks(result)["clock"]
    assert re.fullmatch(r"this machine's clock is 1\d min ahead of the vendor's", found["detail"])
    assert found["fix"].startswith("synchronise this machine's clock (NTP")


def test_a_vendor_clock_two_days_ahead_expires_every_usersig(tmp_path: Path) -> None:
    """`sandbox serve --clock-offset`: the sig signed here is expired on the vendor's clock."""
    with served_sandbox(tmp_path / "s.db", "--clock-offset", "172800") as served:
        project = Project(tmp_path, served.base_url, served.db_path)
        project.configure()
        result = project.run("doctor", "--format", "json")
    want = expect(
        clock="fail",
        usersig="fail",
        inventory_user="skip",
        official_accounts="skip",
        account_quota="skip",
    )
    assert (result.code, result.err, verdicts(result)) == (1, "", want)
    found = checks(result)
    assert re.fullmatch(
        r"this machine's clock is 2\.0 days behind the vendor's; UserSigs signed here are expired"
        r" there \(valid 24\.0 h\)",
        found["clock"]["detail"],
    )
    assert found["usersig"]["detail"] == (
        "identifier 'administrator' of SDKAppID 1400000000: the UserSig is expired on the vendor's"
        " clock (vendor code 70001)"
    )
    no_secret(result)


# -- the edition, the WeChat account ------------------------------------------------------------


def test_an_edition_without_official_accounts_and_a_blocked_ip(
    make_project: Callable[..., Project],
) -> None:
    chosen = Behaviour(official_accounts=False, wechat_blocked_ip="203.0.113.7")
    result = make_project(behaviour=chosen).cli("doctor", "--format", "json")
    want = expect(
        official_accounts="fail",
        account_quota="skip",
        wechat_token="fail",
        wechat_allow_list="fail",
        wechat_verified="skip",
        wechat_speed_api="skip",
    )
    assert (result.code, result.err, verdicts(result)) == (1, "", want)
    found = checks(result)
    assert found["official-accounts"]["detail"] == (
        "this app has not enabled official accounts (vendor code 131000)"
    )
    assert found["wechat-allow-list"] == {
        "name": "wechat-allow-list",
        "verdict": "fail",
        "detail": "203.0.113.7 is not on the account's IP allow-list (40164)",
        "fix": "add 203.0.113.7 to the IP allow-list (MP console > Settings and Development >"
        " Basic configuration > IP whitelist)",
    }


def test_an_unverified_wechat_account_has_no_speed_api(
    make_project: Callable[..., Project],
) -> None:
    project = make_project(behaviour=Behaviour(wechat_verified=False))
    result = project.cli("doctor", "--format", "json")
    assert (result.code, verdicts(result)) == (
        1,
        expect(wechat_verified="fail", wechat_speed_api="fail"),
    )
    assert checks(result)["wechat-verified"]["detail"] == (
        "api unauthorized (48001): the account is not verified for mass sending"
    )


def test_a_wrong_wechat_secret(
    make_project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project()
    monkeypatch.setenv("E2E_WX_SECRET", "not-the-secret")
    result = project.cli("doctor", "--format", "json")
    want = expect(
        wechat_token="fail",
        wechat_allow_list="skip",
        wechat_verified="skip",
        wechat_speed_api="skip",
    )
    assert (result.code, verdicts(result)) == (1, want)
    assert checks(result)["wechat-token"]["detail"] == "the AppSecret is wrong (errcode 40125)"


# -- the network: unreachable, untrusted certificate, a proxy ----------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


NETWORK_DOWN = dict(
    endpoint="fail",
    clock="skip",
    usersig="skip",
    inventory_user="skip",
    official_accounts="skip",
    account_quota="skip",
    wechat_endpoint="fail",
    wechat_token="skip",
    wechat_allow_list="skip",
    wechat_verified="skip",
    wechat_speed_api="skip",
)


def test_an_unreachable_endpoint_is_named_at_once(make_project: Callable[..., Project]) -> None:
    project = make_project()
    dead = f"http://127.0.0.1:{_closed_port()}"
    config = project.root / "reconciler.yaml"
    config.write_text(config.read_text().replace(project.base_url, dead))
    started = time.monotonic()
    result = project.cli("doctor", "--format", "json")
    assert time.monotonic() - started < 5  # no retries with backoff
    assert (result.code, verdicts(result)) == (1, expect(**NETWORK_DOWN))
    found = checks(result)["endpoint"]
    assert found["detail"].startswith(
        f"{dead}{doctor_checks.IM_PROBE}: cannot connect to 127.0.0.1: "
    )
    assert found["fix"].startswith("check targets.local.endpoint (or region), that this machine")


def test_a_proxy_in_the_environment_is_used_and_named(
    make_project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project()
    proxy = f"http://user:pw@127.0.0.1:{_closed_port()}"
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    result = project.cli("doctor", "--format", "json")
    assert (result.code, verdicts(result)) == (1, expect(**NETWORK_DOWN))
    detail = checks(result)["endpoint"]["detail"]
    assert "through the proxy http://***@127.0.0.1:" in detail, detail
    assert "pw" not in result.text


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key)."""
    if shutil.which("openssl") is None:  # pragma: no cover - openssl is on every CI image
        pytest.skip("openssl is needed to make a self-signed certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def impostor(certificate: tuple[Path, Path], tmp_path: Path) -> Iterator[str]:
    """A sandbox behind TLS with the self-signed certificate; yields its base URL."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*certificate)
    box = Sandbox(SandboxOptions(db_path=tmp_path / "tls.db", secret_key=IM_SECRET))
    with hostile_vendor(box, lambda call: None, tls) as server:
        yield "https://127.0.0.1:" + server.base_url.rsplit(":", 1)[1]
    box.close()


def test_an_endpoint_with_an_untrusted_certificate_fails_the_tls_check(
    make_project: Callable[..., Project], impostor: str
) -> None:
    project = make_project()
    config = project.root / "reconciler.yaml"
    config.write_text(config.read_text().replace(project.base_url, impostor))
    result = project.cli("doctor", "--format", "json")
    assert (result.code, verdicts(result)) == (1, expect(**NETWORK_DOWN))
    found = checks(result)["endpoint"]
    assert re.fullmatch(
        rf"{impostor}{doctor_checks.IM_PROBE}: the TLS certificate of 127\.0\.0\.1 cannot be"
        r" verified:"
        r" self[- ]signed certificate",
        found["detail"],
    ), found["detail"]
    assert "SSL_CERT_FILE" in found["fix"]


# -- no network: credentials, limits, the embedded sandbox -----------------------------------------


def test_missing_and_malformed_credentials(
    make_project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project()
    monkeypatch.delenv("E2E_IM_KEY")
    result = project.cli("doctor", "--format", "json")
    assert (result.code, list(verdicts(result).values())) == (1, ["fail"])
    assert checks(result)["credentials"]["detail"] == (
        "target 'local' cannot be used: its credentials are missing;"
        " reconciler.yaml:8:16: targets.local.secretKey: environment variable E2E_IM_KEY is not set"
    )
    monkeypatch.setenv("E2E_IM_KEY", IM_SECRET + "\n")
    config = project.root / "reconciler.yaml"
    config.write_text(config.read_text().replace("wxsandbox00000000", "sandbox"))
    result = project.cli("doctor", "--format", "json")
    skipped = {name: "skip" for name in ALL} | {"credentials": "fail", "calls-per-second": "ok"}
    assert (result.code, verdicts(result)) == (1, skipped)
    assert checks(result)["credentials"]["detail"] == (
        "targets.local.secretKey starts or ends with whitespace (a pasted newline?);"
        " targets.local.wechat.appId is not a WeChat AppID (wx...)"
    )
    no_secret(result)


def test_a_target_without_wechat_has_no_wechat_checks(
    make_project: Callable[..., Project],
) -> None:
    project = make_project()
    config = project.root / "reconciler.yaml"
    text = config.read_text()
    config.write_text(text[: text.index("    wechat:")])
    result = project.cli("doctor", "--format", "json")
    assert (result.code, verdicts(result)) == (
        0,
        {name: "ok" for name in ALL if not name.startswith("wechat-")},
    )


def test_a_rate_above_the_vendors_fails(make_project: Callable[..., Project]) -> None:
    project = make_project()
    project.configure(limits={"callsPerSecond": 500})
    result = project.cli("doctor", "--format", "json")
    assert (result.code, verdicts(result)) == (1, expect(calls_per_second="fail"))
    assert checks(result)["calls-per-second"]["detail"] == (
        "limits.callsPerSecond is 500, above the vendor's 200 calls/s per API"
        " (100 for account_check, account_delete, multiaccount_import)"
    )


def test_the_embedded_sandbox_needs_no_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path, "", tmp_path / "unused.db")
    result = project.cli("doctor", "--format", "json")
    assert (result.code, verdicts(result)) == (
        0,
        expect(endpoint="skip", clock="skip", wechat_endpoint="skip"),
    )
    assert not (tmp_path / ".reconciler").exists()  # read-only: no database made


def test_the_sandbox_flags_of_the_new_behaviours() -> None:
    parser = argparse.ArgumentParser()
    behaviour.add_arguments(parser)
    chosen = behaviour.from_args(
        parser.parse_args(["--no-official-accounts", "--wechat-unverified"])
    )
    assert (chosen.official_accounts, chosen.wechat_verified) == (False, False)
    assert behaviour.from_args(parser.parse_args([])) == Behaviour()


# -- answers the sandbox never gives (the hostile vendor) ------------------------------------------


def _scripted(
    project: Project, tmp_path: Path, script: Callable[[Any], Any]
) -> tuple[Result, dict[str, int]]:
    box = Sandbox(
        SandboxOptions(
            db_path=tmp_path / "hostile.db",
            secret_key=IM_SECRET,
            wechat_secret=ENV["E2E_WX_SECRET"],
        )
    )
    try:
        with hostile_vendor(box, script) as server:
            config = project.root / "reconciler.yaml"
            config.write_text(config.read_text().replace(project.base_url, server.base_url))
            result = project.cli("doctor", "--format", "json")
            calls = dict(server.calls)
    finally:
        box.close()
    return result, calls


def test_odd_answers_are_failures_with_the_vendors_words(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    inventory = "reconciler-inventory"
    imported = {"UserID": inventory, "ResultCode": 0, "ResultInfo": "", "AccountStatus": "Imported"}

    def script(call: Any) -> Any:
        if call.command == "account_check":
            if call.count == 1:  # the probe: answered, but without a Date header
                return {"ActionStatus": "FAIL", "ErrorCode": 60012, "ErrorInfo": "no sdkappid"}
            return {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", "ResultItem": [imported]}
        if call.command == "get_subscribed_official_account_list":
            return {
                "ActionStatus": "FAIL",
                "ErrorCode": 20001,
                "ErrorInfo": "request packet invalid",
            }
        if call.command == "message/mass/speed/get" and call.count == 2:
            return {"errcode": 48004, "errmsg": "api forbidden for irregularities"}
        return None

    result, calls = _scripted(make_project(), tmp_path, script)
    want = expect(
        clock="skip",
        official_accounts="fail",
        account_quota="skip",
        wechat_verified="skip",
        wechat_speed_api="fail",
    )
    assert (result.code, verdicts(result)) == (1, want)
    found = checks(result)
    assert found["clock"]["detail"] == "the endpoint's answer carries no Date header"
    assert found["inventory-user"]["detail"] == "'reconciler-inventory' is imported"
    assert found["official-accounts"]["detail"] == (
        "tencent (get_subscribed_official_account_list) on reconciler-inventory: request packet"
        " invalid [vendor code 20001]"
    )
    assert found["wechat-speed-api"]["detail"] == (
        "wechat (mass_speed_get) on wxsandbox00000000: api forbidden for irregularities"
        " [vendor code 48004]"
    )
    assert calls == {
        "account_check": 2,
        "get_subscribed_official_account_list": 1,
        "message/mass/speed/get": 2,
        "stable_token": 1,
    }


@pytest.mark.parametrize(
    ("account_check", "token", "usersig", "wechat_token"),
    [
        (
            {"ActionStatus": "FAIL", "ErrorCode": 60016, "ErrorInfo": "disabled"},
            {"errcode": 40013, "errmsg": "invalid appid"},
            "identifier 'administrator' of SDKAppID 1400000000: the SDKAppID is disabled"
            " (vendor code 60016)",
            "the appId is not a WeChat AppID (errcode 40013)",
        ),
        (
            {"ActionStatus": "FAIL", "ErrorCode": 91234, "ErrorInfo": "something new"},
            {"errcode": 40999, "errmsg": "something new"},
            "tencent (account_check) on reconciler-inventory: something new [vendor code 91234]",
            "wechat (stable_token) on wxsandbox00000000: something new [vendor code 40999]",
        ),
    ],
)
def test_refusals_known_and_unknown(
    make_project: Callable[..., Project],
    tmp_path: Path,
    account_check: dict[str, Any],
    token: dict[str, Any],
    usersig: str,
    wechat_token: str,
) -> None:
    def script(call: Any) -> Any:
        if call.command == "account_check" and call.count == 2:
            return account_check
        return token if call.command == "stable_token" else None

    result, _ = _scripted(make_project(), tmp_path, script)
    found = checks(result)
    assert (found["usersig"]["detail"], found["wechat-token"]["detail"]) == (usersig, wechat_token)
    assert result.code == 1


def test_an_endpoint_that_is_not_the_vendor(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    def script(call: Any) -> Any:
        if call.command == "account_check":
            return Misbehave(b"<html>no</html>", 404, headers=(("content-type", "text/html"),))
        return None

    result, _ = _scripted(make_project(), tmp_path, script)
    found = checks(result)["endpoint"]
    assert found["detail"].endswith(
        f"{doctor_checks.IM_PROBE}: answered HTTP 404 without the vendor's envelope (ErrorCode)"
    )
    assert found["fix"] == (
        "check targets.local.endpoint (or region): a base URL (scheme, host, gateway path),"
        " nothing after it"
    )


# -- pieces ----------------------------------------------------------------------------------------


def test_each_malformed_credential_is_named_without_its_value() -> None:
    target = TencentTarget(
        "p",
        "https://console.tim.qq.com",
        0,
        "x" * 33,
        Secret(""),
        WeChatCredentials("wx1", Secret("s\x07")),
    )
    assert check_credentials(target).detail == (
        "targets.p.sdkAppId 0 is not an SDKAppID; targets.p.identifier is longer than 32 bytes;"
        " targets.p.secretKey is empty; targets.p.wechat.secret holds control characters"
    )
    spaced = TencentTarget("p", "https://x", 1, " admin", Secret("k"))
    assert check_credentials(spaced).detail == (
        "targets.p.identifier holds characters a UserID may not (printable ASCII, no space at"
        " either end)"
    )
    empty = TencentTarget("p", "https://x", 1, "", Secret("k"))
    assert check_credentials(empty).detail == "targets.p.identifier is empty"


def _failed(exc: httpx.HTTPError) -> doctor_checks.Probe:
    return doctor_checks._unreached("https://im.example:443/v4/x", exc, "targets.p.endpoint", 10)


@pytest.mark.parametrize(
    ("skew", "detail"),
    [
        (-4000, "this machine's clock is 67 min ahead of the vendor's"),
        (
            90000,
            "this machine's clock is 25.0 h behind the vendor's; UserSigs signed here are"
            " expired there (valid 24.0 h)",
        ),
        (-259200, "this machine's clock is 3.0 days ahead of the vendor's"),
    ],
)
def test_how_far_off_the_clock_is(skew: float, detail: str) -> None:
    assert doctor_checks.check_clock(doctor_checks.Probe("https://x", skew=skew)).detail == detail


def test_why_an_endpoint_was_not_reached() -> None:
    unknown = httpx.ConnectError("failed")
    unknown.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert _failed(unknown).failure == (
        "the host im.example does not resolve ([Errno -2] Name or service not known)"
    )
    assert _failed(httpx.ConnectTimeout("slow")).failure == "no answer within 10s"
    assert _failed(httpx.ProxyError("407 Proxy Authentication Required")).failure == (
        "the proxy None refused: 407 Proxy Authentication Required"
    )
