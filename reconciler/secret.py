"""A string that never shows itself in output, logs, errors or plan files."""

from __future__ import annotations

from typing import Final

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
