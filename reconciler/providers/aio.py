"""`AiohttpWire`: a `tencent` target's calls on aiohttp, with the policy that is ours around it.

aiohttp brings the C parser, the connection pool, TLS and proxy tunnels; here are only the rules:

- plain http is spoken only to a loopback host (a local `reconciler sandbox serve`);
- TLS is verified against what httpx's own stack trusts (`httpx.create_ssl_context()`: certifi's
  bundle, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), with no way to turn that off;
- `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` are honoured (a CONNECT tunnel per connection) unless
  `NO_PROXY` exempts the host; a loopback host is never proxied;
- the read-only guard of `plan`/`drift` sees every request before it is sent;
- what goes on the request line is checked (the URL is handed over as already encoded);
- failures raise httpx's exception tree, chained from the error below aiohttp's (the socket's,
  TLS's, the resolver's), never from an aiohttp error whose text holds the URL and its credential.

Imported only when a run talks to a `tencent` target: aiohttp costs a fifth of a second to import.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

import aiohttp
import httpx
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from reconciler.providers.wire import HEADERS, is_loopback_host, read_bounded

#: Called with a request's method and URL path (as sent, no query) before it is sent; raises to
#: refuse it (`reconciler.readonly.ReadOnlyGuard`).
Guard = Callable[[str, str], None]

#: An idle connection older than this is closed rather than reused, well before a server's own
#: idle timeout (uvicorn's default is 5 s, nginx's 75 s) makes reusing it a race.
KEEPALIVE_EXPIRY: Final = 4.0

#: What goes on a request line: a method token, and a path and query of printable ASCII without
#: spaces (the URL is handed to aiohttp as already encoded, so nothing else checks it).
_METHOD: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET: Final = re.compile(r"/[!-~]*")
_JSON_BODY: Final = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class _Route:
    """Where an endpoint's calls go, worked out once per endpoint."""

    base: str  # scheme, host and port as aiohttp is given them, and the path prefix
    path: str  # the endpoint's path prefix, for the guard
    proxy: str | None
    #: for a host written as a legacy IPv4 form (`127.1`), which aiohttp refuses in a URL: the
    #: name verified in the certificate and sent as Host (the URL holds the address it means)
    server_hostname: str | None = None
    #: the headers besides the session's, without a body and with a JSON one
    bare: Mapping[str, str] | None = None
    json: Mapping[str, str] = field(default_factory=lambda: _JSON_BODY)


def _route(endpoint: str, environ: Mapping[str, str]) -> _Route:
    """The route of `endpoint`; httpx.UnsupportedProtocol when it may not be spoken to."""
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        raise httpx.UnsupportedProtocol("the endpoint is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise httpx.UnsupportedProtocol(f"{parts.scheme!r} is not http or https")
    path = parts.path.rstrip("/")
    if parts.username is not None or parts.query or parts.fragment:
        raise httpx.UnsupportedProtocol("an endpoint holds no user info, query or fragment")
    if path and not _TARGET.fullmatch(path):
        raise httpx.UnsupportedProtocol("an endpoint's path must be printable ASCII")
    loopback = is_loopback_host(host)
    if parts.scheme == "http" and not loopback:
        # check_endpoint refuses such endpoints already; the wire never sends a credential in
        # clear over a network, whoever asks.
        raise httpx.UnsupportedProtocol("plain http is spoken only to loopback hosts; use https")
    proxy = None if loopback else _proxy_for(parts.scheme, host, port, environ)
    legacy = _legacy_ipv4(host)
    try:
        origin = URL.build(scheme=parts.scheme, host=legacy or host, port=port)
    except ValueError:
        raise httpx.UnsupportedProtocol("the endpoint is not a valid URL") from None
    if legacy is None:
        return _Route(f"{origin}{path}", path, proxy)
    named = {"Host": host if port is None else f"{host}:{port}"}
    return _Route(f"{origin}{path}", path, proxy, host, named, {**named, **_JSON_BODY})


def _legacy_ipv4(host: str) -> str | None:
    """The dotted quad a legacy IPv4 form means (`127.1`, `0x7f.1`), None for anything else."""
    if not re.fullmatch(r"[0-9a-fA-FxX.]+", host):
        return None
    with contextlib.suppress(ValueError):
        ipaddress.IPv4Address(host)
        return None  # already canonical
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


def _proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """The `<scheme>_proxy` variables, as `urllib.request.getproxies_environment` reads them:
    any case, the lower-case one winning; `HTTP_PROXY` ignored under CGI (httpoxy), where a
    request's `Proxy:` header would set it."""
    found: dict[str, str] = {}
    for name, value in sorted(environ.items(), key=lambda item: item[0] == item[0].lower()):
        lowered = name.lower()
        if value and lowered.endswith("_proxy"):
            found[lowered[: -len("_proxy")]] = value
    if "REQUEST_METHOD" in environ:
        found.pop("http", None)
    return found


def _proxy_for(scheme: str, host: str, port: int | None, environ: Mapping[str, str]) -> str | None:
    """The proxy the environment names for `scheme://host` (`HTTPS_PROXY`, `HTTP_PROXY`, then
    `ALL_PROXY`, as curl and httpx read them), None when `NO_PROXY` exempts the host."""
    proxies = _proxies(environ)
    proxy = proxies.get(scheme) or proxies.get("all")
    if proxy is None:
        return None
    where = host if port is None else f"{host}:{port}"
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if "no" in proxies and bypass(where, proxies):
        return None
    if "://" not in proxy:
        proxy = f"http://{proxy}"
    if urlsplit(proxy).scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol("only http(s) proxies are supported (HTTPS_PROXY)")
    return proxy


def _translate(exc: BaseException) -> httpx.HTTPError:
    """httpx's exception for an aiohttp failure. Its text never holds the URL (aiohttp's
    response errors name it, with its credential), and it is chained (by the caller) from the
    error below aiohttp's, which `Caller` reads to name a certificate or a name that does not
    resolve."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout("")
    if isinstance(exc, aiohttp.ServerTimeoutError):  # a read (sock_read) that waited too long
        return httpx.ReadTimeout("")
    if isinstance(exc, aiohttp.ClientConnectorError):  # connect, TLS, DNS, the proxy's tunnel
        return httpx.ConnectError(str(exc.os_error) or type(exc.os_error).__name__)
    if isinstance(exc, aiohttp.ClientResponseError):  # a malformed answer, a refused tunnel
        return httpx.RemoteProtocolError(exc.message or f"HTTP {exc.status}")
    if isinstance(exc, HttpProcessingError):
        return httpx.RemoteProtocolError(exc.message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(str(exc) or type(exc).__name__)
    if isinstance(exc, TimeoutError):  # before OSError: it is one
        return httpx.ReadTimeout("")
    if isinstance(exc, OSError):  # resets, refused writes (aiohttp's ClientOSError and others)
        return httpx.ReadError(str(exc) or type(exc).__name__)
    return httpx.TransportError(type(exc).__name__)


def _cause(exc: BaseException) -> BaseException | None:
    """What a translated aiohttp error is chained from: the error aiohttp wrapped (an
    `ssl.SSLCertVerificationError`, a `socket.gaierror`...) rather than aiohttp's own, whose text
    may name the URL; aiohttp's own only when its text holds none."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.__cause__
    return exc


class AiohttpWire:
    """Calls over one aiohttp session: at most `max_connections` open, kept alive and reused.

    Made inside the running event loop (`async with AiohttpWire(...)`); closing it closes every
    connection. `guard` sees every request before it is sent. `environ` names the proxies.
    """

    logs_requests = False

    def __init__(
        self,
        max_connections: int = 16,
        *,
        guard: Guard | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.guard = guard
        self._environ = dict(environ) if environ is not None else None
        self._routes: dict[str, _Route] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AiohttpWire:
        self._session = self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            # verifies and checks the host name, trusting what httpx would trust; no off switch
            ssl=httpx.create_ssl_context(),
            keepalive_timeout=KEEPALIVE_EXPIRY,
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers=HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),  # the vendors set none; none is sent back
            auto_decompress=False,  # undone here, bounded (read_bounded)
            trust_env=False,  # proxies are chosen here (_route); no ~/.netrc credentials sent
            raise_for_status=False,
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _route(self, endpoint: str) -> _Route:
        route = self._routes.get(endpoint)
        if route is None:
            environ = os.environ if self._environ is None else self._environ
            route = self._routes[endpoint] = _route(endpoint, environ)
        return route

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            # each wait, as httpx's timeout: a place in the pool and connecting (the tunnel and
            # the TLS handshake included), then every read; the whole call is bounded by Caller
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(
                total=None, connect=seconds, sock_connect=seconds, sock_read=seconds
            )
        return timeout

    async def fetch(
        self,
        endpoint: str,
        method: str,
        target: str,
        body: bytes | None,
        *,
        timeout: float,
        limit: int,
    ) -> tuple[int, bytes | None]:
        route = self._route(endpoint)
        if not _METHOD.fullmatch(method) or not _TARGET.fullmatch(target):
            raise httpx.LocalProtocolError("a request method or target that cannot be sent")
        if self.guard is not None:
            self.guard(method, route.path + target.partition("?")[0])
        session = self._session
        if session is None:
            raise RuntimeError("AiohttpWire is used outside `async with`")
        url = URL(route.base + target, encoded=True)
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=route.bare if body is None else route.json,
                proxy=route.proxy,
                server_hostname=route.server_hostname,
                timeout=self._timeout(timeout),
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    return response.status, b""
                content = await read_bounded(
                    response.content.iter_any(),
                    response.headers.getall("Content-Encoding", ()),
                    response.headers.get("Content-Length"),
                    limit,
                )
                return 200, content
        except (aiohttp.ClientError, HttpProcessingError, OSError) as exc:
            raise _translate(exc) from _cause(exc)
