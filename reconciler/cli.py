"""The command line: the only place that parses argv, configures logging and colour, and exits.

Every command is a function `(args) -> int`. `ReconcilerError` becomes one clean message on stderr
and exit 1; anything else is a bug, reported as such (with the traceback under `-v`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from reconciler import __version__
from reconciler.errors import ReconcilerError

log = logging.getLogger(__name__)


class UsageError(ReconcilerError):
    """The command line itself is wrong."""


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


def main(argv: Sequence[str] | None = None) -> int:
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
        print(f"error: {exc}" if "\n" not in str(exc) else str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so, never a bare traceback unless asked
        if verbose:
            traceback.print_exc()
        print(
            f"internal error (this is a bug in reconciler, please report it): "
            f"{type(exc).__name__}: {exc}" + ("" if verbose else " (run with -v for details)"),
            file=sys.stderr,
        )
        return 1
