"""Vendor clients behind small interfaces: what reading live state and applying changes need.

`TencentClient` and `WeChatClient` implement these; both receive an `httpx.AsyncClient` and one
shared `Pacer` (rate limits and calls in flight) and never build a client themselves.
`config.py` builds them for a target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from reconciler.model import ProfileField, ProfileValue
from reconciler.providers.http import Pacer, RetryPolicy, check_endpoint, redact
from reconciler.providers.records import (
    AccountInfo,
    CreateOutcome,
    HistoryEntry,
    ItemFailure,
    ItemResults,
    SentMessage,
    Subscriber,
    SubscriberPage,
    Subscription,
)
from reconciler.providers.tencent import TencentClient
from reconciler.providers.wechat import MassSent, MassSpeedInfo, WeChatClient

__all__ = [
    "AccountInfo",
    "CreateOutcome",
    "HistoryEntry",
    "IMProvider",
    "ItemFailure",
    "ItemResults",
    "MassMessageProvider",
    "MassSent",
    "MassSpeedInfo",
    "MassSpeedProvider",
    "Pacer",
    "RetryPolicy",
    "SentMessage",
    "Subscriber",
    "SubscriberPage",
    "Subscription",
    "TencentClient",
    "WeChatClient",
    "check_endpoint",
    "redact",
]


class IMProvider(Protocol):
    """Tencent IM users, official accounts and their subscribers.

    Batched methods split their input to the vendor's per-call maximum and run the batches
    concurrently within the shared pacer. Reads raise `ProviderError` or return everything;
    membership writes report failures per id in `ItemResults` instead of raising.
    """

    @property
    def calls(self) -> Mapping[str, int]:
        """Requests sent per API so far, retries included."""
        ...

    async def import_account(self, user_id: str) -> None:
        """Import one IM user (idempotent)."""
        ...

    async def import_accounts(self, user_ids: Iterable[str]) -> ItemResults:
        """Import users, 100 per call; failures by id."""
        ...

    async def check_accounts(self, user_ids: Iterable[str]) -> dict[str, bool]:
        """User id → imported, 100 per call."""
        ...

    async def create_account(
        self, account_id: str, owner: str, profile: Mapping[ProfileField, ProfileValue]
    ) -> CreateOutcome:
        """Create an account with a custom id; `EXISTED` when the id is already taken."""
        ...

    async def destroy_account(self, account_id: str) -> bool:
        """Destroy an account; False when it was already gone."""
        ...

    async def modify_account(
        self, account_id: str, profile: Mapping[ProfileField, ProfileValue]
    ) -> None:
        """Set the given profile fields."""
        ...

    async def get_accounts(self, account_ids: Iterable[str]) -> dict[str, AccountInfo]:
        """Read accounts by id, 50 per call; missing ids are absent from the result."""
        ...

    async def get_subscribers(self, account_id: str) -> SubscriberPage:
        """Every subscriber of an account, paged to the end."""
        ...

    async def add_subscribers(self, account_id: str, user_ids: Iterable[str]) -> ItemResults:
        """Subscribe users, 100 per call; "already subscribed" is `unchanged`, not a failure."""
        ...

    async def remove_subscribers(self, account_id: str, user_ids: Iterable[str]) -> ItemResults:
        """Unsubscribe users, 100 per call; "was not subscribed" is `unchanged`."""
        ...

    async def set_subscriber_profile(self, account_id: str, user_id: str, custom: str) -> None:
        """Set one subscriber's CustomString on an account."""
        ...

    async def get_subscriptions(self, user_id: str) -> list[Subscription]:
        """Every account a user subscribes to, with the subscription's CustomString."""
        ...

    async def send_broadcast(
        self,
        account_id: str,
        msg_body: list[Any],
        *,
        random_id: int,
        cloud_custom_data: str | None = None,
        offline_push: Mapping[str, Any] | None = None,
        online_only: bool = False,
    ) -> SentMessage:
        """Broadcast to every subscriber; retries reuse `random_id` and stay in 5 minutes."""
        ...

    async def get_history(self, account_id: str, since: float) -> list[HistoryEntry] | None:
        """The account's broadcasts newest first (recalled included), back to `since`; None
        when the account does not exist."""
        ...

    async def recall_broadcasts(
        self, account_id: str, keys: Iterable[str], reason: str = ""
    ) -> ItemResults:
        """Recall messages by MsgKey, 10 per call; failures by key."""
        ...


class MassSpeedProvider(Protocol):
    """The WeChat official account's mass-send speed."""

    @property
    def calls(self) -> Mapping[str, int]:
        """Requests sent per API so far, token fetches and retries included."""
        ...

    async def get_mass_speed(self) -> MassSpeedInfo:
        """Read the current speed level and real speed."""
        ...

    async def set_mass_speed(self, speed: int) -> None:
        """Set the speed level, 0 (fastest) to 4 (slowest)."""
        ...


@runtime_checkable
class MassMessageProvider(MassSpeedProvider, Protocol):
    """The WeChat official account's mass messages (reference sections 6 to 11)."""

    async def upload_news(self, articles: list[Mapping[str, Any]]) -> str:
        """Upload the articles of one news message; its media_id."""
        ...

    async def upload_video(self, media_id: str, title: str, description: str) -> str:
        """Turn a temporary video into a mass-send video; its media_id."""
        ...

    async def send_mass(
        self,
        message: Mapping[str, Any],
        *,
        clientmsgid: str,
        to_all: bool = False,
        tag: int | None = None,
        openids: list[str] | None = None,
        ignore_reprint: bool = False,
    ) -> MassSent:
        """Send to exactly one audience; a replayed clientmsgid answers the existing job."""
        ...

    async def preview_mass(
        self, message: Mapping[str, Any], *, openid: str = "", wxname: str = ""
    ) -> int:
        """Preview to one follower (OpenID or WeChat ID)."""
        ...

    async def delete_mass(self, msg_id: int, article_idx: int = 0) -> None:
        """Delete a sent news or video message (all articles, or one 1-based)."""
        ...

    async def mass_status(self, msg_id: int) -> str:
        """SEND_SUCCESS, SENDING, SEND_FAIL or DELETE."""
        ...


# mypy checks here that the clients satisfy their interfaces (structurally, as callers see them).
_IM_CONFORMS: type[IMProvider] = TencentClient
_WX_CONFORMS: type[MassSpeedProvider] = WeChatClient
_MM_CONFORMS: type[MassMessageProvider] = WeChatClient
