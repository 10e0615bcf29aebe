"""The sandbox's official-account commands over real HTTP (reference sections 4-6)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.sandbox.client import SandboxClient

OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
NEWS = "@TOA#_news"


def code(doc: dict[str, Any]) -> int:
    assert doc["ActionStatus"] == ("OK" if doc["ErrorCode"] == 0 else "FAIL")
    result: int = doc["ErrorCode"]
    return result


def users(client: SandboxClient, *ids: str) -> None:
    for start in range(0, len(ids), 100):
        doc = client.account("multiaccount_import", {"Accounts": list(ids[start : start + 100])})
        assert doc["FailAccounts"] == []


def create(client: SandboxClient, oa_id: str = NEWS, **fields: Any) -> dict[str, Any]:
    return client.oa(
        "create_official_account",
        {"Owner_Account": "owner", "OfficialAccountUserID": oa_id, "Name": "News", **fields},
    )


def subscribe(client: SandboxClient, oa_id: str, ids: list[str]) -> list[int]:
    results = []
    for start in range(0, len(ids), 100):
        doc = client.oa(
            "add_subscriber",
            {
                "Official_Account": oa_id,
                "SubscriberList": [{"Subscriber_Account": u} for u in ids[start : start + 100]],
            },
        )
        results += [item["Result"] for item in doc["SubscriberList"]]
    return results


@pytest.fixture
def client(sandbox_client: SandboxClient) -> SandboxClient:
    users(sandbox_client, "owner", "alice", "bob", "carol")
    return sandbox_client


def info(client: SandboxClient, *ids: str, **body: Any) -> list[dict[str, Any]]:
    doc = client.oa(
        "get_official_account_info",
        {"OfficialAccountIdList": [{"Official_Account": i} for i in ids], **body},
    )
    assert code(doc) == 0
    items: list[dict[str, Any]] = doc["OfficialAccountInfoList"]
    return items


def test_create_read_modify_destroy(client: SandboxClient) -> None:
    now = int(client.clock())
    doc = create(
        client,
        Introduction="Morning headlines",
        FaceUrl="https://example.com/n.png",
        Organization="Example Media",
        CustomString="tier=gold",
        MaxSubscriberNum=500,
    )
    assert doc == {**OK, "OfficialAccountUserID": NEWS}
    [item] = info(client, NEWS)
    assert abs(item.pop("CreateTime") - now) <= 2
    assert item == {
        **OK,
        "Official_Account": NEWS,
        "Name": "News",
        "Introduction": "Morning headlines",
        "FaceUrl": "https://example.com/n.png",
        "Organization": "Example Media",
        "CustomString": "tier=gold",
        "MaxSubscriberNum": 500,
        "Owner_Account": "owner",
        "LastMsgTime": 0,
        "SubscriberNum": 0,
    }
    modify = {"Official_Account": NEWS, "Name": "Daily News", "CustomString": ""}
    assert client.oa("modify_official_account_base_info", modify) == OK
    # The doocs SDK spells the id `OfficialAccount` (reference section 9, item 1).
    modify2 = {"OfficialAccount": NEWS, "Introduction": "Evening"}
    assert client.oa("modify_official_account_base_info", modify2) == OK
    [item] = info(
        client,
        NEWS,
        ResponseFilter={"OfficialAccountBaseInfoFilter": ["Name", "Introduction", "CustomString"]},
    )
    assert item == {
        **OK,
        "Official_Account": NEWS,
        "Name": "Daily News",
        "Introduction": "Evening",
        "CustomString": "",
    }
    assert client.oa("destroy_official_account", {"Official_Account": NEWS}) == OK
    assert code(client.oa("destroy_official_account", {"Official_Account": NEWS})) == 130004
    [gone] = info(client, NEWS)
    assert gone == {
        "ActionStatus": "FAIL",
        "ErrorCode": 130004,
        "ErrorInfo": "official account does not exist or has been destroyed",
        "Official_Account": NEWS,
    }
    effects = [e["effects"] for e in client.log() if e["effects"]][-4:]
    assert effects == [
        [["account_created", NEWS]],
        [["account_modified", NEWS, "CustomString,Name"]],
        [["account_modified", NEWS, "Introduction"]],
        [["account_destroyed", NEWS]],
    ]


def test_system_assigned_ids(client: SandboxClient) -> None:
    first = client.oa("create_official_account", {"Owner_Account": "owner", "Name": "A"})
    second = client.oa("create_official_account", {"Owner_Account": "owner", "Name": "B"})
    ids = [first["OfficialAccountUserID"], second["OfficialAccountUserID"]]
    assert all(i.startswith("@TOA#_@TOA#") for i in ids)
    assert ids[0] != ids[1]
    assert [i["Name"] for i in info(client, *ids)] == ["A", "B"]


@pytest.mark.parametrize(
    ("oa_id", "expected"),
    [
        ("news", 130007),  # no prefix
        ("@TOA#_@TOA#abc", 130007),  # the system prefix is reserved
        ("@TOA#_" + "x" * 43, 130007),  # 49 bytes
        ("@TOA#_caf\u00e9", 130007),  # not printable ASCII
        ("@TOA#_" + "x" * 42, 0),  # 48 bytes
        ("@TOA#_a b~", 0),
    ],
)
def test_custom_id_rules(client: SandboxClient, oa_id: str, expected: int) -> None:
    assert code(create(client, oa_id)) == expected


def test_custom_id_in_use_is_130008(client: SandboxClient) -> None:
    assert code(create(client)) == 0
    assert code(create(client)) == 130008


def test_owner_must_be_imported(client: SandboxClient) -> None:
    body = {"Owner_Account": "stranger", "OfficialAccountUserID": NEWS, "Name": "N"}
    assert code(client.oa("create_official_account", body)) == 70107
    body["Owner_Account"] = "administrator"  # the admin counts as imported
    assert code(client.oa("create_official_account", body)) == 0


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("Name", 150),
        ("Introduction", 400),
        ("FaceUrl", 500),
        ("Organization", 500),
        ("CustomString", 3000),
    ],
)
def test_utf8_byte_limits(client: SandboxClient, field: str, limit: int) -> None:
    # A CJK character is 3 bytes: limit // 3 fit, one more does not.
    fits, over = "\u4e2d" * (limit // 3), "\u4e2d" * (limit // 3 + 1)
    assert code(create(client, "@TOA#_a", **{field: over})) == 6017
    assert code(create(client, "@TOA#_a", **{field: fits})) == 0
    modify = {"Official_Account": "@TOA#_a", field: over}
    assert code(client.oa("modify_official_account_base_info", modify)) == 6017


def test_unknown_account_is_130004_everywhere(client: SandboxClient) -> None:
    ghost = {"Official_Account": "@TOA#_ghost"}
    for command, body in [
        ("destroy_official_account", ghost),
        ("modify_official_account_base_info", {**ghost, "Name": "x"}),
        ("get_subscriber_info", {**ghost, "Next": ""}),
        ("add_subscriber", {**ghost, "SubscriberList": [{"Subscriber_Account": "alice"}]}),
        ("delete_subscriber", {**ghost, "SubscriberToDel_Account": ["alice"]}),
        ("modify_subscriber_info", {**ghost, "Subscriber_Account": "alice", "CustomString": ""}),
        (
            "send_official_account_msg",
            {**ghost, "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "x"}}]},
        ),
        ("official_account_msg_get_simple", ghost),
    ]:
        assert code(client.oa(command, body)) == 130004, command


def test_get_info_batch_max_is_50(client: SandboxClient) -> None:
    ids = [{"Official_Account": f"@TOA#_{i}"} for i in range(51)]
    doc = client.oa("get_official_account_info", {"OfficialAccountIdList": ids})
    assert code(doc) == 6017
    doc = client.oa("get_official_account_info", {"OfficialAccountIdList": ids[:50]})
    assert code(doc) == 0
    assert len(doc["OfficialAccountInfoList"]) == 50


def test_add_and_delete_subscribers_per_item_results(client: SandboxClient) -> None:
    create(client)
    assert subscribe(client, NEWS, ["alice", "bob", "stranger", "alice"]) == [1, 1, 0, 2]
    [item] = info(client, NEWS)
    assert item["SubscriberNum"] == 2
    doc = client.oa(
        "delete_subscriber",
        {"Official_Account": NEWS, "SubscriberToDel_Account": ["alice", "carol"]},
    )
    assert doc == {
        **OK,
        "SubscriberList": [
            {"Subscriber_Account": "alice", "Result": 1},
            {"Subscriber_Account": "carol", "Result": 2},
        ],
    }
    # The field table's spelling (reference section 9, item 2).
    doc = client.oa(
        "delete_subscriber",
        {"Official_Account": NEWS, "SubscriberList": [{"Subscriber_Account": "bob"}]},
    )
    assert doc["SubscriberList"] == [{"Subscriber_Account": "bob", "Result": 1}]
    assert info(client, NEWS)[0]["SubscriberNum"] == 0
    effects = [e["effects"] for e in client.log() if e["api"].endswith("_subscriber")]
    assert effects == [
        [["subscriber_added", NEWS, "alice"], ["subscriber_added", NEWS, "bob"]],
        [["subscriber_removed", NEWS, "alice"]],
        [["subscriber_removed", NEWS, "bob"]],
    ]


def test_membership_batch_max_is_100(client: SandboxClient) -> None:
    create(client)
    many = [f"u{i}" for i in range(101)]
    body = {"Official_Account": NEWS, "SubscriberList": [{"Subscriber_Account": u} for u in many]}
    assert code(client.oa("add_subscriber", body)) == 6017
    body2 = {"Official_Account": NEWS, "SubscriberToDel_Account": many}
    assert code(client.oa("delete_subscriber", body2)) == 6017
    bad = {"Official_Account": NEWS, "SubscriberList": [{"Subscriber_Account": 42}]}
    assert code(client.oa("add_subscriber", bad)) == 60015


def test_max_subscriber_num_is_enforced(client: SandboxClient) -> None:
    create(client, MaxSubscriberNum=2)
    assert subscribe(client, NEWS, ["alice", "bob", "carol"]) == [1, 1, 0]
    client.oa(
        "modify_official_account_base_info", {"Official_Account": NEWS, "MaxSubscriberNum": 3}
    )
    assert subscribe(client, NEWS, ["carol"]) == [1]


def test_modify_subscriber_info(client: SandboxClient) -> None:
    create(client)
    subscribe(client, NEWS, ["alice"])
    body = {"Official_Account": NEWS, "Subscriber_Account": "alice", "CustomString": "vip"}
    assert client.oa("modify_subscriber_info", body) == OK
    assert code(client.oa("modify_subscriber_info", {**body, "CustomString": "x" * 3001})) == 6017
    assert code(client.oa("modify_subscriber_info", {**body, "Subscriber_Account": "bob"})) == 6017
    del body["CustomString"]
    assert code(client.oa("modify_subscriber_info", body)) == 6017
    doc = client.oa("get_subscriber_info", {"Official_Account": NEWS, "Next": ""})
    [sub] = doc["SubscriberList"]
    assert sub["CustomString"] == "vip"
    assert sub["MsgFlag"] == "AcceptAndNotify"
    assert sub["LastSendMsgTime"] == 0
    assert isinstance(sub["SubscribeTime"], int)


def walk_subscribers(client: SandboxClient, oa_id: str, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = ""
    while True:
        doc = client.oa(
            "get_subscriber_info", {"Official_Account": oa_id, "Limit": limit, "Next": cursor}
        )
        assert code(doc) == 0
        seen += [s["Subscriber_Account"] for s in doc["SubscriberList"]]
        cursor = doc["Next"]
        if cursor == "":
            return seen


def test_subscriber_paging_to_the_end(client: SandboxClient) -> None:
    ids = [f"user{i:04d}" for i in range(450)]
    users(client, *ids)
    create(client)
    subscribe(client, NEWS, ids)
    assert walk_subscribers(client, NEWS, 200) == sorted(ids)
    doc = client.oa("get_subscriber_info", {"Official_Account": NEWS, "Next": ""})
    assert len(doc["SubscriberList"]) == 200  # Limit omitted: 200
    assert doc["SubscriberNum"] == 450
    for limit in (0, 201):
        assert (
            code(
                client.oa(
                    "get_subscriber_info", {"Official_Account": NEWS, "Limit": limit, "Next": ""}
                )
            )
            == 6017
        )
    bad = {"Official_Account": NEWS, "Next": "not a cursor!"}
    assert code(client.oa("get_subscriber_info", bad)) == 6017


def test_subscriber_paging_while_the_set_changes(client: SandboxClient) -> None:
    stable = [f"s{i:03d}" for i in range(0, 300, 2)]
    churn = [f"s{i:03d}" for i in range(1, 300, 2)]
    users(client, *stable, *churn, "a-new", "z-new")
    create(client)
    subscribe(client, NEWS, stable + churn)
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        doc = client.oa(
            "get_subscriber_info", {"Official_Account": NEWS, "Limit": 40, "Next": cursor}
        )
        seen += [s["Subscriber_Account"] for s in doc["SubscriberList"]]
        cursor = doc["Next"]
        if cursor == "":
            break
        pages += 1
        # Between pages, remove some churners and add others on both sides of the cursor.
        gone = churn[pages * 5 : pages * 5 + 5]
        client.oa("delete_subscriber", {"Official_Account": NEWS, "SubscriberToDel_Account": gone})
        subscribe(client, NEWS, ["a-new", "z-new"])
    present_throughout = set(stable)
    assert [s for s in seen if s in present_throughout] == sorted(present_throughout)
    assert len(seen) == len(set(seen))


def walk_subscribed(client: SandboxClient, user: str, limit: int) -> tuple[list[str], list[int]]:
    seen: list[str] = []
    totals: list[int] = []
    offset = 0
    while True:
        doc = client.oa(
            "get_subscribed_official_account_list",
            {"Subscriber_Account": user, "Limit": limit, "Offset": offset},
        )
        assert code(doc) == 0
        seen += [a["Official_Account"] for a in doc["OfficialAccountInfoList"]]
        totals.append(doc["TotalCount"])
        if doc["CompleteFlag"] == 1:
            return seen, totals
        offset = doc["Next"]


def test_subscribed_list_paging_and_filters(client: SandboxClient) -> None:
    oa_ids = [f"@TOA#_{i:03d}" for i in range(5)]
    for oa_id in oa_ids:
        create(client, oa_id, Name=oa_id[-3:])
        subscribe(client, oa_id, ["alice"])
    client.oa(
        "modify_subscriber_info",
        {"Official_Account": oa_ids[0], "Subscriber_Account": "alice", "CustomString": "p"},
    )
    seen, totals = walk_subscribed(client, "alice", 2)
    assert seen == oa_ids
    assert totals == [5, 5, 5]
    doc = client.oa(
        "get_subscribed_official_account_list",
        {
            "Subscriber_Account": "alice",
            "Limit": 1,
            "ResponseFilter": {
                "OfficialAccountBaseInfoFilter": ["Name", "SubscriberNum"],
                "SelfInfoFilter": ["CustomString"],
            },
        },
    )
    assert doc["OfficialAccountInfoList"] == [
        {
            "Official_Account": oa_ids[0],
            "Name": "000",
            "SubscriberNum": 1,
            "SelfInfo": {"CustomString": "p"},
        }
    ]
    assert doc["CompleteFlag"] == 0
    assert (
        code(
            client.oa(
                "get_subscribed_official_account_list",
                {"Subscriber_Account": "alice", "Limit": 201},
            )
        )
        == 6017
    )
    nobody = client.oa("get_subscribed_official_account_list", {"Subscriber_Account": "nobody"})
    assert nobody == {
        **OK,
        "OfficialAccountInfoList": [],
        "TotalCount": 0,
        "CompleteFlag": 1,
        "Next": 0,
    }


def test_subscribed_list_paging_while_subscriptions_change(client: SandboxClient) -> None:
    oa_ids = [f"@TOA#_{i:03d}" for i in range(12)]
    for oa_id in oa_ids:
        create(client, oa_id)
        subscribe(client, oa_id, ["alice"])
    seen: list[str] = []
    offset, page = 0, 0
    while True:
        doc = client.oa(
            "get_subscribed_official_account_list",
            {"Subscriber_Account": "alice", "Limit": 3, "Offset": offset},
        )
        seen += [a["Official_Account"] for a in doc["OfficialAccountInfoList"]]
        if doc["CompleteFlag"] == 1:
            break
        offset = doc["Next"]
        page += 1
        # An account alice already passed stops and restarts following; one ahead is dropped.
        client.oa(
            "delete_subscriber",
            {"Official_Account": oa_ids[0], "SubscriberToDel_Account": ["alice"]},
        )
        subscribe(client, oa_ids[0], ["alice"])
        if page == 1:
            client.oa(
                "delete_subscriber",
                {"Official_Account": oa_ids[10], "SubscriberToDel_Account": ["alice"]},
            )
    throughout = [i for i in oa_ids[1:] if i != oa_ids[10]]
    assert [s for s in seen if s in throughout] == throughout
    assert len([s for s in seen if s in throughout]) == len(set(throughout))


def test_destroy_removes_memberships(client: SandboxClient) -> None:
    create(client)
    subscribe(client, NEWS, ["alice"])
    client.oa("destroy_official_account", {"Official_Account": NEWS})
    doc = client.oa("get_subscribed_official_account_list", {"Subscriber_Account": "alice"})
    assert doc["TotalCount"] == 0
    assert code(create(client)) == 0  # a destroyed custom id can be used again
    assert info(client, NEWS)[0]["SubscriberNum"] == 0
