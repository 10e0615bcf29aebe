"""UserSig against vectors computed by hand from the reference algorithm (section 2.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zlib

import pytest

from reconciler import usersig
from reconciler.usersig import SigError, UserSigError

SDKAPPID = 1400000000
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
NOW = 1700000000

# HMAC-SHA256 over "TLS.identifier:administrator\nTLS.sdkappid:1400000000\nTLS.time:1700000000\n
# TLS.expire:86400\n" with KEY, standard Base64 (computed once with openssl dgst -sha256 -hmac).
EXPECTED_HMAC = "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60="


def _unpack(sig: str) -> dict[str, object]:
    raw = base64.b64decode(sig.replace("*", "+").replace("-", "/").replace("_", "="))
    doc = json.loads(zlib.decompress(raw))
    assert isinstance(doc, dict)
    return doc


def test_generated_sig_matches_hand_computed_vector() -> None:
    sig = usersig.generate(SDKAPPID, KEY, "administrator", now=NOW, expire=86400)
    assert _unpack(sig) == {
        "TLS.ver": "2.0",
        "TLS.identifier": "administrator",
        "TLS.sdkappid": SDKAPPID,
        "TLS.expire": 86400,
        "TLS.time": NOW,
        "TLS.sig": EXPECTED_HMAC,
    }
    assert not set(sig) & set("+/=")


def test_hmac_vector_is_the_reference_content_string() -> None:
    content = (
        f"TLS.identifier:administrator\nTLS.sdkappid:{SDKAPPID}\nTLS.time:{NOW}\nTLS.expire:86400\n"
    )
    digest = hmac.new(KEY.encode(), content.encode(), hashlib.sha256).digest()
    assert base64.b64encode(digest).decode() == EXPECTED_HMAC


def test_verify_round_trip() -> None:
    sig = usersig.generate(SDKAPPID, KEY, "administrator", now=NOW, expire=86400)
    decoded = usersig.verify(sig, sdkappid=SDKAPPID, key=KEY, identifier="administrator", now=NOW)
    assert (decoded.identifier, decoded.sdkappid, decoded.expires_at) == (
        "administrator",
        SDKAPPID,
        NOW + 86400,
    )


def test_userbuf_round_trip_and_mismatch() -> None:
    sig = usersig.generate(SDKAPPID, KEY, "u", now=NOW, expire=60, userbuf=b"\x00\x01room")
    assert (
        usersig.verify(
            sig, sdkappid=SDKAPPID, key=KEY, identifier="u", now=NOW, userbuf=b"\x00\x01room"
        ).userbuf
        == b"\x00\x01room"
    )
    with pytest.raises(UserSigError) as info:
        usersig.verify(sig, sdkappid=SDKAPPID, key=KEY, identifier="u", now=NOW)
    assert info.value.reason is SigError.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"key": "another-key"}, SigError.BAD_SIGNATURE),
        ({"sdkappid": SDKAPPID + 1}, SigError.SDKAPPID_MISMATCH),
        ({"identifier": "someone"}, SigError.IDENTIFIER_MISMATCH),
        ({"now": NOW + 86401}, SigError.EXPIRED),
    ],
)
def test_verify_refusals_carry_vendor_codes(kwargs: dict[str, object], reason: SigError) -> None:
    sig = usersig.generate(SDKAPPID, KEY, "administrator", now=NOW, expire=86400)
    args: dict[str, object] = {
        "sdkappid": SDKAPPID,
        "key": KEY,
        "identifier": "administrator",
        "now": NOW,
    }
    args.update(kwargs)
    with pytest.raises(UserSigError) as info:
        usersig.verify(sig, **args)  # type: ignore[arg-type]
    assert info.value.reason is reason
    assert (
        int(info.value.reason)
        == {
            SigError.BAD_SIGNATURE: 70009,
            SigError.SDKAPPID_MISMATCH: 70014,
            SigError.IDENTIFIER_MISMATCH: 70013,
            SigError.EXPIRED: 70001,
        }[reason]
    )


def test_expiry_is_strictly_after_time_plus_expire() -> None:
    sig = usersig.generate(SDKAPPID, KEY, "a", now=NOW, expire=10)
    usersig.verify(sig, sdkappid=SDKAPPID, key=KEY, identifier="a", now=NOW + 10)


@pytest.mark.parametrize(
    "garbled",
    ["", "not base64 !!", "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkElNyM", "aGVsbG8_"],
)
def test_garbled_sigs(garbled: str) -> None:
    with pytest.raises(UserSigError) as info:
        usersig.verify(garbled, sdkappid=SDKAPPID, key=KEY, identifier="a", now=NOW)
    assert info.value.reason is SigError.GARBLED


def test_json_that_is_not_a_sig_is_garbled() -> None:
    payload = base64.b64encode(zlib.compress(b'{"TLS.ver": "2.0"}')).decode()
    sig = payload.replace("+", "*").replace("/", "-").replace("=", "_")
    with pytest.raises(UserSigError) as info:
        usersig.decode(sig)
    assert info.value.reason is SigError.GARBLED
