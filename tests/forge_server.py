"""A small GitHub and GitLab on 127.0.0.1 for the tests of `reconciler ci`; this module holds no
tests.

It answers the documented REST endpoints `reconciler ci` calls, with their shapes, paging (`Link`
headers, `page`/`per_page`) and authentication headers, keeps comments, notes and issues in
memory, and records every request, so that a test can assert what was created and what updated.

GitHub (under /api/v3, as on GitHub Enterprise): issue comments (a pull request's too), issues.
GitLab (under /api/v4): merge-request notes, issues and issue notes. A job token (`JOB-TOKEN`)
is refused with 403 unless `job_token_allowed`, as GitLab refuses it for notes and issues.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GITHUB = "/api/v3"
GITLAB = "/api/v4"


@dataclass
class Forge:
    """The state: comments per pull/merge request, issues, and every request seen."""

    token: str
    page_size: int = 100
    job_token_allowed: bool = False
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    issue_comments: dict[int, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""
    #: method → raw body answered with 200 instead of the API's (a proxy's page, a broken API)
    garbled: dict[str, bytes] = field(default_factory=dict)

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if m != "GET"]


class _Handler(BaseHTTPRequestHandler):
    forge: Forge

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        del format, args

    def _reply(self, status: int, data: Any, link: str | None = None) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if link:
            self.send_header("Link", link)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(length) or b"{}")
        assert isinstance(data, dict)
        return data

    def _page(self, items: list[dict[str, Any]], query: dict[str, list[str]]) -> None:
        per_page = min(int(query.get("per_page", ["30"])[0]), self.forge.page_size)
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        link = None
        if page * per_page < len(items):
            nxt = {k: v[0] for k, v in query.items()} | {"page": str(page + 1)}
            path = urllib.parse.urlsplit(self.path).path
            url = f"{self.forge.base_url}{path}?{urllib.parse.urlencode(nxt)}"
            link = f'<{url}>; rel="next"'
        self._reply(200, chunk, link)

    def _authorised(self, github: bool) -> bool:
        forge = self.forge
        if github:
            ok = self.headers.get("Authorization") == f"Bearer {forge.token}"
        elif self.headers.get("JOB-TOKEN") == forge.token:
            if not forge.job_token_allowed:
                self._reply(403, {"message": "403 Forbidden"})
                return False
            ok = True
        else:
            ok = self.headers.get("PRIVATE-TOKEN") == forge.token
        if not ok:
            self._reply(401, {"message": "Bad credentials"})
        return ok

    def _handle(self, method: str) -> None:
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, urllib.parse.parse_qs(split.query)
        forge = self.forge
        with forge.lock:
            forge.requests.append((method, path))
            forge.headers_seen.append(dict(self.headers))
        github = path.startswith(GITHUB + "/")
        if not github and not path.startswith(GITLAB + "/"):
            self._reply(404, {"message": "Not Found"})
            return
        if not self._authorised(github):
            return
        if method in forge.garbled:
            raw = forge.garbled[method]
            self.send_response(200)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        body = self._body() if method in ("POST", "PATCH", "PUT") else {}
        with forge.lock:
            routed = (_github if github else _gitlab)(self, method, path, query, body)
        if not routed:
            self._reply(404, {"message": "Not Found"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")


def _github(
    h: _Handler, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
) -> bool:
    forge = h.forge
    rest = path[len(GITHUB) :]
    if m := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", rest):
        number = int(m.group(1))
        if number in forge.issues:  # an issue's comments
            if method == "POST":
                forge.issue_comments.setdefault(number, []).append(body["body"])
                h._reply(201, {"id": next(forge.ids), "body": body["body"]})
                return True
            return False
        notes = forge.comments.setdefault(number, [])
        if method == "GET":
            h._page(notes, query)
            return True
        if method == "POST":
            note = {"id": next(forge.ids), "body": body["body"], "html_url": f"pr/{number}"}
            notes.append(note)
            h._reply(201, note)
            return True
    if (m := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", rest)) and method == "PATCH":
        for note in itertools.chain.from_iterable(forge.comments.values()):
            if note["id"] == int(m.group(1)):
                note["body"] = body["body"]
                h._reply(200, note)
                return True
    if re.fullmatch(r"/repos/[^/]+/[^/]+/issues", rest):
        if method == "GET":
            state = query.get("state", ["open"])[0]
            items = [i for i in forge.issues.values() if i["state"] == state]
            # the issues list holds pull requests too
            items.append({"number": 1, "title": "a pull request", "pull_request": {}, "body": ""})
            h._page(items, query)
            return True
        if method == "POST":
            number = next(forge.ids)
            issue = {"number": number, "id": number + 5_000_000, "state": "open", **body}
            issue["html_url"] = f"issues/{number}"
            forge.issues[number] = issue
            h._reply(201, issue)
            return True
    if (m := re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)", rest)) and method == "PATCH":
        issue = forge.issues[int(m.group(1))]
        issue.update(body)
        h._reply(200, issue)
        return True
    return False


def _gitlab(
    h: _Handler, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
) -> bool:
    forge = h.forge
    rest = path[len(GITLAB) :]
    if m := re.fullmatch(r"/projects/[^/]+/merge_requests/(\d+)/notes(?:/(\d+))?", rest):
        notes = forge.comments.setdefault(int(m.group(1)), [])
        if m.group(2) is None and method == "GET":
            h._page(notes, query)
            return True
        if m.group(2) is None and method == "POST":
            note = {"id": next(forge.ids), "body": body["body"], "system": False}
            notes.append(note)
            h._reply(201, note)
            return True
        if m.group(2) is not None and method == "PUT":
            for note in notes:
                if note["id"] == int(m.group(2)):
                    note["body"] = body["body"]
                    h._reply(200, note)
                    return True
    if re.fullmatch(r"/projects/[^/]+/issues", rest):
        if method == "GET":
            state = query.get("state", ["opened"])[0]
            h._page([i for i in forge.issues.values() if i["state"] == state], query)
            return True
        if method == "POST":
            iid = next(forge.ids)
            issue = {"iid": iid, "id": iid + 5_000_000, "state": "opened", **body}
            issue["web_url"] = f"issues/{iid}"
            forge.issues[iid] = issue
            h._reply(201, issue)
            return True
    if (m := re.fullmatch(r"/projects/[^/]+/issues/(\d+)(/notes)?", rest)) and method in (
        "PUT",
        "POST",
    ):
        iid = int(m.group(1))
        if m.group(2) and method == "POST":
            forge.issue_comments.setdefault(iid, []).append(body["body"])
            h._reply(201, {"id": next(forge.ids), "body": body["body"]})
            return True
        if not m.group(2) and method == "PUT":
            issue = forge.issues[iid]
            if body.pop("state_event", None) == "close":
                issue["state"] = "closed"
            issue.update(body)
            h._reply(200, issue)
            return True
    return False


@contextmanager
def serve_forge(token: str, **options: Any) -> Iterator[Forge]:
    """A fake GitHub and GitLab on a free 127.0.0.1 port; `forge.base_url` is its root."""
    forge = Forge(token=token, **options)
    handler = type("Handler", (_Handler,), {"forge": forge})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    forge.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield forge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
