"""The pipeline's own steps: choosing the accounts (`select`, `narrow`) and opening a scope."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan_scenarios import account, desired, live, live_account

from reconciler.errors import ConfigError
from reconciler.pipeline import narrow, open_scope, parse_selector, select


def test_narrow_by_selector_and_exclude() -> None:
    a = account("a", labels={"team": "x"})
    b = account("b", labels={"team": "y"})
    c = account("c", labels={"team": "x"})
    state = live(
        live_account("a"), live_account("b"), live_account("orphan", owned_by=account("z"))
    )
    d, s = narrow(desired(a, b, c), state, selector={"team": "x"}, exclude=["@TOA#_c"])
    assert list(d.accounts) == ["@TOA#_a"] and list(s.accounts) == ["@TOA#_a"]
    d, s = narrow(desired(a, b, c), state, exclude=["@TOA#_b"])
    assert list(d.accounts) == ["@TOA#_a", "@TOA#_c"]
    assert sorted(s.accounts) == ["@TOA#_a", "@TOA#_orphan"]


def test_select_keeps_what_narrow_keeps_of_the_declared_side() -> None:
    a = account("a", labels={"team": "x"})
    b = account("b", labels={"team": "x", "tier": "1"})
    chosen = select(desired(a, b), selector={"team": "x", "tier": "1"})
    assert list(chosen.accounts) == ["@TOA#_b"]
    assert select(desired(a, b), exclude=["@TOA#_a"]).accounts.keys() == {"@TOA#_b"}
    state = live(live_account("a"), live_account("b"))
    assert narrow(desired(a, b), state, selector={"team": "x"})[0] == select(
        desired(a, b), selector={"team": "x"}
    )


def test_selector_flags_parse_or_are_refused() -> None:
    assert parse_selector(["team = content", "tier=1"]) == {"team": "content", "tier": "1"}
    for bad in ("team", "=x"):
        with pytest.raises(ConfigError, match="expected KEY=VALUE"):
            parse_selector([bad])


MANIFEST = """\
apiVersion: reconciler/v1
kind: OfficialAccount
metadata: {id: news, labels: {team: x}}
spec: {owner: boss, name: News}
"""


def test_open_scope_reads_config_beside_the_manifests_and_chooses_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m/news.yaml").write_text(MANIFEST)
    (tmp_path / "m/reconciler.yaml").write_text("targets:\n  box: {type: sandbox, path: box.db}\n")
    scope = open_scope(["m"], config=None, target=None, exclude=["news"])
    assert scope.config.path == (tmp_path / "m/reconciler.yaml").resolve()
    assert scope.target.name == "box"
    assert list(scope.desired.accounts) == ["@TOA#_news"]
    assert scope.exclude == ("@TOA#_news",) and not scope.selected.accounts
