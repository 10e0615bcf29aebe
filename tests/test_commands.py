"""Command wiring that the scenario suites do not reach."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli import main

CONFIG = """\
defaultTarget: local
targets:
  local: {type: sandbox, path: .reconciler/local.db}
"""
ACCOUNT = """\
apiVersion: reconciler/v1
kind: OfficialAccount
metadata: {id: news}
spec:
  owner: boss
  name: News
---
apiVersion: reconciler/v1
kind: UserAccounts
metadata: {name: owners}
spec:
  members: [boss]
"""


def test_a_saved_plan_finds_the_config_it_was_made_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests/reconciler.yaml").write_text(CONFIG)
    (tmp_path / "manifests/news.yaml").write_text(ACCOUNT)
    assert main(["plan", "manifests", "--out", "plan.json"]) == 0
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["body"]["configPath"] == str(tmp_path.resolve() / "manifests/reconciler.yaml")
    capsys.readouterr()

    assert main(["apply", "plan.json"]) == 0
    out = capsys.readouterr().out
    db = tmp_path.resolve() / "manifests/.reconciler/local.db"  # beside reconciler.yaml
    assert out.splitlines()[0] == f"Target: sandbox 'local', embedded sandbox at {db}"
    assert db.is_file()
    assert main(["plan", "manifests", "--detailed-exitcode"]) == 0


def test_drift_never_writes_even_when_the_inventory_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "news.yaml").write_text(ACCOUNT)
    assert main(["drift", "news.yaml"]) == 2
    assert main(["plan", "news.yaml", "--detailed-exitcode"]) == 2
    out = capsys.readouterr().out
    assert "+ account @TOA#_news will be created" in out.splitlines()


def test_limits_timeout_seconds_is_read(tmp_path: Path) -> None:
    from reconciler.config import load_config

    (tmp_path / "reconciler.yaml").write_text(CONFIG + "limits: {timeoutSeconds: 2.5}\n")
    assert load_config(None, search_dir=tmp_path, environ={}).limits.timeout_seconds == 2.5
    (tmp_path / "reconciler.yaml").write_text(CONFIG)
    assert load_config(None, search_dir=tmp_path, environ={}).limits.timeout_seconds == 10.0
