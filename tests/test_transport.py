"""Transport: TLS verification is always on for vendor targets; only loopback may speak plain http.

A TLS server on 127.0.0.1 with a self-signed certificate stands in for an impostor. Reached by a
name that is not loopback (`127.1` resolves to 127.0.0.1, but `is_loopback` sees a name), the
clients `connect` builds refuse its certificate at once (no retry storm, the cause named); trusted
explicitly by a test client, the same server answers, so the refusal is the verification's.
Plain http to a non-loopback host is refused by `validate` (literal endpoints, with a position) and
by `connect` (endpoints from the environment); no field of reconciler.yaml turns verification off.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hostile_vendor import hostile_vendor

from reconciler import cli
from reconciler.config import Limits, TencentTarget, WeChatCredentials, load_config
from reconciler.connect import connect
from reconciler.errors import ConfigError, ProviderError
from reconciler.providers.http import check_endpoint, is_loopback
from reconciler.sandbox.server import Sandbox, SandboxOptions
from reconciler.secret import Secret

KEY = "transport-key-31c9"
SDKAPPID = 1400000000
OWNED = "get_subscribed_official_account_list"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 (cert, key)."""
    if shutil.which("openssl") is None:  # pragma: no cover - openssl is on every CI image
        pytest.skip("openssl is needed to make a self-signed certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def impostor(certificate: tuple[Path, Path], tmp_path: Path) -> Iterator[int]:
    """A sandbox behind TLS with the self-signed certificate; yields its port."""
    cert, key = certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    box = Sandbox(SandboxOptions(db_path=tmp_path / "sandbox.db", secret_key=KEY))
    with hostile_vendor(box, lambda call: None, tls) as server:
        yield int(server.base_url.rsplit(":", 1)[1])
    box.close()


def test_the_impostor_answers_a_client_that_trusts_its_certificate(
    certificate: tuple[Path, Path], impostor: int
) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    with httpx.Client(verify=trusting) as http:
        reply = http.post(f"https://127.0.0.1:{impostor}/v4/x/y", json={})
    assert reply.status_code == 200
    assert reply.json()["ErrorCode"] == 60009


def test_a_vendor_target_refuses_an_untrusted_certificate_at_once(impostor: int) -> None:
    assert not is_loopback(f"https://127.1:{impostor}")
    target = TencentTarget("prod", f"https://127.1:{impostor}", SDKAPPID, "admin", Secret(KEY))

    async def main() -> tuple[ProviderError, dict[str, int]]:
        async with connect(target, Limits()) as providers:
            with pytest.raises(ProviderError) as caught:
                await providers.im.get_subscriptions("reconciler-inventory")
            return caught.value, dict(providers.im.calls)

    started = time.monotonic()
    error, calls = asyncio.run(main())
    assert time.monotonic() - started < 2.0  # not retried with backoff
    assert calls == {OWNED: 1}
    assert re.fullmatch(
        rf"tencent \({OWNED}\) on reconciler-inventory: the TLS certificate of 127\.1 cannot be"
        r" verified: self[- ]signed certificate",
        str(error),
    ), str(error)
    assert KEY not in str(error)


def test_even_a_loopback_https_endpoint_is_verified(impostor: int) -> None:
    target = TencentTarget("dev", f"https://127.0.0.1:{impostor}", SDKAPPID, "admin", Secret(KEY))

    async def main() -> str:
        async with connect(target, Limits()) as providers:
            with pytest.raises(ProviderError) as caught:
                await providers.im.get_subscriptions("reconciler-inventory")
            return str(caught.value)

    assert "the TLS certificate of 127.0.0.1 cannot be verified" in asyncio.run(main())


def test_the_cli_names_the_certificate_problem(
    impostor: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: MassSpeed\nmetadata: {name: s}\nspec: {speed: 1}\n"
    )
    (tmp_path / "reconciler.yaml").write_text(
        "targets:\n  prod:\n    type: tencent\n"
        f"    endpoint: https://127.1:{impostor}\n"
        "    sdkAppId: 1400000000\n    identifier: administrator\n    secretKey: ${TK}\n"
    )
    monkeypatch.setenv("TK", KEY)
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["plan", "m", "--target", "prod"])
    assert (code, out.getvalue()) == (1, "")
    assert err.getvalue().startswith(
        f"error: tencent ({OWNED}) on reconciler-inventory: the TLS certificate of 127.1 cannot"
        " be verified: self"
    )


# -- plain http and options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://console.tim.qq.com",
        "http://127.1:8754",  # resolves to loopback, but only an address or `localhost` counts
        "http://localhost.:8754",
        "http://[::ffff:127.0.0.1]:8754",
        "http://10.0.0.5",
    ],
)
def test_plain_http_is_refused_unless_the_host_is_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match=r"must use https: credentials travel in the URL$"):
        check_endpoint(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8754", "http://localhost:8754", "http://[::1]:8754"]
)
def test_plain_http_and_unverified_tls_are_allowed_on_loopback(url: str) -> None:
    assert check_endpoint(url) == url
    assert check_endpoint(url, verify_tls=False) == url


def test_tls_verification_cannot_be_turned_off_for_a_vendor() -> None:
    with pytest.raises(ConfigError, match=r"^TLS verification cannot be turned off for im\.x\.cn"):
        check_endpoint("https://im.x.cn", verify_tls=False)


def test_a_plain_http_endpoint_in_reconciler_yaml_is_a_problem_with_its_position(
    tmp_path: Path,
) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text(
        "targets:\n  prod:\n    type: tencent\n    endpoint: http://im.example.com\n"
        "    sdkAppId: 1\n    identifier: a\n    secretKey: ${K}\n"
        "    wechat: {appId: w, secret: '${S}', endpoint: 'ftp://127.0.0.1'}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config, environ={"K": "k", "S": "s"})
    assert str(caught.value) == (
        f"{config}:4:15: targets.prod.endpoint: endpoint 'http://im.example.com' must use https:"
        " credentials travel in the URL\n"
        f"{config}:8:50: targets.prod.wechat.endpoint: 'ftp://127.0.0.1' does not match"
        " ^https?://"
    )


def test_an_endpoint_from_the_environment_is_checked_when_connecting() -> None:
    for target in (
        TencentTarget("p", "http://im.example.com", 1, "a", Secret("k")),
        TencentTarget(
            "p",
            "https://im.example.com",
            1,
            "a",
            Secret("k"),
            WeChatCredentials("w", Secret("s"), "http://wx.example.com"),
        ),
    ):

        async def main(chosen: TencentTarget = target) -> None:
            async with connect(chosen, Limits()):
                pytest.fail("connected")  # pragma: no cover

        with pytest.raises(ConfigError, match=r"must use https: credentials travel in the URL$"):
            asyncio.run(main())


@pytest.mark.parametrize(
    "field", ["verify: false", "insecure: true", "tlsVerify: false", "caBundle: /dev/null"]
)
def test_no_field_of_a_target_turns_verification_off(tmp_path: Path, field: str) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text(
        "targets:\n  prod:\n    type: tencent\n    region: cn\n"
        f"    sdkAppId: 1\n    identifier: a\n    secretKey: ${{K}}\n    {field}\n"
    )
    with pytest.raises(ConfigError, match=r":8:5: targets\.prod: unknown field"):
        load_config(config, environ={"K": "k"})


@pytest.mark.parametrize("url", ["http://[127.0.0.1:8754", "https://host:99999", "https://h:port"])
def test_a_malformed_endpoint_is_a_clean_error(url: str) -> None:
    """Found by the nightly fuzz: an unclosed `[` raised ValueError out of validate."""
    assert not is_loopback(url)
    with pytest.raises(ConfigError, match=r"^endpoint '.*' is not a valid URL$"):
        check_endpoint(url)
