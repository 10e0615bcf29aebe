"""The command line: the only place that parses argv, configures logging and colour, and exits.

Every command is a function `(args) -> int`. `ReconcilerError` becomes one clean message on stderr
and exit 1; anything else is a bug, reported as such (with the traceback under `-v`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from reconciler import __version__
from reconciler.caps import SEND_CAPS
from reconciler.errors import ReconcilerError, UsageError
from reconciler.interrupt import Interrupted, handled, last_word, signal_name, take_late

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    # argparse exits 2 on a usage error; 2 means "changes" or "drift" here, so a usage error is 1.
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


#: Environment variables that stand in for a flag not given (a flag always wins).
ENV_CONFIG = "RECONCILER_CONFIG"
ENV_TARGET = "RECONCILER_TARGET"


def _common(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """The flags every command takes, before its name or after it (`reconciler -v plan`,
    `reconciler plan -v`).

    A subcommand's parser writes a default for every flag it knows over what the top parser
    read, so below the top these flags have no default (SUPPRESS): given after the command, a flag
    overrides the one given before it; not given, it leaves it alone. `-v` is counted apart on
    each side and added up (`-v plan -v` is -vv).
    """
    unset = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--config", metavar="FILE", default=unset, help=f"reconciler.yaml to use (env {ENV_CONFIG})"
    )
    parser.add_argument(
        "--target",
        metavar="NAME",
        default=unset,
        help=f"target from reconciler.yaml (env {ENV_TARGET})",
    )
    parser.add_argument(
        "--no-color",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="never colour or animate the output (as NO_COLOR=1 does)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        dest="verbose" if top else "verbose_after",
        default=0 if top else argparse.SUPPRESS,
        help="log more (-vv for debug)",
    )


#: The commands that read reconciler.yaml.
_READ_CONFIG = frozenset(
    {"validate", "plan", "apply", "drift", "import", "doctor", "conformance", "messages"}
)


def _settle_common(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Merge the flags given before and after the command, then fill `--config` and `--target`
    from the environment where no flag gave them (an empty variable counts as unset)."""
    args.verbose += getattr(args, "verbose_after", 0)
    if args.config is None and environ.get(ENV_CONFIG):
        args.config = environ[ENV_CONFIG]
        # said here, naming the variable, for the commands that read it (not `version`, ...)
        if args.command in _READ_CONFIG and not Path(args.config).is_file():
            raise UsageError(f"{ENV_CONFIG}={args.config}: no such file")
    if args.target is None and environ.get(ENV_TARGET):
        args.target = environ[ENV_TARGET]


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
        parallelism=args.parallelism,
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
        parallelism=args.parallelism,
    )


def _cmd_messages(args: argparse.Namespace) -> int:
    from reconciler.kinds.broadcast.messages import messages_command

    return messages_command(
        args.account,
        args.paths,
        config=args.config,
        target=args.target,
        since=args.since,
        fmt=args.format,
        stdout=sys.stdout,
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
            allow_sends={cap.rule: getattr(args, cap.dest) for cap in SEND_CAPS},
            verify_full=args.verify == "full",
            show_all=args.show_all,
            no_color=args.no_color,
            json=args.format == "json",
        ),
        stdout=sys.stdout,
        stderr=sys.stderr,
        stdin=sys.stdin,
        parallelism=args.parallelism,
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
        parallelism=args.parallelism,
    )


def _cmd_doctor(args: argparse.Namespace) -> int:
    from reconciler import doctor

    return doctor.command(
        config=args.config, target=args.target, fmt=args.format, stdout=sys.stdout
    )


#: `--parallelism` at most: the vendor serves 200 calls/s per API (each Tencent IM REST API page's
#: "maximum call frequency", https://cloud.tencent.com/document/api/269/1519); more calls in flight
#: than it serves in a second only wait in the pacer, each holding a connection.
MAX_PARALLELISM = 200


def _cmd_preview(args: argparse.Namespace) -> int:
    from reconciler import commands

    return commands.preview_command(
        args.message,
        args.paths,
        to=args.to,
        config=args.config,
        target=args.target,
        stdout=sys.stdout,
        stdin=sys.stdin,
    )


def _parallelism(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARALLELISM:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 1 to {MAX_PARALLELISM}, not {text!r}"
        )
    return value


def _parallelism_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--parallelism",
        type=_parallelism,
        metavar="N",
        help=f"calls in flight at once for this run (1-{MAX_PARALLELISM};"
        " default: limits.concurrency of reconciler.yaml, 16)",
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


def _cmd_fmt(args: argparse.Namespace) -> int:
    from reconciler import fmt

    return fmt.command(
        args.paths,
        check=args.check,
        diff=args.diff,
        stdout=sys.stdout,
        stderr=sys.stderr,
        stdin=sys.stdin,
    )


def version_text(verbose: int = 0) -> str:
    """`reconciler version` and `--version`: one line; under -v also Python and the installed
    versions of the runtime dependencies (what a bug report needs)."""
    lines = [f"reconciler {__version__}"]
    if verbose:
        # imported here: importlib.metadata alone would add tens of ms to every run's start
        import importlib.metadata
        import platform

        lines.append(f"Python {platform.python_version()} ({sys.executable})")
        try:
            requires = importlib.metadata.requires("reconciler") or []
        except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
            requires = []
        for requirement in requires:
            if "extra ==" in requirement:
                continue
            name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
            try:
                found = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                found = "not installed"
            lines.append(f"{name} {found}")
    return "\n".join(lines) + "\n"


def _cmd_version(args: argparse.Namespace) -> int:
    sys.stdout.write(version_text(args.verbose))
    return 0


#: Shells `reconciler completion` writes a script for (shtab's, from this parser).
SHELLS = ("bash", "zsh", "fish")


def _cmd_completion(args: argparse.Namespace) -> int:
    import shtab  # only here: every other run starts without it

    parser = build_parser()
    _complete_paths(parser, shtab.FILE, shtab.DIRECTORY)
    sys.stdout.write(shtab.complete(parser, shell=args.shell))
    return 0


def _complete_paths(parser: argparse.ArgumentParser, files: object, directories: object) -> None:
    """Arguments whose metavar names a file or a directory complete as such (shtab reads a
    `complete` attribute on each action), in every subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                _complete_paths(sub, files, directories)
        elif action.metavar in ("PATH", "FILE"):
            action.complete = files  # type: ignore[attr-defined]
        elif action.metavar == "DIR":
            action.complete = directories  # type: ignore[attr-defined]


def _cmd_conformance(args: argparse.Namespace) -> int:
    from reconciler.conformance import conformance_command

    return conformance_command(
        config=args.config,
        target=args.target,
        allow_writes=args.allow_writes,
        out=args.out,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def _cmd_show(args: argparse.Namespace) -> int:
    from reconciler import commands

    return commands.show_command(
        args.planfile,
        fmt=args.format,
        show_all=args.show_all,
        no_color=args.no_color,
        stdout=sys.stdout,
    )


def _cmd_ci(args: argparse.Namespace) -> int:
    from reconciler import ci

    return ci.command(
        args.ci_command,
        args.report,
        environ=os.environ,
        stdout=sys.stdout,
        platform=args.platform,
        number=args.number,
        title=getattr(args, "title", None),
        close=getattr(args, "close", False),
    )


def _add_ci(commands: argparse._SubParsersAction[_Parser]) -> None:
    ci = commands.add_parser(
        "ci",
        help="post a markdown plan or drift report on the pull request or an issue, in place",
        description="Keep ONE comment per report on the pull/merge request, or ONE issue, found"
        " by the marker line that `plan`/`drift --format markdown` end with (README, 'CI')."
        " GitHub: GITHUB_TOKEN, GITHUB_API_URL, GITHUB_REPOSITORY; GitLab: GITLAB_TOKEN or"
        " CI_JOB_TOKEN, CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID.",
    )
    ci_commands = ci.add_subparsers(dest="ci_command", metavar="COMMAND", parser_class=_Parser)
    ci_commands.required = True
    comment = ci_commands.add_parser(
        "comment",
        help="create or update the report's comment on the pull or merge request",
        description="Create the comment, or update the one carrying the same marker.",
    )
    issue = ci_commands.add_parser(
        "issue",
        help="open or update the report's issue; --close comments and closes it",
        description="Open ONE issue for the report or update the open one (same marker or"
        " title); with --close, comment the report on it and close it.",
    )
    issue.add_argument("--title", required=True, help="the issue's title")
    issue.add_argument(
        "--close", action="store_true", help="the drift is gone: comment and close the issue"
    )
    for sub in (comment, issue):
        sub.add_argument("report", metavar="FILE", help="markdown from plan or drift")
        sub.add_argument(
            "--platform",
            choices=("github", "gitlab"),
            help="default: from GITHUB_ACTIONS/GITLAB_CI",
        )
        sub.add_argument(
            "--number", metavar="N", help="the pull or merge request (default: from the event)"
        )
        _common(sub)
        sub.set_defaults(func=_cmd_ci)


def _cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from reconciler.sandbox import serve

    return serve.command(args, stdout=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="reconciler",
        description="GitOps for Tencent Cloud IM official accounts and the WeChat mass speed.",
        epilog=f"Environment: {ENV_CONFIG} and {ENV_TARGET} stand in for --config and --target"
        " (a flag wins over its variable); NO_COLOR (any non-empty value) does what --no-color"
        " does. The common flags go before the command or after it.",
    )
    parser.add_argument("--version", action="version", version=version_text().rstrip("\n"))
    _common(parser, top=True)
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
    _parallelism_flag(plan)
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
    for cap in SEND_CAPS:
        apply.add_argument(
            cap.flag,
            type=_count,
            metavar="N",
            help=f"pass the {cap.rule} threshold for a plan with at most N {cap.noun}s",
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
    apply.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: the plan and summary go to stderr, the result (per account applied, failed,"
        " skipped; exit code) to stdout as JSON",
    )
    _parallelism_flag(apply)
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
    _parallelism_flag(drift)
    _common(drift)
    drift.set_defaults(func=_cmd_drift)

    preview = commands.add_parser(
        "preview",
        help="preview a mass message on a phone (never the real send)",
        description="Upload what MassMessage/NAME needs and preview it to each recipient:"
        " --to, or its spec.preview. Never sends it to its audience.",
    )
    preview.add_argument("message", metavar="MassMessage/NAME")
    preview.add_argument("paths", nargs="*", metavar="PATH", help="manifests (default .)")
    preview.add_argument(
        "--to", action="append", default=[], metavar="OPENID|WXNAME", help="a recipient"
    )
    _common(preview)
    preview.set_defaults(func=_cmd_preview)

    messages = commands.add_parser(
        "messages",
        help="an account's broadcast history with the document of each message (read-only)",
    )
    messages.add_argument("account", metavar="ACCOUNT", help="the official account (news)")
    messages.add_argument("paths", nargs="*", metavar="PATH", help="manifest files or directories")
    messages.add_argument("--since", metavar="DATE", help="from this date (default: retention)")
    messages.add_argument("--format", choices=("text", "json"), default="text")
    _common(messages)
    messages.set_defaults(func=_cmd_messages)

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
    _parallelism_flag(importer)
    _common(importer)
    importer.set_defaults(func=_cmd_import)

    doctor = commands.add_parser(
        "doctor",
        help="check why a target does not work yet (read-only)",
        description="Read-only checks of a target: credentials, endpoint and TLS, clock, UserSig,"
        " official accounts, inventory user, WeChat token, allow-list and speed API, rate limit."
        " Each failure says what to do. Exit 0 when every check passes, 1 otherwise.",
    )
    doctor.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    _common(doctor)
    doctor.set_defaults(func=_cmd_doctor)

    fmt = commands.add_parser(
        "fmt",
        help="rewrite manifests in the canonical layout (comments, quoting and key order kept)",
        description="Rewrite manifests in place, atomically, in the canonical layout (README,"
        " 'fmt'): 2-space indentation, top-level keys apiVersion, kind, metadata, spec, no"
        " trailing spaces, one newline at the end; comments, quoting and other key order kept."
        " Prints each file it changes. Exit 0, or 1 with --check when a file is not canonical.",
    )
    fmt.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or directories (default: .); - formats stdin to stdout",
    )
    fmt.add_argument(
        "--check",
        action="store_true",
        help="write nothing; list the files that are not canonical and exit 1 if any (for CI)",
    )
    fmt.add_argument("--diff", action="store_true", help="print each change as a unified diff")
    _common(fmt)
    fmt.set_defaults(func=_cmd_fmt)

    version = commands.add_parser(
        "version",
        help="print the version (with -v: Python and dependency versions too)",
        description="Print reconciler's version, as --version does; with -v also the Python and"
        " the installed runtime dependencies.",
    )
    _common(version)
    version.set_defaults(func=_cmd_version)

    completion = commands.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Print a completion script for SHELL. bash: `source <(reconciler completion"
        " bash)` in ~/.bashrc; zsh: `reconciler completion zsh > ~/.zfunc/_reconciler` with"
        " ~/.zfunc on $fpath; fish: `reconciler completion fish >"
        " ~/.config/fish/completions/reconciler.fish`.",
    )
    completion.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    _common(completion)
    completion.set_defaults(func=_cmd_completion)

    conformance = commands.add_parser(
        "conformance",
        help="find where the sandbox and the target's vendor disagree (read-only by default)",
        description="Run a fixed battery of small vendor calls against the target and an"
        " in-process sandbox and print every observation that differs. Read-only unless"
        " --allow-writes. Exit 0 none differ, 2 some do, 1 on error.",
    )
    conformance.add_argument(
        "--allow-writes",
        action="store_true",
        help="also create, modify, broadcast to and destroy one throw-away account",
    )
    conformance.add_argument("--out", metavar="FILE", help="write every observation as JSON")
    _common(conformance)
    conformance.set_defaults(func=_cmd_conformance)
    show = commands.add_parser(
        "show",
        help="render a saved plan (no live read, no credentials)",
        description="Render a plan saved with `plan --out FILE` as plan would, from the file"
        " alone: no reconciler.yaml, no credentials, no call to the target.",
    )
    show.add_argument("planfile", metavar="PLANFILE", help="a plan saved with plan --out")
    show.add_argument(
        "--format", choices=("text", "markdown", "json"), default="text", help="output format"
    )
    show.add_argument(
        "--show-all", action="store_true", help="list every subscriber id, not the first few"
    )
    _common(show)
    show.set_defaults(func=_cmd_show)
    _add_ci(commands)

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


@contextlib.contextmanager
def _colour(*, off: bool) -> Iterator[None]:
    """`--no-color` is `NO_COLOR=1` for the run: the plan's renderer, the progress bars and the
    spinner all read that one switch (https://no-color.org). Restored after, for in-process use."""
    if not off:
        yield
        return
    before = os.environ.get("NO_COLOR")
    os.environ["NO_COLOR"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["NO_COLOR"]
        else:
            os.environ["NO_COLOR"] = before


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
        code = _main(argv)
    finally:
        gc.set_threshold(*thresholds)
    # argv None: the process's own command line, about to end (interrupt.last_word)
    return code if argv is not None else last_word(code)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    verbose = 0
    # argv None: the process's own command line (the console script, `python -m reconciler`)
    own_process = argv is None
    with contextlib.ExitStack() as stack:
        finished: Callable[[], None] = _nothing
        try:
            args = parser.parse_args(argv)
            _settle_common(args, os.environ)
            verbose = args.verbose
            logging.basicConfig(
                level=logging.WARNING - 10 * min(verbose, 2),
                format="%(levelname)s %(name)s: %(message)s",
                stream=sys.stderr,
            )
            if args.func is not _cmd_sandbox_serve:  # the server stops on signals its own way
                # SIGINT and SIGTERM for the whole command, not only while it applies
                finished = stack.enter_context(handled(own_process=own_process))
            with _colour(off=args.no_color):
                result: int = args.func(args)
            late = take_late()
            if late is not None:
                print(
                    f"interrupted by {signal_name(late)} after the command finished"
                    " (its output above is complete)",
                    file=sys.stderr,
                )
                return 128 + late
            return result
        except ReconcilerError as exc:
            print(_error_text(exc), file=sys.stderr)
            return 1
        except Interrupted as exc:
            print(f"interrupted by {signal_name(exc.signum)}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:  # SIGINT outside `handled`
            print("interrupted by SIGINT", file=sys.stderr)
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
        finally:
            # from here a signal ends the process as interrupted, with a line (interrupt.py)
            finished()


def _nothing() -> None:
    pass
