"""The commands that run against a target: `plan`, `apply` and `drift`.

Each stage is its own module; this one wires them: config and target, manifests, live read,
narrowing, diff, plan or drift report, rendering. Commands return their exit status and write to
the streams they are given; `cli.py` parses flags and owns the process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from reconciler.apply import apply_plan, phase_totals, render_result
from reconciler.changes import Change, PlanProblem, SetMassSpeed
from reconciler.config import (
    Config,
    Safety,
    Target,
    TencentTarget,
    load_config,
    select_target,
)
from reconciler.connect import Providers, connect
from reconciler.diff import diff, narrow
from reconciler.drift import IgnoreEntry, build_drift, parse_ignore
from reconciler.errors import ConfigError, ReconcilerError, StalePlanError
from reconciler.interrupt import StopSignal, graceful
from reconciler.live import LiveState
from reconciler.load import CONFIG_NAME, display_path, load_file
from reconciler.lock import run_lock
from reconciler.model import DesiredState, canonical_account_id
from reconciler.plan import Plan, TargetIdentity, build_plan
from reconciler.planfile import check_fresh, dump_plan, load_plan, read_plan_file
from reconciler.progress import progress, reading
from reconciler.read import read_fingerprinted, read_live
from reconciler.render import (
    members_ndjson,
    render_drift_json,
    render_drift_markdown,
    render_drift_text,
    render_json,
    render_markdown,
    render_text,
)
from reconciler.safety import check_safety
from reconciler.validate import load_desired_state


@dataclass(frozen=True, slots=True)
class Scope:
    """What a run reads and changes: manifests, target and the accounts chosen by flags."""

    config: Config
    target: Target
    identity: TargetIdentity
    #: every declared account (orphan detection needs them all)
    desired: DesiredState
    #: the accounts `--selector` and `--exclude` keep
    selected: DesiredState
    selector: Mapping[str, str]
    exclude: tuple[str, ...]


def parse_selector(items: Sequence[str]) -> dict[str, str]:
    """`--selector team=content` (repeatable) → {"team": "content"}."""
    selector: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--selector {item!r}: expected KEY=VALUE")
        selector[key.strip()] = value.strip()
    return selector


def _manifest_paths(paths: Sequence[str]) -> list[str]:
    return [p for p in paths if p == "-" or Path(p).name != CONFIG_NAME]


def _config_dir(paths: Sequence[str]) -> Path | None:
    """`reconciler.yaml` is looked for beside the manifests: the first directory argument holding
    one (or a `reconciler.yaml` named on the command line), else the current directory."""
    for raw in paths:
        path = Path(raw)
        if raw != "-" and path.name == CONFIG_NAME and path.is_file():
            return path.parent
        if raw != "-" and path.is_dir() and (path / CONFIG_NAME).is_file():
            return path
    return None


def open_scope(
    paths: Sequence[str],
    *,
    config: str | None,
    target: str | None,
    selector: Sequence[str] = (),
    exclude: Sequence[str] = (),
    stdin: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    parallelism: int | None = None,
) -> Scope:
    """Load config and manifests (no network) and choose the target and the accounts."""
    chosen = parse_selector(selector)
    loaded = with_parallelism(
        load_config(
            Path(config) if config else None,
            search_dir=_config_dir(paths),
            environ=os.environ if environ is None else environ,
        ),
        parallelism,
    )
    where = select_target(loaded, target)
    desired = load_desired_state(_manifest_paths(paths), stdin=stdin, config=loaded.path)
    excluded = tuple(sorted({canonical_account_id(e) for e in exclude}))
    selected, _ = narrow(desired, _EMPTY, selector=chosen, exclude=excluded)
    return Scope(
        loaded, where, TargetIdentity.from_target(where), desired, selected, chosen, excluded
    )


_EMPTY = LiveState(accounts={}, existing_users=frozenset())


def with_parallelism(config: Config, parallelism: int | None) -> Config:
    """`--parallelism N`: `limits.concurrency` for this run only."""
    if parallelism is None:
        return config
    limits = dataclasses.replace(config.limits, concurrency=parallelism)
    return dataclasses.replace(config, limits=limits)


async def _read_live(scope: Scope, providers: Providers, stderr: TextIO | None) -> LiveState:
    """The live read, with a call counter on stderr when it is a terminal."""
    im = providers.im
    with_speed = providers.wechat

    def calls() -> int:
        return sum(im.calls.values()) + (sum(with_speed.calls.values()) if with_speed else 0)

    async with reading(stderr or io.StringIO(), calls):
        return await read_live(
            scope.selected, im, inventory_user=scope.config.inventory, mass=providers.wechat
        )


async def _read(scope: Scope, stderr: TextIO | None) -> LiveState:
    async with connect(scope.target, scope.config.limits, read_only=True) as providers:
        return await _read_live(scope, providers, stderr)


def read_scope(scope: Scope, stderr: TextIO | None = None) -> tuple[DesiredState, LiveState]:
    """Read live state for the chosen accounts (read-only: a write is refused before it is
    sent); both sides narrowed to them."""
    live = asyncio.run(_read(scope, stderr))
    return narrow(scope.desired, live, selector=scope.selector, exclude=scope.exclude)


def diff_scope(
    scope: Scope, desired: DesiredState, live: LiveState, *, prune: bool
) -> list[Change]:
    """`diff`, plus what only the target can tell: a declared MassSpeed on a target without WeChat
    credentials can be neither read nor set, so it is a problem of the plan (exit 1), not a change
    that apply could only fail."""
    changes = diff(desired, live, prune=prune, inventory_user=scope.config.inventory)
    speed = desired.mass_speed
    target = scope.target
    if speed is None or not isinstance(target, TencentTarget) or target.wechat is not None:
        return changes
    problem = PlanProblem(
        "",
        f"{speed.position}: MassSpeed '{speed.name}' is declared but target '{target.name}' has"
        f" no WeChat credentials (targets.{target.name}.wechat: appId, secret)",
    )
    kept = [c for c in changes if not isinstance(c, SetMassSpeed)]
    return sorted([*kept, problem], key=lambda c: c.sort_key)


def make_plan(scope: Scope, *, prune: bool, stderr: TextIO | None = None) -> Plan:
    """Read, diff and plan: everything `plan` shows, without changing anything."""
    desired, live = read_scope(scope, stderr)
    changes = diff_scope(scope, desired, live, prune=prune)
    return build_plan(
        changes,
        desired=desired,
        live=live,
        target=scope.identity,
        limits=scope.config.limits,
        safety=scope.config.safety,
        prune=prune,
    )


def use_color(no_color: bool, stream: TextIO) -> bool:
    """Colour only on a terminal, never with `--no-color` or `NO_COLOR` set."""
    if no_color or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _write(path: str, text: str, what: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReconcilerError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc


def render_plan(plan: Plan, fmt: str, *, color: bool, show_all: bool) -> str:
    if fmt == "json":
        return render_json(plan, show_all=show_all)
    if fmt == "markdown":
        return render_markdown(plan)
    return render_text(plan, color=color, show_all=show_all)


def plan_command(
    paths: Sequence[str],
    *,
    config: str | None,
    target: str | None,
    fmt: str,
    out: str | None,
    members_out: str | None,
    detailed_exitcode: bool,
    prune: bool,
    selector: Sequence[str],
    exclude: Sequence[str],
    show_all: bool,
    no_color: bool,
    stdout: TextIO,
    stdin: TextIO,
    stderr: TextIO | None = None,
    parallelism: int | None = None,
) -> int:
    """`reconciler plan`: 0 (no changes, or changes without `--detailed-exitcode`), 2 changes
    with `--detailed-exitcode`, 1 when the plan has problems."""
    scope = open_scope(
        paths,
        config=config,
        target=target,
        selector=selector,
        exclude=exclude,
        stdin=stdin,
        parallelism=parallelism,
    )
    plan = make_plan(scope, prune=prune, stderr=stderr)
    text = render_plan(plan, fmt, color=use_color(no_color, stdout), show_all=show_all)
    stdout.write(text if text.endswith("\n") else text + "\n")
    if out is not None and not plan.problems:
        recorded = None if scope.config.path is None else str(scope.config.path)
        _write(out, dump_plan(dataclasses.replace(plan, config_path=recorded)), "the plan file")
    if members_out is not None:
        _write(members_out, "".join(line + "\n" for line in members_ndjson(plan)), "members to")
    return plan.exit_code(detailed=detailed_exitcode)


def load_ignores(path: str | None) -> list[IgnoreEntry]:
    """The `--ignore` file's entries; its YAML goes through the one YAML module."""
    if path is None:
        return []
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"ignore file '{path}' not found")
    result = load_file(file, display_path(file))
    if result.problems:
        raise ConfigError("\n".join(str(p) for p in result.problems))
    if len(result.documents) > 1:
        raise ConfigError(f"{display_path(file)}: an ignore file holds one document")
    data = result.documents[0].data if result.documents else None
    return parse_ignore(data, source=display_path(file))


def drift_command(
    paths: Sequence[str],
    *,
    config: str | None,
    target: str | None,
    fmt: str,
    ignore: str | None,
    selector: Sequence[str],
    exclude: Sequence[str],
    show_all: bool,
    stdout: TextIO,
    stdin: TextIO,
    today: dt.date | None = None,
    stderr: TextIO | None = None,
    parallelism: int | None = None,
) -> int:
    """`reconciler drift`: read-only; 0 in sync, 2 drift, 1 error. It cannot write: its HTTP
    client refuses every request that is not a vendor read (`reconciler.readonly`)."""
    ignores = load_ignores(ignore)
    scope = open_scope(
        paths,
        config=config,
        target=target,
        selector=selector,
        exclude=exclude,
        stdin=stdin,
        parallelism=parallelism,
    )
    desired, live = read_scope(scope, stderr)
    changes = diff_scope(scope, desired, live, prune=False)
    report = build_drift(
        changes, target=scope.identity, ignores=ignores, today=today or dt.date.today()
    )
    if fmt == "json":
        text = render_drift_json(report, show_all=show_all)
    elif fmt == "markdown":
        text = render_drift_markdown(report)
    else:
        text = render_drift_text(report, show_all=show_all)
    stdout.write(text if text.endswith("\n") else text + "\n")
    return report.exit_code


def _saved_plan(paths: Sequence[str]) -> Path | None:
    """`apply PLANFILE`: one argument naming a file that holds JSON (plans are JSON, manifests
    are YAML documents)."""
    if len(paths) != 1 or paths[0] == "-":
        return None
    path = Path(paths[0])
    if not path.is_file() or path.suffix in (".yaml", ".yml"):
        return None
    try:
        with path.open("rb") as handle:
            head = handle.read(64).lstrip()
    except OSError:
        return None
    return path if head.startswith(b"{") else None


def _confirm(stdin: TextIO | None, stdout: TextIO) -> None:
    """Ask for 'yes', on a terminal or from a pipe (`echo yes | reconciler apply`), as Terraform
    does. Only a line reading 'yes' applies; a closed or empty stdin, or one that cannot be read,
    is no answer and refuses."""
    stdout.write(
        "\nDo you want to perform these actions? Only 'yes' will be accepted.\n  Enter a value: "
    )
    stdout.flush()
    readline = getattr(stdin, "readline", None)  # None: the process was started with fd 0 closed
    try:
        answer = readline() if readline is not None else ""
    except (OSError, ValueError, UnicodeDecodeError):  # a closed stream, or not text
        answer = ""
    isatty = getattr(stdin, "isatty", None)
    if not (isatty and isatty()):
        stdout.write("\n")  # an answer from a pipe is not echoed: end the prompt's line
    if not answer:
        raise ConfigError(
            "apply needs confirmation and standard input gave no answer (closed or empty):"
            " review the plan and answer 'yes', or pass --auto-approve (nothing was applied)"
        )
    if answer.strip() != "yes":
        raise ReconcilerError("apply cancelled, nothing was applied")


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    """The flags of `reconciler apply` that shape what runs."""

    auto_approve: bool = False
    prune: bool = False
    allow_removals: int | None = None
    allow_destroys: int | None = None
    force: bool = False
    verify_full: bool = False
    show_all: bool = False
    no_color: bool = False


def _check_safety(plan: Plan, safety: Safety, options: ApplyOptions, stdout: TextIO) -> None:
    """Refuse an unsafe plan; when overrides let one pass, say so under the plan, whose own
    `Safety:` line (made without overrides) still says apply would refuse it."""
    check_safety(
        plan.changes,
        safety,
        allow_removals=options.allow_removals,
        allow_destroys=options.allow_destroys,
        force=options.force,
    )
    if plan.violations:
        flags = [
            f"--{name} {value}"
            for name, value in (
                ("allow-removals", options.allow_removals),
                ("allow-destroys", options.allow_destroys),
            )
            if value is not None
        ] + (["--force"] if options.force else [])
        stdout.write(f"Safety: overridden by {' '.join(flags)}.\n")


async def _apply_manifests(
    scope: Scope, options: ApplyOptions, stdout: TextIO, stderr: TextIO, stdin: TextIO
) -> int:
    config = scope.config
    stop = StopSignal()
    async with connect(scope.target, config.limits, stop=stop) as providers:
        live = await _read_live(scope, providers, stderr)
        desired, live = narrow(scope.desired, live, selector=scope.selector, exclude=scope.exclude)
        changes = diff_scope(scope, desired, live, prune=options.prune)
        plan = build_plan(
            changes,
            desired=desired,
            live=live,
            target=scope.identity,
            limits=config.limits,
            safety=config.safety,
            prune=options.prune,
        )
        color = use_color(options.no_color, stdout)
        stdout.write(render_text(plan, color=color, show_all=options.show_all))
        if plan.problems:
            return 1
        if not plan.has_changes:
            return 0
        _check_safety(plan, config.safety, options, stdout)
        if not options.auto_approve:
            _confirm(stdin, stdout)
        return await _execute(plan, providers, config.inventory, options, stdout, stderr, stop)


async def _execute(
    plan: Plan,
    providers: Providers,
    inventory: str,
    options: ApplyOptions,
    stdout: TextIO,
    stderr: TextIO,
    stop: StopSignal,
) -> int:
    """Apply `plan` and print the summary; a SIGINT or SIGTERM meanwhile stops it (no new call,
    those in flight finish) and it exits 128 + the signal's number after the summary."""
    with graceful(stop), progress(stderr, phase_totals(plan)) as advance:
        result = await apply_plan(
            plan,
            providers,
            inventory_user=inventory,
            verify_full=options.verify_full,
            progress=advance,
            stop=stop,
        )
    stdout.write("\n" + render_result(result))
    stdout.flush()
    return result.exit_code if result.interrupted is None else 128 + result.interrupted


async def _apply_saved(
    path: Path,
    *,
    config: str | None,
    target: str | None,
    options: ApplyOptions,
    stdout: TextIO,
    stderr: TextIO,
    parallelism: int | None = None,
) -> int:
    plan = load_plan(read_plan_file(path, source=display_path(path)), source=display_path(path))
    config_file = Path(config) if config else None
    if config_file is None and not Path(CONFIG_NAME).is_file() and plan.config_path is not None:
        # the plan was made with a reconciler.yaml beside its manifests: use that one
        config_file = Path(plan.config_path)
    loaded = with_parallelism(
        load_config(config_file, search_dir=None, environ=os.environ), parallelism
    )
    where = select_target(loaded, target or plan.target.name)
    identity = TargetIdentity.from_target(where)
    if identity != plan.target:
        raise StalePlanError(f"the plan was made for {plan.target.label}, not for {identity.label}")
    if plan.problems:
        raise StalePlanError("the saved plan has problems; fix them and make the plan again")
    with run_lock(where):
        return await _apply_saved_locked(plan, where, loaded, identity, options, stdout, stderr)


async def _apply_saved_locked(
    plan: Plan,
    where: Target,
    loaded: Config,
    identity: TargetIdentity,
    options: ApplyOptions,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    fingerprinted = list(plan.fingerprints)
    with_members = [a for a, f in plan.fingerprints.items() if f is not None and f.members]
    stop = StopSignal()
    async with connect(where, loaded.limits, stop=stop) as providers:
        live = await read_fingerprinted(
            fingerprinted,
            with_members,
            providers.im,
            inventory_user=loaded.inventory,
            mass=providers.wechat
            if plan.live_mass_speed is not None
            or any(c.kind == "setMassSpeed" for c in plan.changes)
            else None,
        )
        check_fresh(plan, target=identity, live=live)
        stdout.write(render_text(plan, color=use_color(options.no_color, stdout)))
        if not plan.has_changes:
            return 0
        _check_safety(plan, loaded.safety, options, stdout)
        return await _execute(plan, providers, loaded.inventory, options, stdout, stderr, stop)


def apply_command(
    paths: Sequence[str],
    *,
    config: str | None,
    target: str | None,
    selector: Sequence[str],
    exclude: Sequence[str],
    options: ApplyOptions,
    stdout: TextIO,
    stderr: TextIO,
    stdin: TextIO,
    parallelism: int | None = None,
) -> int:
    """`reconciler apply`: 0 all applied; 1 nothing applied; 3 partly applied."""
    saved = _saved_plan(paths)
    if saved is not None:
        if selector or exclude or options.prune:
            raise ConfigError(
                "--selector, --exclude and --prune shape a plan; a saved plan is applied as made"
            )
        return asyncio.run(
            _apply_saved(
                saved,
                config=config,
                target=target,
                options=options,
                stdout=stdout,
                stderr=stderr,
                parallelism=parallelism,
            )
        )
    scope = open_scope(
        paths,
        config=config,
        target=target,
        selector=selector,
        exclude=exclude,
        stdin=stdin,
        parallelism=parallelism,
    )
    # one apply per target at a time, held from before the read to the summary (lock.py)
    with run_lock(scope.target):
        return asyncio.run(_apply_manifests(scope, options, stdout, stderr, stdin))


def import_command(
    ids: Sequence[str],
    *,
    all_owned: bool,
    out: str,
    config: str | None,
    target: str | None,
    stdout: TextIO,
    parallelism: int | None = None,
) -> int:
    """`reconciler import`: 0 written and recorded; 1 on any error (nothing recorded)."""
    from reconciler.importer import import_accounts, render_import

    if bool(ids) == all_owned:
        raise ConfigError("import takes account ids or --all-owned (one of them)")
    loaded = with_parallelism(
        load_config(Path(config) if config else None, search_dir=None, environ=os.environ),
        parallelism,
    )
    where = select_target(loaded, target)
    directory = Path(out)

    async def run() -> str:
        async with connect(where, loaded.limits) as providers:
            result = await import_accounts(
                providers,
                ids=ids,
                all_owned=all_owned,
                inventory_user=loaded.inventory,
                out=directory,
            )
        return render_import(result, directory)

    # import records accounts in the inventory, as apply does: one run per target at a time
    with run_lock(where):
        text = asyncio.run(run())
    stdout.write(f"{TargetIdentity.from_target(where).describe()}\n" + text)
    return 0
