"""What the Tencent client returns: plain frozen records built from vendor answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from reconciler.model import ProfileField, ProfileValue


class CreateOutcome(Enum):
    """What `create_account` found: a new account, or one with that id that already existed."""

    CREATED = "created"
    EXISTED = "existed"


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """An official account's base profile as read (reference 4.2)."""

    id: str
    owner: str = ""
    name: str = ""
    introduction: str = ""
    face_url: str = ""
    organization: str = ""
    custom_string: str = ""
    max_subscriber_num: int = 0
    subscriber_num: int = 0
    create_time: int = 0
    last_msg_time: int = 0

    @property
    def profile(self) -> dict[ProfileField, ProfileValue]:
        """The writable fields, keyed as the manifests key them."""
        return {
            ProfileField.NAME: self.name,
            ProfileField.INTRODUCTION: self.introduction,
            ProfileField.FACE_URL: self.face_url,
            ProfileField.ORGANIZATION: self.organization,
            ProfileField.CUSTOM_STRING: self.custom_string,
            ProfileField.MAX_SUBSCRIBER_NUM: self.max_subscriber_num,
        }

    @classmethod
    def from_vendor(cls, item: Mapping[str, Any], account_id: str) -> AccountInfo:
        return cls(
            id=account_id,
            owner=str_field(item, "Owner_Account"),
            name=str_field(item, "Name"),
            introduction=str_field(item, "Introduction"),
            face_url=str_field(item, "FaceUrl"),
            organization=str_field(item, "Organization"),
            custom_string=str_field(item, "CustomString"),
            max_subscriber_num=int_field(item, "MaxSubscriberNum"),
            subscriber_num=int_field(item, "SubscriberNum"),
            create_time=int_field(item, "CreateTime"),
            last_msg_time=int_field(item, "LastMsgTime"),
        )


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One subscriber of an account (reference 4.3, 5.5)."""

    user_id: str
    custom_string: str = ""
    subscribe_time: int = 0
    msg_flag: str = ""


@dataclass(frozen=True, slots=True)
class SubscriberPage:
    """Every subscriber of one account, read to the end."""

    account_id: str
    subscribers: tuple[Subscriber, ...]
    #: the vendor's `SubscriberNum` from the last page
    total: int


@dataclass(frozen=True, slots=True)
class Subscription:
    """An account a user subscribes to, with that subscription's own data (reference 5.9)."""

    account: AccountInfo
    custom_string: str = ""
    subscribe_time: int = 0


@dataclass(frozen=True, slots=True)
class ItemFailure:
    """Why one item of a batch failed: the vendor code when there is one, and a message."""

    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class ItemResults:
    """Per-item outcome of a batched membership change (reference 5.6, 5.7).

    `changed`: done by this call; `unchanged`: already so (already subscribed / was not
    subscribed, i.e. converged); `failed`: id → why, by id, never raised.
    """

    changed: frozenset[str] = frozenset()
    unchanged: frozenset[str] = frozenset()
    failed: Mapping[str, ItemFailure] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def str_field(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return value if isinstance(value, str) else "" if value is None else str(value)


def int_field(item: Mapping[str, Any], key: str) -> int:
    value = item.get(key)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return 0


def envelope_code(body: Mapping[str, Any]) -> int:
    """The envelope's code; a body without one counts as OK only if `ActionStatus` says so."""
    code = body.get("ErrorCode")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return 0 if body.get("ActionStatus") == "OK" else -1
