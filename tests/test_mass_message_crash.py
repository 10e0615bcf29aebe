"""Mass sends SIGKILLed at seeded points: `reconciler apply` in a subprocess against `reconciler
sandbox serve`, killed after a seeded number of vendor calls, then applied again until the plan
shows no changes. The sandbox's call log must show every audience messaged exactly once: the
pending mark written before each send, and the clientmsgid a re-run replays (45065), make a send
interrupted anywhere go out once.

The sandbox answers a replay at once (`--wechat-retry-gap 0`) instead of 45066 "wait a minute":
the minute is the client's to wait (`test_providers_wechat_mass.py`), not this test's.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
from collections import Counter
from pathlib import Path

import pytest
from test_crash import apply_process, kill_after, last_id, phase
from test_e2e_common import ENV, Project, docs, served_sandbox

logger = logging.getLogger(__name__)

RUNS = int(os.environ.get("RECONCILER_MASS_CRASH_RUNS", "30"))
SEED = int(os.environ.get("RECONCILER_CRASH_SEED", "20261124"))
OPENIDS = [f"o{n:027d}" for n in range(40)]


def round_messages(round_: int) -> list[str]:
    def doc(name: str, audience: dict[str, object]) -> str:
        spec = {
            "type": "text",
            "text": {"content": f"round {round_}: {name}"},
            "audience": audience,
            "window": {"notAfter": "2099-01-01T00:00:00Z"},
        }
        meta = {"name": f"r{round_}-{name}"}
        body = {"apiVersion": "reconciler/v1", "kind": "MassMessage", "metadata": meta}
        return json.dumps({**body, "spec": spec})

    return [doc("tag", {"tag": round_}), doc("ids", {"openIds": {"members": OPENIDS}})]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NO_COLOR", "1")
    return Project(root, "", tmp_path / "sandbox.db")


def test_sigkill_during_sends_never_messages_an_audience_twice(project: Project) -> None:
    rng = random.Random(SEED)
    killed = 0
    phases: Counter[str] = Counter()
    with served_sandbox(project.db_path, "--wechat-retry-gap", "0") as served:
        project.base_url = served.base_url
        project.configure(safety={"maxMassMessages": 2})
        vendor = project.vendor()
        try:
            for round_ in range(RUNS):
                project.manifests(docs(*round_messages(round_)))
                since = last_id(vendor.http)
                process = apply_process(project)
                seen = kill_after(process, vendor.http, since, calls=rng.randint(4, 11))
                if process.returncode == -signal.SIGKILL:
                    killed += 1
                    phases[phase(seen)] += 1
                again = project.cli("apply", "m", "--auto-approve")
                assert again.code == 0, again.text
            # every round's messages at once, as a fresh checkout would plan them: all sent
            every = [d for r in range(RUNS) for d in round_messages(r)]
            project.manifests(docs(*every))
            plan = project.cli("plan", "m", "--detailed-exitcode")
            assert plan.code == 0, plan.text
            sent = Counter(
                (e[2], e[3])
                for entry in vendor.log()
                for e in entry["effects"]
                if e[0] == "mass_sent"
            )
        finally:
            vendor.close()
    logger.info("mass crash: %d runs, %d killed; phases %s", RUNS, killed, phases)
    assert sent and set(sent.values()) == {1}, [k for k, n in sent.items() if n > 1]
    assert len(sent) == 2 * RUNS
    assert killed >= RUNS * 0.8
    assert phases["sendall"] + phases["send"] >= 3, phases
