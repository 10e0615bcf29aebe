"""The command line: the only place that parses argv, configures logging and colour, and exits.

Every command is a function `(args) -> int`. `ReconcilerError` becomes one clean message on stderr
and exit 1; anything else is a bug, reported as such (with the traceback under `-v`).
"""

from __future__ import annotations

import argparse
import gc
import logging
import re
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from reconciler import __version__
from reconciler.errors import ReconcilerError, UsageError

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    # argparse exits 2 on a usage error; 2 means "changes" or "drift" here, so a usage error is 1.
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="reconciler.yaml to use")
    parser.add_argument("--target", metavar="NAME", help="target from reconciler.yaml")
    parser.add_argument("--no-color", action="store_true", help="never colour the output")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-vv for debug)"
    )


def _cmd_validate(args: argparse.Namespace) -> int:
    from reconciler import validate

    return validate.command(
        args.paths, config=args.config, fmt=args.format, stdout=sys.stdout, stdin=sys.stdin
    )


def _cmd_plan(args: argparse.Namespace) -> int:
    from reconciler import commands

    return commands.plan_command(
        args.paths,
        config=args.config,
        target=args.target,
        fmt=args.format,
        out=args.out,
        members_out=args.members_out,
        detailed_exitcode=args.detailed_exitcode,
        prune=args.prune,
        selector=args.selector,
        exclude=args.exclude,
        show_all=args.show_all,
        no_color=args.no_color,
        stdout=sys.stdout,
        stdin=sys.stdin,
        stderr=sys.stderr,
    )


def _cmd_drift(args: argparse.Namespace) -> int:
    from reconciler import commands

    return commands.drift_command(
        args.paths,
        config=args.config,
        target=args.target,
        fmt=args.format,
        ignore=args.ignore,
        selector=args.selector,
        exclude=args.exclude,
        show_all=args.show_all,
        stdout=sys.stdout,
        stdin=sys.stdin,
        stderr=sys.stderr,
    )


def _cmd_apply(args: argparse.Namespace) -> int:
    from reconciler import commands

    return commands.apply_command(
        args.paths,
        config=args.config,
        target=args.target,
        selector=args.selector,
        exclude=args.exclude,
        options=commands.ApplyOptions(
            auto_approve=args.auto_approve,
            prune=args.prune,
            allow_removals=args.allow_removals,
            allow_destroys=args.allow_destroys,
            force=args.force,
            verify_full=args.verify == "full",
            show_all=args.show_all,
            no_color=args.no_color,
        ),
        stdout=sys.stdout,
        stderr=sys.stderr,
        stdin=sys.stdin,
    )


def _cmd_import(args: argparse.Namespace) -> int:
    from reconciler import commands

    return commands.import_command(
        args.ids,
        all_owned=args.all_owned,
        out=args.out,
        config=args.config,
        target=args.target,
        stdout=sys.stdout,
    )


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _scope_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="manifest files or directories")
    parser.add_argument(
        "--format", choices=("text", "markdown", "json"), default="text", help="output format"
    )
    parser.add_argument(
        "--selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only accounts with this label (repeatable; all must match)",
    )
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="ID", help="leave this account out"
    )
    parser.add_argument(
        "--show-all", action="store_true", help="list every subscriber id, not the first few"
    )


def _cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from reconciler.sandbox import serve

    return serve.command(args, stdout=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="reconciler",
        description="GitOps for Tencent Cloud IM official accounts and the WeChat mass speed.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    validate = commands.add_parser(
        "validate",
        help="load and validate manifests (no network)",
        description=("Load and validate manifests and reconciler.yaml. Never touches the network."),
    )
    validate.add_argument(
        "paths", nargs="*", metavar="PATH", help="files or directories; - is stdin"
    )
    validate.add_argument(
        "--format", choices=("text", "json", "github"), default="text", help="problem format"
    )
    _common(validate)
    validate.set_defaults(func=_cmd_validate)

    plan = commands.add_parser(
        "plan",
        help="read live state and show what apply would change",
        description="Read the live state, diff it against the manifests and print the plan.",
    )
    _scope_flags(plan)
    plan.add_argument("--out", metavar="FILE", help="save the plan for `reconciler apply FILE`")
    plan.add_argument(
        "--members-out", metavar="FILE", help="write every subscriber add and removal as NDJSON"
    )
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 with no changes, 2 with changes, 1 on error",
    )
    plan.add_argument(
        "--prune", action="store_true", help="destroy owned accounts no longer declared"
    )
    _common(plan)
    plan.set_defaults(func=_cmd_plan)

    apply = commands.add_parser(
        "apply",
        help="make the live system match the manifests (or apply a saved plan)",
        description="Plan and apply (asking for 'yes' unless --auto-approve), or apply a plan"
        " saved with `plan --out FILE`. Exit 0 all applied, 1 nothing applied, 3 partly applied.",
    )
    apply.add_argument(
        "paths", nargs="*", metavar="PATH", help="manifest files or directories, or one PLANFILE"
    )
    apply.add_argument(
        "--selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only accounts with this label (repeatable; all must match)",
    )
    apply.add_argument(
        "--exclude", action="append", default=[], metavar="ID", help="leave this account out"
    )
    apply.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    apply.add_argument(
        "--prune", action="store_true", help="destroy owned accounts no longer declared"
    )
    apply.add_argument(
        "--allow-removals",
        type=_count,
        metavar="N",
        help="pass the removal thresholds for a plan with at most N subscriber removals",
    )
    apply.add_argument(
        "--allow-destroys",
        type=_count,
        metavar="N",
        help="pass the destroy threshold for a plan with at most N destroys",
    )
    apply.add_argument(
        "--force", action="store_true", help="lift every safety threshold (never `protect`)"
    )
    apply.add_argument(
        "--verify",
        choices=("basic", "full"),
        default="basic",
        help="after applying, re-read account info (basic) or memberships too (full)",
    )
    apply.add_argument(
        "--show-all", action="store_true", help="list every subscriber id, not the first few"
    )
    _common(apply)
    apply.set_defaults(func=_cmd_apply)

    drift = commands.add_parser(
        "drift",
        help="report what differs from git (read-only; exit 2 on drift)",
        description="Read-only: report live differences from the manifests. Exit 0 in sync,"
        " 2 on drift, 1 on error.",
    )
    _scope_flags(drift)
    drift.add_argument(
        "--ignore", metavar="FILE", help="known differences to silence until their expiry date"
    )
    _common(drift)
    drift.set_defaults(func=_cmd_drift)

    importer = commands.add_parser(
        "import",
        help="write manifests for live accounts and record them as owned",
        description="Write a manifest per live account (subscribers in a member file when many)"
        " and record each account in the inventory, so that planning the written files shows no"
        " changes.",
    )
    importer.add_argument("ids", nargs="*", metavar="ID", help="official account ids to import")
    importer.add_argument(
        "--all-owned", action="store_true", help="every account this repo's inventory owns"
    )
    importer.add_argument(
        "--out", default="imported", metavar="DIR", help="directory to write (default: imported)"
    )
    _common(importer)
    importer.set_defaults(func=_cmd_import)

    sandbox = commands.add_parser("sandbox", help="the local emulator of the vendor APIs")
    sandbox_commands = sandbox.add_subparsers(
        dest="sandbox_command", metavar="COMMAND", parser_class=_Parser
    )
    sandbox_commands.required = True
    serve = sandbox_commands.add_parser(
        "serve",
        help="run the emulator as a real HTTP server",
        description=(
            "Serve the Tencent IM and WeChat emulator over HTTP. Prints its base URL and the"
            " credentials it accepts."
        ),
    )
    from reconciler.sandbox.defaults import add_serve_arguments

    add_serve_arguments(serve)
    _common(serve)
    serve.set_defaults(func=_cmd_sandbox_serve)
    return parser


#: `file:line:col: message`: such lines are printed as they are, one problem a line.
_POSITIONED = re.compile(r"^\S.*:\d+:\d+: ")


def _error_text(exc: ReconcilerError) -> str:
    """Problems with positions print as they are; anything else behind `error: `."""
    text = str(exc)
    lines = text.splitlines() or [""]
    if all(_POSITIONED.match(line) for line in lines):
        return text
    return f"error: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    # A run builds hundreds of thousands of small objects that live to its end (member sets,
    # subscriber pages); collecting every 700 allocations re-scans them for nothing (about a
    # tenth of a no-op plan's CPU at 200,000 memberships, bench/scale.py S2).
    thresholds = gc.get_threshold()
    gc.set_threshold(20_000, 50, 50)
    try:
        return _main(argv)
    finally:
        gc.set_threshold(*thresholds)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    verbose = 0
    try:
        args = parser.parse_args(argv)
        verbose = args.verbose
        logging.basicConfig(
            level=logging.WARNING - 10 * min(verbose, 2),
            format="%(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        result: int = args.func(args)
        return result
    except ReconcilerError as exc:
        print(_error_text(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so, never a bare traceback unless asked
        # credentials travel in URLs: mask them in whatever the bug's text carries
        from reconciler.providers.http import redact

        if verbose:
            print(redact(traceback.format_exc()), file=sys.stderr, end="")
        print(
            "internal error (this is a bug in reconciler, please report it): "
            + redact(f"{type(exc).__name__}: {exc}")
            + ("" if verbose else " (run with -v for details)"),
            file=sys.stderr,
        )
        return 1
