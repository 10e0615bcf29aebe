"""`reconciler ci comment` and `reconciler ci issue` against a GitHub and a GitLab served on
127.0.0.1 (`tests/forge_server.py`): one comment or issue per report, updated on the second run,
never a token in any output."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from forge_server import GITHUB, GITLAB, Forge, serve_forge
from test_e2e_common import Project, Result, Vendor, account_doc, apply, docs, users

from reconciler import ci

#: one account and its owner, as one manifest file
NEWS_DOC = docs(account_doc("news", name="Daily News"), users("ops_admin")).rstrip("\n")
TOKEN = "ghs_test-token-5b1e0c7d9a"
CI_VARIABLES = (
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "CI_JOB_TOKEN",
    "GITHUB_EVENT_PATH",
    "CI_MERGE_REQUEST_IID",
)


@pytest.fixture
def forge(monkeypatch: pytest.MonkeyPatch) -> Iterator[Forge]:
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with serve_forge(TOKEN) as served:
        yield served


def on_github(monkeypatch: pytest.MonkeyPatch, forge: Forge, tmp_path: Path, pr: int = 7) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": pr}}), encoding="utf-8")
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": forge.base_url + GITHUB,
        "GITHUB_REPOSITORY": "team/manifests",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_EVENT_PATH": str(event),
    }.items():
        monkeypatch.setenv(name, value)


def on_gitlab(monkeypatch: pytest.MonkeyPatch, forge: Forge, mr: int | None = 3) -> None:
    for name, value in {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": forge.base_url + GITLAB,
        "CI_PROJECT_ID": "team/manifests",
        "GITLAB_TOKEN": TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    if mr is not None:
        monkeypatch.setenv("CI_MERGE_REQUEST_IID", str(mr))


def report(project: Project, command: str, name: str) -> tuple[int, Path]:
    """`plan`/`drift --format markdown` into `name`, as the action and the template do."""
    extra = ("--detailed-exitcode",) if command == "plan" else ()
    run = project.cli(command, "m", "--format", "markdown", *extra)
    assert run.code in (0, 2), run.text
    path = project.root / name
    path.write_text(run.out, encoding="utf-8")
    return run.code, path


def posted(project: Project, *args: str) -> Result:
    run = project.cli("ci", *args, "-vv")
    assert TOKEN not in run.text
    return run


def test_a_plan_comment_is_created_then_updated_in_place_on_github(
    project: Project,
    forge: Forge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_github(monkeypatch, forge, tmp_path)
    # someone's comment, and the report of another path, stay as they are
    forge.comments[7] = [
        {"id": 1, "body": "LGTM"},
        {"id": 2, "body": "x\n<!-- reconciler plan target=local path=other -->\n"},
    ]
    project.manifests(NEWS_DOC)
    _, first = report(project, "plan", "plan.md")
    assert first.read_text().endswith("\n<!-- reconciler plan target=local path=m -->\n")
    run = posted(project, "comment", str(first))
    assert (run.code, run.out) == (0, "created the GitHub comment 1001 pr/7\n")
    project.manifests(NEWS_DOC.replace("Daily News", "Daily Views"))
    _, second = report(project, "plan", "plan.md")
    run = posted(project, "comment", str(second))
    assert (run.code, run.out) == (0, "updated the GitHub comment 1001 pr/7\n")
    assert [c["body"] for c in forge.comments[7]] == [
        "LGTM",
        "x\n<!-- reconciler plan target=local path=other -->\n",
        second.read_text(),
    ]
    repo = f"{GITHUB}/repos/team/manifests/issues"
    assert forge.writes() == [("POST", f"{repo}/7/comments"), ("PATCH", f"{repo}/comments/1001")]
    headers = forge.headers_seen[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_the_comment_is_found_on_a_later_page(
    project: Project, forge: Forge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_github(monkeypatch, forge, tmp_path)
    forge.page_size = 2
    project.manifests(NEWS_DOC)
    _, body = report(project, "plan", "plan.md")
    forge.comments[7] = [{"id": n, "body": f"comment {n}"} for n in range(1, 6)]
    forge.comments[7].append({"id": 6, "body": "old\n" + body.read_text().splitlines()[-1]})
    assert posted(project, "comment", str(body)).out == "updated the GitHub comment 6\n"
    assert forge.comments[7][-1]["body"] == body.read_text()
    assert [r for r in forge.requests if r[0] == "GET"] == [
        ("GET", f"{GITHUB}/repos/team/manifests/issues/7/comments")
    ] * 3


def test_a_merge_request_note_is_created_then_updated_in_place_on_gitlab(
    project: Project, forge: Forge, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_gitlab(monkeypatch, forge)
    project.manifests(NEWS_DOC)
    _, body = report(project, "plan", "plan.md")
    assert posted(project, "comment", str(body)).out == "created the GitLab comment 1001\n"
    assert posted(project, "comment", str(body)).out == "updated the GitLab comment 1001\n"
    assert [n["body"] for n in forge.comments[3]] == [body.read_text()]
    notes = f"{GITLAB}/projects/team%2Fmanifests/merge_requests/3/notes"
    assert forge.writes() == [("POST", notes), ("PUT", f"{notes}/1001")]
    assert forge.headers_seen[0]["PRIVATE-TOKEN"] == TOKEN


def test_the_drift_issue_is_opened_updated_and_closed_on_github(
    project: Project,
    vendor: Vendor,
    forge: Forge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_github(monkeypatch, forge, tmp_path)
    monkeypatch.delenv("GITHUB_EVENT_PATH")  # a schedule has no pull request
    project.manifests(NEWS_DOC)
    assert apply(project).code == 0
    title = "reconciler: drift on target local"
    code, body = report(project, "drift", "drift.md")
    assert code == 0
    # no drift and no issue: nothing to close, nothing sent
    run = posted(project, "issue", str(body), "--title", title, "--close")
    assert run.out == "none open: the GitHub issue 'reconciler: drift on target local'\n"
    assert forge.writes() == []
    vendor.modify("@TOA#_news", Name="Renamed")
    code, body = report(project, "drift", "drift.md")
    assert code == 2
    run = posted(project, "issue", str(body), "--title", title)
    assert run.out == f"opened: the GitHub issue {title!r} 1001 issues/1001\n"
    vendor.modify("@TOA#_news", Name="Renamed again")
    _, body = report(project, "drift", "drift.md")
    run = posted(project, "issue", str(body), "--title", title)
    assert run.out == f"updated: the GitHub issue {title!r} 1001 issues/1001\n"
    assert [(i["title"], i["body"], i["state"]) for i in forge.issues.values()] == [
        (title, body.read_text(), "open")
    ]
    assert apply(project).code == 0
    code, body = report(project, "drift", "drift.md")
    assert code == 0
    run = posted(project, "issue", str(body), "--title", title, "--close")
    assert run.out == f"closed: the GitHub issue {title!r} 1001 issues/1001\n"
    assert forge.issues[1001]["state"] == "closed"
    assert forge.issues[1001]["state_reason"] == "completed"
    assert forge.issue_comments[1001] == [body.read_text()]
    issues = f"{GITHUB}/repos/team/manifests/issues"
    assert forge.writes() == [
        ("POST", issues),
        ("PATCH", f"{issues}/1001"),
        ("POST", f"{issues}/1001/comments"),
        ("PATCH", f"{issues}/1001"),
    ]


def test_the_drift_issue_is_opened_updated_and_closed_on_gitlab(
    project: Project, vendor: Vendor, forge: Forge, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_gitlab(monkeypatch, forge, mr=None)
    project.manifests(NEWS_DOC)
    assert apply(project).code == 0
    vendor.modify("@TOA#_news", Name="Renamed")
    _, body = report(project, "drift", "drift.md")
    title = "reconciler: drift on target local"
    assert posted(project, "issue", str(body), "--title", title).out.startswith("opened:")
    assert posted(project, "issue", str(body), "--title", title).out.startswith("updated:")
    assert apply(project).code == 0
    _, body = report(project, "drift", "drift.md")
    assert posted(project, "issue", str(body), "--title", title, "--close").out == (
        f"closed: the GitLab issue {title!r} 1001 issues/1001\n"
    )
    issue = forge.issues[1001]
    assert (issue["state"], issue["title"]) == ("closed", title)
    assert forge.issue_comments[1001] == [body.read_text()]
    issues = f"{GITLAB}/projects/team%2Fmanifests/issues"
    assert forge.writes() == [
        ("POST", issues),
        ("PUT", f"{issues}/1001"),
        ("POST", f"{issues}/1001/notes"),
        ("PUT", f"{issues}/1001"),
    ]


def test_a_job_token_refused_by_gitlab_says_what_token_to_set(
    project: Project, forge: Forge, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_gitlab(monkeypatch, forge)
    monkeypatch.delenv("GITLAB_TOKEN")
    monkeypatch.setenv("CI_JOB_TOKEN", TOKEN)
    project.manifests(NEWS_DOC)
    _, body = report(project, "plan", "plan.md")
    run = posted(project, "comment", str(body))
    assert run.code == 1
    assert run.err.splitlines()[-1] == (
        "error: GitLab answered 403 to GET /projects/team%2Fmanifests/merge_requests/3/notes:"
        f" 403 Forbidden{ci.JOB_TOKEN_HINT}"
    )
    assert forge.headers_seen[0]["JOB-TOKEN"] == TOKEN


def test_a_token_echoed_by_the_api_is_masked(
    project: Project,
    forge: Forge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_github(monkeypatch, forge, tmp_path)
    monkeypatch.setenv("GITHUB_TOKEN", "wrong-" + TOKEN)
    project.manifests(NEWS_DOC)
    _, body = report(project, "plan", "plan.md")
    run = posted(project, "comment", str(body))
    assert run.code == 1
    assert run.err.splitlines()[-1] == (
        "error: GitHub answered 401 to GET /repos/team/manifests/issues/7/comments:"
        f" Bad credentials{ci.GITHUB_HINT}"
    )
    # an API that repeats the token it was sent: the message masks it
    api = ci._Api(None, "GitHub", TOKEN)  # type: ignore[arg-type]
    assert api._clean(f"token {TOKEN} refused") == "token *** refused"


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (
            {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "a/b"},
            ("comment",),
            "error: GITHUB_TOKEN is not set (the CI runner sets it; set it by hand elsewhere)",
        ),
        (
            {},
            ("comment",),
            "error: cannot tell GitHub from GitLab (neither GITHUB_ACTIONS nor GITLAB_CI is"
            " 'true'): pass --platform github or --platform gitlab",
        ),
        (
            {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "a/b"},
            ("comment", "--platform", "github"),
            "error: no pull request to comment on: run this for a pull request event, or pass"
            " --number N",
        ),
        (
            {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "a/b"},
            ("comment", "--platform", "github", "--number", "x"),
            "error: --number: expected a number, not 'x'",
        ),
        (
            {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "a/b", "GITHUB_EVENT_PATH": "nope"},
            ("comment", "--platform", "github"),
            "error: GITHUB_EVENT_PATH=nope: cannot read the event: [Errno 2] No such file or"
            " directory: 'nope'",
        ),
        (
            {"CI_API_V4_URL": "http://127.0.0.1:9", "CI_PROJECT_ID": "1"},
            ("comment", "--platform", "gitlab"),
            "error: CI_JOB_TOKEN is not set (the CI runner sets it; set it by hand elsewhere)",
        ),
    ],
)
def test_a_missing_setting_is_one_clean_line_and_nothing_is_sent(
    project: Project,
    forge: Forge,
    monkeypatch: pytest.MonkeyPatch,
    setup: dict[str, str],
    args: tuple[str, ...],
    message: str,
) -> None:
    for name, value in setup.items():
        monkeypatch.setenv(name, value)
    project.manifests(NEWS_DOC)
    _, body = report(project, "plan", "plan.md")
    run = posted(project, args[0], str(body), *args[1:])
    assert (run.code, run.err.splitlines()[-1]) == (1, message)
    assert forge.requests == []


def test_a_report_without_a_marker_or_a_file_is_refused_before_any_call(
    project: Project, forge: Forge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_github(monkeypatch, forge, tmp_path)
    (project.root / "note.md").write_text("hello\n", encoding="utf-8")
    run = posted(project, "comment", "note.md")
    assert run.code == 1
    assert run.err.startswith("error: the report carries no reconciler marker line")
    run = posted(project, "issue", "absent.md", "--title", "t")
    assert run.code == 1
    assert run.err.startswith("error: cannot read the report absent.md: [Errno 2]")
    assert forge.requests == []


def test_an_unreachable_api_is_one_clean_line(
    project: Project, forge: Forge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_github(monkeypatch, forge, tmp_path)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{port}")
    project.manifests(NEWS_DOC)
    _, body = report(project, "plan", "plan.md")
    run = posted(project, "comment", str(body))
    assert run.code == 1
    assert run.err.splitlines()[-1].startswith(
        "error: cannot reach GitHub for GET /repos/team/manifests/issues/7/comments: "
    )


def test_an_answer_that_is_not_what_the_api_documents_is_an_error(
    project: Project, forge: Forge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy's HTML page or a wrong base URL: said, not a traceback."""
    on_gitlab(monkeypatch, forge)
    monkeypatch.setenv("CI_API_V4_URL", forge.base_url + "/elsewhere")
    project.manifests(NEWS_DOC)
    _, body = report(project, "plan", "plan.md")
    run = posted(project, "comment", str(body))
    assert (run.code, run.err.splitlines()[-1]) == (
        1,
        "error: GitLab answered 404 to GET /projects/team%2Fmanifests/merge_requests/3/notes:"
        " Not Found",
    )


def test_a_body_over_the_limit_is_cut_at_a_line_with_the_marker_kept() -> None:
    marker = "<!-- reconciler plan target=prod path=m -->"
    body = "".join(f"line {n}\n" for n in range(20_000)) + marker + "\n"
    cut = ci.fit(body, limit=1000)
    assert len(cut) < 1000
    assert cut.endswith(
        "\n\n… cut to stay under the comment limit; the job's log and artifact hold it all.\n"
        f"{marker}\n"
    )
    assert cut.startswith("line 0\nline 1\n")
    assert ci.fit("short\n" + marker) == "short\n" + marker


@pytest.mark.parametrize(
    ("garbled", "message"),
    [
        (
            {"GET": b"<html>proxy login</html>"},
            "error: GitHub answered GET /repos/team/manifests/issues/7/comments with no list",
        ),
        (
            {"GET": b'[{"body": "no id"}]'},
            "error: an answer without the 'id' of its comment or issue: {'body': 'no id'}",
        ),
        (
            {"POST": b'{"message": "queued"}'},
            "error: an answer without the 'id' of its comment or issue: {'message': 'queued'}",
        ),
        (
            {"POST": b"accepted"},
            "error: GitHub answered POST /repos/team/manifests/issues/7/comments with no JSON",
        ),
    ],
)
def test_an_answer_in_the_wrong_shape_is_one_clean_line(
    project: Project,
    forge: Forge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    garbled: dict[str, bytes],
    message: str,
) -> None:
    on_github(monkeypatch, forge, tmp_path)
    forge.garbled = garbled
    project.manifests(NEWS_DOC)
    _, body = report(project, "plan", "plan.md")
    run = posted(project, "comment", str(body))
    assert (run.code, run.err.splitlines()[-1]) == (1, message)


def test_an_error_answer_is_quoted_shortly_whatever_its_form() -> None:
    def said(status: int, content: bytes) -> str:
        return ci._message(httpx.Response(status, content=content))

    assert said(502, b"<html>" + b"x" * 500) == "<html>" + "x" * 194
    assert said(502, b"") == "Bad Gateway"
    assert said(422, b'["a list"]') == "['a list']"
    assert said(422, b'{"error": "invalid"}') == "invalid"
