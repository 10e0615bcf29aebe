"""`reconciler validate` and `load_desired_state`: the bad-input corpus, formats, resolution."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.errors import ManifestError, Problem
from reconciler.load import MAX_MEMBER_FILE_BYTES, load_file
from reconciler.model import ProfileField, SubscriberPolicy
from reconciler.validate import command, load_desired_state, project_root

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "manifests"
EXAMPLES = ROOT / "examples"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.txt").is_file())

HEADER = "apiVersion: reconciler/v1\n"


def account(id_: str = "news", spec: str = "  owner: alice\n  name: News\n") -> str:
    return f"{HEADER}kind: OfficialAccount\nmetadata:\n  id: {id_}\nspec:\n{spec}"


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return directory


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES)
def test_bad_input(
    case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case_dir = CORPUS / case
    monkeypatch.chdir(case_dir)
    expected = (case_dir / "expected.txt").read_text(encoding="utf-8").splitlines()
    assert expected, "a bad case must expect at least one problem"
    code = main(["validate", "."])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines() == expected
    assert err == ""
    assert "Traceback" not in out + err


def test_corpus_problems_are_sorted_and_positioned() -> None:
    for case in CASES:
        lines = (CORPUS / case / "expected.txt").read_text(encoding="utf-8").splitlines()
        keys = []
        for line in lines:
            file, row, col, message = line.split(":", 3)
            assert message.startswith(" ") and row.isdigit() and col.isdigit(), line
            keys.append((file, int(row), int(col), message))
        assert keys == sorted(keys), case


def test_examples_validate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate", "examples/"]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("10 documents valid\n", "")


def test_examples_resolve_to_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    state = load_desired_state(["examples"])
    assert list(state.accounts) == ["@TOA#_news", "@TOA#_ops-alerts", "@TOA#_weather"]
    news = state.accounts["@TOA#_news"]
    assert news.protect is True
    assert news.owner == "newsdesk.admin"
    assert news.profile[ProfileField.NAME] == "Daily News"
    assert news.profile[ProfileField.MAX_SUBSCRIBER_NUM] == 100000
    assert dict(news.labels) == {"team": "content", "tier": "gold"}
    assert news.subscribers is not None
    assert news.subscribers.policy is SubscriberPolicy.ADDITIVE
    staff = {
        line
        for line in (EXAMPLES / "members/staff.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    contractors = {"cheng.yi", "deng.chao74", "liu.jun", "wang.ping", "ext.jordan.lee"}
    contractors.add("ext.sam.okafor")
    assert news.subscribers.members == frozenset(staff - contractors)
    assert news.subscribers.absent == frozenset({"former.employee"})
    weather = state.accounts["@TOA#_weather"]
    assert weather.ignore_changes == frozenset({ProfileField.CUSTOM_STRING})
    assert weather.subscribers is not None
    assert weather.subscribers.members == frozenset(contractors | {"wang.min", "liu.jia"})
    ops = state.accounts["@TOA#_ops-alerts"]
    assert ops.subscribers is not None and ops.subscribers.policy is SubscriberPolicy.EXACT
    # every owner and subscriber of the examples exists
    for acc in state.accounts.values():
        assert acc.owner in state.users
        assert acc.subscribers is not None and acc.subscribers.members <= state.users
    assert state.mass_speed is not None and state.mass_speed.speed == 2
    assert state.documents == 10
    assert len(staff) == 1000


def test_records_are_frozen(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": account()})
    state = load_desired_state([str(tmp_path)])
    acc = state.accounts["@TOA#_news"]
    with pytest.raises(AttributeError):
        acc.owner = "bob"  # type: ignore[misc]
    with pytest.raises(TypeError):
        state.accounts["x"] = acc  # type: ignore[index]
    assert acc.subscribers is None  # no `subscribers:` means "not managed"
    assert acc.profile == {ProfileField.NAME: "News"}


def test_sets_expand_and_members_deduplicate(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": account(
                spec="  owner: alice\n  name: News\n  subscribers:\n"
                "    sets: [team, team]\n    members: [bob, bob, carol]\n"
            )
            + "---\n"
            + HEADER
            + "kind: SubscriberSet\nmetadata: {name: team}\nspec:\n"
            "  files: [m/team.txt]\n  include: [more]\n  exclude: [gone]\n---\n"
            + HEADER
            + "kind: SubscriberSet\nmetadata: {name: more}\nspec: {members: [erin, frank]}\n---\n"
            + HEADER
            + "kind: SubscriberSet\nmetadata: {name: gone}\nspec: {members: [frank, bob]}\n",
            "m/team.txt": "# team\nbob\n  dave  # lead\n\ndave\n",
        },
    )
    state = load_desired_state([str(tmp_path / "a.yaml")])
    subs = state.accounts["@TOA#_news"].subscribers
    assert subs is not None
    # the set: {bob, dave} ∪ {erin, frank} − {frank, bob}; the account adds bob and carol
    assert subs.members == frozenset({"dave", "erin", "bob", "carol"})


def test_a_chain_of_thousands_of_includes_resolves(tmp_path: Path) -> None:
    depth = 3000  # past Python's recursion limit: the sets are walked with loops
    docs = [
        HEADER + f"kind: SubscriberSet\nmetadata: {{name: s{i}}}\n"
        f"spec: {{members: [u{i}], include: [s{i + 1}], exclude: [x{i % 2}]}}\n"
        for i in range(depth)
    ]
    docs += [
        HEADER + f"kind: SubscriberSet\nmetadata: {{name: s{depth}}}\nspec: {{members: [last]}}\n",
        HEADER + "kind: SubscriberSet\nmetadata: {name: x0}\nspec: {members: [u1]}\n",
        HEADER + "kind: SubscriberSet\nmetadata: {name: x1}\nspec: {members: [u2]}\n",
        account(spec="  owner: alice\n  name: News\n  subscribers: {sets: [s0]}\n"),
    ]
    write(tmp_path, {"m.yaml": "---\n".join(docs)})
    subs = load_desired_state([str(tmp_path)]).accounts["@TOA#_news"].subscribers
    assert subs is not None
    # s_i = {u_i} ∪ s_i+1 − x_(i mod 2): u1 and u2 are each excluded right above where added
    assert subs.members == frozenset({f"u{i}" for i in range(depth)} | {"last"}) - {"u1", "u2"}


def test_single_set_membership_is_shared_not_copied(tmp_path: Path) -> None:
    members = "\n".join(f"user{i}" for i in range(1000)) + "\n"
    docs = [
        HEADER + "kind: SubscriberSet\nmetadata: {name: big}\nspec: {files: [big.txt]}\n",
        account("a", "  owner: alice\n  name: A\n  subscribers: {sets: [big]}\n"),
        account("b", "  owner: alice\n  name: B\n  subscribers: {sets: [big], members: [user5]}\n"),
    ]
    write(tmp_path, {"m.yaml": "---\n".join(docs), "big.txt": members})
    state = load_desired_state([str(tmp_path)])
    a, b = (state.accounts[f"@TOA#_{x}"].subscribers for x in "ab")
    assert a is not None and b is not None
    assert a.members is b.members
    assert len(a.members) == 1000


def test_account_ids_are_canonicalised(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": account("news") + "---\n" + account("'@TOA#_sport'")})
    assert list(load_desired_state([str(tmp_path)]).accounts) == ["@TOA#_news", "@TOA#_sport"]


def test_load_desired_state_raises_every_problem(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"a.yaml": account(spec="  owner: alice\n  name: News\n  colour: red\n  size: 1\n")},
    )
    with pytest.raises(ManifestError) as info:
        load_desired_state([str(tmp_path / "a.yaml")])
    file = str(tmp_path / "a.yaml")
    assert info.value.problems == [
        Problem(file, 8, 3, "spec: unknown field 'colour'"),
        Problem(file, 9, 3, "spec: unknown field 'size'"),
    ]


def test_stdin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "staff.txt").write_text("bob\n")
    text = account(spec="  owner: alice\n  name: News\n  subscribers: {sets: [s]}\n")
    text += (
        "---\n" + HEADER + "kind: SubscriberSet\nmetadata: {name: s}\nspec: {files: [staff.txt]}\n"
    )
    state = load_desired_state(["-"], stdin=io.StringIO(text))
    subs = state.accounts["@TOA#_news"].subscribers
    assert subs is not None and subs.members == frozenset({"bob"})
    out = io.StringIO()
    code = command(["-"], config=None, fmt="text", stdout=out, stdin=io.StringIO("kind: [\n"))
    assert code == 1
    assert out.getvalue() == (
        "<stdin>:2:1: invalid YAML: while parsing a flow node, expected the node content,"
        " but found '<stream end>'\n"
    )


def test_json_format(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(CORPUS / "duplicate-account-id")
    assert main(["validate", "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == {
        "formatVersion": 1,
        "valid": False,
        "documents": 0,
        "problems": [
            {
                "file": "b.yaml",
                "line": 4,
                "col": 7,
                "message": "duplicate account id '@TOA#_news' (first declared at a.yaml:4:7)",
            }
        ],
    }
    monkeypatch.chdir(ROOT)
    assert main(["validate", "--format", "json", "examples"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out) == {"formatVersion": 1, "valid": True, "documents": 10, "problems": []}


def test_github_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path, {"a,b.yaml": account(spec="  owner: alice\n  name: 'x%y'\n  nmae: z\n")})
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "--format", "github"]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    assert out == (
        "::error file=a%2Cb.yaml,line=8,col=3::spec: unknown field 'nmae' (did you mean 'name'?)\n"
    )
    monkeypatch.chdir(ROOT)
    assert main(["validate", "--format", "github", "examples"]) == 0
    assert capsys.readouterr().out == "10 documents valid\n"


def test_no_path_means_current_directory_and_hidden_dirs_are_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "a.yaml": account(),
            "sub/b.yml": account("sport"),
            ".github/workflows/ci.yml": "on: push\n",
            "notes.txt": "not yaml",
            "reconciler.yaml": "defaultTarget: sandbox\n",
        },
    )
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 0
    assert capsys.readouterr().out == "2 documents valid\n"


def test_missing_path_is_a_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "nope.yaml"]) == 1
    assert capsys.readouterr().out == "nope.yaml:1:1: no such file\n"


def test_config_named_explicitly_and_with_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path, {"conf/reconciler.yaml": "defaultTarget: x\n", "other.yaml": "inventory: 1\n"})
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "conf/reconciler.yaml"]) == 1
    expected = "conf/reconciler.yaml:1:16: defaultTarget: no target named 'x' (targets: sandbox)\n"
    assert capsys.readouterr().out == expected
    write(tmp_path, {"m/a.yaml": account()})
    assert main(["validate", "m", "--config", "other.yaml"]) == 1
    assert (
        capsys.readouterr().out == "other.yaml:1:12: inventory: must be a string, not an integer\n"
    )


def test_one_document(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": account()})
    out = io.StringIO()
    assert command([str(tmp_path)], config=None, fmt="text", stdout=out, stdin=io.StringIO()) == 0
    assert out.getvalue() == "1 document valid\n"


def test_validate_never_opens_a_socket(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    script = textwrap.dedent(
        """
        import sys
        def hook(event, args):
            if event.startswith("socket."):
                raise RuntimeError("network used: " + event)
        sys.addaudithook(hook)
        from reconciler.cli import main
        sys.exit(main(["validate", "examples"]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "10 documents valid\n", "")


def test_large_member_file_loads_quickly(tmp_path: Path) -> None:
    lines = "".join(f"user_{i:07d}\n" for i in range(200_000))
    write(
        tmp_path,
        {
            "s.yaml": HEADER
            + "kind: SubscriberSet\nmetadata: {name: all}\nspec: {files: [m.txt]}\n"
            "---\n" + HEADER + "kind: UserAccounts\nmetadata: {name: u}\nspec: {sets: [all]}\n",
            "m.txt": lines,
        },
    )
    state = load_desired_state([str(tmp_path)])
    assert len(state.users) == 200_000


def test_pre_commit_hook_definition() -> None:
    result = load_file(ROOT / ".pre-commit-hooks.yaml", ".pre-commit-hooks.yaml")
    assert result.problems == []
    (document,) = result.documents
    (hook,) = document.data
    assert dict(hook) == {
        "id": "reconciler-validate",
        "name": "reconciler validate",
        "description": (
            "Validate reconciler manifests, member files and reconciler.yaml (no network)."
        ),
        "entry": "reconciler validate",
        "language": "python",
        "files": "\\.(ya?ml|txt)$",
        "pass_filenames": False,
        "require_serial": True,
    }


# -- the project root and member files (issue 12) -------------------------------------------------

SET_WITH_FILES = HEADER + "kind: SubscriberSet\nmetadata: {{name: staff}}\nspec: {{files: [{}]}}\n"


def test_member_files_over_the_cap_are_refused_before_they_are_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A symlink to /dev/zero ran to 3 GB and a MemoryError: a member file is a regular file of
    at most 64 MiB (a sparse file here: its size is what is checked)."""
    write(tmp_path, {"m/a.yaml": SET_WITH_FILES.format("big.txt, ok.txt"), "m/ok.txt": "a\n"})
    with (tmp_path / "m" / "big.txt").open("wb") as f:
        f.truncate(MAX_MEMBER_FILE_BYTES + 1)
    (tmp_path / "m" / "ok.txt").write_text("x" * (MAX_MEMBER_FILE_BYTES // 1024) + "\n")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "m"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "m/a.yaml:4:16: spec.files[0]: member file 'm/big.txt' is larger than the 67,108,864-byte"
        " limit for member files (67,108,865 bytes or more)",
        "m/ok.txt:1:1: invalid UserID 'xxxxxxxxxxxxxxxx...' (65536 characters): 1 to 32"
        " printable ASCII characters, no spaces",
    ]


def test_a_rejected_member_line_is_quoted_short_and_sanitised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A file of KEY=value lines (an .env inside the project) must not be echoed whole."""
    secret = "TIM_SECRET_KEY=0123456789abcdef0123456789abcdef"
    write(
        tmp_path,
        {
            "m/a.yaml": SET_WITH_FILES.format("env.txt"),
            "m/env.txt": f"{secret}\nX=a b\n\tp\u00e4ss\x1b[31mword \n",
        },
    )
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "m"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "m/env.txt:1:1: invalid UserID 'TIM_SECRET_KEY=0...' (47 characters): 1 to 32 printable"
        " ASCII characters, no spaces",
        "m/env.txt:2:1: invalid UserID 'X=a b': 1 to 32 printable ASCII characters, no spaces",
        "m/env.txt:3:2: invalid UserID 'p?ss?[31mword': 1 to 32 printable ASCII characters,"
        " no spaces",
    ]
    assert "0123456789abcdef" not in out


def test_the_project_root_is_the_configs_directory_and_the_manifest_roots(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`validate m` and `load_desired_state` (plan, apply) draw the same line: inside the
    directory of the reconciler.yaml in use, or inside a manifest root on the command line."""
    write(
        tmp_path,
        {
            "project/m/a.yaml": SET_WITH_FILES.format("../members/staff.txt"),
            "project/members/staff.txt": "alice\n",
            "project/conf/reconciler.yaml": "inventory: inv\n",
        },
    )
    project = tmp_path / "project"
    monkeypatch.chdir(project)
    real = project.resolve()
    refused = (
        "m/a.yaml:4:16: spec.files[0]: member file '../members/staff.txt' resolves outside the"
        " project root 'm'\n"
    )
    # no config: the root is the manifest root, m/
    assert project_root(["m"]) == (real / "m",)
    assert main(["validate", "m"]) == 1
    assert capsys.readouterr().out == refused
    with pytest.raises(ManifestError) as raised:
        load_desired_state(["m"])
    assert f"{raised.value}\n" == refused
    # a config elsewhere adds its directory: conf/ does not hold members/ either
    assert main(["validate", "m", "--config", "conf/reconciler.yaml"]) == 1
    assert capsys.readouterr().out == refused.replace("'m'", "'conf' or 'm'")
    # ./reconciler.yaml: the project root is the current directory
    (project / "reconciler.yaml").write_text("inventory: inv\n")
    assert project_root(["m"]) == (real, real / "m")
    assert main(["validate", "m"]) == 0
    assert capsys.readouterr().out == "1 document valid\n"
    assert load_desired_state(["m"]).documents == 1
    # plan and apply pass the config in use: with --config conf/..., ./reconciler.yaml is not it
    with pytest.raises(ManifestError) as raised:
        load_desired_state(["m"], config=Path("conf/reconciler.yaml"))
    assert f"{raised.value}\n" == refused.replace("'m'", "'conf' or 'm'")


def test_member_files_that_are_not_regular_files_are_refused_unopened(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A FIFO hung the run (open() waits for a writer): refused by stat, in-process here (the
    hang itself is tested through the CLI in a process, tests/test_cli.py)."""
    write(tmp_path, {"m/a.yaml": SET_WITH_FILES.format("pipe.txt, link.txt")})
    os.mkfifo(tmp_path / "m" / "pipe.txt")
    (tmp_path / "m" / "link.txt").symlink_to("pipe.txt")
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "m"]) == 1
    fifo = "is a FIFO (named pipe), not a regular file"
    assert capsys.readouterr().out.splitlines() == [
        f"m/a.yaml:4:16: spec.files[0]: member file 'm/pipe.txt' {fifo}",
        f"m/a.yaml:4:26: spec.files[1]: member file 'm/link.txt' {fifo}",
    ]
