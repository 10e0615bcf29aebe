"""What pipelines read (issue 18): `reconciler show PLANFILE` without the target, `apply --format
json`, and the marker and size of markdown plans and drift reports."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from test_e2e_common import ENV, Project, Vendor, account_doc, apply, sandbox_options, users

from reconciler import cli
from reconciler.changes import PlanProblem
from reconciler.drift import DriftItem, DriftReport, IgnoreEntry
from reconciler.plan import TargetIdentity
from reconciler.render import GITHUB_COMMENT_LIMIT, render_drift_markdown, report_marker
from reconciler.sandbox.serve import serve_in_thread

NEWS = account_doc("news", name="News", subscribers={"members": ["alice", "bob"]})
PEOPLE = users("ops_admin", "alice", "bob")


def test_show_renders_a_saved_plan_with_the_target_gone_and_no_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NO_COLOR", "1")
    with serve_in_thread(sandbox_options(tmp_path / "sandbox.db")) as server:
        project = Project(root, server.base_url, tmp_path / "sandbox.db")
        project.configure()
        project.manifests(NEWS, PEOPLE)
        shown = {
            fmt: project.cli("plan", "m", "--format", fmt, "--out", f"plan-{fmt}.json")
            for fmt in ("text", "markdown", "json")
        }
        every_id = project.cli("plan", "m", "--show-all")
    # the target no longer answers: plan cannot read it, show does not try
    assert project.cli("plan", "m").code == 1
    (root / "reconciler.yaml").unlink()
    monkeypatch.setenv("RECONCILER_CONFIG", str(root / "absent.yaml"))
    for fmt, planned in shown.items():
        run = project.cli("show", f"plan-{fmt}.json", "--format", fmt)
        assert (run.code, run.err) == (0, "")
        # markdown: the saved plan does not know the paths it was made from
        expected = planned.out.replace(" path=m -->", " -->")
        assert run.out == expected
    assert run.out.startswith('{\n  "blindSpot"')  # the JSON, as plan printed it
    every = project.cli("show", "plan-text.json", "--show-all")
    assert (every.code, every.out) == (0, every_id.out)


def test_show_refuses_what_is_not_a_plan_in_one_line(project: Project) -> None:
    project.manifests(NEWS, PEOPLE)
    assert project.cli("plan", "m", "--out", "p.json").code == 0
    edited = (project.root / "p.json").read_text().replace('"News"', '"Newz"')
    (project.root / "p.json").write_text(edited)
    run = project.cli("show", "p.json")
    assert run.code == 1
    assert run.err.startswith("error: p.json ")
    assert "integrity" in run.err and run.out == ""
    run = project.cli("show", "m/accounts.yaml")
    assert run.code == 1 and run.err.startswith("error: ") and len(run.err.splitlines()) == 1
    assert project.cli("show", "absent.json").code == 1


def test_apply_json_reports_each_account_on_stdout_and_the_rest_on_stderr(
    project: Project,
) -> None:
    project.manifests(NEWS, PEOPLE)
    run = project.cli("apply", "m", "--auto-approve", "--format", "json")
    assert run.code == 0, run.text
    result = json.loads(run.out)
    assert (result["exitCode"], result["ran"], result["hasChanges"]) == (0, True, True)
    assert result["accounts"]["@TOA#_news"] == {
        "applied": ["create", "add 2 subscribers", "record"],
        "failed": [],
        "skipped": [],
    }
    assert result["totals"]["created"] == 1 and result["totals"]["failed"] == 0
    assert result["formatVersion"] == 1 and result["target"]["name"] == "local"
    assert result["interrupted"] is None and result["errors"] == []
    assert "+ account @TOA#_news will be created" in run.err  # the plan, for the log
    assert "Applied: 1 created" in run.err
    again = project.cli("apply", "m", "--auto-approve", "--format", "json")
    assert again.code == 0
    nothing = json.loads(again.out)
    assert (nothing["ran"], nothing["hasChanges"], nothing["accounts"]) == (False, False, {})


def test_apply_json_of_a_partly_applied_saved_plan_exits_3_with_the_failure(
    project: Project, vendor: Vendor
) -> None:
    project.manifests(account_doc("news", name="News"), PEOPLE)
    assert apply(project).code == 0
    project.manifests(NEWS, PEOPLE)
    assert project.cli("plan", "m", "--out", "p.json").code == 0
    vendor.delete_users("bob")
    run = project.cli("apply", "p.json", "--format", "json")
    assert run.code == 3, run.text
    result = json.loads(run.out)
    assert result["exitCode"] == 3
    assert result["accounts"]["@TOA#_news"]["failed"] == [
        {
            "what": "add subscriber bob",
            "code": None,  # a per-item result, not a vendor error code
            "message": "add_subscriber result 0 for bob",
        }
    ]
    assert result["totals"]["failed"] == 1


def test_apply_json_of_a_plan_with_problems_lists_them_and_exits_1(project: Project) -> None:
    doc = account_doc("news", name="News", subscribers={"members": ["alice", "ghost"]})
    project.manifests(doc, users("ops_admin", "alice"))
    run = project.cli("apply", "m", "--auto-approve", "--format", "json")
    assert run.code == 1
    result = json.loads(run.out)
    assert (result["exitCode"], result["ran"], result["accounts"]) == (1, False, {})
    assert result["errors"] == [
        {
            "type": "problem",
            "account": "@TOA#_news",
            "message": "1 subscriber(s) do not exist and are not declared in UserAccounts: ghost",
        }
    ]
    assert "Error: this plan cannot be applied (1 problem):" in run.err


def test_markdown_reports_end_with_their_marker(project: Project, vendor: Vendor) -> None:
    project.manifests(NEWS, PEOPLE)
    plan = project.cli("plan", "m", "--format", "markdown")
    assert plan.lines[-1] == "<!-- reconciler plan target=local path=m -->"
    assert plan.lines[0].startswith("**Target: tencent 'local'")
    assert apply(project).code == 0
    vendor.modify("@TOA#_news", Name="Renamed")
    drift = project.cli("drift", "m", "--format", "markdown")
    assert drift.code == 2
    assert drift.lines[-1] == "<!-- reconciler drift target=local path=m -->"


def test_the_marker_escapes_what_could_end_it() -> None:
    assert report_marker("plan", "prod", ["a b", "c-->d"]) == (
        "<!-- reconciler plan target=prod path=a%20b,c--%3Ed -->"
    )
    assert report_marker("drift", "prod", []) == "<!-- reconciler drift target=prod path=. -->"
    assert report_marker("plan", "prod") == "<!-- reconciler plan target=prod -->"


def test_a_huge_drift_report_stays_under_the_comment_limit() -> None:
    """Long differences, many problems with long messages, long ignore reasons: cut to fit,
    with the marker still last (before, nothing bounded a problem's or a reason's length)."""
    target = TargetIdentity("tencent", "prod", 1400000000, "https://x")
    long = "x" * 50_000
    items = tuple(DriftItem(f"@TOA#_{n}", "name", long, long + str(n)) for n in range(500))
    entry = IgnoreEntry("@TOA#_1", "name", long, "alice", dt.date(2030, 1, 1))
    report = DriftReport(
        target,
        items,
        silenced=tuple((items[0], entry) for _ in range(30)),
        expired=tuple(entry for _ in range(30)),
        problems=tuple(PlanProblem(f"@TOA#_{n}", long) for n in range(30)),
    )
    marker = report_marker("drift", "prod", ["m"])
    text = render_drift_markdown(report, marker=marker)
    assert len(text) < GITHUB_COMMENT_LIMIT
    assert text.endswith(marker + "\n")
    assert "more differences not shown" in text


def test_the_parser_knows_the_new_commands() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["show", "p.json", "--format", "markdown", "--show-all"])
    assert (args.planfile, args.format, args.show_all) == ("p.json", "markdown", True)
    args = parser.parse_args(["apply", "m", "--format", "json"])
    assert args.format == "json"
    args = parser.parse_args(["ci", "issue", "d.md", "--title", "t", "--close"])
    assert (args.ci_command, args.report, args.title, args.close) == ("issue", "d.md", "t", True)
