"""`reconciler sandbox serve` reads at most `MAX_BODY_BYTES` of a request body (issue 12, item 5).

Over real HTTP against the served sandbox, with raw sockets: a body declared huge, a chunked body
that never ends, a Content-Length that lies under chunked framing. Each is answered 413 and its
connection closed without the rest being read; the server's memory does not grow with what was
sent, and an honest call right after is answered at once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from test_e2e_common import ServedSandbox, sandbox_options

from reconciler.sandbox.client import SandboxClient, im_query
from reconciler.sandbox.defaults import MAX_BODY_BYTES
from reconciler.sandbox.server import Sandbox, SandboxOptions

CHECK = "/v4/im_open_login_svc/account_check"
CHECK_BODY = b'{"CheckItem":[{"UserID":"alice"}]}'
TOO_LARGE = {"error": f"request body larger than {MAX_BODY_BYTES} bytes; refused"}
#: what each hostile client tries to push after its headers (the server must not take it all)
PUSHED = 48 * 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedSandbox]:
    server = ServedSandbox(tmp_path_factory.mktemp("body") / "sandbox.db")
    try:
        yield server
    finally:
        server.stop()


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")  # pragma: no cover - Linux always has it


def _target(served: ServedSandbox) -> str:
    return f"{CHECK}?{_query(sandbox_options(served.db_path))}"


def _query(options: SandboxOptions) -> str:
    return "&".join(f"{k}={v}" for k, v in im_query(options, now=int(time.time())).items())


def _hostile(served: ServedSandbox, head: bytes, body: Callable[[int], bytes]) -> tuple[bytes, int]:
    """Send `head`, then push `body(i)` pieces (up to PUSHED bytes) from a thread while reading
    the answer; the answer and how many body bytes the server let in before it closed."""
    url = urlsplit(served.base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    pushed = 0

    def push() -> None:
        nonlocal pushed
        try:
            sock.sendall(head)
            for i in range(PUSHED // CHUNK):
                piece = body(i)
                sock.sendall(piece)
                pushed += len(piece)
        except OSError:
            return  # the server closed the connection: what it refused is not sent

    sender = threading.Thread(target=push, daemon=True)
    sender.start()
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass  # the reset that follows a close with unread data; the answer came before it
    sender.join(timeout=30)
    sock.close()
    return answer, pushed


def _assert_refused(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 413 Request Entity Too Large"
    assert "connection: close" in lines[1:]
    assert json.loads(body) == TOO_LARGE


def _honest_call_is_quick(served: ServedSandbox) -> None:
    with httpx.Client(base_url=served.base_url, timeout=10) as http:
        client = SandboxClient(http, sandbox_options(served.db_path))
        started = time.monotonic()
        doc = client.account("account_check", {"CheckItem": [{"UserID": "alice"}]})
        elapsed = time.monotonic() - started
    assert doc["ErrorCode"] == 0
    assert elapsed < 1.0, f"an honest call took {elapsed:.2f} s"


HEAD = "POST {target} HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n{framing}\r\n"
FRAMINGS = {
    # 2 GiB declared: refused on the headers, before a byte of the body is read
    "declared-huge": ("Content-Length: 2147483648\r\n", lambda i: b" " * CHUNK),
    # no length at all: refused once a MiB has streamed in
    "chunked": (
        "Transfer-Encoding: chunked\r\n",
        lambda i: b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK),
    ),
    # a small Content-Length that chunked framing overrides (RFC 9112 6.3): the count decides
    "lying-length": (
        "Content-Length: 10\r\nTransfer-Encoding: chunked\r\n",
        lambda i: b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK),
    ),
}


@pytest.mark.parametrize("case", sorted(FRAMINGS))
def test_an_oversized_body_is_refused_413_without_being_read(
    served: ServedSandbox, case: str
) -> None:
    framing, body = FRAMINGS[case]
    before = _rss_bytes(served.process.pid)
    head = HEAD.format(target=_target(served), framing=framing).encode("latin-1")
    answer, pushed = _hostile(served, head, body)
    _assert_refused(answer)
    # the connection closed long before the 48 MiB were in (socket buffers hold a few MiB)
    assert pushed < PUSHED // 2, f"{pushed:,} bytes went in"
    assert _rss_bytes(served.process.pid) - before < 16 * 1024 * 1024
    _honest_call_is_quick(served)


def test_a_body_at_the_cap_is_read_and_one_byte_more_is_not(served: ServedSandbox) -> None:
    padded = CHECK_BODY + b" " * (MAX_BODY_BYTES - len(CHECK_BODY))
    with httpx.Client(base_url=served.base_url, timeout=10) as http:
        at_cap = http.post(_target(served), content=padded)
        over = http.post(_target(served), content=padded + b" ")
    assert (at_cap.status_code, at_cap.json()["ErrorCode"]) == (200, 0)
    assert (over.status_code, over.json()) == (413, TOO_LARGE)
    assert over.headers["connection"] == "close"


def test_the_in_process_sandbox_has_the_same_cap(sandbox: Sandbox) -> None:
    over = sandbox.handle(
        "POST", CHECK, _query(sandbox.options), CHECK_BODY + b" " * MAX_BODY_BYTES
    )
    assert over == (
        413,
        [("content-type", "application/json; charset=utf-8")],
        json.dumps(TOO_LARGE, separators=(",", ":")).encode(),
    )
    assert sandbox.stats()["calls"] == {}  # refused before it was routed or counted
