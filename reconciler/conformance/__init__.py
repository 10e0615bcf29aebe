"""`reconciler conformance`: where the sandbox (our reading of the vendor's documents) and the
real vendor behind a target disagree, found with one fixed battery of small calls.

The battery (`battery.py`) runs against an in-process sandbox, then against the target; the
observations of both are compared (`report.py`) and every one that differs is printed as a table,
and written as JSON with `--out` for a bug report. Without `allow_writes` the run is read-only:
its clients refuse every request that is not a vendor read (`reconciler.readonly`). With it, one
throw-away account is made and destroyed, also when a SIGINT or SIGTERM stops the run early (the
first signal stops the battery after the call in flight; the account is destroyed, the partial
report written, and the command exits 128 + the signal's number).

Exit 0 when nothing differs, 2 when something does, 1 on error (as `drift`).
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from pathlib import Path
from typing import TextIO

from reconciler import __version__
from reconciler.config import Limits, SandboxTarget, Target
from reconciler.conformance.battery import Context, Recorder, run
from reconciler.conformance.report import Report, compare, render_json, render_text
from reconciler.conformance.wire import Wire
from reconciler.connect import connect
from reconciler.errors import ConfigError
from reconciler.interrupt import StopSignal, graceful, signal_name
from reconciler.pipeline import open_target
from reconciler.plan import TargetIdentity

__all__ = ["conformance_command"]


def conformance_command(
    *,
    config: str | None,
    target: str | None,
    allow_writes: bool,
    out: str | None,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Run the battery against `target` and the sandbox; print the differences; exit 0 or 2."""
    loaded, where = open_target(config, target)
    if out is not None and not Path(out).parent.is_dir():
        raise ConfigError(f"cannot write {out}: no directory {Path(out).parent}")
    stop = StopSignal()
    with graceful(stop):
        report = asyncio.run(_compare(where, loaded.limits, allow_writes, stop, stderr))
    stdout.write(render_text(report))
    if report.left_behind is not None:
        stderr.write(
            f"the throw-away account {report.left_behind} could not be destroyed:"
            " destroy it by hand\n"
        )
    if out is not None:
        try:
            Path(out).write_text(render_json(report, version=__version__), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from exc
    if stop.signum is not None:
        stderr.write(f"interrupted by {signal_name(stop.signum)}\n")
        return 128 + stop.signum
    if report.unanswered is not None:
        stderr.write(
            f"error: the target did not answer the battery's first call, so it stopped there:"
            f" {report.unanswered}\n"
        )
    return report.exit_code


async def _compare(
    target: Target, limits: Limits, writes: bool, stop: StopSignal, stderr: TextIO
) -> Report:
    token = secrets.token_hex(6)  # ids of 34 bytes, users of at most 32 (reference 3, 4.4)
    with tempfile.TemporaryDirectory(prefix="rcl-conformance-") as scratch:
        # the sandbox side: in-process and fresh, in a scratch directory (in memory when reading)
        reference = SandboxTarget("conformance", Path(scratch) / "sandbox.db")
        async with connect(reference, limits, read_only=not writes) as providers:
            expected = Recorder(Wire(providers.im, providers.wechat))
            ctx = Context(expected.wire.admin, token, wechat=_has_wechat(target))
            await run(expected, ctx, writes_allowed=writes)
    async with connect(target, limits, read_only=not writes) as providers:
        wire = Wire(providers.im, providers.wechat)
        ctx = Context(wire.admin, token, wechat=providers.wechat is not None)

        def announce(account: str) -> None:
            stderr.write(f"conformance: making the throw-away account {account}\n")

        ctx.announce = announce
        seen = Recorder(wire, stop)
        finished = await run(seen, ctx, writes_allowed=writes)
        if ctx.create_sent and ctx.destroyed:
            stderr.write(f"conformance: destroyed {ctx.account}\n")
    info = {
        probe: {"target": seen.info.get(probe, ""), "sandbox": expected.info.get(probe, "")}
        for probe in {**expected.info, **seen.info}
    }
    return compare(
        TargetIdentity.from_target(target),
        seen.observed,
        expected.observed,
        writes=writes,
        interrupted=None if finished or stop.signum is None else signal_name(stop.signum),
        info=info,
        left_behind=ctx.account if ctx.create_sent and not ctx.destroyed else None,
        unanswered=seen.unanswered,
    )


def _has_wechat(target: Target) -> bool:
    return isinstance(target, SandboxTarget) or target.wechat is not None
