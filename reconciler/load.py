"""The one module that reads (and writes) YAML: safe, positioned, strict about duplicates and alias
bombs.

Every mapping becomes a `Node` dict and every sequence a `NodeList`; both remember their own
position and the position of each key and item, so any value can be traced back to
`file:line:col` (`position_of`). Nothing else in reconciler imports `yaml`.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import Resolver

from reconciler.errors import Problem
from reconciler.model import Position

log = logging.getLogger(__name__)

#: A manifest (or reconciler.yaml) larger than this is refused before it is parsed.
MAX_FILE_BYTES: Final = 10_000_000
#: A member file larger than this is refused before it is read: 1,000,000 lines of 32-byte
#: UserIDs (the most the scale targets in BENCHMARKS.md ask of one file) are 33 MB.
MAX_MEMBER_FILE_BYTES: Final = 64 * 1024 * 1024
#: Aliases may add at most this many nodes to a document ("billion laughs" guard).
MAX_ALIAS_EXPANSION: Final = 100_000
#: Deeper nesting than this is refused (manifests are a few levels deep).
MAX_DEPTH: Final = 64
#: The name documents read from stdin carry in messages.
STDIN_NAME: Final = "<stdin>"
CONFIG_NAME: Final = "reconciler.yaml"


class Node(dict[str, Any]):
    """A YAML mapping that knows where it and each of its keys and values are."""

    __slots__ = ("key_positions", "position", "value_positions")

    def __init__(self, position: Position) -> None:
        super().__init__()
        self.position = position
        self.key_positions: dict[str, Position] = {}
        self.value_positions: dict[str, Position] = {}


class NodeList(list[Any]):
    """A YAML sequence that knows where it and each of its items are."""

    __slots__ = ("item_positions", "position")

    def __init__(self, position: Position) -> None:
        super().__init__()
        self.position = position
        self.item_positions: list[Position] = []


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of a file: its data (`Node`, `NodeList` or a scalar) and position."""

    file: str
    index: int
    data: Any
    position: Position


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Documents that loaded and the problems of those that did not."""

    documents: list[Document]
    problems: list[Problem]


class _LoadError(yaml.MarkedYAMLError):
    """A problem found while composing, reported with the node's mark."""


def _pos(file: str, mark: yaml.Mark | None) -> Position:
    if mark is None:
        return Position(file, 1, 1)
    return Position(file, mark.line + 1, mark.column + 1)


class _Loader(yaml.SafeLoader):
    """SafeLoader that builds `Node`/`NodeList`, rejects duplicate and non-string keys."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file = file
        self.problems: list[Problem] = []
        self._depth = 0

    # Composition: bound the depth (the composer recurses) before anything is built.
    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _LoadError(
                    None,
                    None,
                    f"nesting deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_positioned_mapping(self, node: yaml.MappingNode) -> Iterator[Node]:
        result = Node(_pos(self.file, node.start_mark))
        yield result
        seen: dict[object, Position] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key_pos = _pos(self.file, key_node.start_mark)
            if isinstance(key_node, yaml.ScalarNode):
                ident: object = (key_node.tag, key_node.value)
                if ident in seen:
                    first = seen[ident]
                    self.problems.append(
                        Problem(
                            self.file,
                            key_pos.line,
                            key_pos.col,
                            f"duplicate key {shown(key_node.value)} (first at line {first.line})",
                        )
                    )
                else:
                    seen[ident] = key_pos
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            key_pos = _pos(self.file, key_node.start_mark)
            if not isinstance(key, str):
                self.problems.append(
                    Problem(
                        self.file,
                        key_pos.line,
                        key_pos.col,
                        f"mapping keys must be strings, not {_type_name(key)}",
                    )
                )
                continue
            value = self.construct_object(value_node, deep=False)
            result[key] = value
            result.key_positions[key] = key_pos
            result.value_positions[key] = _pos(self.file, value_node.start_mark)

    def construct_checked_timestamp(self, node: yaml.ScalarNode) -> Any:
        """A date or time, as YAML 1.1 reads `2030-12-05`; one the calendar does not have
        (`2030-13-45`, `2020-02-30`) is a positioned problem, its text kept as the value."""
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError as exc:
            pos = _pos(self.file, node.start_mark)
            self.problems.append(
                Problem(
                    self.file,
                    pos.line,
                    pos.col,
                    f"{shown(str(node.value))} reads as a date but is not one ({exc});"
                    " quote it if it is a string",
                )
            )
            return str(node.value)

    def construct_positioned_sequence(self, node: yaml.SequenceNode) -> Iterator[NodeList]:
        result = NodeList(_pos(self.file, node.start_mark))
        yield result
        for child in node.value:
            result.append(self.construct_object(child, deep=False))
            result.item_positions.append(_pos(self.file, child.start_mark))


_Loader.add_constructor(
    "tag:yaml.org,2002:map",
    _Loader.construct_positioned_mapping,
)
_Loader.add_constructor(
    "tag:yaml.org,2002:seq",
    _Loader.construct_positioned_sequence,
)
_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    _Loader.construct_checked_timestamp,
)


#: Where the two parsers part (found by tests/test_load_parsers.py): PyYAML refuses a tab after
#: a scalar that libyaml reads as a space, they disagree on some `?` keys in flow collections, and
#: on a byte-order mark or a Unicode line break inside the text. Such a text takes the pure parser.
_PARSERS_PART: Final = re.compile("[\t?\ufeff\u2028\u2029\x85]")

try:
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    LIBYAML = False
else:
    LIBYAML = True

    class _FastLoader(CParser, _Loader):
        """`_Loader` fed by libyaml's parser: the C class answers the event calls."""

        def __init__(self, text: str, file: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self.file = file
            self.problems = []
            self._depth = 0

        # the C class composes too: composing stays Python's, with `_Loader`'s depth bound
        check_node = Composer.check_node
        get_node = Composer.get_node
        compose_document = Composer.compose_document
        compose_node = _Loader.compose_node


def shown(value: object, limit: int = 60) -> str:
    """`repr(value)` for a message, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when one of `choices` is close to `word`, else ''."""
    hint = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


def type_name(value: object) -> str:
    """How a loaded value's type is named in messages ('a string', 'a mapping', 'null' ...)."""
    return _type_name(value)


def _expanded_size(root: yaml.Node) -> int:
    """The number of nodes `root` stands for once every alias is expanded.

    Aliased nodes are shared objects in the composed graph, so a memo keyed by identity keeps
    this linear in the size of the file however large the expansion is.
    """
    memo: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in in_progress:
            raise _LoadError(None, None, "recursive alias", node.start_mark)
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        in_progress.discard(key)
        memo[key] = total
        return total

    total = size(root)
    distinct = len(memo)
    if total - distinct > MAX_ALIAS_EXPANSION:
        raise _LoadError(
            None,
            None,
            f"aliases expand this document by more than {MAX_ALIAS_EXPANSION:,} nodes"
            " (an alias bomb?); refusing to load it",
            root.start_mark,
        )
    return total


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def decode(data: bytes, file: str) -> tuple[str | None, Problem | None]:
    """Decode UTF-8 (an optional BOM is dropped); an invalid byte is a positioned problem."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line, col = _line_col(data[: exc.start].decode("utf-8", "replace"), exc.start)
        return None, Problem(file, line, col, "not valid UTF-8")


class FileRefused(Exception):
    """A file that is not read: not a regular file, over its size limit, or outside the project
    root. `reason` completes a sentence about the file ("is a FIFO (named pipe), not a regular
    file")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FileTooLarge(FileRefused):
    """A regular file over the limit it is read with."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"is larger than the {limit:,}-byte limit")
        self.size = size
        self.limit = limit


_SPECIAL_FILES: Final = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_regular(status: os.stat_result, limit: int) -> None:
    if stat.S_ISDIR(status.st_mode):
        raise IsADirectoryError(21, "Is a directory")
    if not stat.S_ISREG(status.st_mode):
        what = next((name for test, name in _SPECIAL_FILES if test(status.st_mode)), "special")
        raise FileRefused(f"is {what}, not a regular file")
    if status.st_size > limit:
        raise FileTooLarge(status.st_size, limit)


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of the regular file `path`, refused (`FileRefused`) when it is anything else
    or larger than `limit`; `OSError` (`FileNotFoundError`, `IsADirectoryError`, ...) otherwise.

    The type is checked with stat before the file is opened: opening a FIFO blocks until a writer
    comes, and a device such as /dev/zero never ends. It is opened non-blocking and checked again
    on the open descriptor (the path may have changed in between), and at most `limit` + 1 bytes
    are read (a file may grow while it is read).
    """
    _check_regular(os.stat(path), limit)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        _check_regular(os.fstat(fd), limit)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(len(data), limit)
    return data


def project_roots(paths: Iterable[str | Path]) -> tuple[Path, ...]:
    """The directories (symlinks resolved) that `paths` name: each directory itself, the
    directory holding each file, the current directory for `-` or when there is none."""
    roots: list[Path] = []
    for raw in paths:
        path = Path(os.path.abspath(raw)) if str(raw) != "-" else Path.cwd()
        root = Path(os.path.realpath(path if path.is_dir() else path.parent))
        if root not in roots:
            roots.append(root)
    return tuple(roots) or (Path(os.path.realpath(Path.cwd())),)


def _roots_text(roots: Sequence[Path]) -> str:
    return " or ".join(f"'{display_path(r)}'" for r in roots)


def resolve_inside(path: Path, roots: Sequence[Path]) -> Path:
    """`path` with every symlink resolved, refused (`FileRefused`) unless it is inside one of
    `roots` (directories already resolved). A symlink loop resolves to itself here; reading it
    reports the loop."""
    resolved = Path(os.path.realpath(path))
    inside = [resolved.relative_to(root) for root in roots if resolved.is_relative_to(root)]
    if not inside:
        raise FileRefused(f"resolves outside the project root {_roots_text(roots)}")
    if all(any(part.startswith(".") for part in rest.parts) for rest in inside):
        # .git/config holds the token actions/checkout persists, .env the credentials: a hidden
        # file is never a member list, as the directory walk never reads one as a manifest
        raise FileRefused("is a hidden file or inside a hidden directory of the project")
    return resolved


def confine(name: str, base: Path, roots: Sequence[Path]) -> Path:
    """The file that `name`, written in a manifest whose directory is `base`, stands for: a
    relative path that resolves inside one of `roots`, the project root. Anything else raises
    `FileRefused` before the file is opened, as kustomize's load restrictor does: a pull request
    must not make CI read /proc/self/environ or ../../secrets.ini and print it.
    """
    if os.path.isabs(name):
        raise FileRefused(
            f"is not a relative path; it must be inside the project root {_roots_text(roots)}"
        )
    return resolve_inside(base / name, roots)


def read_limited(path: Path, display: str) -> tuple[bytes | None, Problem | None]:
    """Read a manifest, refusing one over `MAX_FILE_BYTES` or not a regular file; failures are
    problems, not exceptions."""
    try:
        data = read_regular(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        return None, Problem(display, 1, 1, "no such file")
    except IsADirectoryError:
        return None, Problem(display, 1, 1, "is a directory, not a file")
    except FileTooLarge as exc:
        return None, _too_large(display, exc.size)
    except FileRefused as exc:
        return None, Problem(display, 1, 1, exc.reason)
    except OSError as exc:
        return None, Problem(display, 1, 1, f"cannot read: {exc.strerror or exc}")
    return data, None


def _too_large(display: str, size: int) -> Problem:
    return Problem(
        display,
        1,
        1,
        f"file is larger than the {MAX_FILE_BYTES:,}-byte limit for manifests"
        f" ({size:,} bytes or more)",
    )


def load_text(text: str, file: str) -> LoadResult:
    """Load every document of `text` (named `file` in positions).

    A syntax error ends the file: documents before it are returned, the error is a problem.
    A file is read with libyaml's parser when PyYAML has it (four times faster); one that holds
    any problem is read again by PyYAML's own, so every message and position is the same
    whichever parser the machine has.
    """
    fast = _load_fast(text, file)
    return fast if fast is not None else _load_pure(text, file)


def _load_fast(text: str, file: str) -> LoadResult | None:
    """Every document of `text` through libyaml's events, or None on any problem (or no libyaml).

    Only the events come from C: composing (with its depth bound), the alias bound and the
    positioned construction are `_Loader`'s own, and libyaml counts lines and columns in
    characters as PyYAML does, so the documents and their positions are the same.
    """
    if not LIBYAML:  # pragma: no cover - PyYAML built without libyaml
        return None
    if _PARSERS_PART.search(text):
        return None
    documents: list[Document] = []
    try:
        loader = _FastLoader(text, file)
        _read_documents(loader, file, documents)
    except Exception:  # any problem: the pure parser reads the file again and says what
        return None
    if loader.problems:
        return None
    return LoadResult(documents, [])


def _read_documents(loader: _Loader, file: str, documents: list[Document]) -> None:
    """Append each document `loader` reads to `documents` (those before a failure stay)."""
    index = 0
    while loader.check_node():
        root = loader.get_node()
        if root is None:  # pragma: no cover - check_node() guarantees a node
            break
        _expanded_size(root)
        data = loader.construct_document(root)
        if data is not None:
            documents.append(Document(file, index, data, _pos(file, root.start_mark)))
        index += 1


def _load_pure(text: str, file: str) -> LoadResult:
    documents: list[Document] = []
    problems: list[Problem] = []
    try:
        loader = _Loader(text, file)
    except yaml.reader.ReaderError as exc:
        return LoadResult([], [_reader_problem(text, file, exc)])
    problems = loader.problems
    try:
        _read_documents(loader, file, documents)
    except yaml.MarkedYAMLError as exc:
        pos = _pos(file, exc.problem_mark or exc.context_mark)
        message = _yaml_message(exc)
        lines = text.splitlines()
        if "flow" in message and pos.line <= len(lines) and "${" in lines[pos.line - 1]:
            # `{appId: ${VAR}}` is not YAML: braces end a flow mapping (DESIGN shows this form).
            message += " (quote a ${VAR} inside {...} or [...]: '${VAR}')"
        problems.append(Problem(file, pos.line, pos.col, message))
    except yaml.reader.ReaderError as exc:  # pragma: no cover - the reader checks text up front
        problems.append(_reader_problem(text, file, exc))
    finally:
        loader.dispose()
    return LoadResult(documents, sorted(problems))


def _reader_problem(text: str, file: str, exc: yaml.reader.ReaderError) -> Problem:
    line, col = _line_col(text, exc.position)
    char = exc.character if isinstance(exc.character, int) else ord(exc.character)
    return Problem(file, line, col, f"character U+{char:04X} is not allowed in YAML")


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    text = ", ".join(parts) if parts else "invalid YAML"
    if isinstance(exc, _LoadError):
        return text
    if isinstance(exc, ConstructorError):
        return f"{text} (only plain YAML is allowed)"
    if isinstance(exc, ComposerError):
        return text
    return f"invalid YAML: {text}"


def load_file(path: Path, display: str | None = None) -> LoadResult:
    """Read and load one file; every failure is a problem in the result."""
    name = display if display is not None else str(path)
    text, problem = read_text(path, name)
    if text is None:
        return LoadResult([], [problem] if problem else [])
    return load_text(text, name)


def read_text(path: Path, display: str) -> tuple[str | None, Problem | None]:
    """The text of a manifest-sized file, or the problem that stops it being read."""
    data, problem = read_limited(path, display)
    if problem is not None or data is None:
        return None, problem
    return decode(data, display)


@functools.cache
def _ours_line(kinds: tuple[str, ...]) -> re.Pattern[str]:
    """A line that makes a file reconciler's even when it does not load."""
    names = "|".join(map(re.escape, kinds))
    return re.compile(
        rf"^(?:apiVersion:[ \t]*[\"']?reconciler/"
        rf"|kind:[ \t]*[\"']?(?:{names})[\"']?[ \t]*(?:#.*)?$)",
        re.MULTILINE,
    )


def holds_manifests(
    text: str, documents: Iterable[Any], *, loaded: bool, kinds: tuple[str, ...]
) -> bool:
    """Whether a YAML file found by walking a directory is reconciler's: one of its documents
    says `apiVersion: reconciler/...` or has one of `kinds` (`kind: OfficialAccount` with a
    mistyped apiVersion is a manifest with a problem); a file that does not load, when one of its
    lines says so. Any other YAML (docker-compose.yml, CI workflows, Helm values) is not read as
    manifests by any command; named on the command line, every file is.

    The one rule for every command that walks a directory (validate, plan, apply, drift, fmt).
    """
    for data in documents:
        if isinstance(data, dict):
            api = data.get("apiVersion")
            if isinstance(api, str) and api.startswith("reconciler/"):
                return True
            if data.get("kind") in kinds:
                return True
    return not loaded and _ours_line(kinds).search(text) is not None


def load_walked(path: Path, display: str, kinds: tuple[str, ...]) -> LoadResult | None:
    """`load_file` for a file found by walking a directory: None when it is not reconciler's
    (`holds_manifests`). A file that cannot be read or decoded is reported, never skipped."""
    text, problem = read_text(path, display)
    if text is None:
        return LoadResult([], [problem] if problem else [])
    result = load_text(text, display)
    data = [d.data for d in result.documents]
    if not holds_manifests(text, data, loaded=not result.problems, kinds=kinds):
        return None
    return result


def load_stream(data: bytes | str, name: str = STDIN_NAME) -> LoadResult:
    """Load documents already read (stdin); the size limit applies as for files."""
    if len(data) > MAX_FILE_BYTES:
        return LoadResult([], [_too_large(name, len(data))])
    if isinstance(data, bytes):
        text, problem = decode(data, name)
        if problem is not None or text is None:
            return LoadResult([], [problem] if problem else [])
        data = text
    return load_text(data.removeprefix("\ufeff"), name)


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the current directory when below it.

    Symlinks are not followed (a loop must be reported by reading, not crash here).
    """
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(os.path.abspath(os.getcwd())))
    except ValueError:
        return str(path)


def format_path(path: Iterable[str | int]) -> str:
    """`spec.subscribers.members[3]` from a JSON path.

    A key that is empty, holds whitespace or an unprintable character is shown quoted
    (`targets['\\r']`): a raw line break in a key would split one problem over two lines.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part or not part.isprintable() or any(c.isspace() for c in part):
            text += f"[{part!r}]"
        else:
            text += f".{part}" if text else part
    return text


def iter_manifest_files(paths: Iterable[str | Path]) -> list[Path]:
    """The manifest files `paths` name, in order; `-` (stdin) is kept as `Path('-')`.

    A directory means every `*.yaml` and `*.yml` below it, sorted, except `reconciler.yaml` and
    anything inside a hidden directory (`.git`, `.github`, `.reconciler`, ...); symlinked
    directories are not followed, and a FIFO or a dangling symlink is listed so that loading it
    reports it. A file named explicitly is kept whatever its name; a path that does not exist is
    kept too, so that loading it reports it.
    """
    result: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        found = sorted(_walk_manifests(path)) if str(raw) != "-" and path.is_dir() else [path]
        for p in found:
            if p not in seen or str(p) == "-":
                seen.add(p)
                result.append(p)
    return result


def _walk_manifests(root: Path) -> Iterator[Path]:
    # os.walk with pruning: a repository's .git or .venv is never even listed.
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for name in files:
            if (
                name.endswith((".yaml", ".yml"))
                and name != CONFIG_NAME
                and not name.startswith(".")
            ):
                yield Path(directory, name)


def position_of(container: object, key: str | int) -> Position | None:
    """The position of `container[key]` (a `Node` value or a `NodeList` item), if known."""
    if isinstance(container, Node) and isinstance(key, str):
        return container.value_positions.get(key)
    if isinstance(container, NodeList) and isinstance(key, int) and 0 <= key < len(container):
        return container.item_positions[key]
    return None


def key_position_of(container: object, key: str) -> Position | None:
    """The position of a key of a `Node`, if known."""
    if isinstance(container, Node):
        return container.key_positions.get(key)
    return None


def locate(root: Any, path: Iterable[str | int], fallback: Position) -> Position:
    """The position of the value at `path` below `root` (the nearest known ancestor's if not)."""
    current = root
    best = getattr(root, "position", fallback)
    for key in path:
        pos = position_of(current, key)
        if pos is None:
            break
        best = pos
        try:
            current = current[key]
        except (KeyError, IndexError, TypeError):  # pragma: no cover - positions match content
            break
    return best


def dump_documents(documents: Iterable[Any], *, header: str = "") -> str:
    """Plain data as a multi-document YAML text (keys in the given order, UTF-8 kept).

    The safe dumper quotes whatever would not read back as the same string (`"yes"`, `"1"`, ids
    starting with `@`), so what `reconciler import` writes loads back unchanged.
    """
    body = yaml.safe_dump_all(
        list(documents),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        explicit_start=True,
        width=100,
    )
    return header + body
