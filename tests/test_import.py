"""`reconciler import` on the embedded sandbox: round trips to a plan with no changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from reconciler.cli import main
from reconciler.importer import short_id
from reconciler.record import decode_record
from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.server import Sandbox, SandboxOptions

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
INVENTORY = "reconciler-inventory"


def raw_client(db: Path) -> tuple[Sandbox, SandboxClient, httpx.Client]:
    box = Sandbox(SandboxOptions(db_path=db))
    http = httpx.Client(transport=box.transport(), base_url="https://console.tim.qq.com")
    return box, SandboxClient(http, box.options), http


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_short_ids() -> None:
    assert short_id("@TOA#_news") == "news"
    assert short_id("@TOA#_@TOA#abc") == "@TOA#_@TOA#abc"


def test_import_all_owned_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    assert run(capsys, "apply", "examples", "--auto-approve")[0] == 0

    # the sandbox's database is the one beside examples/reconciler.yaml (issue 14, item 8)
    config = ("--config", "examples/reconciler.yaml")
    code, out, err = run(capsys, "import", "--all-owned", "--out", "imported", *config)
    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == [
        "Imported 3 account(s) into imported:",
        "  @TOA#_news: news.yaml (996 subscribers, members in news.members.txt; already owned)",
        "  @TOA#_ops-alerts: ops-alerts.yaml (4 subscribers; already owned)",
        "  @TOA#_weather: weather.yaml (8 subscribers; already owned)",
        "  mass speed: mass-speed.yaml",
        "Each account is recorded in the inventory; `reconciler plan` on these files shows no"
        " changes.",
    ]
    assert len((tmp_path / "imported/news.members.txt").read_text().splitlines()) == 996
    news = (tmp_path / "imported/news.yaml").read_text()
    assert "protect: true" in news.splitlines()[14]
    code, out, _ = run(capsys, "plan", "imported", "--detailed-exitcode", *config)
    assert code == 0
    assert "No changes. The live system matches the manifests." in out.splitlines()


def test_import_adopts_an_account_made_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".reconciler").mkdir()
    box, client, http = raw_client(tmp_path / ".reconciler/sandbox.db")
    users = [f"user{i:03d}" for i in range(60)]
    client.account("multiaccount_import", {"Accounts": ["boss", *users]})
    client.oa(
        "create_official_account",
        {
            "Owner_Account": "boss",
            "OfficialAccountUserID": "@TOA#_handmade",
            "Name": "Yes",  # a name YAML would read as a boolean unless quoted
            "Introduction": "made by hand",
        },
    )
    client.oa(
        "add_subscriber",
        {
            "Official_Account": "@TOA#_handmade",
            "SubscriberList": [{"Subscriber_Account": u} for u in users],
        },
    )
    client.oa(
        "modify_subscriber_info",
        {
            "Official_Account": "@TOA#_handmade",
            "Subscriber_Account": "user007",
            "CustomString": "1",
        },
    )
    http.close()
    box.close()

    code, out, err = run(capsys, "import", "handmade", "--out", "adopted")
    assert (code, err) == (0, "")
    assert (
        "  @TOA#_handmade: handmade.yaml (60 subscribers, members in handmade.members.txt;"
        " adopted)" in out.splitlines()
    )
    text = (tmp_path / "adopted/handmade.yaml").read_text()
    assert "  name: 'Yes'" in text.splitlines()
    assert "      user007: '1'" in text.splitlines()

    code, out, _ = run(capsys, "plan", "adopted", "--detailed-exitcode")
    assert code == 0, out

    box, client, http = raw_client(tmp_path / ".reconciler/sandbox.db")
    listed = client.oa(
        "get_subscribed_official_account_list",
        {"Subscriber_Account": INVENTORY},
    )
    http.close()
    box.close()
    [item] = listed["OfficialAccountInfoList"]
    assert item["Official_Account"] == "@TOA#_handmade"
    assert decode_record(item["SelfInfo"]["CustomString"]).known


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["import"], "error: import takes account ids or --all-owned (one of them)"),
        (
            ["import", "x", "--all-owned"],
            "error: import takes account ids or --all-owned (one of them)",
        ),
        (["import", "ghost"], "error: no such official account: @TOA#_ghost (nothing was written)"),
        (
            ["import", "--all-owned"],
            "error: the inventory (reconciler-inventory) owns no account: nothing to import",
        ),
    ],
)
def test_import_errors(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert (code, out, err) == (1, "", message + "\n")
    assert not (tmp_path / "imported").exists()


def test_import_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    assert run(capsys, "apply", "examples", "--auto-approve")[0] == 0
    (tmp_path / "imported").mkdir()
    (tmp_path / "imported/ops-alerts.yaml").write_text("mine\n")
    config = ("--config", "examples/reconciler.yaml")  # its sandbox is beside it
    code, out, err = run(capsys, "import", "ops-alerts", "--out", "imported", *config)
    assert (code, out) == (1, "")
    assert err == "error: imported/ops-alerts.yaml exists; remove it or choose another --out\n"
    assert (tmp_path / "imported/ops-alerts.yaml").read_text() == "mine\n"
