"""Shared fixtures: the sandbox in-process and over real HTTP on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_e2e_common import Project, Vendor, in_process_project

from reconciler.sandbox.client import SandboxClient
from reconciler.sandbox.serve import RunningServer, serve_in_thread
from reconciler.sandbox.server import Sandbox, SandboxOptions


@pytest.fixture(scope="session", autouse=True)
def private_lock_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Run locks (reconciler/lock.py) live in a per-user directory: the tests' go to their own,
    inherited by every subprocess, never to the user's."""
    runtime = tmp_path_factory.mktemp("xdg-runtime")
    saved = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    yield runtime
    if saved is None:
        del os.environ["XDG_RUNTIME_DIR"]
    else:
        os.environ["XDG_RUNTIME_DIR"] = saved


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """An in-process sandbox on a fresh SQLite file, default credentials."""
    box = Sandbox(SandboxOptions(db_path=tmp_path / "sandbox.db"))
    yield box
    box.close()


@pytest.fixture
def make_sandbox_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start sandbox servers over real HTTP; keyword arguments override `SandboxOptions`.

    Each server is uvicorn in a thread on a free 127.0.0.1 port (`.base_url`, `.db_path`,
    `.options`, `.sandbox`); all are stopped at teardown. The db defaults to `tmp_path/sandbox.db`,
    so a second server started in the same test sees the first one's state (a restart).
    """
    with ExitStack() as stack:

        def start(**overrides: Any) -> RunningServer:
            options = dataclasses.replace(
                SandboxOptions(db_path=tmp_path / "sandbox.db"), **overrides
            )
            return stack.enter_context(serve_in_thread(options))

        yield start


@pytest.fixture
def sandbox_server(make_sandbox_server: Callable[..., RunningServer]) -> RunningServer:
    """A sandbox served over real HTTP on 127.0.0.1 (free port), default credentials."""
    return make_sandbox_server()


class FakeClock:
    """A clock tests move by hand: `clock()` is the time, `clock.advance(s)` moves it."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox_client(sandbox_server: RunningServer) -> Iterator[SandboxClient]:
    """A vendor-protocol client of `sandbox_server` over real HTTP."""
    with httpx.Client(base_url=sandbox_server.base_url) as http:
        yield SandboxClient(http, sandbox_server.options, clock=sandbox_server.options.clock)


@pytest.fixture
def project(
    tmp_path: Path,
    make_sandbox_server: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Project:
    """An e2e project (tests/test_e2e_common.py) on a new in-thread sandbox server."""
    return in_process_project(tmp_path, make_sandbox_server, monkeypatch)


@pytest.fixture
def vendor(project: Project) -> Iterator[Vendor]:
    """Raw vendor calls against `project`'s sandbox."""
    client = project.vendor()
    yield client
    client.close()
