"""The CI version of the scale benchmark (`bench/scale.py`, issue 6), at smoke size.

Wall times depend on the machine; call counts do not. Each step drives the real CLI (in-process
`cli.main`) against a sandbox served over real HTTP with the vendor's rate limits on, and the calls
the sandbox counted per API must equal the least calls the scenario allows (`bench/scale_model.py`,
computed from the scenario's sets and the vendor's batch maxima, not from reconciler's code).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.sandbox import defaults
from reconciler.sandbox.serve import RunningServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import scale_model as model
import scale_stages


def run(server: RunningServer, project: Path, command: str) -> Counter[str]:
    """`reconciler plan|apply --auto-approve` in `project`; the calls the sandbox saw, per API."""
    server.sandbox.reset_stats()
    argv = [command, "--no-color", str(project)]
    if command == "apply":
        argv.append("--auto-approve")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    assert code == 0, out.getvalue() + err.getvalue()
    stats = server.sandbox.stats()
    assert stats["rate_limited"] == 0
    return Counter({api.split("/")[-1]: n for api, n in stats["calls"].items()})


@pytest.fixture
def server(
    make_sandbox_server: Callable[..., RunningServer], monkeypatch: pytest.MonkeyPatch
) -> RunningServer:
    monkeypatch.setenv("SCALE_IM_KEY", defaults.SECRET_KEY)
    return make_sandbox_server()


def step(
    server: RunningServer,
    project: Path,
    command: str,
    desired: model.World,
    live: model.World | None,
) -> Counter[str]:
    model.write_project(project, desired, server.base_url)
    made = run(server, project, command)
    assert made == model.minimal_calls(command, desired, live)
    return made


def test_fresh_apply_noop_plan_and_churn_make_exactly_the_least_calls(
    server: RunningServer, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    s1 = model.fleet(4, 300, 800, owners=2, profiles=2)
    s3 = model.churn(s1)
    made = step(server, project, "apply", s1, None)
    # 4 accounts of 300 members plus the inventory user: 4 calls each, 100 per call; and the
    # inventory user's subscription to the ledger's first slot (bench/scale_model.py)
    assert made["add_subscriber"] == 17
    step(server, project, "plan", s1, s1)
    step(server, project, "plan", s3, s1)
    step(server, project, "apply", s3, s1)
    assert step(server, project, "plan", s3, s3) == model.read_calls(s3, s3)


def test_one_large_account_reads_its_pages_once(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    big = model.fleet(1, 1000, 1000, owners=1, profiles=1)
    step(server, project, "apply", big, None)
    made = step(server, project, "plan", big, big)
    assert made == Counter(get_subscribed_official_account_list=1, get_subscriber_info=6)
    # the benchmark's stage-by-stage plan (S5) still runs on the commands it calls
    capsys.readouterr()
    assert scale_stages.main([str(project)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["stages"]) == ["start", "load manifests", "read live", "diff", "plan", "render"]
    assert doc["changes"] == 0


def test_a_new_accounts_inventory_subscription_shares_its_last_member_batch(
    server: RunningServer, tmp_path: Path
) -> None:
    desired = model.fleet(2, 150, 300, owners=1, profiles=0)
    step(server, tmp_path / "project", "apply", desired, None)


def test_creates_over_several_ledger_slots_make_exactly_the_least_calls(
    server: RunningServer, tmp_path: Path
) -> None:
    """61 creates fill the inventory ledger's first slot (60 ids) and claim a second, both
    destroyed after; 3 more later claim a slot of their own (reconciler/ledger.py)."""
    project = tmp_path / "project"
    first = model.fleet(61, 2, 20, owners=1, profiles=0)
    more = model.fleet(64, 2, 20, owners=1, profiles=0)
    assert dict(first.accounts) == {a: more.accounts[a] for a in first.accounts}
    made = step(server, project, "apply", first, None)
    assert (made["create_official_account"], made["destroy_official_account"]) == (63, 2)
    step(server, project, "plan", first, first)
    made = step(server, project, "apply", more, first)
    assert (made["create_official_account"], made["destroy_official_account"]) == (4, 1)
