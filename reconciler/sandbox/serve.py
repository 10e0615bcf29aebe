"""`reconciler sandbox serve`: the emulator as a real HTTP server (uvicorn over the ASGI app)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import signal
import socket
import sqlite3
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import uvicorn

from reconciler.errors import ConfigError
from reconciler.sandbox import behaviour
from reconciler.sandbox.server import Sandbox, SandboxOptions

log = logging.getLogger(__name__)


def options_from_args(args: argparse.Namespace) -> SandboxOptions:
    """The `SandboxOptions` the flags of `reconciler sandbox serve` describe (`ConfigError` if
    a value is out of range)."""
    if not 0 <= args.fail_rate <= 1:
        raise ConfigError(f"--fail-rate must be between 0 and 1, not {args.fail_rate}")
    if args.latency_ms < 0:
        raise ConfigError(f"--latency-ms must not be negative, not {args.latency_ms}")
    if args.calls_per_second is not None and args.calls_per_second < 0:
        raise ConfigError(
            f"--calls-per-second must be 0 (unlimited) or more, not {args.calls_per_second}"
        )
    return SandboxOptions(
        db_path=args.db,
        sdkappid=args.sdkappid,
        secret_key=args.secret_key,
        admin=args.admin,
        wechat_appid=args.wechat_appid,
        wechat_secret=args.wechat_secret,
        latency_ms=args.latency_ms,
        fail_rate=args.fail_rate,
        seed=args.seed,
        calls_per_second=args.calls_per_second,
        behaviour=behaviour.from_args(args),
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one), so the real port is known before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only turns Nagle off (TCP_NODELAY) on accepted sockets whose
    # proto is IPPROTO_TCP; with proto 0 every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def banner(url: str, options: SandboxOptions) -> str:
    """What `serve` prints on start: where it listens and the (test) credentials it accepts."""
    return (
        f"reconciler sandbox listening on {url}\n"
        f"  state:          {options.db_path}\n"
        f"  Tencent IM:     {url}/v4/<service>/<command>\n"
        f"    sdkappid:     {options.sdkappid}\n"
        f"    identifier:   {options.admin}\n"
        f"    secret key:   {options.secret_key}\n"
        f"  WeChat:         {url}/cgi-bin/<endpoint>\n"
        f"    appid:        {options.wechat_appid}\n"
        f"    secret:       {options.wechat_secret}\n"
        f"  stats:          {url}/__sandbox/stats\n"
        f"{target_block(url, options)}"
        "Press Ctrl+C to stop.\n"
    )


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_NOT_STRINGS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
#: The environment variables the printed target reads its credentials from.
SECRET_KEY_VARIABLE = "SANDBOX_SECRET_KEY"
WECHAT_SECRET_VARIABLE = "SANDBOX_WECHAT_SECRET"


def _scalar(value: str) -> str:
    """`value` as YAML reads it back: plain when it is a plain word, else JSON's quoting."""
    plain = _PLAIN.fullmatch(value) and value.lower() not in _NOT_STRINGS
    return value if plain else json.dumps(value)


def target_block(url: str, options: SandboxOptions) -> str:
    """A `reconciler.yaml` target for this server, ready to paste: both endpoints (without
    `wechat.endpoint` the WeChat calls would go to api.weixin.qq.com), credentials as `${VAR}`
    (printed once, above: the secrets test holds the banner to that)."""
    return (
        f"A reconciler.yaml target for it (export {SECRET_KEY_VARIABLE} and"
        f" {WECHAT_SECRET_VARIABLE}, the secret key and secret above):\n"
        "targets:\n"
        "  served:\n"
        "    type: tencent\n"
        f"    endpoint: {url}\n"
        f"    sdkAppId: {options.sdkappid}\n"
        f"    identifier: {_scalar(options.admin)}\n"
        f"    secretKey: ${{{SECRET_KEY_VARIABLE}}}\n"
        "    wechat:\n"
        f"      appId: {_scalar(options.wechat_appid)}\n"
        f"      secret: ${{{WECHAT_SECRET_VARIABLE}}}\n"
        f"      endpoint: {url}\n"
    )


class _Server(uvicorn.Server):
    """uvicorn that exits 0 on SIGINT/SIGTERM and can announce itself once it is serving.

    uvicorn re-raises the stop signal after a graceful shutdown; `serve` must exit 0 instead.
    `on_started` runs when the server accepts connections and its signal handlers are in place,
    so whoever reads the banner may stop the server at once.
    """

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_started is not None:
            self._on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        stops = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def _server(sandbox: Sandbox, on_started: Callable[[], None] | None = None) -> _Server:
    config = uvicorn.Config(
        sandbox.asgi_app,
        interface="asgi3",
        lifespan="off",
        log_level="warning",
        access_log=False,
        date_header=False,  # vendor replies carry the sandbox clock's Date (server.py)
        timeout_keep_alive=30,
        backlog=1024,
    )
    return _Server(config, on_started)


def command(args: argparse.Namespace, *, stdout: TextIO) -> int:
    """Run `reconciler sandbox serve` until SIGINT or SIGTERM; exit 0."""
    options = options_from_args(args)
    try:
        sandbox = Sandbox(options)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open the sandbox database {options.db_path}: {exc}") from exc
    try:
        try:
            sock = bind(args.host, args.port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
        text = banner(base_url(sock), options)

        def announce() -> None:
            stdout.write(text)
            stdout.flush()

        # SIGINT and SIGTERM make run() shut down gracefully and return.
        _server(sandbox, announce).run(sockets=[sock])
    finally:
        sandbox.close()
    return 0


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A sandbox served over real HTTP in a background thread (for tests and benchmarks)."""

    base_url: str
    sandbox: Sandbox

    @property
    def options(self) -> SandboxOptions:
        return self.sandbox.options

    @property
    def db_path(self) -> Path | str:
        return self.sandbox.options.db_path


@contextlib.contextmanager
def serve_in_thread(
    options: SandboxOptions, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningServer]:
    """Serve a new `Sandbox(options)` on `host:port` in a thread; stop and close it on exit."""
    sandbox = Sandbox(options)
    sock = bind(host, port)
    server = _server(sandbox)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="sandbox-server", daemon=True
    )
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("sandbox server thread died on start")
            threading.Event().wait(0.005)
        yield RunningServer(base_url(sock), sandbox)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        sandbox.close()
