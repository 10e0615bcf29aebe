"""The sandbox's `im_open_login_svc` and REST authentication, over real HTTP (reference 1-3)."""

from __future__ import annotations

import pytest

from reconciler import usersig
from reconciler.sandbox.client import SandboxClient

OK = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}


def fail(doc: dict[str, object]) -> tuple[object, object]:
    return doc["ActionStatus"], doc["ErrorCode"]


def test_account_import_is_idempotent_and_check_reports_it(sandbox_client: SandboxClient) -> None:
    assert sandbox_client.account("account_import", {"UserID": "alice", "Nick": "A"}) == OK
    assert sandbox_client.account("account_import", {"UserID": "alice"}) == OK
    # Older intl pages name the field `Identifier` (reference section 9, item 10).
    assert sandbox_client.account("account_import", {"Identifier": "bob"}) == OK
    doc = sandbox_client.account(
        "account_check",
        {"CheckItem": [{"UserID": "alice"}, {"UserID": "bob"}, {"UserID": "nobody"}]},
    )
    assert doc == {
        **OK,
        "ResultItem": [
            {"UserID": "alice", "ResultCode": 0, "ResultInfo": "", "AccountStatus": "Imported"},
            {"UserID": "bob", "ResultCode": 0, "ResultInfo": "", "AccountStatus": "Imported"},
            {"UserID": "nobody", "ResultCode": 0, "ResultInfo": "", "AccountStatus": "NotImported"},
        ],
    }
    imported = [e["effects"] for e in sandbox_client.log() if e["effects"]]
    assert imported == [[["user_imported", "alice"]], [["user_imported", "bob"]]]


def test_account_import_limits(sandbox_client: SandboxClient) -> None:
    assert fail(sandbox_client.account("account_import", {"UserID": "u" * 33})) == ("FAIL", 70402)
    assert fail(sandbox_client.account("account_import", {})) == ("FAIL", 70402)
    assert fail(sandbox_client.account("account_import", {"UserID": 7})) == ("FAIL", 70402)
    long_nick = {"UserID": "alice", "Nick": "n" * 501}
    assert fail(sandbox_client.account("account_import", long_nick)) == ("FAIL", 40601)
    assert sandbox_client.account("account_import", {"UserID": "é" * 16}) == OK  # 32 bytes


def test_multiaccount_import_both_forms(sandbox_client: SandboxClient) -> None:
    doc = sandbox_client.account("multiaccount_import", {"Accounts": ["a1", "a2", "x" * 33]})
    assert doc == {**OK, "FailAccounts": ["x" * 33]}
    doc = sandbox_client.account(
        "multiaccount_import",
        {"AccountList": [{"UserID": "b1", "Nick": "B"}, {"UserID": ""}, {"Nick": "no id"}]},
    )
    assert doc == {**OK, "FailAccounts": ["", None]}
    checked = sandbox_client.account(
        "account_check", {"CheckItem": [{"UserID": u} for u in ("a1", "a2", "b1")]}
    )
    assert [i["AccountStatus"] for i in checked["ResultItem"]] == ["Imported"] * 3


def test_batch_maxima_are_100(sandbox_client: SandboxClient) -> None:
    ids = [f"u{i}" for i in range(101)]
    for command, body in [
        ("multiaccount_import", {"Accounts": ids}),
        ("multiaccount_import", {"AccountList": [{"UserID": i} for i in ids]}),
        ("account_check", {"CheckItem": [{"UserID": i} for i in ids]}),
        ("account_delete", {"DeleteItem": [{"UserID": i} for i in ids]}),
    ]:
        assert fail(sandbox_client.account(command, body)) == ("FAIL", 70402), command
        body_100 = {k: v[:100] for k, v in body.items()}
        assert sandbox_client.account(command, body_100)["ErrorCode"] == 0, command


def test_account_delete(sandbox_client: SandboxClient) -> None:
    sandbox_client.account("multiaccount_import", {"Accounts": ["alice"]})
    doc = sandbox_client.account(
        "account_delete",
        {"DeleteItem": [{"UserID": "alice"}, {"UserID": "ghost"}, {"UserID": "administrator"}]},
    )
    assert doc == {
        **OK,
        "ResultItem": [
            {"ResultCode": 0, "ResultInfo": "", "UserID": "alice"},
            {
                "ResultCode": 70107,
                "ResultInfo": "Err_TLS_PT_Open_Login_Account_Not_Exist",
                "UserID": "ghost",
            },
            {
                "ResultCode": 70402,
                "ResultInfo": "cannot delete the App admin",
                "UserID": "administrator",
            },
        ],
    }
    check = sandbox_client.account("account_check", {"CheckItem": [{"UserID": "alice"}]})
    assert check["ResultItem"][0]["AccountStatus"] == "NotImported"


def test_admin_counts_as_imported(sandbox_client: SandboxClient) -> None:
    doc = sandbox_client.account("account_check", {"CheckItem": [{"UserID": "administrator"}]})
    assert doc["ResultItem"][0]["AccountStatus"] == "Imported"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"key": "wrong-key"}, 70009),
        ({"sdkappid": 1400000001}, 70020),
        ({"identifier": "alice"}, 70403),
    ],
)
def test_auth_errors(sandbox_client: SandboxClient, query: dict[str, object], code: int) -> None:
    doc = sandbox_client.account("account_check", {"CheckItem": [{"UserID": "a"}]}, **query)
    assert doc["ActionStatus"] == "FAIL"
    assert doc["ErrorCode"] == code
    assert isinstance(doc["ErrorInfo"], str)
    assert doc["ErrorInfo"]


def _raw(client: SandboxClient, api: str, **params: str) -> dict[str, object]:
    response = client.http.post(f"/v4/{api}", params=params, content=b'{"CheckItem": []}')
    assert response.status_code == 200
    doc: dict[str, object] = response.json()
    return doc


def test_sig_checks_in_vendor_order(sandbox_client: SandboxClient) -> None:
    opts = sandbox_client.options
    now = int(sandbox_client.clock())
    api = "im_open_login_svc/account_check"
    admin_sig = usersig.generate(opts.sdkappid, opts.secret_key, opts.admin, now=now)
    base = {"sdkappid": str(opts.sdkappid), "identifier": opts.admin, "random": "7"}
    # A sig for another app, sent to this app: 70014.
    other_app = usersig.generate(opts.sdkappid + 1, opts.secret_key, opts.admin, now=now)
    assert fail(_raw(sandbox_client, api, **base, usersig=other_app)) == ("FAIL", 70014)
    # A sig made for another identifier than the URL's: 70013.
    bob_sig = usersig.generate(opts.sdkappid, opts.secret_key, "bob", now=now)
    assert fail(_raw(sandbox_client, api, **base, usersig=bob_sig)) == ("FAIL", 70013)
    # Expired: issued two days ago, valid one day.
    old = usersig.generate(
        opts.sdkappid, opts.secret_key, opts.admin, now=now - 2 * 86400, expire=86400
    )
    assert fail(_raw(sandbox_client, api, **base, usersig=old)) == ("FAIL", 70001)
    # Garbled (truncated).
    assert fail(_raw(sandbox_client, api, **base, usersig=admin_sig[:20])) == ("FAIL", 70003)
    # Missing pieces of the URL.
    assert fail(_raw(sandbox_client, api, identifier=opts.admin, usersig=admin_sig)) == (
        "FAIL",
        60012,
    )
    assert fail(_raw(sandbox_client, api, sdkappid=str(opts.sdkappid))) == ("FAIL", 60004)


def test_non_admin_on_official_account_api_is_60010(sandbox_client: SandboxClient) -> None:
    sandbox_client.account("account_import", {"UserID": "alice"})
    doc = sandbox_client.oa(
        "get_official_account_info",
        {"OfficialAccountIdList": [{"Official_Account": "@TOA#_x"}]},
        identifier="alice",
    )
    assert fail(doc) == ("FAIL", 60010)
