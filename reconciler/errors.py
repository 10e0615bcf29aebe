"""The one exception tree of reconciler.

Everything the library raises on purpose is a `ReconcilerError`; `cli.main` turns it into one clean
line on stderr and exit 1. Anything else escaping to the CLI is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class ReconcilerError(Exception):
    """Root of every error reconciler raises on purpose."""


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One problem found in user input, with its position (`file:line:col: message`)."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class ManifestError(ReconcilerError):
    """Manifests or their member files are invalid; carries every problem found, sorted."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: Sequence[Problem] = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(ReconcilerError):
    """`reconciler.yaml`, a target or a command-line flag is wrong."""


class UsageError(ReconcilerError):
    """The command line itself is wrong (argparse's complaint, exit 1 rather than its 2)."""


class LockedError(ReconcilerError):
    """Another run holds the target's lock (`reconciler.lock`); nothing was read or changed."""


class UnsafePlanError(ReconcilerError):
    """A plan breaks a safety threshold; apply refuses before the first call."""


class StalePlanError(ReconcilerError):
    """A saved plan no longer matches the live system or was tampered with."""


class ReadOnlyViolation(ReconcilerError):
    """A read-only run tried to send a request that could change the vendor's state."""


class ProviderError(ReconcilerError):
    """A vendor call failed for good (after retries), or answered something unusable.

    Carries what an operator needs to find the call again, never a secret.
    """

    def __init__(
        self,
        message: str,
        *,
        api: str,
        action: str = "",
        object_id: str = "",
        code: int | None = None,
        maybe_applied: bool = False,
    ) -> None:
        self.api = api
        self.action = action
        self.object_id = object_id
        self.code = code
        #: the call gave up after transient faults: an attempt may have been applied by the vendor
        #: and only its answer lost (DESIGN section 7), so its effect is unknown, not absent
        self.maybe_applied = maybe_applied
        where = api + (f" ({action})" if action else "") + (f" on {object_id}" if object_id else "")
        suffix = f" [vendor code {code}]" if code is not None else ""
        super().__init__(f"{where}: {message}{suffix}")
