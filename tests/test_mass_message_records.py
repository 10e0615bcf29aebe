"""The life of a mass message's send record, through the real CLI in subprocesses against
`reconciler sandbox serve`: a record is kept while its message can still be sent or its jobs
change, and destroyed by apply once its window closed (12 hours of margin for clocks), its jobs
are final and a declared delete is done, declared or removed from git. Both clocks move: the
sandbox's (`/__sandbox/clock`) and the CLI's (`RECONCILER_CLOCK_OFFSET`). The sandbox's call log
counts the sends: none is ever made twice."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_e2e_common import Project, Vendor, served_sandbox, users, vendor_accounts

from reconciler.kinds.mass_message.diff import BLIND_SPOT

RECORD = "@TOA#_rcm-"
DAY = 86400.0


def _at(seconds: float) -> str:
    instant = dt.datetime.fromtimestamp(time.time() + seconds, dt.UTC).replace(microsecond=0)
    return instant.isoformat().replace("+00:00", "Z")


def message(name: str, tag: int, closes: float, **spec: Any) -> str:
    body = {
        "type": "news" if spec.get("delete") else "text",
        "audience": {"tag": tag},
        "window": {"notAfter": _at(closes)},
        **spec,
    }
    if body["type"] == "news":
        article = {"title": name, "content": "<p>hi</p>", "thumbMediaId": "thumb"}
        body["news"] = {"articles": [article]}
    else:
        body["text"] = {"content": f"hello from {name}"}
    meta = {"name": name}
    return json.dumps(
        {"apiVersion": "reconciler/v1", "kind": "MassMessage", "metadata": meta, "spec": body}
    )


def records(project: Project) -> set[str]:
    every, _, _ = vendor_accounts(project.db_path)
    return {a for a in every if a.startswith(RECORD)}


def sends(vendor: Vendor) -> list[str]:
    return [e[2] for entry in vendor.log() for e in entry["effects"] if e[0] == "mass_sent"]


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Project, Vendor]]:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    project = Project(root, "", tmp_path / "sandbox.db")
    with served_sandbox(project.db_path, "--wechat-retry-gap", "0") as sandbox:
        project.base_url = sandbox.base_url
        project.configure(safety={"maxMassMessages": 3})
        vendor = project.vendor()
        try:
            yield project, vendor
        finally:
            vendor.close()


def later(project: Project, vendor: Vendor | None, seconds: float) -> None:
    """Both clocks `seconds` on (the CLI's only when `vendor` is None: the UserSig the CLI makes
    on its own real clock lives a day, so the sandbox's clock moves less than that in all)."""
    if vendor is not None:
        vendor.client.advance(seconds)
    offset = float(project.env.get("RECONCILER_CLOCK_OFFSET", "0")) + seconds
    project.env["RECONCILER_CLOCK_OFFSET"] = str(offset)


def test_records_are_cleared_once_windows_closed_and_an_open_one_is_kept(
    served: tuple[Project, Vendor],
) -> None:
    project, vendor = served
    project.manifests(
        message("short", 1, 600),
        message("deleted", 2, 600, delete=True),
        message("open", 3, 30 * DAY),
    )
    applied = project.run("apply", "m", "--auto-approve")
    assert applied.code == 0, applied.text
    assert len(records(project)) == 3
    assert sorted(sends(vendor)) == ["tag:1", "tag:2", "tag:3"]
    # the windows closed, but not 12 hours ago: every record is kept
    later(project, vendor, 2 * 3600)
    kept = project.run("plan", "m", "--detailed-exitcode")
    assert kept.code == 0 and "No changes." in kept.out, kept.text
    # 13 hours after: the two closed messages' records are cleared, the open one's kept
    later(project, vendor, 11 * 3600)
    plan = project.run("plan", "m", "--detailed-exitcode")
    assert plan.code == 2, plan.text
    cleared = [line for line in plan.lines if line.startswith("Bookkeeping: send record of")]
    assert [line.split(" (")[0] for line in cleared] == [
        "Bookkeeping: send record of mass message deleted cleared",
        "Bookkeeping: send record of mass message short cleared",
    ]
    assert "destroy_official_account 2, get_official_account_info 2" in plan.out
    assert "Safety: within the thresholds." in plan.lines
    applied = project.run("apply", "m", "--auto-approve")
    assert applied.code == 0, applied.text
    assert len(records(project)) == 1
    again = project.run("plan", "m", "--detailed-exitcode")
    assert again.code == 0, again.text
    assert "No changes." in again.out
    closed = [line for line in again.lines if "its window closed at" in line]
    assert [line.split(" at ")[0] for line in closed] == [
        "  MassMessage/deleted: its window closed",
        "  MassMessage/short: its window closed",
    ]
    assert all(line.endswith(": done, nothing more is sent") for line in closed)
    drift = project.run("drift", "m")
    assert drift.code == 0, drift.text
    assert drift.lines[-1] == f"Blind spot of MassMessage: {BLIND_SPOT}"
    shown = json.loads(project.run("drift", "m", "--format", "json").out)
    assert shown["blindSpots"] == [f"MassMessage: {BLIND_SPOT}"]
    markdown = project.run("drift", "m", "--format", "markdown").out
    assert "Blind spot of MassMessage: sends made outside this tool" in markdown
    # the open window's message closes in its turn: no record left, nothing sent again
    later(project, None, 31 * DAY)
    assert project.run("apply", "m", "--auto-approve").code == 0
    assert records(project) == set()
    assert project.run("plan", "m", "--detailed-exitcode").code == 0
    assert sorted(sends(vendor)) == ["tag:1", "tag:2", "tag:3"]


def test_a_removed_message_s_record_is_cleared_after_its_window_and_never_sent_again(
    served: tuple[Project, Vendor],
) -> None:
    project, vendor = served
    gone, stays = message("gone", 1, 600), message("stays", 2, 3 * DAY)
    project.manifests(gone, stays)
    assert project.run("apply", "m", "--auto-approve").code == 0
    project.manifests(stays)  # removed from git while its window is open: its record stays
    kept = project.run("apply", "m", "--auto-approve")
    assert kept.code == 0, kept.text
    assert len(records(project)) == 2
    later(project, vendor, 13 * 3600)
    plan = project.run("plan", "m")
    assert any(
        line.startswith("Bookkeeping: send record of a mass message no longer declared cleared")
        for line in plan.lines
    ), plan.text
    assert project.run("apply", "m", "--auto-approve").code == 0
    assert len(records(project)) == 1
    project.manifests(gone, stays)  # back in git, window closed: done, not sent again
    back = project.run("apply", "m", "--auto-approve")
    assert back.code == 0, back.text
    assert sorted(sends(vendor)) == ["tag:1", "tag:2"]
    assert project.run("plan", "m", "--detailed-exitcode").code == 0


def test_a_removed_message_with_no_other_manifest_is_still_found(
    served: tuple[Project, Vendor],
) -> None:
    project, vendor = served
    project.manifests(message("only", 1, 600))
    assert project.run("apply", "m", "--auto-approve").code == 0
    project.manifests(users("alice"))  # no MassMessage declared at all
    later(project, vendor, 13 * 3600)
    assert project.run("apply", "m", "--auto-approve").code == 0
    assert records(project) == set()
    assert sends(vendor) == ["tag:1"]
