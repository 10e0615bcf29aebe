"""Where `reconciler import` writes: names that never collide, what the output already declares,
the `$schema` line and canonical layout, and an all-or-nothing move into the output directory.

Every file is first written into a hidden staging directory beside the output (`.<out>.import-*`,
skipped by every directory walk), validated there, and moved in only when all of them were
written; a failure at any point leaves the output directory as it was.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

from reconciler.errors import ConfigError, ManifestError, Problem, ReconcilerError
from reconciler.fmt import format_text
from reconciler.load import Node, display_path, iter_manifest_files, load_file, position_of
from reconciler.model import ACCOUNT_ID_PREFIX, DesiredState, canonical_account_id
from reconciler.schemas import schema_dir
from reconciler.validate import load_desired_state

#: The file import writes for the mass speed: no account's file may take its name.
MASS_SPEED_FILE: Final = "mass-speed.yaml"
MANIFEST_SUFFIX: Final = ".yaml"
MEMBERS_SUFFIX: Final = ".members.txt"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def short_id(account_id: str) -> str:
    """`@TOA#_news` → `news` (what a manifest writes); ids that need their prefix keep it."""
    rest = account_id.removeprefix(ACCOUNT_ID_PREFIX)
    if rest and not rest.startswith("@") and canonical_account_id(rest) == account_id:
        return rest
    return account_id


def _hash(account_id: str, length: int) -> str:
    return hashlib.sha256(account_id.encode()).hexdigest()[:length]


class Names:
    """File names for the accounts of one import, none used twice, none already in the output.

    A name is the id as written in a manifest when that is a safe file name (`news.yaml`);
    otherwise the sanitised id and a short hash of the id (`a_b-<8 hex>.yaml` for `a+b`, and a
    different hash for `a=b`). A name the output or this import already uses, compared without
    case (macOS and Windows file systems), or the mass speed's own file, also gets the hash.
    """

    def __init__(self, existing: Iterable[str]) -> None:
        self._taken = {name.casefold() for name in existing} | {MASS_SPEED_FILE.casefold()}

    def _free(self, stem: str) -> bool:
        files = (stem + MANIFEST_SUFFIX, stem + ".yml", stem + MEMBERS_SUFFIX)
        return not any(name.casefold() in self._taken for name in files)

    def stem(self, account_id: str) -> str:
        short = short_id(account_id)
        base = _UNSAFE.sub("_", short)
        base = re.sub(r"_{2,}", "_", base).strip("_.") or "account"
        stem = base
        length = 8
        while stem != short or not self._free(stem):
            stem = f"{base}-{_hash(account_id, length)}"
            if self._free(stem):
                break
            length += 8  # a name someone chose to look like ours: a longer hash
        self._taken.update(n.casefold() for n in (stem + MANIFEST_SUFFIX, stem + MEMBERS_SUFFIX))
        return stem


def set_name(stem: str, account_id: str, declared_sets: set[str]) -> str:
    """The SubscriberSet holding an account's member file: `<stem>-subscribers`, with a hash of
    the id when the output already declares a set of that name."""
    name = f"{stem}-subscribers"
    return name if name not in declared_sets else f"{name}-{_hash(account_id, 8)}"


@dataclass(slots=True)
class Declared:
    """What the manifests already in the output directory declare, with the positions."""

    accounts: dict[str, str] = field(default_factory=dict)
    mass_speed: str | None = None
    #: SubscriberSet names: a member set import writes must not take one
    sets: set[str] = field(default_factory=set)


def declared_in(out: Path) -> Declared:
    """The accounts (and mass speed) the manifests below `out` declare, each at its position.

    A file that does not load is passed over: it declares nothing import could duplicate.
    """
    found = Declared()
    if not out.is_dir():
        return found
    for path in iter_manifest_files([out]):
        for doc in load_file(path, display_path(path)).documents:
            data = doc.data
            if not isinstance(data, Node):
                continue
            if data.get("kind") == "MassSpeed" and found.mass_speed is None:
                found.mass_speed = str(doc.position)
            metadata = data.get("metadata")
            name = metadata.get("name") if isinstance(metadata, Node) else None
            if data.get("kind") == "SubscriberSet" and isinstance(name, str):
                found.sets.add(name)
            raw = metadata.get("id") if isinstance(metadata, Node) else None
            if data.get("kind") == "OfficialAccount" and isinstance(raw, str) and raw:
                where = position_of(metadata, "id") or doc.position
                found.accounts.setdefault(canonical_account_id(raw), str(where))
    return found


def schema_line(out: Path, kind: str) -> str:
    """`# yaml-language-server: $schema=...` for a file in `out`, as the examples have it.

    The schema is the project's `schemas/<kind>.schema.json` in `out` or the nearest directory
    above it (a checkout of this repository, or a copy kept beside the manifests); else the one
    shipped with reconciler. The path is relative to `out`, so the line holds on any machine that
    has the same layout.
    """
    base = Path(os.path.abspath(out))
    name = f"{kind}.schema.json"
    schema = schema_dir() / name
    for directory in (base, *base.parents):
        if (directory / "schemas" / name).is_file():
            schema = directory / "schemas" / name
            break
    return f"# yaml-language-server: $schema={Path(os.path.relpath(schema, base)).as_posix()}\n"


def canonical(text: str, name: str) -> str:
    """`text` in the layout `reconciler fmt` writes (so `fmt --check` passes on it)."""
    return format_text(text, name).text or text


class Staging:
    """Files written beside `out`, moved into it together on `commit()`, or not at all."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._names: list[str] = []
        self._created: list[Path] = []  # directories this import made, deepest last
        self._committed = False
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out} exists and is not a directory; choose another --out")
        missing = [p for p in (out, *out.parents) if not p.exists()]
        self._created = list(reversed(missing))
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self.dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
        except OSError as exc:
            self._remove_created()
            raise ReconcilerError(f"cannot create {out}: {exc.strerror or exc}") from exc

    def __enter__(self) -> Staging:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        if not self._committed:
            self._remove_created()

    def _remove_created(self) -> None:
        for directory in reversed(self._created):
            try:
                directory.rmdir()  # only if empty: never anything but what this import made
            except FileNotFoundError:
                continue  # `out` itself, when the failure came before the move
            except OSError:
                return

    def write(self, name: str, text: str) -> Path:
        """Write `name` into the staging directory; the staged path."""
        path = self.dir / name
        try:
            with path.open("x", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
        except OSError as exc:
            shown = display_path(self.out / name)
            raise ReconcilerError(f"cannot write {shown}: {exc.strerror or exc}") from exc
        self._names.append(name)
        return path

    def rewrite(self, name: str, text: str) -> None:
        """Write `name`, staged before, again (import's second pass)."""
        assert name in self._names, name
        (self.dir / name).write_text(text, encoding="utf-8", newline="\n")

    def validate(self, staged: list[Path]) -> DesiredState:
        """The staged manifests loaded through the validator; problems name the output's files."""
        try:
            return load_desired_state([str(p) for p in staged])
        except ManifestError as exc:
            prefix = str(self.dir) + os.sep
            shown = display_path(self.out) + os.sep
            raise ManifestError(
                Problem(
                    p.file.replace(prefix, shown, 1), p.line, p.col, f"{p.message} (not written)"
                )
                for p in exc.problems
            ) from None

    def commit(self) -> None:
        """Move every staged file into `out`; on any failure, move back those already moved."""
        try:
            self.out.mkdir(exist_ok=True)
        except OSError as exc:
            raise ReconcilerError(f"cannot create {self.out}: {exc.strerror or exc}") from exc
        clash = [n for n in self._names if (self.out / n).exists()]
        if clash:  # named free a moment ago: something else is writing there
            raise ConfigError(
                f"{display_path(self.out / clash[0])} appeared while importing; nothing was"
                " written, run import again"
            )
        moved: list[str] = []
        try:
            for name in self._names:
                os.replace(self.dir / name, self.out / name)
                moved.append(name)
        except OSError as exc:
            for name in moved:
                os.replace(self.out / name, self.dir / name)
            raise ReconcilerError(f"cannot write into {self.out}: {exc.strerror or exc}") from exc
        self._committed = True
