"""A client written from the vendor docs alone (raw httpx + Tencent's own TLSSigAPIv2) works.

Nothing here comes from reconciler: URLs, fields and signing follow the reference documents, and
the UserSig is made by Tencent's `tls-sig-api-v2` package (a test dependency).
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import TLSSigAPIv2  # Tencent's own UserSig library, a test extra (tls-sig-api-v2)

from reconciler.sandbox.serve import RunningServer


class DocsClient:
    """Tencent IM REST as section 1.1 describes it; WeChat as its section 2 describes it."""

    def __init__(self, base_url: str, sdkappid: int, key: str, admin: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.sdkappid = sdkappid
        self.admin = admin
        self.usersig = TLSSigAPIv2.TLSSigAPIv2(sdkappid, key).gen_sig(admin, expire=86400)

    def rest(self, service: str, command: str, body: dict[str, Any]) -> dict[str, Any]:
        url = (
            f"/v4/{service}/{command}?sdkappid={self.sdkappid}&identifier={self.admin}"
            f"&usersig={self.usersig}&random={random.randint(0, 4294967295)}&contenttype=json"
        )
        response = self.http.post(url, json=body)
        assert response.status_code == 200
        doc: dict[str, Any] = response.json()
        assert doc["ActionStatus"] == "OK", doc
        assert doc["ErrorCode"] == 0
        return doc


def test_a_docs_only_client_runs_the_whole_lifecycle(sandbox_server: RunningServer) -> None:
    opts = sandbox_server.options
    im = DocsClient(sandbox_server.base_url, opts.sdkappid, opts.secret_key, opts.admin)
    login, oa = "im_open_login_svc", "official_account_open_http_svc"
    im.rest(login, "account_import", {"UserID": "ops_admin", "Nick": "Ops"})
    im.rest(
        login, "multiaccount_import", {"AccountList": [{"UserID": f"user{i}"} for i in range(5)]}
    )
    checked = im.rest(login, "account_check", {"CheckItem": [{"UserID": "user4"}]})
    assert checked["ResultItem"][0]["AccountStatus"] == "Imported"

    created = im.rest(
        oa,
        "create_official_account",
        {"Owner_Account": "ops_admin", "OfficialAccountUserID": "@TOA#_news", "Name": "Daily News"},
    )
    account = created["OfficialAccountUserID"]
    added = im.rest(
        oa,
        "add_subscriber",
        {
            "Official_Account": account,
            "SubscriberList": [{"Subscriber_Account": f"user{i}"} for i in range(5)],
        },
    )
    assert {item["Result"] for item in added["SubscriberList"]} == {1}
    im.rest(
        oa, "modify_official_account_base_info", {"Official_Account": account, "Introduction": "hi"}
    )
    im.rest(
        oa,
        "modify_subscriber_info",
        {"Official_Account": account, "Subscriber_Account": "user0", "CustomString": "vip"},
    )

    subscribers: list[str] = []
    cursor = ""
    while True:
        page = im.rest(
            oa, "get_subscriber_info", {"Official_Account": account, "Limit": 2, "Next": cursor}
        )
        subscribers += [s["Subscriber_Account"] for s in page["SubscriberList"]]
        cursor = page["Next"]
        if cursor == "":
            break
    assert sorted(subscribers) == [f"user{i}" for i in range(5)]

    followed = im.rest(
        oa,
        "get_subscribed_official_account_list",
        {"Subscriber_Account": "user0", "Limit": 200, "Offset": 0},
    )
    assert followed["CompleteFlag"] == 1
    assert followed["OfficialAccountInfoList"][0]["SelfInfo"]["CustomString"] == "vip"

    info = im.rest(
        oa, "get_official_account_info", {"OfficialAccountIdList": [{"Official_Account": account}]}
    )
    assert info["OfficialAccountInfoList"][0]["Introduction"] == "hi"
    assert info["OfficialAccountInfoList"][0]["SubscriberNum"] == 5

    sent = im.rest(
        oa,
        "send_official_account_msg",
        {
            "Official_Account": account,
            "Random": random.randint(0, 4294967295),
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello"}}],
        },
    )
    seq, one, server_time = sent["MsgKey"].split("_")
    assert (int(seq), one, int(server_time)) == (1, "1", sent["MsgTime"])
    history = im.rest(
        oa, "official_account_msg_get_simple", {"Official_Account": account, "ReqMsgNumber": 20}
    )
    assert [m["MsgKey"] for m in history["RspMsgList"]] == [sent["MsgKey"]]
    recalled = im.rest(
        oa,
        "official_account_msg_recall",
        {"Official_Account": account, "MsgKeyList": [sent["MsgKey"]]},
    )
    assert recalled["RecallRetList"] == [{"MsgKey": sent["MsgKey"], "RetCode": 0}]

    removed = im.rest(
        oa, "delete_subscriber", {"Official_Account": account, "SubscriberToDel_Account": ["user1"]}
    )
    assert removed["SubscriberList"] == [{"Subscriber_Account": "user1", "Result": 1}]
    im.rest(oa, "destroy_official_account", {"Official_Account": account})
    im.rest(login, "account_delete", {"DeleteItem": [{"UserID": "user4"}]})

    wx = im.http
    token = wx.get(
        "/cgi-bin/token",
        params={
            "grant_type": "client_credential",
            "appid": opts.wechat_appid,
            "secret": opts.wechat_secret,
        },
    ).json()["access_token"]
    assert (
        wx.post(
            "/cgi-bin/message/mass/speed/set", params={"access_token": token}, json={"speed": 2}
        ).json()["errcode"]
        == 0
    )
    assert wx.post(
        "/cgi-bin/message/mass/speed/get", params={"access_token": token}, json={}
    ).json() == {"speed": 2, "realspeed": 45}
    im.http.close()
