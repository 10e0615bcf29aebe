"""Semantic checks the schemas cannot express, and resolution into the frozen desired state.

Input: documents that passed their kind's schema (plus the names of those that did not, so that a
reference to a broken set is not reported twice). Output: a `DesiredState`, or every problem.
Member files are read here as plain text, never through YAML: a 1,000,000-line file costs a split
and a set, not a million YAML nodes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from sys import intern
from types import MappingProxyType
from typing import Any, Final

from reconciler.errors import Problem
from reconciler.load import (
    MAX_MEMBER_FILE_BYTES,
    Document,
    FileRefused,
    FileTooLarge,
    Node,
    NodeList,
    confine,
    did_you_mean,
    display_path,
    key_position_of,
    position_of,
    project_roots,
    read_regular,
    shown,
)
from reconciler.model import (
    ACCOUNT_ID_PREFIX,
    RESERVED_ACCOUNT_ID_PREFIX,
    Account,
    DesiredState,
    MassSpeed,
    Position,
    ProfileField,
    ProfileValue,
    SubscriberPolicy,
    Subscribers,
    canonical_account_id,
    is_vendor_assigned,
)

#: UTF-8 byte limits of the writable profile fields (reference section 4.2).
PROFILE_BYTE_LIMITS: Final = {
    ProfileField.NAME: 150,
    ProfileField.INTRODUCTION: 400,
    ProfileField.FACE_URL: 500,
    ProfileField.ORGANIZATION: 500,
    ProfileField.CUSTOM_STRING: 3000,
}
#: A subscriber's CustomString on an account (reference section 4.3).
SUBSCRIBER_PROFILE_BYTES: Final = 3000
#: Custom account ids: printable ASCII, at most 48 bytes with the prefix (reference section 4.4).
ACCOUNT_ID_BYTES: Final = 48
#: UserIDs: at most 32 bytes of printable ASCII (reference section 3); spaces are refused too,
#: since one in a member file is almost always a stray column.
USERID_BYTES: Final = 32
_USERID = re.compile(r"[\x21-\x7e]{1,32}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
#: A member file with nothing but UserIDs (without '#'), whole-line comments and blank lines.
_CLEAN_FILE = re.compile(r"(?:(?:[\x21\x22\x24-\x7e]{1,32}|#[^\n]*|)\n)*")
#: The kinds this module resolves itself; any other resolves through its `Kind.resolve`.
_OWN_KINDS: Final = frozenset({"OfficialAccount", "SubscriberSet", "UserAccounts", "MassSpeed"})
#: Invalid lines reported per member file before the rest are summarised in one line.
MAX_FILE_PROBLEMS: Final = 20


def userid_problem(value: str) -> str | None:
    """Why `value` is not a valid UserID, or None if it is."""
    if _USERID.fullmatch(value):
        return None
    return (
        f"invalid UserID {shown(value)}: 1 to {USERID_BYTES} printable ASCII characters, no spaces"
    )


#: How much of a rejected member-file line a message quotes: the file may hold anything (a
#: symlink inside the project to a secrets file), so never the whole line.
QUOTED_LINE_CHARS: Final = 16


def member_line_problem(value: str) -> str | None:
    """Why a member file's line `value` is not a valid UserID, quoting at most its first
    `QUOTED_LINE_CHARS` characters, anything but printable ASCII shown as `?`; None if valid."""
    if _USERID.fullmatch(value):
        return None
    shown = "".join(c if " " <= c <= "~" else "?" for c in value[:QUOTED_LINE_CHARS])
    if len(value) > QUOTED_LINE_CHARS:
        shown += f"...' ({len(value)} characters)"
    else:
        shown += "'"
    return f"invalid UserID '{shown}: 1 to {USERID_BYTES} printable ASCII characters, no spaces"


@dataclass(slots=True)
class _Ref:
    value: str
    pos: Position
    path: str


@dataclass(slots=True)
class _Sink:
    problems: list[Problem] = field(default_factory=list)

    def add(self, pos: Position, message: str) -> None:
        self.problems.append(Problem(pos.file, pos.line, pos.col, _one_line(message)))


def _one_line(text: str) -> str:
    """`text` with unprintable characters escaped: names and ids from the manifests are quoted
    into messages, and a raw line break would split one problem over two lines."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _refs(node: Node | None, key: str, path: str) -> list[_Ref]:
    items = node.get(key) if node is not None else None
    if not isinstance(items, NodeList):
        return []
    return [
        _Ref(value, items.item_positions[i], f"{path}.{key}[{i}]")
        for i, value in enumerate(items)
        if isinstance(value, str)
    ]


def _spec(entry: _Named) -> Node | None:
    """A document's `spec`, if it is a mapping (a broken document's may be anything)."""
    spec = entry.doc.data.get("spec")
    return spec if isinstance(spec, Node) else None


def _at(node: Node, key: str) -> Position:
    return position_of(node, key) or node.position


@dataclass(slots=True)
class _Named:
    kind: str
    name: str
    pos: Position
    doc: Document
    valid: bool


@dataclass(slots=True)
class _MemberFile:
    ids: list[str] | None
    problems: list[Problem]


class Resolver:
    """Checks one run's documents together and builds the desired state."""

    def __init__(
        self,
        base_dirs: Mapping[str, Path],
        *,
        complete: bool = True,
        roots: tuple[Path, ...] | None = None,
    ) -> None:
        self._base_dirs = base_dirs
        # every member file must resolve inside one of these (default: the current directory)
        self._roots = roots if roots is not None else project_roots(())
        # False when a file could not be parsed: a set it declares may be what a reference names,
        # so unknown-set problems would be noise next to the parse error.
        self._complete = complete
        self._sink = _Sink()
        self._sets: dict[str, _Named] = {}
        self._files: dict[Path, _MemberFile] = {}
        self._expanded: dict[str, frozenset[str] | None] = {}
        self._cyclic: set[str] = set()

    # -- entry point -------------------------------------------------------------------------

    def resolve(
        self, valid: list[tuple[str, Document]], broken: list[tuple[str, Document]]
    ) -> tuple[DesiredState | None, list[Problem]]:
        """Check `valid` (kind, document) pairs, knowing the names `broken` ones declare."""
        firsts: dict[tuple[str, str], _Named] = {}
        named: list[_Named] = []
        unnamed: list[_Named] = []  # broken documents without a usable name or id
        for is_valid, pairs in ((True, valid), (False, broken)):
            for kind, doc in pairs:
                entry = self._identify(kind, doc, is_valid)
                if entry is not None:
                    named.append(entry)
                elif not is_valid:
                    unnamed.append(_Named(kind, "", doc.position, doc, False))
        named.sort(key=lambda e: (e.pos.file, e.pos.line, e.pos.col))
        for entry in named:
            group = "accounts" if entry.kind == "OfficialAccount" else entry.kind
            first = firsts.setdefault((group, entry.name), entry)
            if first is not entry:
                what = "account id" if entry.kind == "OfficialAccount" else f"{entry.kind} name"
                self._sink.add(
                    entry.pos, f"duplicate {what} '{entry.name}' (first declared at {first.pos})"
                )
                entry.valid = False
        self._sets = {name: e for (group, name), e in firsts.items() if group == "SubscriberSet"}
        speeds = [e for e in named if e.kind == "MassSpeed"]
        for extra in speeds[1:]:
            self._sink.add(
                extra.pos,
                f"more than one MassSpeed (the first is '{speeds[0].name}' at {speeds[0].pos});"
                " a target has one WeChat official account",
            )
        for entry in [*named, *unnamed]:
            if entry.kind == "SubscriberSet" and _spec(entry) is not None:
                self._check_set(entry)
        self._find_cycles()
        accounts: dict[str, Account] = {}
        users: set[str] = set()
        for entry in [*named, *unnamed]:
            if not entry.valid:
                self._check_broken(entry)
                continue
            if entry.kind == "OfficialAccount":
                account = self._account(entry)
                if account is not None:
                    accounts[account.id] = account
            elif entry.kind == "UserAccounts":
                users |= self._users(entry)
        records = self._kind_records([e for e in named if e.valid and e.kind not in _OWN_KINDS])
        problems = self._sink.problems
        if problems or broken or not self._complete:
            return None, problems
        mass_speed = None
        if speeds:
            spec = speeds[0].doc.data["spec"]
            mass_speed = MassSpeed(speeds[0].name, spec["speed"], speeds[0].doc.position)
        state = DesiredState(
            accounts=MappingProxyType(dict(sorted(accounts.items()))),
            users=frozenset(users),
            mass_speed=mass_speed,
            documents=len(valid) + len(broken),
            records=tuple(records),
        )
        return state, []

    def _kind_records(self, entries: list[_Named]) -> list[object]:
        """The records of the kinds that resolve their own documents (`Kind.resolve`)."""
        if not entries:
            return []
        # imported only here: `reconciler validate` of the first kinds never loads the vendor
        # clients that the registry's modules use
        from reconciler.kinds import registered

        records: list[object] = []
        for kind in registered():
            docs = [e.doc for e in entries if e.kind == kind.name]
            if kind.resolve is not None:
                found, problems = kind.resolve(docs)
            elif kind.resolve_with_sets is not None:
                found, problems = kind.resolve_with_sets(docs, self.members)
            else:
                continue
            records.extend(found)
            self._sink.problems.extend(problems)
        return records

    # -- identity and duplicates --------------------------------------------------------------

    def _identify(self, kind: str, doc: Document, valid: bool) -> _Named | None:
        metadata = doc.data.get("metadata")
        if not isinstance(metadata, Node):
            return None
        key = "id" if kind == "OfficialAccount" else "name"
        raw = metadata.get(key)
        if not isinstance(raw, str) or not raw:
            return None
        pos = _at(metadata, key)
        name = raw
        if kind == "OfficialAccount":
            name = canonical_account_id(raw)
            problem = account_id_problem(raw)
            if problem is not None:
                self._sink.add(pos, f"metadata.id: {problem}")
                valid = False
        return _Named(kind, name, pos, doc, valid)

    def _check_broken(self, entry: _Named) -> None:
        """The checks a document with other problems (its schema's, a bad or duplicate id) still
        gets on its well-formed parts, so that one run reports every problem: its sets, member
        files, profile sizes, declared-and-absent subscribers."""
        spec = _spec(entry)
        if spec is None:
            return
        if entry.kind == "OfficialAccount":
            self._check_profile_bytes(spec)
            self._subscribers(spec.get("subscribers"), build=False)
        elif entry.kind == "UserAccounts":
            self._union(_refs(spec, "sets", "spec"), ())

    # -- sets ---------------------------------------------------------------------------------

    def _check_set(self, entry: _Named) -> None:
        for ref in self._set_refs(entry):
            self._check_set_ref(ref)
        for ref in _refs(_spec(entry), "files", "spec"):
            self._member_file(entry, ref)

    def _check_set_ref(self, ref: _Ref) -> bool:
        if ref.value in self._sets:
            return True
        if self._complete:
            hint = did_you_mean(ref.value, self._sets)
            self._sink.add(ref.pos, f"{ref.path}: unknown SubscriberSet '{ref.value}'{hint}")
        return False

    def _member_file(self, entry: _Named, ref: _Ref) -> _MemberFile:
        base = self._base_dirs.get(entry.doc.file, Path.cwd())
        path = Path(os.path.normpath(base / ref.value))
        cached = self._files.get(path)
        if cached is not None:
            return cached
        display = display_path(path)
        result = _MemberFile(None, [])
        try:
            resolved = confine(ref.value, base, self._roots)
        except FileRefused as exc:  # not opened, not even looked at
            self._sink.add(ref.pos, f"{ref.path}: member file {shown(ref.value)} {exc.reason}")
            self._files[path] = result
            return result
        try:
            data = read_regular(resolved, MAX_MEMBER_FILE_BYTES)
        except FileNotFoundError:
            self._sink.add(ref.pos, f"{ref.path}: member file '{display}' not found")
        except IsADirectoryError:
            self._sink.add(ref.pos, f"{ref.path}: member file '{display}' is a directory")
        except FileTooLarge as exc:
            self._sink.add(
                ref.pos,
                f"{ref.path}: member file '{display}' is larger than the {exc.limit:,}-byte limit"
                f" for member files ({exc.size:,} bytes or more)",
            )
        except FileRefused as exc:
            self._sink.add(ref.pos, f"{ref.path}: member file '{display}' {exc.reason}")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self._sink.add(ref.pos, f"{ref.path}: cannot read member file '{display}': {reason}")
        else:
            result = read_member_lines(data, display)
            self._sink.problems.extend(result.problems)
        self._files[path] = result
        return result

    def _find_cycles(self) -> None:
        graph: dict[str, list[_Ref]] = {}
        for name, entry in self._sets.items():
            if entry.valid:
                graph[name] = [r for r in self._set_refs(entry) if r.value in self._sets]
        done: set[str] = set()
        for start in sorted(graph):
            self._walk(start, graph, done)

    def _walk(self, start: str, graph: dict[str, list[_Ref]], done: set[str]) -> None:
        """Depth first from `start`, reporting every reference that closes a cycle. A loop, not
        a recursion: a chain of thousands of includes is valid."""
        if start in done or start not in graph:
            return
        path = [start]
        refs = [iter(graph[start])]
        while refs:
            ref = next(refs[-1], None)
            if ref is None:
                refs.pop()
                done.add(path.pop())
            elif ref.value in path:
                cycle = [*path[path.index(ref.value) :], ref.value]
                self._cyclic.update(cycle)
                self._sink.add(ref.pos, f"{ref.path}: SubscriberSet cycle: {' → '.join(cycle)}")
            elif ref.value not in done and ref.value in graph:
                path.append(ref.value)
                refs.append(iter(graph[ref.value]))

    def expand(self, name: str) -> frozenset[str] | None:
        """The members of set `name`, or None if it (or a set it uses) has a problem."""
        if name not in self._expanded:
            # the sets it uses first, each after those it uses: no recursion, however deep
            for used in self._uses_first(name):
                self._expanded[used] = self._members(used)
        return self._expanded[name]

    def _uses_first(self, name: str) -> list[str]:
        """`name` and the sets it includes or excludes that are not expanded yet, in an order
        where each comes after the sets it uses (cycles were cut by `_find_cycles`)."""
        order: list[str] = []
        seen = {name}
        frames = [(name, iter(self._uses(name)))]
        while frames:
            current, uses = frames[-1]
            used = next(uses, None)
            if used is None:
                frames.pop()
                order.append(current)
            elif used not in seen and used not in self._expanded:
                seen.add(used)
                frames.append((used, iter(self._uses(used))))
        return order

    def _uses(self, name: str) -> list[str]:
        entry = self._sets.get(name)
        if entry is None or not entry.valid or name in self._cyclic:
            return []
        return [r.value for r in self._set_refs(entry)]

    def _members(self, name: str) -> frozenset[str] | None:
        """Set `name`'s members, the sets it uses already expanded; None on any problem."""
        entry = self._sets.get(name)
        if entry is None or not entry.valid or name in self._cyclic:
            return None
        spec = entry.doc.data["spec"]
        members: set[str] = {r.value for r in _refs(spec, "members", "spec")}
        for ref in _refs(spec, "files", "spec"):
            loaded = self._member_file(entry, ref)
            if loaded.ids is None or loaded.problems:
                return None
            members.update(loaded.ids)
        for ref in _refs(spec, "include", "spec"):
            included = self._expanded.get(ref.value)
            if included is None:
                return None
            members |= included
        for ref in _refs(spec, "exclude", "spec"):
            excluded = self._expanded.get(ref.value)
            if excluded is None:
                return None
            members -= excluded
        return frozenset(members)

    @staticmethod
    def _set_refs(entry: _Named) -> list[_Ref]:
        spec = _spec(entry)
        return _refs(spec, "include", "spec") + _refs(spec, "exclude", "spec")

    def members(self, node: Any, path: str) -> tuple[frozenset[str], bool]:
        """The members of `node`'s `sets` and `members` (`Kind.resolve_with_sets`)."""
        members = (r.value for r in _refs(node, "members", path))
        return self._union(_refs(node, "sets", path), members)

    def _union(self, refs: Iterable[_Ref], extra: Iterable[str]) -> tuple[frozenset[str], bool]:
        """The members of the sets `refs` names and of `extra`, and whether that is all of
        them (False: a set is unknown or has problems; the members are then those known)."""
        parts: list[frozenset[str]] = []
        whole = True
        for ref in refs:
            if not self._check_set_ref(ref):
                whole = False
                continue
            expanded = self.expand(ref.value)
            if expanded is None:
                whole = False
            else:
                parts.append(expanded)
        extra_set = frozenset(extra)
        if len(parts) == 1 and not extra_set - parts[0]:
            return parts[0], whole  # share the set's own frozenset: no copy of a large membership
        return extra_set.union(*parts), whole

    # -- accounts and users -------------------------------------------------------------------

    def _account(self, entry: _Named) -> Account | None:
        data = entry.doc.data
        spec: Node = data["spec"]
        metadata: Node = data["metadata"]
        before = len(self._sink.problems)
        owner = spec["owner"]  # a valid UserID: the schema's pattern says so
        self._check_profile_bytes(spec)
        profile: dict[ProfileField, ProfileValue] = {
            f: spec[f.value] for f in ProfileField if f.value in spec
        }
        subscribers = self._subscribers(spec.get("subscribers"))
        if len(self._sink.problems) > before:
            return None
        return Account(
            id=entry.name,
            owner=owner,
            profile=MappingProxyType(profile),
            position=entry.doc.position,
            id_position=entry.pos,
            owner_position=_at(spec, "owner"),
            labels=MappingProxyType(dict(metadata.get("labels", {}))),
            protect=bool(spec.get("protect", False)),
            ignore_changes=frozenset(ProfileField(f) for f in spec.get("ignoreChanges", ())),
            subscribers=subscribers,
        )

    def _check_profile_bytes(self, spec: Node) -> None:
        for profile_field, limit in PROFILE_BYTE_LIMITS.items():
            value = spec.get(profile_field.value)
            if not isinstance(value, str):
                continue
            size = len(value.encode("utf-8"))
            if size > limit:
                self._sink.add(
                    _at(spec, profile_field.value),
                    f"spec.{profile_field.value}: {size} bytes of UTF-8, over the vendor's"
                    f" limit of {limit} ({profile_field.vendor}, reference section 4.2)",
                )

    def _subscribers(self, node: Any, *, build: bool = True) -> Subscribers | None:
        """The subscribers `node` declares (None: not declared, or a problem). `build=False`
        only checks (a document with other problems, whose `policy` may be anything)."""
        if not isinstance(node, Node):
            return None
        path = "spec.subscribers"
        members = _refs(node, "members", path)
        absent = _refs(node, "absent", path)
        ok = True  # inline UserIDs are checked by the schema's pattern
        declared, whole = self._union(_refs(node, "sets", path), (r.value for r in members))
        profiles: dict[str, str] = {}
        raw_profiles = node.get("profiles")
        if isinstance(raw_profiles, Node):
            for user, value in raw_profiles.items():
                key_pos = key_position_of(raw_profiles, user) or raw_profiles.position
                problem = userid_problem(user)
                if problem is not None:
                    self._sink.add(key_pos, f"{path}.profiles: {problem}")
                    ok = False
                elif whole and user not in declared:
                    self._sink.add(
                        key_pos,
                        f"{path}.profiles: profile for '{user}', who is not a declared subscriber",
                    )
                    ok = False
                size = len(value.encode("utf-8")) if isinstance(value, str) else 0
                if size > SUBSCRIBER_PROFILE_BYTES:
                    self._sink.add(
                        position_of(raw_profiles, user) or key_pos,
                        f"{path}.profiles.{user}: {size} bytes of UTF-8, over the vendor's limit"
                        f" of {SUBSCRIBER_PROFILE_BYTES} (CustomString, reference section 4.3)",
                    )
                    ok = False
                profiles[user] = value
        for ref in absent:  # the members known are enough to find these
            if ref.value in declared:
                self._sink.add(ref.pos, f"{ref.path}: '{ref.value}' is both declared and absent")
                ok = False
        if not whole or not ok or not build:
            return None
        return Subscribers(
            policy=SubscriberPolicy(node.get("policy", SubscriberPolicy.ADDITIVE.value)),
            members=declared,
            absent=frozenset(r.value for r in absent),
            profiles=MappingProxyType(profiles),
        )

    def _users(self, entry: _Named) -> frozenset[str]:
        spec = entry.doc.data["spec"]
        members = _refs(spec, "members", "spec")
        return self._union(_refs(spec, "sets", "spec"), (r.value for r in members))[0]


def account_id_problem(raw: str) -> str | None:
    """Why `raw` (as written, `news` or `@TOA#_news`) is not a valid account id.

    A custom id, or a vendor-assigned one written in full in its exact shape (`model.
    VENDOR_ACCOUNT_ID`): that names an account made in the console, which a plan adopts and
    never creates."""
    canonical = canonical_account_id(raw)
    if not _PRINTABLE.fullmatch(canonical):
        return f"{shown(raw)} must be printable ASCII (reference section 4.4)"
    if canonical == ACCOUNT_ID_PREFIX:
        return f"{shown(raw)} is empty after the '{ACCOUNT_ID_PREFIX}' prefix"
    if canonical.startswith(RESERVED_ACCOUNT_ID_PREFIX) and not (
        raw == canonical and is_vendor_assigned(canonical)  # adopted, never created (diff)
    ):
        return (
            f"{shown(raw)} starts with '{RESERVED_ACCOUNT_ID_PREFIX}', which is reserved for ids"
            " the vendor assigns (reference section 4.4)"
        )
    if len(canonical) > ACCOUNT_ID_BYTES:
        return (
            f"{shown(canonical)} is {len(canonical)} bytes with the '{ACCOUNT_ID_PREFIX}' prefix,"
            f" over the limit of {ACCOUNT_ID_BYTES} (reference section 4.4)"
        )
    return None


def read_member_lines(data: bytes, display: str) -> _MemberFile:
    """Parse a member file: one UserID a line, `#` starts a comment, blank lines ignored."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return _MemberFile(None, [Problem(display, row, col, "not valid UTF-8")])
    if _CLEAN_FILE.fullmatch(text if text.endswith("\n") else text + "\n"):
        # The common case, checked by one regex pass in C: a UserID or a comment on every line.
        # interned: the live read interns the ids it decodes, so both sides share one string
        return _MemberFile(
            [intern(line) for line in text.split("\n") if line and line[0] != "#"], []
        )
    lines = text.splitlines()
    ids: list[str] = []
    problems: list[Problem] = []
    bad = 0
    summary: Problem | None = None
    for number, line in enumerate(lines, 1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        problem = member_line_problem(value)
        if problem is None:
            ids.append(value)
            continue
        bad += 1
        col = len(line) - len(line.lstrip()) + 1
        if bad <= MAX_FILE_PROBLEMS:
            problems.append(Problem(display, number, col, problem))
        elif summary is None:
            summary = Problem(display, number, col, "")
    if summary is not None:
        more = bad - MAX_FILE_PROBLEMS
        problems.append(
            Problem(
                summary.file,
                summary.line,
                summary.col,
                f"{more} more invalid UserID{'s' if more > 1 else ''} from here on (not listed)",
            )
        )
    return _MemberFile(ids, problems)
