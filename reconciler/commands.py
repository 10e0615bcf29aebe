"""The commands that run against a target: `plan`, `apply`, `drift` and `import`.

`pipeline.py` runs the stages up to the plan (scope, read, narrow, diff); each command here does
its own part with the result: render and save a plan, report drift, confirm and apply. Commands
return their exit status and write to the streams they are given; `cli.py` parses flags and owns
the process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from reconciler.apply import apply_plan, phase_totals, render_apply_json, render_result
from reconciler.caps import SEND_CAPS
from reconciler.config import Config, Safety, Target
from reconciler.connect import Providers, connect
from reconciler.drift import IgnoreEntry, build_drift, parse_ignore
from reconciler.errors import ConfigError, ReconcilerError, StalePlanError, UsageError
from reconciler.interrupt import StopSignal, graceful, settle
from reconciler.load import display_path, load_file
from reconciler.lock import run_lock
from reconciler.outcome import ApplyResult
from reconciler.pipeline import Scope, compare, compare_read_only, open_scope, open_target
from reconciler.plan import Plan, TargetIdentity
from reconciler.planfile import check_fresh, dump_plan, load_plan, read_plan_file, repin
from reconciler.progress import progress
from reconciler.read import read_fingerprinted
from reconciler.render import (
    members_ndjson,
    render_drift_json,
    render_drift_markdown,
    render_drift_text,
    render_json,
    render_markdown,
    render_text,
    report_marker,
)
from reconciler.safety import check_safety
from reconciler.schemas import schema_problems


def read_and_plan(scope: Scope, *, prune: bool, stderr: TextIO | None = None) -> Plan:
    """Read, diff and plan: everything `plan` shows, without changing anything."""
    return compare_read_only(scope, prune=prune, stderr=stderr).plan()


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


def render_plan(
    plan: Plan, fmt: str, *, color: bool, show_all: bool, paths: Sequence[str] | None = None
) -> str:
    """`plan` in `fmt`; markdown ends with the marker of this target and `paths`."""
    if fmt == "json":
        return render_json(plan, show_all=show_all)
    if fmt == "markdown":
        marker = report_marker("plan", plan.target.name, paths)
        return render_markdown(plan, show_all=show_all, marker=marker)
    return render_text(plan, color=color, show_all=show_all)


def warn_targeting(scope: Scope, stderr: TextIO | None) -> None:
    """`--selector`/`--exclude` in effect: say how many accounts, and what matched nothing."""
    out = sys.stderr if stderr is None else stderr
    for line in scope.warnings():
        out.write(f"warning: {line}\n")


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
    warn_targeting(scope, stderr)
    plan = read_and_plan(scope, prune=prune, stderr=stderr)
    text = render_plan(plan, fmt, color=use_color(no_color, stdout), show_all=show_all, paths=paths)
    stdout.write(text if text.endswith("\n") else text + "\n")
    if out is not None and not plan.problems:
        recorded = None if scope.config.path is None else str(scope.config.path)
        _write(out, dump_plan(dataclasses.replace(plan, config_path=recorded)), "the plan file")
    if members_out is not None:
        _write(members_out, "".join(line + "\n" for line in members_ndjson(plan)), "members to")
    return plan.exit_code(detailed=detailed_exitcode)


#: schemas/drift-ignore.schema.json: the `--ignore` file (editors pick it up too)
IGNORE_SCHEMA = "drift-ignore"


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
    if not result.documents or result.documents[0].data is None:
        return []
    document = result.documents[0]
    problems = schema_problems(IGNORE_SCHEMA, document.data, document.position)
    if problems:
        raise ConfigError("\n".join(str(p) for p in problems))
    return parse_ignore(document.data, source=display_path(file))


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
    warn_targeting(scope, stderr)
    changes = compare_read_only(scope, prune=False, stderr=stderr).changes
    report = build_drift(
        changes, target=scope.identity, ignores=ignores, today=today or dt.date.today()
    )
    if fmt == "json":
        text = render_drift_json(report, show_all=show_all)
    elif fmt == "markdown":
        text = render_drift_markdown(
            report, marker=report_marker("drift", report.target.name, paths)
        )
    else:
        text = render_drift_text(report, show_all=show_all)
    stdout.write(text if text.endswith("\n") else text + "\n")
    return report.exit_code


def _holds_plan(name: str) -> bool:
    """A file holding JSON (plans are JSON, manifests are YAML documents)."""
    path = Path(name)
    if name == "-" or not path.is_file() or path.suffix in (".yaml", ".yml"):
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(64).lstrip()
    except OSError:
        return False
    return head.startswith(b"{")


def _saved_plan(paths: Sequence[str]) -> Path | None:
    """`apply PLANFILE`: one argument naming a saved plan; a plan beside manifests is refused."""
    plans = [name for name in paths if _holds_plan(name)]
    if not plans:
        return None
    if len(paths) > 1:
        raise UsageError(
            f"{plans[0]} is a saved plan: apply it alone (reconciler apply {plans[0]});"
            " a plan file cannot be mixed with manifests"
        )
    return Path(plans[0])


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
    #: `--format json`: the result as JSON on stdout, everything else on stderr
    json: bool = False
    #: exact send-cap overrides, by the cap's rule (`{"maxBroadcasts": 3}`, `--allow-broadcasts`)
    allow_sends: Mapping[str, int | None] = field(default_factory=dict)


def _check_safety(plan: Plan, safety: Safety, options: ApplyOptions, stdout: TextIO) -> None:
    """Refuse an unsafe plan; when overrides let one pass, say so under the plan, whose own
    `Safety:` line (made without overrides) still says apply would refuse it."""
    check_safety(
        plan.changes,
        safety,
        allow_removals=options.allow_removals,
        allow_destroys=options.allow_destroys,
        force=options.force,
        allow_sends=options.allow_sends,
    )
    if plan.violations:
        flags = [
            f"--{name} {value}"
            for name, value in (
                ("allow-removals", options.allow_removals),
                ("allow-destroys", options.allow_destroys),
                *((cap.flag[2:], options.allow_sends.get(cap.rule)) for cap in SEND_CAPS),
            )
            if value is not None
        ] + (["--force"] if options.force else [])
        stdout.write(f"Safety: overridden by {' '.join(flags)}.\n")


@dataclass(frozen=True, slots=True)
class Applied:
    """What one apply did: its plan, its exit status, and its result when it ran."""

    plan: Plan
    exit_code: int
    result: ApplyResult | None = None


async def _apply_manifests(
    scope: Scope, options: ApplyOptions, stdout: TextIO, stderr: TextIO, stdin: TextIO
) -> Applied:
    config = scope.config
    stop = StopSignal()
    async with connect(scope.target, config.limits, stop=stop) as providers:
        plan = (await compare(scope, providers, prune=options.prune, stderr=stderr)).plan()
        color = use_color(options.no_color, stdout)
        stdout.write(render_text(plan, color=color, show_all=options.show_all))
        if plan.problems:
            return Applied(plan, 1)
        if not plan.has_changes:
            return Applied(plan, 0)
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
) -> Applied:
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
    # a signal after the run stopped sending is late: noted, never raised into the teardown
    settle(stop.signum if result.interrupted is None else None)
    code = result.exit_code if result.interrupted is None else 128 + result.interrupted
    return Applied(plan, code, result)


async def _apply_saved(
    path: Path,
    *,
    config: str | None,
    target: str | None,
    options: ApplyOptions,
    stdout: TextIO,
    stderr: TextIO,
    parallelism: int | None = None,
) -> Applied:
    plan = load_plan(read_plan_file(path, source=display_path(path)), source=display_path(path))
    # without a reconciler.yaml here, the one the plan was made with (beside its manifests)
    loaded, where = open_target(
        config, target or plan.target.name, recorded=plan.config_path, parallelism=parallelism
    )
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
) -> Applied:
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
        pins, expired = await repin(plan, providers.im)
        check_fresh(plan, target=identity, live=live, pins=pins, expired=expired)
        stdout.write(render_text(plan, color=use_color(options.no_color, stdout)))
        if not plan.has_changes:
            return Applied(plan, 0)
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
    """`reconciler apply`: 0 all applied; 1 nothing applied; 3 partly applied. With
    `options.json` the plan and the summary go to `stderr` and the result to `stdout` as JSON."""
    human = stderr if options.json else stdout
    saved = _saved_plan(paths)
    if saved is not None:
        if selector or exclude or options.prune:
            raise ConfigError(
                "--selector, --exclude and --prune shape a plan; a saved plan is applied as made"
            )
        applied = asyncio.run(
            _apply_saved(
                saved,
                config=config,
                target=target,
                options=options,
                stdout=human,
                stderr=stderr,
                parallelism=parallelism,
            )
        )
    else:
        scope = open_scope(
            paths,
            config=config,
            target=target,
            selector=selector,
            exclude=exclude,
            stdin=stdin,
            parallelism=parallelism,
        )
        warn_targeting(scope, stderr)
        # one apply per target at a time, held from before the read to the summary (lock.py)
        with run_lock(scope.target):
            applied = asyncio.run(_apply_manifests(scope, options, human, stderr, stdin))
    if options.json:
        stdout.write(render_apply_json(applied.plan, applied.exit_code, applied.result))
    return applied.exit_code


def show_command(path: str, *, fmt: str, show_all: bool, no_color: bool, stdout: TextIO) -> int:
    """`reconciler show PLANFILE`: a saved plan rendered as `plan` renders it, from the file
    alone: no reconciler.yaml, no credentials, no client, no call to the target. 0, or 1 when
    the file is not a plan (or was edited)."""
    file = Path(path)
    plan = load_plan(read_plan_file(file, source=path), source=path)
    text = render_plan(plan, fmt, color=use_color(no_color, stdout), show_all=show_all)
    stdout.write(text)
    return 0


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
    loaded, where = open_target(config, target, parallelism=parallelism)
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


def preview_command(
    message: str,
    paths: Sequence[str],
    *,
    to: Sequence[str],
    config: str | None,
    target: str | None,
    stdout: TextIO,
    stdin: TextIO | None = None,
) -> int:
    """`reconciler preview MassMessage/NAME`: upload what it needs and preview it to each
    recipient (`--to`, or its `spec.preview`); never the real send. 0, or 1 on any error."""
    from reconciler.kinds.mass_message import MassMessage
    from reconciler.kinds.mass_message.preview import recipients, send_previews
    from reconciler.load import did_you_mean
    from reconciler.providers import MassMessageProvider

    kind, _, name = message.partition("/")
    if kind != "MassMessage" or not name:
        raise ConfigError(f"preview takes MassMessage/NAME, not {message!r}")
    scope = open_scope(paths, config=config, target=target, stdin=stdin)
    declared = {m.name: m for m in scope.desired.of(MassMessage)}
    found = declared.get(name)
    if found is None:
        hint = did_you_mean(name, sorted(declared))
        raise ConfigError(f"no MassMessage named {name!r} in the manifests{hint}")
    to_whom = recipients(found, to)

    async def run() -> list[str]:
        async with connect(scope.target, scope.config.limits) as providers:
            if not isinstance(providers.wechat, MassMessageProvider):
                raise ConfigError(f"target '{scope.target.name}' has no WeChat credentials")
            return await send_previews(providers.wechat, found, to_whom)

    lines = asyncio.run(run())
    stdout.write(scope.identity.describe() + "\n" + "".join(f"{line}\n" for line in lines))
    return 0
