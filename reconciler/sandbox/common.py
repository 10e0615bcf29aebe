"""What every sandbox handler shares: the per-call context, the business error, field checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.sandbox.behaviour import Behaviour

JSON = dict[str, Any]


class ApiError(Exception):
    """A vendor business error: rendered as the vendor's error envelope (HTTP 200).

    `extra` holds fields the vendor adds to that error (WeChat 45065 carries the existing msg_id).
    """

    def __init__(self, code: int, info: str, extra: JSON | None = None) -> None:
        self.code = code
        self.info = info
        self.extra = extra or {}
        super().__init__(f"{code} {info}")


@dataclass(slots=True)
class Call:
    """One request being handled: the open transaction, the time, the test-chosen vendor
    behaviour, and the effects it had."""

    db: sqlite3.Connection
    now: float
    admin: str
    behaviour: Behaviour = field(default_factory=Behaviour)
    effects: list[list[str]] = field(default_factory=list)
    #: applied, but answered HTTP 502 as if the answer was lost (`wechat_lose_send_answers`)
    lose_answer: bool = False

    @property
    def ts(self) -> int:
        """The request time in whole Unix seconds, as the vendor reports times."""
        return int(self.now)

    def effect(self, *parts: str) -> None:
        """Record a state change for the call log (e.g. `subscriber_added`, account, user)."""
        self.effects.append(list(parts))


Handler = Callable[[Call, JSON], JSON]


def utf8_len(value: str) -> int:
    return len(value.encode("utf-8"))


def get_str(
    body: JSON,
    key: str,
    *,
    code: int,
    required: bool = False,
    max_bytes: int | None = None,
    default: str | None = None,
) -> str | None:
    """A string field, checked for type and UTF-8 byte length; `ApiError(code)` otherwise."""
    value = body.get(key)
    if value is None:
        if required:
            raise ApiError(code, f"{key} is required")
        return default
    if not isinstance(value, str):
        raise ApiError(code, f"{key} must be a string")
    if required and value == "":
        raise ApiError(code, f"{key} must not be empty")
    if max_bytes is not None and utf8_len(value) > max_bytes:
        raise ApiError(code, f"{key} is longer than {max_bytes} bytes")
    return value


def get_int(
    body: JSON,
    key: str,
    *,
    code: int,
    minimum: int | None = None,
    maximum: int | None = None,
    default: int | None = None,
) -> int | None:
    """An integer field (JSON booleans refused), range-checked; `ApiError(code)` otherwise."""
    value = body.get(key)
    if value is None:
        return default
    if type(value) is not int:
        raise ApiError(code, f"{key} must be an integer")
    if minimum is not None and value < minimum:
        raise ApiError(code, f"{key} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ApiError(code, f"{key} must be at most {maximum}")
    return value


def get_list(body: JSON, key: str, *, code: int, maximum: int) -> list[Any]:
    """A required, non-empty array field of at most `maximum` items; `ApiError(code)` otherwise."""
    value = body.get(key)
    if not isinstance(value, list):
        raise ApiError(code, f"{key} must be an array")
    if not value:
        raise ApiError(code, f"{key} must not be empty")
    if len(value) > maximum:
        raise ApiError(code, f"{key} holds more than {maximum} items")
    return value
