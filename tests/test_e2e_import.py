"""`reconciler import` through the real CLI in a subprocess, against `reconciler sandbox serve`:
import, then plan the written files: no changes; then apply them after an edit."""

from __future__ import annotations

from pathlib import Path

from test_e2e_common import LEDGER_SLOT, Project, account_doc, apply, served_sandbox, users


def test_import_round_trip_over_real_http(tmp_path: Path) -> None:
    with served_sandbox(tmp_path / "sandbox.db") as server:
        project = Project(tmp_path / "project", server.base_url, server.db_path)
        project.root.mkdir()
        project.configure()
        vendor = project.vendor()
        try:
            members = [f"reader{i:03d}" for i in range(120)]
            vendor.import_users("boss", *members[:99])
            vendor.import_users(*members[99:])
            vendor.create("@TOA#_daily", "boss", "Daily", Introduction="by hand")
            vendor.add("@TOA#_daily", *members[:100])
            vendor.add("@TOA#_daily", *members[100:])
            vendor.set_profile("@TOA#_daily", "reader007", "vip")

            result = project.run("import", "daily", "--out", "imported")
            assert result.code == 0, result.text
            assert result.lines[1:3] == [
                "Imported 1 account(s) into imported:",
                "  @TOA#_daily: daily.yaml (120 subscribers, members in daily.members.txt;"
                " adopted)",
            ]
            assert vendor.owned() == {"@TOA#_daily"}

            plan = project.run("plan", "imported", "--detailed-exitcode")
            assert plan.code == 0, plan.text
            assert "No changes. The live system matches the manifests." in plan.lines

            text = (project.root / "imported/daily.yaml").read_text()
            (project.root / "imported/daily.yaml").write_text(
                text.replace("introduction: by hand", "introduction: from git")
            )
            applied = project.run("apply", "imported", "--auto-approve")
            assert applied.code == 0, applied.text
            assert vendor.profile("@TOA#_daily")["Introduction"] == "from git"
            assert vendor.members("@TOA#_daily") == set(members)
            again = project.run("plan", "imported", "--detailed-exitcode")
            assert again.code == 0, again.text
        finally:
            vendor.close()


def test_the_inventory_ledger_is_never_imported(project: Project) -> None:
    """After an apply with a create, the inventory user also subscribes to its ledger's slot:
    `import --all-owned` leaves it out, and naming it is refused."""
    project.manifests(account_doc("news", name="News"), users("ops_admin"))
    assert apply(project).code == 0
    everything = project.cli("import", "--all-owned", "--out", "imported")
    assert everything.code == 0, everything.text
    written = sorted(p.name for p in (project.root / "imported").iterdir())
    assert written == ["mass-speed.yaml", "news.yaml"]
    slot = LEDGER_SLOT + "0"
    refused = project.cli("import", slot, "--out", "other")
    assert (refused.code, refused.out) == (1, ""), refused.text
    assert refused.err == (
        f"error: {slot}: reconciler's own inventory ledger, not an account to import"
        " (nothing was written)\n"
    )
    assert not (project.root / "other").exists()


def test_a_console_made_account_imports_beside_declared_ones(tmp_path: Path) -> None:
    """A console-made account (vendor-assigned id) is imported into the manifests directory next
    to a declared account: that one is left as it is, the new file validates, is in `fmt`'s
    layout and plans to no changes; the manifest is what adopts it, never a create."""
    with served_sandbox(tmp_path / "sandbox.db") as server:
        project = Project(tmp_path / "project", server.base_url, server.db_path)
        project.root.mkdir()
        project.configure()
        project.manifests(account_doc("news", name="News"), users("ops_admin"))
        assert project.run("apply", "m", "--auto-approve").code == 0
        vendor = project.vendor()
        try:
            made = vendor.client.oa(
                "create_official_account", {"Owner_Account": "ops_admin", "Name": "Console"}
            )
            console_id = made["OfficialAccountUserID"]
            assert console_id == "@TOA#_@TOA#00000001"

            result = project.run("import", "--all-owned", console_id, "--out", "m")
            assert result.code == 1  # ids or --all-owned, not both
            result = project.run("import", console_id, "news", "--out", "m")
            assert (result.code, result.out) == (1, ""), result.text
            assert result.err == (
                "error: already declared in m: @TOA#_news at m/accounts.yaml:1:79; import writes"
                " only accounts the output does not declare (edit that manifest, or choose"
                " another --out; nothing was written)\n"
            )
            result = project.run("import", console_id, "--out", "m")
            assert result.code == 0, result.text
            [line] = [x for x in result.lines if x.startswith(f"  {console_id}:")]
            name = line.split(": ")[1].split(" ")[0]
            assert name.startswith("TOA_TOA_00000001-") and name.endswith(".yaml")
            assert sorted(p.name for p in (project.root / "m").iterdir()) == sorted(
                ["accounts.yaml", name]
            )
            assert vendor.owned() == {"@TOA#_news", console_id}
            assert project.run("fmt", "--check", f"m/{name}").code == 0
            plan = project.run("plan", "m", "--detailed-exitcode")
            assert plan.code == 0, plan.text
            assert "No changes. The live system matches the manifests." in plan.lines
        finally:
            vendor.close()
