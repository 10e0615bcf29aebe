"""UserSig (TLS sig API v2, HMAC-SHA256): generate and verify.

One module for both sides: the Tencent provider signs its admin identifier with it, and the sandbox
verifies every request with it. The algorithm is byte-exact with Tencent's `tls-sig-api-v2`
libraries; see reference/tencent-im-official-account-api.md section 2 and
https://cloud.tencent.com/document/product/269/32688.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

#: Default validity of a generated sig, as in Tencent's own libraries (180 days).
DEFAULT_EXPIRE: Final = 180 * 86400

# UserSig swaps the three characters that are not URL-safe in standard Base64.
_ENCODE: Final = str.maketrans({"+": "*", "/": "-", "=": "_"})
_DECODE: Final = str.maketrans({"*": "+", "-": "/", "_": "="})


class SigError(IntEnum):
    """Why a UserSig was refused, valued with the vendor's error code."""

    EXPIRED = 70001
    GARBLED = 70003
    BAD_SIGNATURE = 70009
    IDENTIFIER_MISMATCH = 70013
    SDKAPPID_MISMATCH = 70014


class UserSigError(Exception):
    """A UserSig failed verification; `.reason` holds the vendor code."""

    def __init__(self, reason: SigError, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class DecodedSig:
    """The JSON document inside a UserSig."""

    identifier: str
    sdkappid: int
    time: int
    expire: int
    sig: str
    userbuf: bytes | None = None

    @property
    def expires_at(self) -> int:
        return self.time + self.expire


def _content(identifier: str, sdkappid: int, time: int, expire: int, userbuf: bytes | None) -> str:
    lines = [
        f"TLS.identifier:{identifier}\n",
        f"TLS.sdkappid:{sdkappid}\n",
        f"TLS.time:{time}\n",
        f"TLS.expire:{expire}\n",
    ]
    if userbuf is not None:
        lines.append(f"TLS.userbuf:{base64.b64encode(userbuf).decode('ascii')}\n")
    return "".join(lines)


def _hmac(key: str, content: str) -> str:
    digest = hmac.new(key.encode("utf-8"), content.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def generate(
    sdkappid: int,
    key: str,
    identifier: str,
    *,
    now: int,
    expire: int = DEFAULT_EXPIRE,
    userbuf: bytes | None = None,
) -> str:
    """Return a UserSig for `identifier`, issued at `now` (Unix seconds), valid `expire` seconds."""
    doc: dict[str, str | int] = {
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": expire,
        "TLS.time": now,
        "TLS.sig": _hmac(key, _content(identifier, sdkappid, now, expire, userbuf)),
    }
    if userbuf is not None:
        doc["TLS.userbuf"] = base64.b64encode(userbuf).decode("ascii")
    compressed = zlib.compress(json.dumps(doc).encode("utf-8"))
    return base64.b64encode(compressed).decode("ascii").translate(_ENCODE)


def decode(usersig: str) -> DecodedSig:
    """Unpack a UserSig without checking it; raises `UserSigError(GARBLED)` if it cannot be read."""
    try:
        raw = base64.b64decode(usersig.translate(_DECODE), validate=True)
        doc = json.loads(zlib.decompress(raw).decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        identifier = doc["TLS.identifier"]
        sdkappid = doc["TLS.sdkappid"]
        time = doc["TLS.time"]
        expire = doc["TLS.expire"]
        sig = doc["TLS.sig"]
        userbuf_text = doc.get("TLS.userbuf")
        if not (
            isinstance(identifier, str)
            and isinstance(sig, str)
            and all(type(v) is int for v in (sdkappid, time, expire))
            and (userbuf_text is None or isinstance(userbuf_text, str))
        ):
            raise ValueError("wrong field types")
        userbuf = None if userbuf_text is None else base64.b64decode(userbuf_text, validate=True)
    except (ValueError, KeyError, TypeError, zlib.error, binascii.Error, UnicodeDecodeError) as exc:
        raise UserSigError(SigError.GARBLED, "usersig could not be parsed") from exc
    return DecodedSig(identifier, sdkappid, time, expire, sig, userbuf)


def verify(
    usersig: str,
    *,
    sdkappid: int,
    key: str,
    identifier: str,
    now: int,
    userbuf: bytes | None = None,
) -> DecodedSig:
    """Check a UserSig as the vendor does (reference section 2.3); return it decoded.

    Raises `UserSigError` whose `.reason` is the vendor code for the first check that fails.
    """
    decoded = decode(usersig)
    if decoded.sdkappid != sdkappid:
        raise UserSigError(SigError.SDKAPPID_MISMATCH, "sdkappid does not match the usersig")
    if decoded.identifier != identifier:
        raise UserSigError(SigError.IDENTIFIER_MISMATCH, "identifier does not match the usersig")
    if now > decoded.expires_at:
        raise UserSigError(SigError.EXPIRED, "usersig expired")
    if decoded.userbuf != userbuf:
        raise UserSigError(SigError.BAD_SIGNATURE, "usersig userbuf does not match")
    expected = _hmac(
        key, _content(decoded.identifier, decoded.sdkappid, decoded.time, decoded.expire, userbuf)
    )
    if not hmac.compare_digest(expected.encode("ascii"), decoded.sig.encode("utf-8")):
        raise UserSigError(SigError.BAD_SIGNATURE, "usersig verification failed")
    return decoded
