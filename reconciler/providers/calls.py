"""The vendor calls a plan schedules: their names, per-call batch sizes and rate ceilings.

Endpoints are named by their command, as the clients count their calls (`.calls`), so a plan's
cost and a read's `read_calls` use the same names. The batch sizes and ceilings are the clients'
own (`reconciler.providers.tencent`): the plan batches with them, apply sends each batch as one
call, and the cost is counted from those same batches.
"""

from __future__ import annotations

from typing import Final

from reconciler.providers.tencent import (
    DEFAULT_CEILING,
    MAX_HISTORY_PAGE,
    MAX_IMPORT,
    MAX_INFO,
    MAX_RECALL,
    MAX_SUBSCRIBERS,
    RATE_CEILINGS,
)
from reconciler.providers.wechat import OPENIDS_MIN, OPENIDS_PER_SEND

API_MULTIACCOUNT_IMPORT: Final = "multiaccount_import"
API_ACCOUNT_IMPORT: Final = "account_import"
API_CREATE: Final = "create_official_account"
API_MODIFY: Final = "modify_official_account_base_info"
API_ADD: Final = "add_subscriber"
API_SUBSCRIBER_INFO: Final = "modify_subscriber_info"
API_DELETE: Final = "delete_subscriber"
API_DESTROY: Final = "destroy_official_account"
API_INFO: Final = "get_official_account_info"
API_SPEED_SET: Final = "mass_speed_set"
API_SEND: Final = "send_official_account_msg"
API_HISTORY: Final = "official_account_msg_get_simple"
API_RECALL: Final = "official_account_msg_recall"
API_MASS_UPLOAD_NEWS: Final = "mass_upload_news"
API_MASS_UPLOAD_VIDEO: Final = "mass_upload_video"
API_MASS_SENDALL: Final = "mass_sendall"
API_MASS_SEND: Final = "mass_send"
API_MASS_PREVIEW: Final = "mass_preview"
API_MASS_DELETE: Final = "mass_delete"
API_MASS_GET: Final = "mass_get"

#: Users per multiaccount_import call (reference 3.2).
IMPORT_BATCH: Final = MAX_IMPORT
#: Subscribers per add_subscriber / delete_subscriber call (reference 5.6, 5.7).
SUBSCRIBER_BATCH: Final = MAX_SUBSCRIBERS
#: Accounts per get_official_account_info call (reference 5.4).
INFO_BATCH: Final = MAX_INFO
#: Messages per history page (reference 5.11) and MsgKeys per recall call (reference 5.12).
HISTORY_PAGE: Final = MAX_HISTORY_PAGE
RECALL_BATCH: Final = MAX_RECALL
#: OpenIDs per mass/send call, and the fewest it takes (WeChat reference 7).
OPENID_BATCH: Final = OPENIDS_PER_SEND
OPENID_BATCH_MIN: Final = OPENIDS_MIN


def vendor_rate(api: str) -> float:
    """The vendor's ceiling for `api` in calls per second (reference 1.5)."""
    return RATE_CEILINGS.get(api, DEFAULT_CEILING)
