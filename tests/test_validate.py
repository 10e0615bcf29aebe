"""`reconciler validate` and `load_desired_state`: the bad-input corpus, formats, resolution."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.errors import ManifestError, Problem
from reconciler.load import load_file
from reconciler.model import ProfileField, SubscriberPolicy
from reconciler.validate import command, load_desired_state

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
    assert (out, err) == ("8 documents valid\n", "")


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
    assert state.documents == 8
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
    assert json.loads(out) == {"formatVersion": 1, "valid": True, "documents": 8, "problems": []}


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
    assert capsys.readouterr().out == "8 documents valid\n"


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
    assert (done.returncode, done.stdout, done.stderr) == (0, "8 documents valid\n", "")


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
