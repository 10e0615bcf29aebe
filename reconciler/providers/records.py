"""What the Tencent client returns: plain frozen records built from vendor answers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Final

import msgspec

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
            max_subscriber_num=count_field(item, "MaxSubscriberNum"),
            subscriber_num=count_field(item, "SubscriberNum"),
            create_time=int_field(item, "CreateTime"),
            last_msg_time=int_field(item, "LastMsgTime"),
        )


class Subscriber(
    msgspec.Struct,
    frozen=True,
    gc=False,
    rename={
        "user_id": "Subscriber_Account",
        "custom_string": "CustomString",
        "subscribe_time": "SubscribeTime",
        "msg_flag": "MsgFlag",
    },
):
    """One subscriber of an account (reference 4.3, 5.5).

    A `msgspec` struct named as the vendor names its fields: a page of subscribers in the
    documented shape is decoded straight into these, in C, with its types checked (the Tencent
    client reads any other shape field by field). A no-op plan of 1,000,000 memberships reads one
    per member; decoding a page of 200 this way costs a fifth of `json.loads` plus a loop over
    its dicts (bench/scale.py). Not tracked by the garbage collector: it holds text and numbers.
    """

    user_id: Annotated[str, msgspec.Meta(min_length=1)]
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
    #: the batch's call gave up after transient faults: the item may have been applied
    maybe_applied: bool = False


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

    @staticmethod
    def merged(parts: Iterable[ItemResults]) -> ItemResults:
        """The results of several batches of one change as one."""
        changed: set[str] = set()
        unchanged: set[str] = set()
        failed: dict[str, ItemFailure] = {}
        for part in parts:
            changed |= part.changed
            unchanged |= part.unchanged
            failed.update(part.failed)
        return ItemResults(frozenset(changed), frozenset(unchanged), dict(sorted(failed.items())))


class MalformedAnswer(ValueError):
    """A vendor answer lacks a field the client needs or holds one of the wrong type.

    Raised by the field readers below with the field's path (`SubscriberList[3].Result`); the
    client turns it into a `ProviderError` naming the call. Reading garbage as `""` or `0` would
    make a wrong plan (a `SubscriberNum` of 0 passes every removal-percentage check).
    """


#: The largest count any answer can hold. The vendor's Integer fields are 32 bits wide: the
#: reference documents none wider than `random` and `MsgSeq`, 0 to 4294967295 (sections 1.1,
#: 5.11); `MaxSubscriberNum` has no documented maximum (4.2).
MAX_COUNT: Final = 2**32 - 1

#: An integer as text: a few vendors send counts and times as strings. ASCII digits only (`"²"`
#: is a digit to `str.isdigit` and not to `int`), and few enough that `int()` reads them at once.
_DIGITS: Final = re.compile(r"\s*(-?[0-9]{1,20})\s*")


def shown(value: Any) -> str:
    """A vendor value as an error quotes it: its repr, cut to 40 characters."""
    if isinstance(value, int) and value.bit_length() > 64:
        # `repr` of an integer of over 4,300 digits raises
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(value: Any) -> int | None:
    """`value` as an integer (JSON booleans as 0/1, text of digits), or None."""
    if isinstance(value, int):  # bool included: True/False are 1/0 in JSON-minded vendors
        return int(value)
    if isinstance(value, str):
        digits = _DIGITS.fullmatch(value)
        if digits is not None:
            return int(digits.group(1))
    return None


def str_field(item: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    """A text field: absent or null reads as `""` (unless `required`); numbers as their digits;
    anything else (an object, an array, a boolean) is a `MalformedAnswer`."""
    value = item.get(key)
    if isinstance(value, str):
        return value
    if value is None:
        if required:
            raise MalformedAnswer(f"{key} is missing")
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise MalformedAnswer(f"{key} is {shown(value)}, not a string")


def int_field(item: Mapping[str, Any], key: str) -> int:
    """An informational number (times): read leniently, anything unreadable is 0."""
    number = _integer(item.get(key))
    return 0 if number is None else number


def count_field(item: Mapping[str, Any], key: str, *, required: bool = False) -> int:
    """A number decisions rest on (counts, cursors, result codes): absent reads as 0 unless
    `required`; an integer or a string of digits from 0 to `MAX_COUNT` is read; anything else is
    a `MalformedAnswer` (a negative count or one of 10**400 is no more possible than a count of
    "lots", and would size a page budget or pass a removal-percentage check)."""
    value = item.get(key)
    if value is None:
        if required:
            raise MalformedAnswer(f"{key} is missing")
        return 0
    number = _integer(value)
    if number is None:
        raise MalformedAnswer(f"{key} is {shown(value)}, not an integer")
    if not 0 <= number <= MAX_COUNT:
        raise MalformedAnswer(f"{key} is {shown(value)}, not a possible count (0 to {MAX_COUNT})")
    return number


def object_list(item: Mapping[str, Any], key: str, *, required: bool = False) -> list[Any]:
    """An array of objects: absent or null is empty (unless `required`); anything else that is
    not an array of JSON objects is a `MalformedAnswer`."""
    value = item.get(key)
    if value is None:
        if required:
            raise MalformedAnswer(f"{key} is missing")
        return []
    if not isinstance(value, list):
        raise MalformedAnswer(f"{key} is {shown(value)}, not an array")
    for index, element in enumerate(value):
        if not isinstance(element, dict):
            raise MalformedAnswer(f"{key}[{index}] is {shown(element)}, not an object")
    return value


def envelope_code(body: Mapping[str, Any]) -> int:
    """The envelope's code; a body without one counts as OK only if `ActionStatus` says so."""
    code = body.get("ErrorCode")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return 0 if body.get("ActionStatus") == "OK" else -1


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A broadcast the vendor accepted (reference 5.10): its `MsgKey` and server time."""

    key: str
    time: int


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One message of an account's broadcast history (reference 5.11)."""

    key: str
    time: int
    random: int
    #: `IsPlaceMsg`: 0 a message, 1 a placeholder (expired, failed, deleted), 2 recalled
    place: int
    msg_body: tuple[Any, ...] = ()
