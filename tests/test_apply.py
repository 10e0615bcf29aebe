"""The apply engine on hand-made plans against the in-process sandbox: failures, skips, verify."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from reconciler.apply import GLOBAL, ApplyResult, apply_plan, render_result
from reconciler.changes import Change
from reconciler.config import Limits, Safety, SandboxTarget
from reconciler.connect import Providers, connect
from reconciler.diff import Diff
from reconciler.kinds.inventory import LedgerWrite
from reconciler.kinds.mass_speed import SetMassSpeed
from reconciler.kinds.official_account import (
    AddSubscribers,
    CreateAccount,
    DestroyAccount,
    FieldChange,
    ModifyAccount,
    ProfileChange,
    Record,
    SetSubscriberProfiles,
)
from reconciler.kinds.user_accounts import ImportUsers
from reconciler.ledger import slot_id
from reconciler.model import ProfileField
from reconciler.plan import Fingerprint, TargetIdentity, assemble_plan
from reconciler.record import LastApplied
from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.server import Sandbox, SandboxOptions

INVENTORY = "reconciler-inventory"
TOO_LONG = "x" * 40  # over the vendor's 32-byte UserID limit: its import fails
NAME = ProfileField.NAME


def run(
    db: Path,
    changes: Sequence[Change],
    *,
    fingerprints: Mapping[str, Fingerprint | None] | None = None,
    wechat: bool = True,
    verify_full: bool = False,
    inventory: str = INVENTORY,
) -> ApplyResult:
    plan = assemble_plan(
        Diff.of(changes),
        target=TargetIdentity("sandbox", "sandbox", path=str(db)),
        desired_digest="sha256:x",
        fingerprints=fingerprints or {},
        live_mass_speed=None,
        limits=Limits(),
        safety=Safety(),
    )

    async def main() -> ApplyResult:
        async with connect(SandboxTarget("sandbox", db), Limits()) as providers:
            chosen = providers if wechat else Providers(providers.im, None, providers.pacer)
            return await apply_plan(plan, chosen, inventory_user=inventory, verify_full=verify_full)

    return asyncio.run(main())


def vendor(db: Path) -> tuple[Sandbox, SandboxClient, httpx.Client]:
    box = Sandbox(SandboxOptions(db_path=db))
    http = httpx.Client(transport=box.transport(), base_url="https://console.tim.qq.com")
    return box, SandboxClient(http, box.options), http


def seed(db: Path, *users: str, account: str | None = None, members: Sequence[str] = ()) -> None:
    box, client, http = vendor(db)
    try:
        client.account("multiaccount_import", {"Accounts": ["boss", INVENTORY, *users]})
        if account is not None:
            client.oa(
                "create_official_account",
                {"Owner_Account": "boss", "OfficialAccountUserID": account, "Name": "Old"},
            )
            if members:
                client.oa(
                    "add_subscriber",
                    {
                        "Official_Account": account,
                        "SubscriberList": [{"Subscriber_Account": m} for m in members],
                    },
                )
    finally:
        http.close()
        box.close()


def ledger_for(*created: str) -> LedgerWrite:
    """The ledger's first slot, new, recording `created` before they are sent."""
    empty: frozenset[str] = frozenset()
    return LedgerWrite(0, slot_id(INVENTORY, 0), False, empty, frozenset(created), empty)


def record(protect: bool = False) -> LastApplied:
    return LastApplied(fields=frozenset({NAME}), protect=protect, digest="sha256:d")


def test_an_owner_that_cannot_be_imported_skips_its_account(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    result = run(
        db,
        [
            ImportUsers(frozenset({"alice", TOO_LONG})),
            CreateAccount("@TOA#_a", TOO_LONG, ((NAME, "A"),)),
            AddSubscribers("@TOA#_a", frozenset({"alice"})),
            Record("@TOA#_a", record(), subscribe=True),
        ],
    )
    assert result.exit_code == 3
    assert result.users_imported == 1
    assert result.reports["@TOA#_a"].applied == []
    assert result.reports["@TOA#_a"].skipped[0] == (
        f"create: its owner {TOO_LONG} could not be imported"
    )
    assert len(result.reports["@TOA#_a"].skipped) == 3
    assert [f.what for f in result.reports[GLOBAL].failed] == [f"import user {TOO_LONG}"]
    text = render_result(result)
    assert "Partly applied: run plan again to see exactly what remains." in text.splitlines()


def test_a_failed_modify_keeps_the_old_record(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed(db)
    result = run(
        db,
        [
            ModifyAccount("@TOA#_ghost", (FieldChange(NAME, "Old", "New"),)),
            Record("@TOA#_ghost", record(), subscribe=False),
        ],
    )
    assert result.exit_code == 1
    report = result.reports["@TOA#_ghost"]
    assert [f.code for f in report.failed] == [130004]
    assert report.skipped == ["record: a profile change failed"]
    assert render_result(result).splitlines()[-1] == "Nothing was applied."


def test_mass_speed_without_wechat_fails_cleanly(tmp_path: Path) -> None:
    result = run(tmp_path / "s.db", [SetMassSpeed("wechat", 0, 3)], wechat=False)
    assert result.exit_code == 1
    [failure] = result.reports[GLOBAL].failed
    assert str(failure) == "set mass speed: the target has no WeChat credentials"
    ok = run(tmp_path / "s.db", [SetMassSpeed("wechat", 0, 3)])
    assert (ok.exit_code, ok.mass_speed_set) == (0, True)


def test_destroy_skips_a_protected_account_and_destroys_the_rest(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed(db, account="@TOA#_old")
    seed(db, account="@TOA#_keep")
    result = run(
        db,
        [
            DestroyAccount("@TOA#_old", "boss", 0),
            DestroyAccount("@TOA#_keep", "boss", 0, protected=True),
        ],
    )
    assert result.destroyed == 1
    assert result.reports["@TOA#_keep"].skipped == ["destroy: the account is protected"]
    assert result.exit_code == 3
    box, client, http = vendor(db)
    try:
        info = client.oa(
            "get_official_account_info",
            {
                "OfficialAccountIdList": [
                    {"Official_Account": a} for a in ("@TOA#_old", "@TOA#_keep")
                ]
            },
        )
    finally:
        http.close()
        box.close()
    codes = {i["Official_Account"]: i.get("ErrorCode", 0) for i in info["OfficialAccountInfoList"]}
    assert codes == {"@TOA#_old": 130004, "@TOA#_keep": 0}


def test_subscribers_that_do_not_exist_fail_by_id_and_their_profiles_are_skipped(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    seed(db, "alice", account="@TOA#_a")
    result = run(
        db,
        [
            AddSubscribers("@TOA#_a", frozenset({"alice", "ghost"})),
            SetSubscriberProfiles(
                "@TOA#_a", (ProfileChange("alice", None, "vip"), ProfileChange("ghost", None, "x"))
            ),
        ],
        fingerprints={"@TOA#_a": Fingerprint("sha256:p", 0, None)},
        verify_full=True,
    )
    report = result.reports["@TOA#_a"]
    assert [f.what for f in report.failed] == ["add subscriber ghost"]
    assert report.skipped == ["subscriber profile ghost: not subscribed"]
    assert (result.subscribers_added, result.profiles_set) == (1, 1)
    assert result.unverified == {}
    assert result.exit_code == 3


def test_verification_reports_a_count_that_does_not_match(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed(db, "alice", "bob", account="@TOA#_a", members=["alice", "bob"])
    result = run(
        db,
        [ModifyAccount("@TOA#_a", (FieldChange(NAME, "Old", "New"),))],
        # the plan believed the account had 5 subscribers; it has 2
        fingerprints={"@TOA#_a": Fingerprint("sha256:p", 5, None)},
    )
    assert result.modified == 1
    assert result.unverified == {"@TOA#_a": ["2 subscribers, expected 5"]}
    assert result.exit_code == 3
    assert "unverified @TOA#_a: 2 subscribers, expected 5" in render_result(result).splitlines()


def test_full_verification_of_a_created_account(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seed(db, "alice", "bob")
    result = run(
        db,
        [
            ledger_for("@TOA#_new"),
            CreateAccount("@TOA#_new", "boss", ((NAME, "New"),)),
            AddSubscribers("@TOA#_new", frozenset({"alice", "bob"})),
            Record("@TOA#_new", record(), subscribe=True),
        ],
        verify_full=True,
    )
    assert (result.exit_code, result.created, result.unverified) == (0, 1, {})
    assert result.reports["@TOA#_new"].applied[0] == "create"
    assert render_result(result).splitlines()[-1].startswith("Applied: 1 created, 0 adopted")
