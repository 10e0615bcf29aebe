"""`reconciler.yaml`: targets, inventory, safety thresholds and limits.

The records below are the contract between loading (`load_config`) and everything that runs
against a target; `connect.py` turns a target into provider clients, nothing here builds one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

from reconciler.endpoints import REGION_DOMAINS, WECHAT_ENDPOINT
from reconciler.errors import ConfigError, Problem
from reconciler.load import (
    CONFIG_NAME,
    Node,
    NodeList,
    display_path,
    format_path,
    load_file,
    position_of,
    shown,
    type_name,
)
from reconciler.model import DEFAULT_INVENTORY_USER, Position
from reconciler.schemas import CONFIG_SCHEMA, schema_problems
from reconciler.secret import Secret

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WeChatCredentials:
    app_id: str
    secret: Secret
    endpoint: str = WECHAT_ENDPOINT
    #: `accountType`: "subscription" or "service" (no vendor API tells it); None when unset
    account_type: str | None = None


@dataclass(frozen=True, slots=True)
class SandboxTarget:
    """The embedded sandbox: in-process, state in SQLite at `path`, no network, no credentials.

    `load_config` makes `path` absolute (relative to the directory of reconciler.yaml, else the
    working directory), so that it names one database wherever a command runs from.
    """

    name: str
    path: Path


@dataclass(frozen=True, slots=True)
class TencentTarget:
    """The real vendor (or anything speaking its protocol at `endpoint`)."""

    name: str
    endpoint: str  # base URL, e.g. https://console.tim.qq.com (from `region`) or `endpoint:`
    sdkappid: int
    identifier: str
    secret_key: Secret
    wechat: WeChatCredentials | None = None
    region: str | None = None


Target = SandboxTarget | TencentTarget


@dataclass(frozen=True, slots=True)
class Safety:
    """Thresholds over which apply refuses (DESIGN section 6)."""

    max_destroys: int = 0
    max_subscriber_removals: int = 1000
    max_subscriber_removal_percent: float = 10.0
    #: the send caps configured (`safety.maxBroadcasts`, ...), `((rule, n), ...)` sorted; a cap
    #: not named here has its default (`reconciler.kinds.sending.SEND_CAPS`)
    max_sends: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """The client's own ceiling: calls per second per API and calls in flight."""

    calls_per_second: float = 200.0
    concurrency: int = 16
    #: seconds one attempt may wait (per read of its answer; the whole answer gets twice that)
    timeout_seconds: float = 10.0
    #: seconds one paged read (an account's subscribers, the inventory's accounts) may take,
    #: from its first page to its last (`reconciler.providers.paging.READ_DEADLINE`)
    read_deadline_seconds: float = 1800.0
    #: days the vendor keeps an account's broadcast history (reference 7.3: 7 for trial and Pro);
    #: a message window may not be longer
    history_days: int = 7


@dataclass(frozen=True, slots=True)
class Config:
    """A loaded `reconciler.yaml` (or the defaults when there is none)."""

    path: Path | None
    default_target: str
    targets: Mapping[str, Target]
    inventory: str = DEFAULT_INVENTORY_USER
    safety: Safety = field(default_factory=Safety)
    limits: Limits = field(default_factory=Limits)
    #: targets declared but unusable here (a `${VAR}` is not set): name → the error selecting one
    #: raises. Kept apart so that a run on another target does not need their secrets.
    unresolved_targets: Mapping[str, str] = field(default_factory=dict)
    #: the time zone plans show message windows in (an IANA name, or UTC)
    time_zone: str = "UTC"


#: Where the embedded sandbox keeps its state when reconciler.yaml does not say.
SANDBOX_DB: Final = ".reconciler/sandbox.db"
#: The target used when there is no reconciler.yaml.
EMBEDDED_TARGET: Final = "sandbox"
#: The thresholds that are not send caps (`safety.maxBroadcasts`, ...: every other key).
_THRESHOLD_KEYS: Final = frozenset(
    {"maxDestroys", "maxSubscriberRemovals", "maxSubscriberRemovalPercent"}
)
#: `${NAME}` reads the environment; `$$` is a literal `$`.
_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")
_VAR_START = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|)")
_HTTP_SCHEMES: Final = ("http://", "https://")
#: Fields holding credentials: written literally, they draw a warning.
_SECRET_FIELDS: Final = (("secretKey",), ("wechat", "secret"))


def default_config() -> Config:
    """The configuration without a reconciler.yaml: the embedded sandbox (its database under the
    working directory), nothing else."""
    return Config(
        path=None,
        default_target=EMBEDDED_TARGET,
        targets=MappingProxyType({EMBEDDED_TARGET: _embedded(Path.cwd(), SANDBOX_DB)}),
    )


def _embedded(base: Path, db: str, name: str = EMBEDDED_TARGET) -> SandboxTarget:
    """A sandbox target whose database `db` is read relative to `base` and named by its
    absolute path, symlinks resolved: a saved plan names one database wherever it is applied
    from, and `cd examples && reconciler plan .` reads the one `reconciler plan examples/` does."""
    path = base / db
    try:
        return SandboxTarget(name, path.resolve())
    except (OSError, RuntimeError):  # a symlink loop: opening it says so, as a ConfigError
        return SandboxTarget(name, Path(os.path.abspath(path)))


def _variable_syntax(value: str) -> str | None:
    """Why `value`'s `$` placeholders are malformed, or None."""
    for match in _VAR_START.finditer(value):
        if match.group(0) == "$" and value[match.end() : match.end() + 1] == "{":
            return "malformed ${VAR} placeholder (a name is letters, digits and '_'; '$$' is a '$')"
    return None


def _interpolate(value: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        found = environ.get(name)
        if not found:
            missing.append(name)
            return ""
        return found

    return _VAR.sub(substitute, value), missing


def _walk_strings(
    node: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str, Position | None, Any, str | int]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                yield (*path, key), value, position_of(node, key), node, key
            else:
                yield from _walk_strings(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, str):
                yield (*path, index), value, position_of(node, index), node, index
            else:
                yield from _walk_strings(value, (*path, index))


def _non_finite(
    node: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], Position | None]]:
    """`.nan` anywhere: a NaN threshold compares false with everything, so
    `maxSubscriberRemovalPercent: .nan` would pass every plan (JSON Schema lets NaN through;
    `.inf` meets the schema's maxima, or means "no limit of ours" for callsPerSecond)."""
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        if isinstance(value, float) and math.isnan(value):
            yield (*path, key), position_of(node, key)
        else:
            yield from _non_finite(value, (*path, key))


def _substituted(
    node: Any,
    environ: Mapping[str, str],
    chosen: Callable[[tuple[str | int, ...]], bool],
    quoted: dict[str, str],
    path: tuple[str | int, ...] = (),
) -> Any:
    """A copy of `node` (positions kept) whose strings at `chosen` paths have their `${VAR}`s
    read from `environ`; a string with a variable that is not set, or a credential, is left as
    it is. `quoted` maps how a message would quote each value read to the text it came from, so
    that a problem names `${VAR}` and never shows what the environment holds."""
    if isinstance(node, Node):
        copy = Node(node.position)
        copy.key_positions.update(node.key_positions)
        copy.value_positions.update(node.value_positions)
        for key, value in node.items():
            copy[key] = _substituted(value, environ, chosen, quoted, (*path, key))
        return copy
    if isinstance(node, NodeList):
        items = NodeList(node.position)
        items.item_positions.extend(node.item_positions)
        items.extend(
            _substituted(v, environ, chosen, quoted, (*path, i)) for i, v in enumerate(node)
        )
        return items
    if not isinstance(node, str) or "$" not in node or not chosen(path):
        return node
    if tuple(path[2:]) in _SECRET_FIELDS:
        return node  # a credential's only rule is "not empty", which "is not set" covers
    value, missing = _interpolate(node, environ)
    if missing:
        return node
    quoted[shown(value)] = f"the value of {node}"
    return value


def environment_problems(data: Node, start: Position, environ: Mapping[str, str]) -> Problems:
    """The schema's rules applied to the values the environment gives `${VAR}`s (the schema
    lets a `${VAR}` stand for any field it may fill, for editors and for CI without secrets):
    the top-level fields' problems, and each target's apart (only selecting it fails)."""

    def check(chosen: Callable[[tuple[str | int, ...]], bool]) -> list[Problem]:
        quoted: dict[str, str] = {}
        copy = _substituted(data, environ, chosen, quoted)
        found = []
        for problem in schema_problems(CONFIG_SCHEMA, copy, start):
            message = problem.message
            for text, origin in quoted.items():
                message = message.replace(text, origin)
            found.append(dataclasses.replace(problem, message=message))
        return found

    targets = data.get("targets")
    names = list(targets) if isinstance(targets, Node) else []
    return Problems(
        top=check(lambda path: len(path) == 1),
        targets={name: found for name in names if (found := check(_under(("targets", name))))},
    )


def _under(prefix: tuple[str, ...]) -> Callable[[tuple[str | int, ...]], bool]:
    return lambda path: path[: len(prefix)] == prefix


@dataclass(frozen=True, slots=True)
class Problems:
    """The problems of the values `${VAR}`s read: of the top-level fields, of each target."""

    top: list[Problem]
    targets: dict[str, list[Problem]]


def _load_one(path: Path) -> tuple[Any, Position, list[Problem]]:
    display = display_path(path)
    result = load_file(path, display)
    problems = list(result.problems)
    start = Position(display, 1, 1)
    if not result.documents:
        return (None if problems else Node(start)), start, problems
    first = result.documents[0]
    for extra in result.documents[1:]:
        pos = extra.position
        problems.append(
            Problem(pos.file, pos.line, pos.col, f"{CONFIG_NAME} holds one document, not several")
        )
    return first.data, first.position, problems


def _known_zone(name: str) -> bool:
    if name.upper() == "UTC":
        return True
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def check_config(path: Path) -> list[Problem]:
    """Every structural problem of a reconciler.yaml, without reading the environment.

    `validate` runs this in CI, where production secrets are not set: placeholders are checked
    for syntax only. A secret written literally is logged as a warning (pre-commit shows it).
    """
    data, start, problems = _load_one(path)
    if data is None:
        return problems
    if not isinstance(data, Node):
        problems.append(
            Problem(
                start.file,
                start.line,
                start.col,
                f"{CONFIG_NAME} must be a mapping, not {type_name(data)}",
            )
        )
        return problems
    problems.extend(schema_problems(CONFIG_SCHEMA, data, start))
    for key_path, pos in _non_finite(data, ()):
        at = pos or start
        problems.append(
            Problem(
                at.file, at.line, at.col, f"{format_path(key_path)}: must be a number, not .nan"
            )
        )
    for key_path, value, pos, _, _ in _walk_strings(data, ()):
        reason = _variable_syntax(value)
        if reason is not None:
            at = pos or start
            problems.append(Problem(at.file, at.line, at.col, f"{format_path(key_path)}: {reason}"))
    zone = data.get("timeZone")
    if isinstance(zone, str) and not _known_zone(zone):
        at = position_of(data, "timeZone") or start
        problems.append(Problem(at.file, at.line, at.col, f"timeZone: unknown time zone {zone!r}"))
    targets = data.get("targets")
    names = list(targets) if isinstance(targets, Node) else [EMBEDDED_TARGET]
    default = data.get("defaultTarget")
    if default is None and len(names) > 1 and EMBEDDED_TARGET not in names:
        pos = data.key_positions.get("targets", start)
        problems.append(
            Problem(
                pos.file,
                pos.line,
                pos.col,
                "defaultTarget: missing; required when there are several targets"
                " and none is named 'sandbox'",
            )
        )
    elif isinstance(default, str) and "$" not in default and default not in names:
        pos = position_of(data, "defaultTarget") or start
        problems.append(
            Problem(
                pos.file,
                pos.line,
                pos.col,
                f"defaultTarget: no target named {default!r} (targets: {_names(names)})",
            )
        )
    if isinstance(targets, Node) and not targets:
        pos = position_of(data, "targets") or start
        problems.append(
            Problem(
                pos.file,
                pos.line,
                pos.col,
                "targets: empty; declare a target, or leave `targets` out to use the embedded"
                " sandbox",
            )
        )
    if isinstance(targets, Node):
        for name, target in targets.items():
            if not isinstance(target, Node) or target.get("type") != "tencent":
                continue
            pos = position_of(targets, name) or start
            _warn_literal_secrets(name, target)
            problems.extend(_endpoint_problems(name, target, pos))
            if "region" not in target and "endpoint" not in target:
                problems.append(
                    Problem(
                        pos.file,
                        pos.line,
                        pos.col,
                        f"{format_path(('targets', name))}: needs region: or endpoint:",
                    )
                )
            appid = target.get("sdkAppId")
            if isinstance(appid, str) and "$" not in appid and not appid.isdigit():
                at = position_of(target, "sdkAppId") or pos
                problems.append(
                    Problem(
                        at.file,
                        at.line,
                        at.col,
                        f"{format_path(('targets', name, 'sdkAppId'))}: must be a number or"
                        f" ${{VAR}}, not {appid!r}",
                    )
                )
    return problems


def _names(names: list[str]) -> str:
    """Target names for a message, quoted like `format_path` quotes an odd key."""
    plain = (n and n.isprintable() and not any(c.isspace() for c in n) for n in names)
    return ", ".join(n if ok else repr(n) for n, ok in zip(names, plain, strict=True))


def _endpoint_problems(name: str, target: Node, pos: Position) -> list[Problem]:
    """Literal endpoints that `connect` would refuse: plain http (or anything but http(s)) to a
    host that is not this machine. Credentials travel in the URL (reference 1.1)."""
    from reconciler.providers.http import check_endpoint

    found: list[Problem] = []
    wechat = target.get("wechat")
    for where, container in (("endpoint", target), ("wechat.endpoint", wechat)):
        if not isinstance(container, Node):
            continue
        value = container.get("endpoint")
        if not isinstance(value, str) or "$" in value or not value.startswith(_HTTP_SCHEMES):
            continue  # placeholders are checked once resolved; other schemes by the schema
        at = position_of(container, "endpoint") or pos
        where_path = format_path(("targets", name, *where.split(".")))
        try:
            check_endpoint(value)
        except ConfigError as exc:
            found.append(Problem(at.file, at.line, at.col, f"{where_path}: {exc}"))
            continue
        reason = endpoint_extras(value)
        if reason is not None:
            found.append(Problem(at.file, at.line, at.col, f"{where_path}: {reason}"))
    return found


def endpoint_extras(url: str) -> str | None:
    """Why `url` cannot be a base URL the client appends paths and its query to, or None.

    A path prefix is fine (`https://gw.internal/im`, a gateway); user info, a query or a fragment
    are not: the client's query (the UserSig, the access token) would be appended after them, or
    land in a fragment that is never sent. The URL is not quoted: those parts may hold a secret.
    """
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None  # not a URL at all: `check_endpoint` says so
    extras = [
        what
        for what, present in (
            ("user info (user@)", "@" in netloc),
            ("a query (?...)", "?" in url),
            ("a fragment (#...)", "#" in url),
        )
        if present
    ]
    if not extras:
        return None
    return f"must be a base URL (scheme, host, port, path) without {' or '.join(extras)}"


def _warn_literal_secrets(name: str, target: Node) -> None:
    # A warning, not an error: a throwaway emulator's key may well live in the file.
    for fields in _SECRET_FIELDS:
        container: Any = target
        for part in fields[:-1]:
            container = container.get(part)
        value = container.get(fields[-1]) if isinstance(container, Node) else None
        if isinstance(value, str) and "$" not in value:
            log.warning(
                "%s: targets.%s.%s is written in the file; use ${VAR} and keep it out of git",
                position_of(container, fields[-1]),
                name,
                ".".join(fields),
            )


def split_paths(paths: Sequence[str]) -> tuple[list[str], list[Path]]:
    """Command-line paths as the manifests and the `reconciler.yaml` files named among them."""
    manifests: list[str] = []
    named: list[Path] = []
    for raw in paths:
        if raw != "-" and Path(raw).name == CONFIG_NAME:
            named.append(Path(raw))
        else:
            manifests.append(raw)
    return manifests, named


def find_configs(paths: Sequence[str]) -> list[Path]:
    """Each `reconciler.yaml` that `paths` name (whether it exists or not) or that encloses one of
    them, in the order of `paths`: reconciler.yaml is looked for beside the manifests, then in the
    directories above them, as git finds its root (`enclosing_config`).
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if raw == "-":
            continue
        if path.name == CONFIG_NAME:
            found.append(path)
            continue
        enclosing = enclosing_config(path if path.is_dir() else path.parent)
        if enclosing is not None and enclosing not in found:
            found.append(enclosing)
    return found


def enclosing_config(start: Path) -> Path | None:
    """The `reconciler.yaml` of `start` or of the nearest directory above it, never past the root
    of the repository `start` is in (a directory holding `.git`): `cd manifests/prod && reconciler
    plan .` finds the project's file, and a stray one outside the repository is never taken."""
    here = Path(os.path.abspath(start))
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate if directory != here else start / CONFIG_NAME
        if (directory / ".git").exists():
            return None
    return None


def config_file(
    flag: str | None, paths: Sequence[str] = (), *, recorded: str | None = None
) -> Path | None:
    """The `reconciler.yaml` a run uses: `--config`, else the first one `paths` name or hold, else
    (None) the current directory's; when it has none, the one a saved plan was made with
    (`recorded`). `load_config(None)` reads the current directory's, or uses the defaults.
    """
    if flag:
        return Path(flag)
    beside = next((path for path in find_configs(paths) if path.is_file()), None)
    if beside is not None:
        return beside
    if recorded is not None and not Path(CONFIG_NAME).is_file():
        return Path(recorded)
    return None


def load_config(
    path: Path | None, *, search_dir: Path | None = None, environ: Mapping[str, str]
) -> Config:
    """Load `path`, else `reconciler.yaml` in `search_dir` (default: the current directory).

    Without a file the embedded sandbox is the only target. `${VAR}` placeholders are read from
    `environ`; a target whose variables are missing is kept aside (`unresolved_targets`) so that
    only selecting it fails: a CI job without production secrets can still use the sandbox.
    """
    if path is None:
        candidate = (search_dir if search_dir is not None else Path.cwd()) / CONFIG_NAME
        if not candidate.is_file():
            return default_config()
        path = candidate
    elif not path.is_file():
        raise ConfigError(f"config file '{path}' not found")
    problems = check_config(path)
    if problems:
        raise ConfigError("\n".join(str(p) for p in sorted(problems)))
    data, start, _ = _load_one(path)
    assert isinstance(data, Node)  # check_config refused anything else
    errors: list[str] = []

    def resolved(container: Node, key: str, where: str) -> tuple[str, list[str]]:
        value, missing = _interpolate(container[key], environ)
        pos = position_of(container, key) or start
        return value, [
            f"{pos}: {where}: environment variable {name} is not set" for name in missing
        ]

    top: dict[str, str] = {}
    for key in ("defaultTarget", "inventory"):
        if key in data:
            top[key], missing = resolved(data, key, key)
            errors.extend(missing)
    if errors:
        raise ConfigError("\n".join(errors))
    from_environment = environment_problems(data, start, environ)
    if from_environment.top:
        raise ConfigError("\n".join(str(p) for p in sorted(from_environment.top)))
    targets: dict[str, Target] = {}
    unresolved: dict[str, str] = {}
    raw_targets = data.get("targets")
    base = path.resolve().parent  # a sandbox `path:` is relative to reconciler.yaml
    if isinstance(raw_targets, Node):
        for name, raw in raw_targets.items():
            wrong = from_environment.targets.get(name)
            if wrong:
                unresolved[name] = "\n".join(
                    [f"target {name!r} cannot be used:", *(str(p) for p in sorted(wrong))]
                )
                continue
            target, missing = _build_target(name, raw, resolved, base)
            if target is None:
                unresolved[name] = "\n".join(
                    [f"target {name!r} cannot be used: its credentials are missing", *missing]
                )
            else:
                targets[name] = target
    else:
        targets[EMBEDDED_TARGET] = _embedded(base, SANDBOX_DB)
    names = [*targets, *unresolved]
    default = top.get("defaultTarget") or (
        EMBEDDED_TARGET if EMBEDDED_TARGET in names else names[0]
    )
    safety = data.get("safety", {})
    limits = data.get("limits", {})
    safe, lim = Safety(), Limits()
    return Config(
        path=path.resolve(),  # a saved plan records it: it must name this file from anywhere
        default_target=default,
        targets=MappingProxyType(targets),
        inventory=top.get("inventory", DEFAULT_INVENTORY_USER),
        safety=Safety(
            # int(): JSON Schema counts 3.0 as an integer, so a float may reach here
            max_destroys=int(safety.get("maxDestroys", safe.max_destroys)),
            max_subscriber_removals=int(
                safety.get("maxSubscriberRemovals", safe.max_subscriber_removals)
            ),
            max_subscriber_removal_percent=float(
                safety.get("maxSubscriberRemovalPercent", safe.max_subscriber_removal_percent)
            ),
            max_sends=tuple(
                sorted((k, int(v)) for k, v in safety.items() if k not in _THRESHOLD_KEYS)
            ),
        ),
        limits=_limits(limits, lim),
        time_zone=str(data.get("timeZone", "UTC")),
        unresolved_targets=MappingProxyType(unresolved),
    )


def _limits(limits: Mapping[str, Any], lim: Limits) -> Limits:
    return Limits(
        calls_per_second=float(limits.get("callsPerSecond", lim.calls_per_second)),
        concurrency=int(limits.get("concurrency", lim.concurrency)),
        timeout_seconds=float(limits.get("timeoutSeconds", lim.timeout_seconds)),
        read_deadline_seconds=float(limits.get("readDeadlineSeconds", lim.read_deadline_seconds)),
        history_days=int(limits.get("historyDays", lim.history_days)),
    )


def limits_of(path: Path) -> Limits:
    """The `limits` of a reconciler.yaml that `check_config` found no problem in (no target is
    built, no environment read, nothing logged): what `validate` measures manifests against."""
    data, _start, _problems = _load_one(path)
    limits = data.get("limits") if isinstance(data, Node) else None
    return _limits(limits if isinstance(limits, Node) else {}, Limits())


def _build_target(
    name: str,
    raw: Node,
    resolved: Callable[[Node, str, str], tuple[str, list[str]]],
    base: Path,
) -> tuple[Target | None, list[str]]:
    where = format_path(("targets", name))
    missing: list[str] = []

    def get(container: Node, key: str, path: str) -> str:
        value, lacking = resolved(container, key, path)
        missing.extend(lacking)
        return value

    if raw["type"] == "sandbox":
        db = get(raw, "path", f"{where}.path") if "path" in raw else SANDBOX_DB
        return (None if missing else _embedded(base, db, name)), missing
    appid_raw = raw["sdkAppId"]
    appid = (
        str(int(appid_raw))
        if isinstance(appid_raw, int | float)
        else get(raw, "sdkAppId", f"{where}.sdkAppId")
    )
    identifier = get(raw, "identifier", f"{where}.identifier")
    secret_key = get(raw, "secretKey", f"{where}.secretKey")
    endpoint = get(raw, "endpoint", f"{where}.endpoint") if "endpoint" in raw else None
    region = get(raw, "region", f"{where}.region") if "region" in raw else None
    wechat: WeChatCredentials | None = None
    raw_wechat = raw.get("wechat")
    if isinstance(raw_wechat, Node):
        app_id = get(raw_wechat, "appId", f"{where}.wechat.appId")
        secret = get(raw_wechat, "secret", f"{where}.wechat.secret")
        wechat_endpoint = (
            get(raw_wechat, "endpoint", f"{where}.wechat.endpoint")
            if "endpoint" in raw_wechat
            else WECHAT_ENDPOINT
        )
        account_type = raw_wechat.get("accountType")  # the schema's enum: a literal
        wechat = WeChatCredentials(
            app_id,
            Secret(secret),
            wechat_endpoint,
            str(account_type) if account_type is not None else None,
        )
    if missing:
        return None, missing
    if not appid.isdigit():
        pos = position_of(raw, "sdkAppId") or raw.position
        return None, [f"{pos}: {where}.sdkAppId: the value of its variable is not a number"]
    for key, container, value in (
        ("endpoint", raw, endpoint),
        ("wechat.endpoint", raw_wechat, wechat.endpoint if wechat is not None else None),
    ):
        reason = None if value is None else endpoint_extras(value)
        if reason is not None:  # only a ${VAR} can hide one here: check_config saw the literals
            assert isinstance(container, Node)
            pos = position_of(container, "endpoint") or raw.position
            return None, [f"{pos}: {where}.{key}: the value of its variable {reason}"]
    if endpoint is None:
        endpoint = "https://" + REGION_DOMAINS[str(region)]
    return (
        TencentTarget(
            name=name,
            endpoint=endpoint.rstrip("/"),
            sdkappid=int(appid),
            identifier=identifier,
            secret_key=Secret(secret_key),
            wechat=wechat,
            region=region,
        ),
        [],
    )


def select_target(config: Config, name: str | None) -> Target:
    """The target `name` (default: the config's default target); an unusable one is an error."""
    chosen = name or config.default_target
    if chosen in config.targets:
        return config.targets[chosen]
    if chosen in config.unresolved_targets:
        raise ConfigError(config.unresolved_targets[chosen])
    known = _names(sorted([*config.targets, *config.unresolved_targets]))
    raise ConfigError(f"no target named {chosen!r} (targets: {known})")
