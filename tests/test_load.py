"""The YAML boundary: positions, duplicates, alias bombs, size limits, file walking."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from reconciler.errors import Problem
from reconciler.load import (
    MAX_FILE_BYTES,
    FileRefused,
    FileTooLarge,
    Node,
    NodeList,
    confine,
    display_path,
    iter_manifest_files,
    key_position_of,
    load_file,
    load_stream,
    load_text,
    locate,
    position_of,
    project_roots,
    read_regular,
    resolve_inside,
)
from reconciler.model import Position


def test_positions_of_mappings_sequences_and_scalars() -> None:
    result = load_text("a: 1\nb:\n  - x\n  - {c: d}\n---\n- 7\n", "f.yaml")
    assert result.problems == []
    first, second = result.documents
    assert isinstance(first.data, Node)
    assert first.data == {"a": 1, "b": ["x", {"c": "d"}]}
    assert first.position == Position("f.yaml", 1, 1)
    assert key_position_of(first.data, "b") == Position("f.yaml", 2, 1)
    assert position_of(first.data, "a") == Position("f.yaml", 1, 4)
    items = first.data["b"]
    assert isinstance(items, NodeList)
    assert items.position == Position("f.yaml", 3, 3)
    assert position_of(items, 1) == Position("f.yaml", 4, 5)
    assert items[1].position == Position("f.yaml", 4, 5)
    assert locate(first.data, ["b", 1, "c"], first.position) == Position("f.yaml", 4, 9)
    assert locate(first.data, ["b", 5], first.position) == Position("f.yaml", 3, 3)
    assert (second.index, second.data, second.position) == (1, [7], Position("f.yaml", 6, 1))
    assert position_of(items, 9) is None and key_position_of(items, "x") is None


def test_duplicate_keys_are_reported_and_merge_keys_work() -> None:
    text = "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n  y: 4\n'm': again\n"
    result = load_text(text, "f.yaml")
    assert result.problems == [
        Problem("f.yaml", 5, 3, "duplicate key 'y' (first at line 4)"),
        Problem("f.yaml", 6, 1, "duplicate key 'm' (first at line 2)"),
    ]
    assert result.documents[0].data["m"] == "again"  # the last one wins, but it is reported
    merged = load_text("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert merged.problems == []
    assert merged.documents[0].data["m"] == {"x": 1, "y": 3}
    assert key_position_of(merged.documents[0].data["m"], "y") == Position("f.yaml", 4, 3)


def test_billion_laughs_fails_fast() -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    started = time.perf_counter()
    result = load_text("\n".join(lines) + "\n", "bomb.yaml")
    assert time.perf_counter() - started < 1.0
    assert result.documents == []
    assert result.problems == [
        Problem(
            "bomb.yaml",
            1,
            1,
            "aliases expand this document by more than 100,000 nodes (an alias bomb?);"
            " refusing to load it",
        )
    ]


def test_modest_aliases_are_fine() -> None:
    result = load_text("a: &a [1, 2, 3]\nb: *a\nc: *a\n", "f.yaml")
    assert result.problems == []
    assert result.documents[0].data == {"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 2, 3]}


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    result = load_file(path, "big.yaml")
    message = (
        "file is larger than the 10,000,000-byte limit for manifests (10,000,001 bytes or more)"
    )
    assert result.problems == [Problem("big.yaml", 1, 1, message)]
    assert load_stream("x" * (MAX_FILE_BYTES + 1)).problems == [Problem("<stdin>", 1, 1, message)]


def test_unreadable_inputs(tmp_path: Path) -> None:
    assert load_file(tmp_path, "d").problems == [Problem("d", 1, 1, "is a directory, not a file")]
    assert load_file(tmp_path / "x.yaml").problems == [
        Problem(str(tmp_path / "x.yaml"), 1, 1, "no such file")
    ]
    assert load_stream(b"a: 1\nb: \xff\n", "s").problems == [Problem("s", 2, 4, "not valid UTF-8")]
    assert load_stream(b"\xef\xbb\xbfa: 1\n").documents[0].data == {"a": 1}
    assert load_stream("\ufeffa: 2\n").documents[0].data == {"a": 2}


def test_documents_before_a_syntax_error_are_kept() -> None:
    result = load_text("a: 1\n---\nb: [\n", "f.yaml")
    assert [d.data for d in result.documents] == [{"a": 1}]
    assert [p.line for p in result.problems] == [4]


def test_iter_manifest_files(tmp_path: Path) -> None:
    # sorted; reconciler.yaml, hidden files and hidden directories left out; `-` kept each time
    for name in [
        "b.yaml",
        "a.yml",
        "reconciler.yaml",
        "sub/c.yaml",
        "sub/reconciler.yaml",
        ".hidden/d.yaml",
        ".pre-commit-config.yaml",
        "sub/.git/e.yaml",
        "notes.txt",
        "dir.yaml/f.yaml",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("a: 1\n")
    found = iter_manifest_files([tmp_path, "-", tmp_path / "b.yaml", "missing.yaml", "-"])
    assert found == [
        tmp_path / "a.yml",
        tmp_path / "b.yaml",
        tmp_path / "dir.yaml/f.yaml",
        tmp_path / "sub/c.yaml",
        Path("-"),
        Path("missing.yaml"),
        Path("-"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!binary aGk=\n", None),
        ("? [a]\n: b\n", "mapping keys must be strings, not a list"),
        ("~: b\n", "mapping keys must be strings, not null"),
        ("a: *nope\n", "found undefined alias 'nope'"),
    ],
)
def test_odd_yaml(text: str, message: str | None) -> None:
    problems = load_text(text, "f").problems
    assert [p.message for p in problems] == ([message] if message else [])


# -- files a run reads: regular files only, inside the project root (issue 12) -------------------


def test_read_regular_refuses_what_is_not_a_regular_file_without_opening_it(
    tmp_path: Path,
) -> None:
    """A FIFO blocked open() until a writer came (a manifest named directly hung forever), and
    /dev/zero never ends: both are refused by stat, before any open."""
    os.mkfifo(tmp_path / "pipe.yaml")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock.yaml"))
        for name, what in [
            ("pipe.yaml", "a FIFO (named pipe)"),
            ("sock.yaml", "a socket"),
            ("/dev/zero", "a character device"),
        ]:
            with pytest.raises(FileRefused) as refused:
                read_regular(tmp_path / name, 100)
            assert refused.value.reason == f"is {what}, not a regular file"
            assert load_file(tmp_path / name, "m.yaml").problems == [
                Problem("m.yaml", 1, 1, f"is {what}, not a regular file")
            ]
    with pytest.raises(IsADirectoryError):
        read_regular(tmp_path, 100)
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing", 100)


def test_read_regular_reads_at_most_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 10)
    assert read_regular(path, 10) == b"x" * 10
    with pytest.raises(FileTooLarge) as refused:
        read_regular(path, 9)
    assert (refused.value.size, refused.value.limit) == (10, 9)
    assert refused.value.reason == "is larger than the 9-byte limit"
    # procfs says 0 bytes and holds more: the read itself is bounded too
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(FileTooLarge) as refused:
        read_regular(Path("/proc/self/status"), 9)
    assert (refused.value.size, refused.value.limit) == (10, 9)
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    assert load_file(tmp_path / "loop.yaml", "loop.yaml").problems == [
        Problem("loop.yaml", 1, 1, "cannot read: Too many levels of symbolic links")
    ]


def test_confine_keeps_paths_inside_the_root_symlinks_resolved(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "m" / "members").mkdir(parents=True)
    (root / "m" / "members" / "staff.txt").write_text("alice\n")
    (tmp_path / "secrets.ini").write_text("KEY=1\n")
    (root / "m" / "out.txt").symlink_to(tmp_path / "secrets.ini")
    (root / "m" / "env.txt").symlink_to("/proc/self/environ")
    (root / "m" / "in.txt").symlink_to(root / "m" / "members" / "staff.txt")
    (root / "m" / "loop.txt").symlink_to("loop.txt")
    roots = project_roots([root])
    base = root / "m"
    inside = root.resolve() / "m" / "members" / "staff.txt"
    assert confine("members/staff.txt", base, roots) == inside
    assert confine("in.txt", base, roots) == inside
    assert confine("members/../../m/members/staff.txt", base, roots) == inside
    assert confine("loop.txt", base, roots) == root.resolve() / "m" / "loop.txt"
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("extraheader = AUTHORIZATION: basic abc\n")
    (root / "m" / ".env").write_text("SECRET_KEY=abc\n")
    (root / "m" / "git.txt").symlink_to(root / ".git" / "config")
    for name in ("../.git/config", ".env", "git.txt", "./.env"):
        with pytest.raises(FileRefused, match="hidden"):
            confine(name, base, roots)
    shown = display_path(root.resolve())
    for name in ["../../secrets.ini", "out.txt", "env.txt", "../..", "members/../../../x"]:
        with pytest.raises(FileRefused) as refused:
            confine(name, base, roots)
        assert refused.value.reason == f"resolves outside the project root '{shown}'", name
    for name in ["/proc/self/environ", str(inside)]:
        with pytest.raises(FileRefused) as refused:
            confine(name, base, roots)
        assert refused.value.reason == (
            f"is not a relative path; it must be inside the project root '{shown}'"
        )
    # a root is a directory, not a prefix: /x/project-other is not inside /x/project
    (tmp_path / "project-other").mkdir()
    with pytest.raises(FileRefused):
        resolve_inside(tmp_path / "project-other", roots)
    # several roots: inside any of them
    two = project_roots([root / "m", tmp_path / "project-other"])
    assert resolve_inside(tmp_path / "project-other", two) == (tmp_path / "project-other").resolve()


def test_project_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text("a: 1\n")
    (tmp_path / "link").symlink_to(tmp_path / "m")
    real = tmp_path.resolve()
    assert project_roots([]) == (real,)
    assert project_roots(["-"]) == (real,)
    assert project_roots(["m/a.yaml", "m", "link", "missing.yaml"]) == (real / "m", real)


def test_the_walk_lists_special_files_so_that_reading_reports_them(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "missing.yaml")
    (tmp_path / "a.yaml").write_text("a: 1\n")
    assert iter_manifest_files([tmp_path]) == [
        tmp_path / "a.yaml",
        tmp_path / "dangling.yaml",
        tmp_path / "pipe.yaml",
    ]
    assert load_file(tmp_path / "dangling.yaml", "d.yaml").problems == [
        Problem("d.yaml", 1, 1, "no such file")
    ]
