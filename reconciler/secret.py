"""A string that never shows itself in output, logs, errors or plan files, and the set of
them a client has used."""

from __future__ import annotations

import json
from typing import Final
from urllib.parse import quote, quote_plus

REDACTED: Final = "***"


class Secret:
    """Wraps a credential. `str()` and `repr()` show `***`; only `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """Return `text` with every occurrence of this secret replaced by `***`."""
        return text.replace(self._value, REDACTED) if self._value else text

    def __str__(self) -> str:
        return REDACTED

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


#: Credentials shorter than this are masked in messages but not scrubbed out of vendor answers:
#: every real one is far longer (a UserSig is about 200 characters, an access token about 140, a
#: secret key 64 and an AppSecret 32 hex digits), and a short test value ("k") scrubbed out of
#: the raw JSON would tear apart the words around it.
SCRUB_MIN: Final = 16


class SecretSet:
    """Every credential a client holds or has sent, kept for as long as the client lives.

    A vendor may quote any credential it was ever sent: the UserSig it calls expired (which the
    client then renews), the access token it rejects (which the client then drops). Renewing one
    never forgets the old, so whatever a vendor echoes stays masked for the whole run. Each value
    is masked as sent on the wire too (URL-encoded, JSON-escaped), the longest first, so that a
    credential holding another is masked whole.
    """

    __slots__ = ("_forms", "_values")

    def __init__(self, *secrets: Secret) -> None:
        self._values: set[str] = set()
        self._forms: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: Secret) -> Secret:
        """Remember `secret` (for good) and return it."""
        value = secret.reveal()
        if value and value not in self._values:
            self._values.add(value)
            forms = {value, quote_plus(value, safe=""), quote(value, safe=""), _json_escaped(value)}
            self._forms = sorted(set(self._forms) | forms, key=lambda f: (-len(f), f))
        return secret

    def __len__(self) -> int:
        return len(self._values)

    def redact(self, text: str) -> str:
        """`text` with every form of every remembered credential replaced by `***`."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def scrub(self, content: bytes) -> bytes:
        """A vendor answer's raw bytes with every credential of `SCRUB_MIN` characters or more
        replaced by `***`, before anything reads them: no field, message or log line made from
        the answer can then quote one."""
        for form in self._forms:
            if len(form) >= SCRUB_MIN:
                raw = form.encode()
                if raw in content:
                    content = content.replace(raw, REDACTED.encode())
        return content


def _json_escaped(value: str) -> str:
    """`value` as it appears inside a JSON string written with ASCII escapes."""
    return json.dumps(value)[1:-1]
