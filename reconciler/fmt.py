"""`reconciler fmt`: manifests in one canonical layout, keys, quoting and comments kept.

Canonical means:

- UTF-8, LF line ends, no trailing whitespace (except inside a block scalar, where it is part of
  the value), exactly one newline at the end of the file;
- mappings indented by 2 spaces, block sequence items by 2 under their key (`  - item`);
- the top-level keys of a document in the order `apiVersion`, `kind`, `metadata`, `spec`, then any
  others as written, each moved with the comment lines just above it;
- kept as written: comments, blank lines, the order of every other key, flow or block style of
  each mapping and sequence, the quoting of each scalar, anchors, long lines (never wrapped) and
  a `---` before the first document.

This is the one reasoned exception to "all YAML goes through load.py": PyYAML drops comments, and
ruamel.yaml round-trips them, so ruamel is used here and nowhere else. What it writes is loaded
again by load.py and must hold the same data and every comment of the original; otherwise the
file is left as it is and the reason reported.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from reconciler.errors import ManifestError, Problem, ReconcilerError
from reconciler.load import (
    CONFIG_NAME,
    STDIN_NAME,
    decode,
    display_path,
    holds_manifests,
    iter_manifest_files,
    load_text,
    read_limited,
)
from reconciler.schemas import KINDS

#: The order of a manifest's top-level keys; any other key follows them, as written.
TOP_KEYS: Final = ("apiVersion", "kind", "metadata", "spec")
#: Never wrap: a long line stays one line (ruamel's default would fold at 80 columns).
_WIDTH: Final = 1_000_000
#: A comment: `#` at the start of a line or after a blank (YAML needs the blank).
_COMMENT = re.compile(r"(?:^|\s)(#.*)$")
#: Lines before a first document that says `---`: comments and blank lines only.
_PREAMBLE = re.compile(r"(?:[ \t]*(?:#[^\n]*)?\n)*")


@dataclass(frozen=True, slots=True)
class Formatted:
    """The canonical text of one file, or why it could not be made."""

    text: str | None
    problems: tuple[Problem, ...] = ()


def _yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = _WIDTH
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def format_text(text: str, file: str) -> Formatted:
    """The canonical form of `text` (a file named `file` in problems)."""
    text = text.replace("\r\n", "\n")
    before, problems = _meaning(text, file)
    if problems:
        return Formatted(None, problems)
    try:
        body = _reformat(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return Formatted(None, (Problem(file, line, col, f"cannot format: {exc.problem}"),))
    except Exception as exc:  # ruamel's own failures on odd input (AssertionError: %YAML 1.3)
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, YAMLError) else str(exc)
        return Formatted(None, (Problem(file, 1, 1, f"cannot format: {message}"),))
    for candidate in (_strip_trailing(body), _end(body)):
        if _meaning(candidate, file) == (before, ()) and _comments(candidate) == _comments(text):
            return Formatted(candidate)
    lost = _comments(text) - _comments(candidate)
    line, why = 1, "its data would change"
    if lost:
        comment = next(iter(lost))
        line = next(n for n, t in enumerate(text.splitlines(), 1) if comment in t)
        why = f"the comment {comment!r} would be lost"
    problem = Problem(file, line, 1, f"cannot format safely: {why}; left as it is")
    return Formatted(None, (problem,))


def _meaning(text: str, file: str) -> tuple[list[Any], tuple[Problem, ...]]:
    """The data of every document, as every command reads it (load.py), or its problems."""
    result = load_text(text, file)
    return [d.data for d in result.documents], tuple(result.problems)


def _comments(text: str) -> Counter[str]:
    """Every comment of `text`, as a count of texts (a moved comment is kept, a lost one not)."""
    found = (_COMMENT.search(line) for line in text.splitlines())
    return Counter(m.group(1).rstrip() for m in found if m is not None)


def _reformat(text: str) -> str:
    """ruamel's round trip of every document, with the top-level keys in canonical order."""
    preamble = ""
    explicit = False
    head = _PREAMBLE.match(text)
    rest = text[head.end() :] if head else text
    if rest.startswith("---") and rest[3:4] in ("", "\n", " "):
        # ruamel drops comments before the first `---`: keep them as they are
        preamble, text, explicit = text[: len(text) - len(rest)], rest, True
    yaml = _yaml()
    documents = list(yaml.load_all(text))
    if not documents:  # only comments and blank lines
        return text
    parts = [preamble]
    for index, document in enumerate(documents):
        start = "---\n" if explicit or index > 0 else ""
        if document is None:  # an empty document: its `---` alone
            parts.append(start)
            continue
        yaml.explicit_start = bool(start)
        out = io.StringIO()
        yaml.dump(document, out)
        dumped = out.getvalue()
        # ruamel ends a document whose root is a scalar with `...`: the next `---`, or the end of
        # the file, ends it as well
        dumped = dumped.removesuffix("\n...\n") + "\n" if dumped.endswith("\n...\n") else dumped
        if isinstance(document, CommentedSeq):
            dumped = _dedent(dumped)
        parts.append(_reorder(dumped, yaml))
    return "".join(parts)


def _dedent(text: str) -> str:
    """A top-level sequence at column 0: ruamel indents the root's items as if under a key."""
    return "".join(
        line[2:] if line.startswith("  ") else line for line in text.splitlines(keepends=True)
    )


def _canonical(keys: Sequence[Any]) -> list[Any]:
    return [k for k in TOP_KEYS if k in keys] + [k for k in keys if k not in TOP_KEYS]


def _reorder(text: str, yaml: YAML) -> str:
    """`text` (one document) with its top-level keys in canonical order.

    Moved as lines: each key takes its value and the comment and blank lines just above it, so a
    comment stays with the key it was written over; the document's first comments and its last
    ones stay first and last.
    """
    data = yaml.load(text)
    if not isinstance(data, CommentedMap):
        return text
    keys = list(data)
    order = _canonical(keys)
    if order == keys:
        return text
    starts = [data.lc.key(k)[0] for k in keys]
    if data.fa.flow_style() or len(set(starts)) != len(starts):
        for key in reversed(order):  # a flow mapping: rebuilt by ruamel
            data.move_to_end(key, last=False)
        out = io.StringIO()
        yaml.dump(data, out)
        return out.getvalue()
    lines = text.splitlines(keepends=True)

    def loose(line: str) -> bool:
        return not line.strip() or line.startswith("#")

    begins = list(starts)
    for i in range(1, len(begins)):
        while begins[i] - 1 > starts[i - 1] and loose(lines[begins[i] - 1]):
            begins[i] -= 1
    footer = len(lines)
    while footer - 1 > starts[-1] and loose(lines[footer - 1]):
        footer -= 1
    ends = [*begins[1:], footer]
    segments = {k: lines[b:e] for k, b, e in zip(keys, begins, ends, strict=True)}
    moved = [line for k in order for line in segments[k]]
    return "".join(lines[: begins[0]] + moved + lines[footer:])


def _end(text: str) -> str:
    """Exactly one newline at the end (none for an empty file)."""
    stripped = text.rstrip("\n")
    return stripped + "\n" if stripped.strip() else ""


def _strip_trailing(text: str) -> str:
    return _end("".join(line.rstrip(" \t") + "\n" for line in text.split("\n")))


@dataclass(slots=True)
class Report:
    """What a `fmt` run found: files rewritten (or, with `--check`, to rewrite), problems."""

    changed: list[str] = field(default_factory=list)
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)


def _targets(paths: Sequence[str]) -> list[tuple[Path, bool]]:
    """Each file to format, and whether it was named (not found by walking a directory)."""
    found: list[tuple[Path, bool]] = []
    for raw in paths:
        path = Path(raw)
        if raw != "-" and path.is_dir():
            config = path / CONFIG_NAME
            walked = iter_manifest_files([path])
            found += [(p, False) for p in ([config] if config.is_file() else []) + walked]
        else:
            found.append((path, True))
    return found


def _is_reconciler(path: Path, data: Iterable[Any], *, loaded: bool, text: str) -> bool:
    """reconciler.yaml, or a file that holds manifests by the rule every command's directory walk
    follows (`load.holds_manifests`): a CI file or docker-compose.yml is skipped."""
    return path.name == CONFIG_NAME or holds_manifests(text, data, loaded=loaded, kinds=KINDS)


def replace_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path` and rename it over `path`: a reader sees
    the old file or the new one, never half of one. The mode is kept; a link's target is
    rewritten, not the link."""
    real = path.resolve()
    mode = real.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, real)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ReconcilerError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _diff(old: str, new: str, name: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{name}", f"b/{name}"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def command(
    paths: Sequence[str],
    *,
    check: bool,
    diff: bool,
    stdout: TextIO,
    stderr: TextIO,
    stdin: TextIO | None,
) -> int:
    """`reconciler fmt`: 0 all canonical (or rewritten); 1 with `--check` when a file is not, or
    on a problem (files that could be formatted still are)."""
    report = Report()
    for path, named in _targets(paths or ["."]):
        if str(path) == "-":
            _format_stdin(stdin, check=check, diff=diff, stdout=stdout, report=report)
            continue
        display = display_path(path)
        data, problem = read_limited(path, display)
        text, problem = decode(data, display) if data is not None else (None, problem)
        if text is None:
            report.problems.append(problem or Problem(display, 1, 1, "cannot read"))
            continue
        before, problems = _meaning(text.replace("\r\n", "\n"), display)
        if not named and not _is_reconciler(path, before, loaded=not problems, text=text):
            report.skipped += 1
            continue
        result = format_text(text, display)
        if result.text is None:
            report.problems.extend(result.problems)
            continue
        if result.text == text:
            continue
        report.changed.append(display)
        stdout.write(_diff(text, result.text, display) if diff else f"{display}\n")
        if not check:
            replace_atomically(path, result.text)
    if report.skipped:
        files = "1 YAML file that holds" if report.skipped == 1 else f"{report.skipped} YAML files"
        files += "" if report.skipped == 1 else " that hold"
        stderr.write(
            f"fmt: skipped {files} no reconciler manifests (name a file to format it anyway)\n"
        )
    if report.problems:
        raise ManifestError(report.problems)
    return 1 if check and report.changed else 0


def _format_stdin(
    stdin: TextIO | None, *, check: bool, diff: bool, stdout: TextIO, report: Report
) -> None:
    """`fmt -`: the canonical text of stdin on stdout (with `--check` or `--diff`, as for a
    file: its name or its diff)."""
    text = stdin.read() if stdin is not None else ""
    result = format_text(text, STDIN_NAME)
    if result.text is None:
        report.problems.extend(result.problems)
        return
    if result.text != text:
        report.changed.append(STDIN_NAME)
    if diff:
        stdout.write(_diff(text, result.text, STDIN_NAME))
    elif check:
        stdout.write(f"{STDIN_NAME}\n" if result.text != text else "")
    else:
        stdout.write(result.text)
