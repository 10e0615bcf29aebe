"""`reconciler ci`: post a markdown report where a team reviews it, updated in place.

`ci comment FILE` keeps ONE comment per report on the pull request (GitHub) or merge request
(GitLab) that the pipeline runs for; `ci issue FILE --title T` keeps ONE open issue per report
(drift on a schedule) and, with `--close`, comments and closes it when the drift is gone. The
report is found by the hidden marker line `plan --format markdown` and `drift --format markdown`
end with (`reconciler.render.report_marker`), so a second run updates instead of adding.

Only the documented REST endpoints are used:
- GitHub (https://docs.github.com/en/rest/issues/comments and /rest/issues/issues): list, create
  and update issue comments (a pull request's conversation is its issue's); list, create and update
  issues (closing is an update to `state: closed`). Base URL `GITHUB_API_URL`, token
  `GITHUB_TOKEN`, repository `GITHUB_REPOSITORY`, pull request from `GITHUB_EVENT_PATH`.
- GitLab (https://docs.gitlab.com/ee/api/notes.html and /api/issues.html): list, create and
  update merge-request notes; list, create and update issues (`state_event: close`) and add an
  issue note. Base URL `CI_API_V4_URL`, project `CI_PROJECT_ID`, merge request
  `CI_MERGE_REQUEST_IID`, token `GITLAB_TOKEN` (`PRIVATE-TOKEN`) or else `CI_JOB_TOKEN`.

The token is sent in a header only and never appears in any output: error messages name the
method and path, and any text an API answers is cleaned of it before it is shown.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TextIO

import httpx

from reconciler.errors import ConfigError, ReconcilerError

#: GitHub's limit on a comment's or an issue's body (GitLab's notes allow more).
BODY_LIMIT: Final = 65536
#: Pages of 100 comments, notes or issues read at most while looking for the marker.
MAX_PAGES: Final = 50
#: The marker line a report carries (`reconciler.render.report_marker`).
MARKER: Final = re.compile(r"^<!-- reconciler (plan|drift) [^\n]*-->$", re.MULTILINE)
TIMEOUT: Final = 30.0
GITHUB_HINT: Final = (
    " (the workflow's token needs `permissions: pull-requests: write` for the comment and"
    " `issues: write` for the drift issue)"
)
GITLAB_HINT: Final = " (GITLAB_TOKEN needs the api scope and the Reporter role or higher)"
#: GitLab lets a job token call only a few endpoints, notes and issues not among them
#: (https://docs.gitlab.com/ee/ci/jobs/ci_job_token.html, gitlab-org/gitlab#464591).
JOB_TOKEN_HINT: Final = (
    " (CI_JOB_TOKEN was used: GitLab lets it post no notes or issues; set a project access"
    " token with the api scope as the masked CI/CD variable GITLAB_TOKEN)"
)


class ForgeError(ReconcilerError):
    """GitHub or GitLab refused a call, or could not be reached."""


@dataclass(frozen=True, slots=True)
class Note:
    """A comment (GitHub), a note (GitLab), or an issue: its id and body."""

    id: int
    body: str
    url: str = ""


class Forge(Protocol):
    """Where the reports go: comments on the change under review, and issues."""

    name: str

    def comments(self) -> Iterator[Note]:
        """The comments of the pull or merge request, oldest first."""
        ...

    def add_comment(self, body: str) -> Note: ...

    def edit_comment(self, note: Note, body: str) -> Note: ...

    def open_issues(self) -> Iterator[tuple[Note, str]]:
        """The open issues, each with its title."""
        ...

    def add_issue(self, title: str, body: str) -> Note: ...

    def edit_issue(self, issue: Note, title: str, body: str) -> Note: ...

    def close_issue(self, issue: Note, comment: str) -> None:
        """Comment on the issue, then close it."""
        ...


class _Api:
    """One httpx client against one API, errors turned into `ForgeError` without the token."""

    def __init__(self, http: httpx.Client, name: str, token: str, hint: str = "") -> None:
        self.http = http
        self.name = name
        self._token = token
        #: said after a 401 or 403: what the token may lack
        self.hint = hint

    def _clean(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ForgeError(
                self._clean(f"cannot reach {self.name} for {method} {path}: {exc}")
            ) from None
        if response.status_code >= 400:
            hint = self.hint if response.status_code in (401, 403) else ""
            raise ForgeError(
                self._clean(
                    f"{self.name} answered {response.status_code} to {method} {path}:"
                    f" {_message(response)}{hint}"
                )
            )
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ForgeError(f"{self.name} answered {method} {path} with no JSON") from None

    def pages(self, path: str, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, following `Link: rel="next"` (both APIs send it)."""
        url: str | None = path
        query: Mapping[str, str] | None = {**params, "per_page": "100"}
        for _ in range(MAX_PAGES):
            if url is None:
                return
            response = self.call("GET", url, params=query)
            try:
                items = response.json()
            except ValueError:
                items = None
            if not isinstance(items, list):
                raise ForgeError(f"{self.name} answered GET {path} with no list")
            yield from (item for item in items if isinstance(item, dict))
            url, query = response.links.get("next", {}).get("url"), None


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(data, dict):
        message = data.get("message", data.get("error", data))
        return str(message)[:200]
    return str(data)[:200]


def _note(item: Any, body_key: str = "body", url_key: str = "html_url") -> Note:
    return _issue(item, "id", body_key, url_key)


class GitHub:
    """The GitHub REST API: issue comments on a pull request, and the repository's issues."""

    name = "GitHub"

    def __init__(self, api: _Api, repo: str, number: int | None) -> None:
        self.api = api
        self.repo = repo
        self.number = number

    def comments(self) -> Iterator[Note]:
        path = f"/repos/{self.repo}/issues/{_need(self.number, 'pull request')}/comments"
        return (_note(item) for item in self.api.pages(path, {}))

    def add_comment(self, body: str) -> Note:
        path = f"/repos/{self.repo}/issues/{_need(self.number, 'pull request')}/comments"
        return _note(self.api.json("POST", path, json={"body": body}))

    def edit_comment(self, note: Note, body: str) -> Note:
        path = f"/repos/{self.repo}/issues/comments/{note.id}"
        return _note(self.api.json("PATCH", path, json={"body": body}))

    def open_issues(self) -> Iterator[tuple[Note, str]]:
        for item in self.api.pages(f"/repos/{self.repo}/issues", {"state": "open"}):
            if "pull_request" not in item:  # the issues list holds pull requests too
                yield _issue(item, "number", "body", "html_url"), str(item.get("title", ""))

    def add_issue(self, title: str, body: str) -> Note:
        item = self.api.json(
            "POST", f"/repos/{self.repo}/issues", json={"title": title, "body": body}
        )
        return _issue(item, "number", "body", "html_url")

    def edit_issue(self, issue: Note, title: str, body: str) -> Note:
        path = f"/repos/{self.repo}/issues/{issue.id}"
        item = self.api.json("PATCH", path, json={"title": title, "body": body})
        return _issue(item, "number", "body", "html_url")

    def close_issue(self, issue: Note, comment: str) -> None:
        path = f"/repos/{self.repo}/issues/{issue.id}"
        self.api.json("POST", f"{path}/comments", json={"body": comment})
        self.api.json("PATCH", path, json={"state": "closed", "state_reason": "completed"})


class GitLab:
    """The GitLab REST API (v4): merge-request notes, and the project's issues."""

    name = "GitLab"

    def __init__(self, api: _Api, project: str, number: int | None) -> None:
        self.api = api
        self.project = urllib.parse.quote(project, safe="")
        self.number = number

    def _notes(self) -> str:
        iid = _need(self.number, "merge request")
        return f"/projects/{self.project}/merge_requests/{iid}/notes"

    def comments(self) -> Iterator[Note]:
        items = self.api.pages(self._notes(), {"sort": "asc", "order_by": "created_at"})
        return (_note(item, url_key="") for item in items if not item.get("system"))

    def add_comment(self, body: str) -> Note:
        return _note(self.api.json("POST", self._notes(), json={"body": body}), url_key="")

    def edit_comment(self, note: Note, body: str) -> Note:
        path = f"{self._notes()}/{note.id}"
        return _note(self.api.json("PUT", path, json={"body": body}), url_key="")

    def open_issues(self) -> Iterator[tuple[Note, str]]:
        for item in self.api.pages(f"/projects/{self.project}/issues", {"state": "opened"}):
            yield _issue(item, "iid", "description", "web_url"), str(item.get("title", ""))

    def add_issue(self, title: str, body: str) -> Note:
        path = f"/projects/{self.project}/issues"
        item = self.api.json("POST", path, json={"title": title, "description": body})
        return _issue(item, "iid", "description", "web_url")

    def edit_issue(self, issue: Note, title: str, body: str) -> Note:
        path = f"/projects/{self.project}/issues/{issue.id}"
        item = self.api.json("PUT", path, json={"title": title, "description": body})
        return _issue(item, "iid", "description", "web_url")

    def close_issue(self, issue: Note, comment: str) -> None:
        path = f"/projects/{self.project}/issues/{issue.id}"
        self.api.json("POST", f"{path}/notes", json={"body": comment})
        self.api.json("PUT", path, json={"state_event": "close"})


def _issue(item: Any, id_key: str, body_key: str, url_key: str) -> Note:
    """A comment, note or issue from its JSON; an answer without its id is an error."""
    number = item.get(id_key) if isinstance(item, dict) else None
    if not isinstance(number, int) or isinstance(number, bool):
        raise ForgeError(f"an answer without the {id_key!r} of its comment or issue: {item!r:.200}")
    return Note(number, str(item.get(body_key) or ""), str(item.get(url_key) or ""))


def _need(number: int | None, what: str) -> int:
    if number is None:
        raise ConfigError(
            f"no {what} to comment on: run this for a {what} event, or pass --number N"
        )
    return number


# -- what to do ----------------------------------------------------------------------------------


def find_marker(body: str) -> str:
    """The report's marker line; a body without one cannot be found again, so it is refused."""
    found = MARKER.search(body)
    if found is None:
        raise ConfigError(
            "the report carries no reconciler marker line (<!-- reconciler ... -->): post the"
            " output of `reconciler plan` or `reconciler drift` with --format markdown"
        )
    return found.group(0)


def fit(body: str, limit: int = BODY_LIMIT) -> str:
    """`body` under `limit` characters: cut at a line, with a note, and the marker kept last."""
    if len(body) < limit:
        return body
    marker = find_marker(body)
    note = "\n\n… cut to stay under the comment limit; the job's log and artifact hold it all.\n"
    room = limit - len(note) - len(marker) - 2
    cut = body[:room].rsplit("\n", 1)[0]
    return f"{cut}{note}{marker}\n"


def sticky_comment(forge: Forge, body: str) -> tuple[str, Note]:
    """Update the comment carrying this report's marker, or add it: ('updated'|'created', note).
    Later duplicates (two jobs that raced) are left alone; the first one is kept current."""
    marker = find_marker(body)
    body = fit(body)
    for note in forge.comments():
        if marker in note.body.splitlines():
            return "updated", forge.edit_comment(note, body)
    return "created", forge.add_comment(body)


def sticky_issue(forge: Forge, title: str, body: str, *, close: bool) -> tuple[str, Note | None]:
    """Keep ONE open issue for this report: update it or open it; with `close`, comment `body`
    on it and close it (nothing to do when none is open)."""
    marker = find_marker(body)
    body = fit(body)
    found = next(
        (
            issue
            for issue, issue_title in forge.open_issues()
            if marker in issue.body.splitlines() or issue_title == title
        ),
        None,
    )
    if close:
        if found is None:
            return "none open", None
        forge.close_issue(found, body)
        return "closed", found
    if found is not None:
        return "updated", forge.edit_issue(found, title, body)
    return "opened", forge.add_issue(title, body)


# -- where from the environment ------------------------------------------------------------------


def _platform(environ: Mapping[str, str], asked: str | None) -> str:
    if asked is not None:
        return asked
    if environ.get("GITHUB_ACTIONS") == "true":
        return "github"
    if environ.get("GITLAB_CI") == "true":
        return "gitlab"
    raise ConfigError(
        "cannot tell GitHub from GitLab (neither GITHUB_ACTIONS nor GITLAB_CI is 'true'):"
        " pass --platform github or --platform gitlab"
    )


def _env(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set (the CI runner sets it; set it by hand elsewhere)")
    return value


def _number(text: str | None, name: str) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, not {text!r}") from None


def _github_pull_request(environ: Mapping[str, str]) -> int | None:
    """The pull request of the event that started the workflow (`GITHUB_EVENT_PATH`)."""
    path = environ.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"GITHUB_EVENT_PATH={path}: cannot read the event: {exc}") from None
    number = event.get("pull_request", {}).get("number") if isinstance(event, dict) else None
    return number if isinstance(number, int) else None


def open_forge(
    environ: Mapping[str, str],
    *,
    platform: str | None = None,
    number: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> tuple[Forge, httpx.Client]:
    """The forge the pipeline runs on and an httpx client for it (the caller closes it)."""
    kind = _platform(environ, platform)
    pr = _number(number, "--number")
    if kind == "github":
        token = _env(environ, "GITHUB_TOKEN")
        base = environ.get("GITHUB_API_URL") or "https://api.github.com"
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        http = _client(base, headers, transport)
        repo = _env(environ, "GITHUB_REPOSITORY")
        api = _Api(http, "GitHub", token, GITHUB_HINT)
        return GitHub(api, repo, pr or _github_pull_request(environ)), http
    private = environ.get("GITLAB_TOKEN", "")
    token = private or _env(environ, "CI_JOB_TOKEN")
    header = "PRIVATE-TOKEN" if private else "JOB-TOKEN"
    http = _client(_env(environ, "CI_API_V4_URL"), {header: token}, transport)
    project = _env(environ, "CI_PROJECT_ID")
    iid = pr or _number(environ.get("CI_MERGE_REQUEST_IID"), "CI_MERGE_REQUEST_IID")
    api = _Api(http, "GitLab", token, GITLAB_HINT if private else JOB_TOKEN_HINT)
    return GitLab(api, project, iid), http


def _client(
    base: str, headers: Mapping[str, str], transport: httpx.BaseTransport | None
) -> httpx.Client:
    return httpx.Client(
        base_url=base.rstrip("/"),
        headers={**headers, "User-Agent": "reconciler-ci"},
        timeout=TIMEOUT,
        transport=transport,
    )


def _read_body(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the report {path}: {exc}") from None


def command(
    action: str,
    path: str,
    *,
    environ: Mapping[str, str],
    stdout: TextIO,
    platform: str | None = None,
    number: str | None = None,
    title: str | None = None,
    close: bool = False,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """`reconciler ci comment FILE` / `reconciler ci issue FILE --title T [--close]`: 0 done,
    1 on an error (said on stderr by the CLI)."""
    body = _read_body(path)
    forge, http = open_forge(environ, platform=platform, number=number, transport=transport)
    with http:
        if action == "comment":
            done, note = sticky_comment(forge, body)
            stdout.write(f"{done} the {forge.name} comment {note.id} {note.url}".rstrip() + "\n")
            return 0
        assert title is not None
        done, issue = sticky_issue(forge, title, body, close=close)
        where = "" if issue is None else f" {issue.id} {issue.url}".rstrip()
        stdout.write(f"{done}: the {forge.name} issue {title!r}{where}\n")
    return 0
