"""`reconciler fmt` (issue 14, item 17): the canonical layout, comments, quoting and key order
kept, `--check` for CI, `--diff`, atomic rewrites, and examples/ already canonical."""

from __future__ import annotations

import io
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.fmt import format_text

ROOT = Path(__file__).resolve().parent.parent

MESSY = """\
# yaml-language-server: $schema=../schemas/OfficialAccount.schema.json
---
kind: OfficialAccount     # the kind first: moved below apiVersion
apiVersion: reconciler/v1
spec:
    owner: "newsdesk.admin"\x20\x20
    name: 'Daily News'
    subscribers:
      members:
      - li.na   # the editor
      - "cai.chen"
      profiles: {li.na: "role=editor"}
# who it is
metadata:
  id: news
---
spec: {members: [a, b]}
metadata: {name: people}
apiVersion: reconciler/v1
kind: UserAccounts
# the end


"""

CANONICAL = """\
# yaml-language-server: $schema=../schemas/OfficialAccount.schema.json
---
apiVersion: reconciler/v1
kind: OfficialAccount     # the kind first: moved below apiVersion
# who it is
metadata:
  id: news
spec:
  owner: "newsdesk.admin"
  name: 'Daily News'
  subscribers:
    members:
      - li.na   # the editor
      - "cai.chen"
    profiles: {li.na: "role=editor"}
---
apiVersion: reconciler/v1
kind: UserAccounts
metadata: {name: people}
spec: {members: [a, b]}
# the end
"""


def test_the_canonical_layout() -> None:
    result = format_text(MESSY, "m.yaml")
    assert (result.text, result.problems) == (CANONICAL, ())
    assert format_text(CANONICAL, "m.yaml").text == CANONICAL  # a fixed point


def test_examples_are_canonical() -> None:
    files = sorted((ROOT / "examples").glob("*.yaml"))
    assert len(files) >= 5
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert format_text(text, path.name).text == text, path.name


def test_fmt_check_on_examples_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    before = {p: p.read_bytes() for p in (ROOT / "examples").rglob("*") if p.is_file()}
    assert main(["fmt", "--check", "examples"]) == 0
    assert main(["fmt", "examples"]) == 0
    assert capsys.readouterr() == ("", "")
    assert {p: p.read_bytes() for p in (ROOT / "examples").rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a: 1\r\nb: 2\r\n", "a: 1\nb: 2\n"),  # LF line ends
        ("a: 1   \nb: 2 \n", "a: 1\nb: 2\n"),  # no trailing whitespace
        ("a: 1", "a: 1\n"),  # one newline at the end
        ("a: 1\n\n\n", "a: 1\n"),
        ("", ""),
        ("# only a comment  \n\n", "# only a comment\n"),
        ("a: |\n  kept   \n", "a: |\n  kept   \n"),  # inside a block scalar, spaces are the value
        ("- b\n- a\n", "- b\n- a\n"),  # a top-level sequence stays at column 0
        ("a: 1\n---\n", "a: 1\n---\n"),  # an empty last document
        ("hello\n...\n", "hello\n"),
        ("a: 'x'\nb: \"y\"\nc: z\n", "a: 'x'\nb: \"y\"\nc: z\n"),  # quoting as written
        ("z: 1\nb: 2\na: 3\n", "z: 1\nb: 2\na: 3\n"),  # other keys keep their order
        ("a: " + "x" * 300 + "\n", "a: " + "x" * 300 + "\n"),  # long lines are not wrapped
        ("m:\n    - 1\n    - 2\n", "m:\n  - 1\n  - 2\n"),
        ("kind: K\n# above api\napiVersion: v\n", "# above api\napiVersion: v\nkind: K\n"),
        ("{kind: K, apiVersion: v}\n", "{apiVersion: v, kind: K}\n"),
        ("name: 天气预报 Weather\n", "name: 天气预报 Weather\n"),
        ("\ufeffa: 1\n", "a: 1\n"),
    ],
)
def test_rules(text: str, canonical: str) -> None:
    result = format_text(text, "f.yaml")
    assert (result.text, result.problems) == (canonical, ())
    assert format_text(canonical, "f.yaml").text == canonical


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "a: [1\n",
            "f.yaml:2:1: invalid YAML: while parsing a flow sequence, expected ',' or ']',"
            " but got '<stream end>'",
        ),
        ("a: 1\na: 2\n", "f.yaml:2:1: duplicate key 'a' (first at line 1)"),
        (
            "name: 2030-13-45\n",
            "f.yaml:1:7: '2030-13-45' reads as a date but is not one (month must be in 1..12);"
            " quote it if it is a string",
        ),
        (
            "a: &x 1\nb: &x 2\nc: *x\n",
            "f.yaml:2:4: found duplicate anchor 'x'; first occurrence, second occurrence",
        ),
        (
            "%YAML 1.3\n---\na: 1\n",
            "f.yaml:1:1: cannot format: AssertionError: version minor part can only be 2 or 1,"
            " got (1, 3)",
        ),
        # ruamel would drop a comment inside a flow sequence: refused, never lost
        (
            "a: 1\nb: [x, # c\n  y]\n",
            "f.yaml:2:1: cannot format safely: the comment '# c' would be lost; left as it is",
        ),
    ],
)
def test_what_cannot_be_formatted_is_a_positioned_problem(text: str, problem: str) -> None:
    result = format_text(text, "f.yaml")
    assert result.text is None
    assert [str(p) for p in result.problems] == [problem]


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "messy.yaml").write_text(MESSY, encoding="utf-8")
    (tmp_path / "m" / "clean.yaml").write_text(CANONICAL, encoding="utf-8")
    return tmp_path


def test_check_lists_unformatted_files_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(tmp_path, monkeypatch)
    assert main(["fmt", "--check", "m"]) == 1
    assert capsys.readouterr() == ("m/messy.yaml\n", "")
    assert (tmp_path / "m" / "messy.yaml").read_text(encoding="utf-8") == MESSY


def test_fmt_rewrites_in_place_atomically_and_then_has_nothing_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(tmp_path, monkeypatch)
    messy = tmp_path / "m" / "messy.yaml"
    messy.chmod(0o640)
    inode = messy.stat().st_ino
    assert main(["fmt"]) == 0  # no PATH: the current directory
    assert capsys.readouterr() == ("m/messy.yaml\n", "")
    assert messy.read_text(encoding="utf-8") == CANONICAL
    assert messy.stat().st_ino != inode  # a new file renamed over the old one
    assert messy.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["clean.yaml", "messy.yaml"]
    assert main(["fmt", "--check", "."]) == 0
    assert capsys.readouterr() == ("", "")


def test_diff_shows_the_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.yaml").write_text("kind: MassSpeed\napiVersion: reconciler/v1\n", encoding="utf-8")
    assert main(["fmt", "--check", "--diff", "s.yaml"]) == 1
    assert capsys.readouterr().out == (
        "--- a/s.yaml\n"
        "+++ b/s.yaml\n"
        "@@ -1,2 +1,2 @@\n"
        "+apiVersion: reconciler/v1\n"
        " kind: MassSpeed\n"
        "-apiVersion: reconciler/v1\n"
    )
    assert Path("s.yaml").read_text(encoding="utf-8").startswith("kind:")  # --check wrote nothing
    assert main(["fmt", "--diff", "s.yaml"]) == 0  # as Terraform's -diff: shown and written
    assert capsys.readouterr().out.startswith("--- a/s.yaml\n")
    assert Path("s.yaml").read_text(encoding="utf-8").startswith("apiVersion:")


def test_a_link_is_kept_and_its_target_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(tmp_path, monkeypatch)
    (tmp_path / "link.yaml").symlink_to(tmp_path / "m" / "messy.yaml")
    assert main(["fmt", "link.yaml"]) == 0
    assert (tmp_path / "link.yaml").is_symlink()
    assert (tmp_path / "m" / "messy.yaml").read_text(encoding="utf-8") == CANONICAL


def test_a_walk_formats_reconciler_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(tmp_path, monkeypatch)
    compose = "services:\n    web:\n        image: nginx\n"
    (tmp_path / "docker-compose.yml").write_text(compose, encoding="utf-8")
    (tmp_path / "reconciler.yaml").write_text("targets:\n    s: {type: sandbox}\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.yaml").write_text(MESSY, encoding="utf-8")
    assert main(["fmt", "."]) == 0
    out, err = capsys.readouterr()
    assert out == "reconciler.yaml\nm/messy.yaml\n"
    assert err == (
        "fmt: skipped 1 YAML file that holds no reconciler manifests (name a file to format it"
        " anyway)\n"
    )
    assert (tmp_path / "reconciler.yaml").read_text() == "targets:\n  s: {type: sandbox}\n"
    assert (tmp_path / "docker-compose.yml").read_text() == compose
    assert (tmp_path / ".hidden" / "x.yaml").read_text() == MESSY
    (tmp_path / "ci.yml").write_text("on: push\n", encoding="utf-8")
    assert main(["fmt", "--check", "."]) == 0
    assert capsys.readouterr().err.startswith("fmt: skipped 2 YAML files that hold no reconciler")
    assert main(["fmt", "docker-compose.yml"]) == 0  # named: formatted anyway
    assert (tmp_path / "docker-compose.yml").read_text() == (
        "services:\n  web:\n    image: nginx\n"
    )


def test_problems_are_reported_and_the_other_files_still_formatted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(tmp_path, monkeypatch)
    broken = "apiVersion: reconciler/v1\nkind: [\n"
    (tmp_path / "m" / "broken.yaml").write_text(broken, encoding="utf-8")
    (tmp_path / "m" / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    assert main(["fmt", "m", "missing.yaml"]) == 1
    out, err = capsys.readouterr()
    assert out == "m/messy.yaml\n"
    assert err == (
        "m/broken.yaml:3:1: invalid YAML: while parsing a flow node, expected the node content,"
        " but found '<stream end>'\n"
        "m/latin1.yaml:1:10: not valid UTF-8\n"
        "missing.yaml:1:1: no such file\n"
    )
    assert (tmp_path / "m" / "broken.yaml").read_text(encoding="utf-8") == broken
    assert (tmp_path / "m" / "messy.yaml").read_text(encoding="utf-8") == CANONICAL


def test_stdin_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(MESSY))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == CANONICAL
    monkeypatch.setattr("sys.stdin", io.StringIO(MESSY))
    assert main(["fmt", "--check", "-"]) == 1
    assert capsys.readouterr().out == "<stdin>\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(CANONICAL))
    assert main(["fmt", "--check", "-"]) == 0
    assert capsys.readouterr().out == ""
    monkeypatch.setattr("sys.stdin", io.StringIO("kind: K\napiVersion: v\n"))
    assert main(["fmt", "--diff", "-"]) == 0
    assert capsys.readouterr().out.startswith("--- a/<stdin>\n+++ b/<stdin>\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("a: [\n"))
    assert main(["fmt", "-"]) == 1
    assert capsys.readouterr().err.startswith("<stdin>:2:1: invalid YAML")


def test_a_failed_write_is_a_clean_error_and_keeps_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a write the file system refuses, even to root: the process may write no byte (RLIMIT_FSIZE 0,
    # SIGXFSZ ignored so the write fails with EFBIG instead of killing the process)
    _project(tmp_path, monkeypatch)

    def no_bytes() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "fmt", "m"],
        capture_output=True,
        text=True,
        preexec_fn=no_bytes,
        check=False,
    )
    assert (done.returncode, done.stderr) == (
        1,
        "error: cannot write m/messy.yaml: File too large\n",
    )
    assert (tmp_path / "m" / "messy.yaml").read_text(encoding="utf-8") == MESSY
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["clean.yaml", "messy.yaml"]
