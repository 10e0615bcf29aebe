"""`reconciler.import_out` on plain files: names, what `--out` declares, and the staging area."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reconciler.errors import ConfigError, ReconcilerError
from reconciler.import_out import Names, Staging, declared_in, schema_line, short_id


def digest(account_id: str, length: int) -> str:
    return hashlib.sha256(account_id.encode()).hexdigest()[:length]


def test_short_ids() -> None:
    assert short_id("@TOA#_news") == "news"
    assert short_id("@TOA#_@TOA#00000001") == "@TOA#_@TOA#00000001"


def test_names_never_repeat_and_lengthen_the_hash_when_taken() -> None:
    lookalike = f"a_b-{digest('@TOA#_a+b', 8)}.yaml"  # someone's file that looks like ours
    names = Names(["News.yml", lookalike])
    assert names.stem("@TOA#_news") == f"news-{digest('@TOA#_news', 8)}"
    assert names.stem("@TOA#_a+b") == f"a_b-{digest('@TOA#_a+b', 16)}"
    assert names.stem("@TOA#_.hidden") == f"hidden-{digest('@TOA#_.hidden', 8)}"
    assert names.stem("@TOA#_###") == f"account-{digest('@TOA#_###', 8)}"
    assert names.stem("@TOA#_mass-speed") == f"mass-speed-{digest('@TOA#_mass-speed', 8)}"
    assert names.stem("@TOA#_plain") == "plain"


def test_declared_in_passes_over_what_declares_nothing(tmp_path: Path) -> None:
    assert declared_in(tmp_path / "none").accounts == {}
    (tmp_path / "a.yaml").write_text(
        "[1, 2]\n---\nkind: OfficialAccount\nmetadata: {id: ''}\n---\n"
        "kind: OfficialAccount\nmetadata: {id: news}\n---\nkind: MassSpeed\n"
    )
    (tmp_path / "b.yaml").write_text("key: [unclosed\n")
    found = declared_in(tmp_path)
    assert found.accounts == {"@TOA#_news": f"{tmp_path}/a.yaml:7:16"}
    assert found.mass_speed == f"{tmp_path}/a.yaml:9:1"


def test_the_schema_line_without_a_project_schemas_directory(tmp_path: Path) -> None:
    line = schema_line(tmp_path / "out", "OfficialAccount")
    assert line.startswith("# yaml-language-server: $schema=")
    assert line.endswith("schemas/OfficialAccount.schema.json\n")
    assert (tmp_path / "out" / line.split("=", 1)[1].strip()).resolve().is_file()


def test_staging_refuses_a_file_as_out(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        Staging(tmp_path / "f")
    with pytest.raises(ReconcilerError, match=r"cannot create .*f/sub/out"):
        Staging(tmp_path / "f/sub/out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_staging_write_failure_and_a_file_appearing(tmp_path: Path) -> None:
    out = tmp_path / "a/out"
    with Staging(out) as staging, pytest.raises(ReconcilerError, match="cannot write"):
        staging.write("no/such/dir.yaml", "x")
    assert list(tmp_path.iterdir()) == []  # `a` was made for the staging area, and removed
    with Staging(out) as staging:
        staging.write("x.yaml", "x\n")
        out.mkdir()
        (out / "x.yaml").write_text("theirs\n")
        with pytest.raises(ConfigError, match="appeared while importing"):
            staging.commit()
    assert (out / "x.yaml").read_text() == "theirs\n"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["out"]


def test_staging_moves_back_what_it_moved_when_a_move_fails(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Staging(out) as staging:
        staging.write("a.yaml", "a\n")
        staging.write("b.yaml", "b\n")
        (staging.dir / "b.yaml").unlink()  # the second move fails
        with pytest.raises(ReconcilerError, match="cannot write into"):
            staging.commit()
    assert not out.exists() or list(out.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) in (["out"], [])


def test_staging_commit_cannot_create_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Staging(out) as staging:
        staging.write("a.yaml", "a\n")
        out.symlink_to(tmp_path / "nowhere")  # a dangling link: mkdir cannot make it
        with pytest.raises(ReconcilerError, match="cannot create"):
            staging.commit()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
