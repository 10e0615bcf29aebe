"""`reconciler import` and its output directory (issue 14, items 3 and 13): vendor-assigned ids,
file names that never collide, nothing half-written, no duplicates, the record's fields, the
`$schema` line and `fmt`'s layout. Through `cli.main` against the embedded sandbox."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_import import EXAMPLES, INVENTORY, raw_client

from reconciler.cli import main
from reconciler.model import is_vendor_assigned
from reconciler.record import decode_record

CONSOLE_ID = "@TOA#_@TOA#00000001"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def hashed(stem: str, account_id: str) -> str:
    return f"{stem}-{hashlib.sha256(account_id.encode()).hexdigest()[:8]}"


def vendor(tmp_path: Path, *calls: tuple[str, str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Out-of-band vendor calls on the embedded sandbox of `tmp_path` (what the console does)."""
    (tmp_path / ".reconciler").mkdir(exist_ok=True)
    box, client, http = raw_client(tmp_path / ".reconciler/sandbox.db")
    try:
        answers = []
        for api, action, body in calls:
            answers.append(client.account(action, body) if api == "im" else client.oa(action, body))
            assert answers[-1]["ErrorCode"] == 0, answers[-1]
        return answers
    finally:
        http.close()
        box.close()


def create(owner: str, name: str, custom_id: str | None = None) -> tuple[str, str, dict[str, Any]]:
    body: dict[str, Any] = {"Owner_Account": owner, "Name": name}
    if custom_id is not None:
        body["OfficialAccountUserID"] = custom_id
    return ("oa", "create_official_account", body)


def records(tmp_path: Path) -> dict[str, str]:
    [listed] = vendor(
        tmp_path, ("oa", "get_subscribed_official_account_list", {"Subscriber_Account": INVENTORY})
    )
    return {
        i["Official_Account"]: i["SelfInfo"]["CustomString"]
        for i in listed.get("OfficialAccountInfoList", [])
    }


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_vendor_assigned_shape() -> None:
    assert is_vendor_assigned(CONSOLE_ID)
    assert is_vendor_assigned("@TOA#_@TOA#0000ABcd")
    for other in ("@TOA#_@TOA#abc", "@TOA#_@TOA#000000001", "@TOA#00000001", "@TOA#_news"):
        assert not is_vendor_assigned(other), other


def test_an_account_made_in_the_console_imports_and_plans_clean(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [_, made] = vendor(
        here,
        ("im", "multiaccount_import", {"Accounts": ["boss", "reader"]}),
        create("boss", "Console"),  # no OfficialAccountUserID: the vendor assigns the id
    )
    assert made["OfficialAccountUserID"] == CONSOLE_ID
    vendor(here, ("oa", "add_subscriber", {
        "Official_Account": CONSOLE_ID, "SubscriberList": [{"Subscriber_Account": "reader"}]
    }))  # fmt: skip

    code, out, err = run(capsys, "import", CONSOLE_ID, "--out", "console")
    name = hashed("TOA_TOA_00000001", CONSOLE_ID) + ".yaml"
    assert (code, err) == (0, "")
    assert f"  {CONSOLE_ID}: {name} (1 subscribers; adopted)" in out.splitlines()
    assert (here / "console" / name).read_text().splitlines()[5:14] == [
        "kind: OfficialAccount",
        "metadata:",
        "  id: '@TOA#_@TOA#00000001'",
        "spec:",
        "  owner: boss",
        "  name: Console",
        "  maxSubscriberNum: 100000",
        "  subscribers:",
        "    policy: additive",
    ]
    assert run(capsys, "validate", "console")[:2] == (0, "1 document valid\n")
    assert run(capsys, "fmt", "--check", "console")[0] == 0
    code, out, _ = run(capsys, "plan", "console", "--detailed-exitcode")
    assert code == 0, out
    assert "No changes. The live system matches the manifests." in out.splitlines()


def test_a_manifest_never_creates_a_vendor_assigned_id(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "m").mkdir()
    (here / "m/a.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: OfficialAccount\n"
        "metadata:\n  id: '@TOA#_@TOA#0000abcd'\nspec:\n  owner: boss\n  name: Ghost\n"
    )
    vendor(here, ("im", "multiaccount_import", {"Accounts": ["boss"]}))
    code, out, _ = run(capsys, "plan", "m")
    assert code == 1
    assert (
        "  @TOA#_@TOA#0000abcd: m/a.yaml:4:7: metadata.id: the vendor assigns ids of this shape,"
        " so a manifest can only adopt an existing account with one, and the target has none;"
        " declare a custom id to create an account (reference section 4.4)"
    ) in out.splitlines()
    # any other id under the reserved prefix stays refused by validate, as before
    (here / "m/a.yaml").write_text(
        (here / "m/a.yaml").read_text().replace("@TOA#_@TOA#0000abcd", "@TOA#_@TOA#abc")
    )
    code, out, _ = run(capsys, "validate", "m")
    assert code == 1
    assert out.startswith("m/a.yaml:4:7: metadata.id: '@TOA#_@TOA#abc' starts with '@TOA#_@TOA#'")


def test_ids_that_sanitise_alike_never_collide(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = ["@TOA#_a+b", "@TOA#_a=b", "@TOA#_mass-speed", "@TOA#_A+B"]
    vendor(
        here,
        ("im", "multiaccount_import", {"Accounts": ["boss"]}),
        *(create("boss", f"Account {i}", i) for i in ids),
    )
    code, out, err = run(capsys, "import", *ids, "--out", "x")
    assert (code, err) == (0, "")
    code, out, err = run(capsys, "import", "--all-owned", "--out", "all")
    assert (code, err) == (0, "")
    expected = sorted(
        [
            hashed("A_B", "@TOA#_A+B") + ".yaml",
            hashed("a_b", "@TOA#_a+b") + ".yaml",
            hashed("a_b", "@TOA#_a=b") + ".yaml",
            hashed("mass-speed", "@TOA#_mass-speed") + ".yaml",
        ]
    )
    assert sorted(p.name for p in (here / "x").iterdir()) == expected
    written = sorted(p.name for p in (here / "all").iterdir())
    assert written == sorted([*expected, "mass-speed.yaml"])
    for directory in ("x", "all"):
        code, out, _ = run(capsys, "plan", directory, "--detailed-exitcode")
        assert code == 0, out


def test_a_failed_import_writes_nothing(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The vendor accepts a UserID the manifests do not ('bad user'): the written manifest would
    not validate, and neither it nor the good account's file, nor a staging directory, is left."""
    vendor(
        here,
        ("im", "multiaccount_import", {"Accounts": ["boss", "bad user"]}),
        create("boss", "Good", "@TOA#_good"),
        create("boss", "Bad", "@TOA#_bad"),
        ("oa", "add_subscriber", {
            "Official_Account": "@TOA#_bad", "SubscriberList": [{"Subscriber_Account": "bad user"}]
        }),
    )  # fmt: skip
    code, out, err = run(capsys, "import", "good", "bad", "--out", "deep/new/out")
    assert (code, out) == (1, "")
    assert err == (
        "deep/new/out/bad.yaml:16:9: spec.subscribers.members[0]: 'bad user' is not a valid"
        " UserID: 1 to 32 printable ASCII characters, no spaces (not written)\n"
    )
    assert list(here.iterdir()) == [here / ".reconciler"]
    assert records(here) == {}  # nothing recorded either

    (here / "out").mkdir()
    (here / "out/keep.txt").write_text("mine\n")
    assert run(capsys, "import", "good", "bad", "--out", "out")[0] == 1
    assert sorted(p.name for p in here.iterdir()) == [".reconciler", "out"]
    assert [p.name for p in (here / "out").iterdir()] == ["keep.txt"]


def test_an_account_the_output_declares_is_refused_or_left_as_is(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(EXAMPLES, here / "examples")
    config = ("--config", "examples/reconciler.yaml")
    assert run(capsys, "apply", "examples", "--auto-approve", *config)[0] == 0
    before = (here / "examples/accounts.yaml").read_text()
    recorded = records(here / "examples")

    code, out, err = run(capsys, "import", "news", "ops-alerts", "--out", "examples", *config)
    assert (code, out) == (1, "")
    assert err == (
        "error: already declared in examples: @TOA#_news at examples/accounts.yaml:7:7;"
        " @TOA#_ops-alerts at examples/accounts.yaml:48:7; import writes only accounts the output"
        " does not declare (edit that manifest, or choose another --out; nothing was written)\n"
    )
    code, out, err = run(capsys, "import", "--all-owned", "--out", "examples", *config)
    assert (code, err) == (0, "")
    assert out.splitlines()[1:6] == [
        "Imported 0 account(s) into examples:",
        "  @TOA#_news: already declared at examples/accounts.yaml:7:7; left as it is",
        "  @TOA#_ops-alerts: already declared at examples/accounts.yaml:48:7; left as it is",
        "  @TOA#_weather: already declared at examples/accounts.yaml:30:7; left as it is",
        "  mass speed: already declared at examples/mass-speed.yaml:4:1; left as it is",
    ]
    # the declarations keep their labels, ignoreChanges and absent; their records are untouched
    assert (here / "examples/accounts.yaml").read_text() == before
    assert records(here / "examples") == recorded
    code, out, _ = run(capsys, "plan", "examples", "--detailed-exitcode", *config)
    assert code == 0, out


def test_the_record_and_the_layout(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An owned account's record says which fields its manifest set: exactly those are written
    (weather sets no maxSubscriberNum); a `$schema` line points at the project's schemas; the
    files are in `fmt`'s layout."""
    shutil.copytree(EXAMPLES, here / "examples")
    shutil.copytree(EXAMPLES.parent / "schemas", here / "schemas")
    config = ("--config", "examples/reconciler.yaml")
    assert run(capsys, "apply", "examples", "--auto-approve", *config)[0] == 0
    code, out, err = run(capsys, "import", "--all-owned", "--out", "a/b", *config)
    assert (code, err) == (0, "")
    weather = (here / "a/b/weather.yaml").read_text().splitlines()
    assert weather[:3] == [
        "# yaml-language-server: $schema=../../schemas/OfficialAccount.schema.json",
        "# Imported from the live system by `reconciler import`: @TOA#_weather",
        "# Not known to the vendor, so not written: labels, subscribers.absent; ignoreChanges from"
        " the record.",
    ]
    # the weather bot's ignoreChanges comes back from the record's digest
    at = weather.index("  ignoreChanges:")
    assert weather[at + 1] == "    - customString"
    assert not any("maxSubscriberNum" in line for line in weather)
    speed = (here / "a/b/mass-speed.yaml").read_text().splitlines()
    assert speed[0] == "# yaml-language-server: $schema=../../schemas/MassSpeed.schema.json"
    assert run(capsys, "fmt", "--check", "a/b") == (0, "", "")
    assert {f.value for f in decode_record(records(here / "examples")["@TOA#_weather"]).fields} == {
        "name", "introduction", "faceUrl", "organization", "customString"
    }  # fmt: skip
    code, out, _ = run(capsys, "plan", "a/b", "--detailed-exitcode", *config)
    assert code == 0, out


def test_importing_an_owned_account_never_takes_over_its_fields(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ops-alerts sets no faceUrl; someone sets one by hand. Importing it (say, to look at it)
    keeps faceUrl unmanaged, so planning the original manifests still leaves it alone."""
    shutil.copytree(EXAMPLES, here / "examples")
    config = ("--config", "examples/reconciler.yaml")
    assert run(capsys, "apply", "examples", "--auto-approve", *config)[0] == 0
    vendor(here / "examples", ("oa", "modify_official_account_base_info", {
        "Official_Account": "@TOA#_ops-alerts", "FaceUrl": "https://x.example/by-hand.png"
    }))  # fmt: skip
    assert run(capsys, "import", "ops-alerts", "--out", "look", *config)[0] == 0
    assert "faceUrl" not in (here / "look/ops-alerts.yaml").read_text()
    code, out, _ = run(capsys, "plan", "examples", "--detailed-exitcode", *config)
    assert code == 0, out


def test_a_member_set_never_takes_a_declared_set_name(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readers = [f"reader{i:02d}" for i in range(60)]  # over 50: a member file and its set
    vendor(
        here,
        ("im", "multiaccount_import", {"Accounts": ["boss", *readers]}),
        create("boss", "Big", "@TOA#_big"),
        ("oa", "add_subscriber", {
            "Official_Account": "@TOA#_big",
            "SubscriberList": [{"Subscriber_Account": r} for r in readers],
        }),
    )  # fmt: skip
    (here / "m").mkdir()
    (here / "m/sets.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: SubscriberSet\nmetadata: {name: big-subscribers}\n"
        "spec:\n  members: [boss]\n"
    )
    code, out, err = run(capsys, "import", "big", "--out", "m")
    assert (code, err) == (0, "")
    name = hashed("big-subscribers", "@TOA#_big")
    assert f"  name: {name}" in (here / "m/big.yaml").read_text().splitlines()
    assert run(capsys, "validate", "m")[:2] == (0, "3 documents valid\n")
    code, out, _ = run(capsys, "plan", "m", "--detailed-exitcode")
    assert code == 0, out
