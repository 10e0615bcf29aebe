"""`reconciler.yaml`: targets, inventory, safety thresholds and limits.

This module is the one place that turns a target into provider clients. The records below are the
contract between loading (`load_config`) and everything that runs against a target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from reconciler.model import DEFAULT_INVENTORY_USER
from reconciler.secret import Secret

#: Tencent IM regions and their REST domains (reference section 1.2).
REGION_DOMAINS: Final = {
    "cn": "console.tim.qq.com",
    "sgp": "adminapisgp.im.qcloud.com",
    "kr": "adminapikr.im.qcloud.com",
    "jpn": "adminapijpn.im.qcloud.com",
    "ger": "adminapiger.im.qcloud.com",
    "ind": "adminapiind.im.qcloud.com",
    "usa": "adminapiusa.im.qcloud.com",
    "idn": "adminapiidn.im.qcloud.com",
}
WECHAT_ENDPOINT: Final = "https://api.weixin.qq.com"


@dataclass(frozen=True, slots=True)
class WeChatCredentials:
    app_id: str
    secret: Secret
    endpoint: str = WECHAT_ENDPOINT


@dataclass(frozen=True, slots=True)
class SandboxTarget:
    """The embedded sandbox: in-process, state in SQLite at `path`, no network, no credentials."""

    name: str
    path: Path


@dataclass(frozen=True, slots=True)
class TencentTarget:
    """The real vendor (or anything speaking its protocol at `endpoint`)."""

    name: str
    endpoint: str  # base URL, e.g. https://console.tim.qq.com (from `region`) or `endpoint:`
    sdkappid: int
    identifier: str
    secret_key: Secret
    wechat: WeChatCredentials | None = None
    region: str | None = None


Target = SandboxTarget | TencentTarget


@dataclass(frozen=True, slots=True)
class Safety:
    """Thresholds over which apply refuses (DESIGN section 6)."""

    max_destroys: int = 0
    max_subscriber_removals: int = 1000
    max_subscriber_removal_percent: float = 10.0


@dataclass(frozen=True, slots=True)
class Limits:
    """The client's own ceiling: calls per second per API and calls in flight."""

    calls_per_second: float = 200.0
    concurrency: int = 16


@dataclass(frozen=True, slots=True)
class Config:
    """A loaded `reconciler.yaml` (or the defaults when there is none)."""

    path: Path | None
    default_target: str
    targets: Mapping[str, Target]
    inventory: str = DEFAULT_INVENTORY_USER
    safety: Safety = field(default_factory=Safety)
    limits: Limits = field(default_factory=Limits)
