"""`reconciler.kinds.sending`: the sending kinds' window, caps, quota, diff and identity."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from reconciler.cli import build_parser
from reconciler.config import Limits, Safety, check_config, load_config
from reconciler.diff import Diff
from reconciler.errors import Problem
from reconciler.kinds.sending import (
    Quota,
    Window,
    WindowState,
    changed_paths,
    content_digest,
    count_sends,
    deferral_line,
    format_instant,
    parse_window,
    send_cap,
    send_limit,
    stable_id,
    stable_u32,
    time_zone,
    wall_clock,
)
from reconciler.load import load_text
from reconciler.model import Position
from reconciler.plan import Plan, TargetIdentity, assemble_plan
from reconciler.planfile import dump_plan, load_plan
from reconciler.safety import evaluate_safety, send_violations

HERE = Position("b.yaml", 1, 1)
SHANGHAI = time_zone("Asia/Shanghai")


def spec_of(text: str) -> object:
    loaded = load_text(text, "b.yaml")
    assert not loaded.problems
    return loaded.documents[0].data["spec"]


def window(text: str, history_days: int = 7) -> tuple[Window | None, list[Problem]]:
    spec = spec_of(text)
    assert isinstance(spec, dict)
    return parse_window(spec, HERE, history_days=history_days)


def test_identity_is_stable_and_split_proof() -> None:
    assert stable_id("ab", "c") != stable_id("a", "bc")
    assert stable_id("news", "x") == stable_id("news", "x")
    assert 1 <= stable_u32("news", "x", "sha256:00") <= 2**32 - 1
    assert content_digest({"b": 1, "a": [1]}) == content_digest({"a": [1], "b": 1})


def test_a_window_parses_from_yaml_datetimes_and_strings() -> None:
    found, problems = window(
        "spec:\n  window:\n    notBefore: 2026-12-08T09:00:00+08:00\n"
        "    notAfter: '2026-12-08T21:00:00+08:00'\n"
    )
    assert problems == []
    assert found is not None
    assert found.data == {"notBefore": "2026-12-08T01:00:00Z", "notAfter": "2026-12-08T13:00:00Z"}
    assert Window.from_data(found.data).data == found.data
    assert found.render(SHANGHAI) == (
        "2026-12-08 09:00 CST (01:00 UTC) → 2026-12-08 21:00 CST (13:00 UTC)"
    )
    start = found.start(7)
    assert found.state(start - 1, 7) is WindowState.NOT_YET_OPEN
    assert found.state(start, 7) is WindowState.OPEN
    assert found.state(found.not_after.timestamp() + 1, 7) is WindowState.CLOSED


def test_a_window_without_not_before_opens_history_days_before_its_end() -> None:
    found, _ = window("spec:\n  window: {notAfter: 2026-12-08T21:00:00Z}\n")
    assert found is not None
    assert found.start(7) == found.not_after.timestamp() - 7 * 86400
    assert found.render(dt.UTC) == "until 2026-12-08 21:00 UTC"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spec: {}\n", "b.yaml:1:1: spec.window: needs notAfter (a message is never stale)"),
        (
            "spec:\n  window: {notAfter: 2026-12-08}\n",
            "b.yaml:2:22: spec.window.notAfter: needs a time and a UTC offset, not only a date",
        ),
        (
            "spec:\n  window: {notAfter: '2026-12-08T10:00:00'}\n",
            "b.yaml:2:22: spec.window.notAfter: needs a UTC offset (such as +08:00 or Z)",
        ),
        (
            "spec:\n  window: {notAfter: 5}\n",
            "b.yaml:2:22: spec.window.notAfter: must be a date-time such as"
            " 2026-12-08T09:00:00+08:00",
        ),
        (
            "spec:\n  window: {notAfter: '2026-12-08T99:00:00Z'}\n",
            "b.yaml:2:22: spec.window.notAfter: '2026-12-08T99:00:00Z' is not a date-time",
        ),
        (
            "spec:\n  window: {notBefore: 2026-12-09T00:00:00Z, notAfter: 2026-12-08T00:00:00Z}\n",
            "b.yaml:2:11: spec.window: notBefore must be before notAfter",
        ),
        (
            "spec:\n  window: {notBefore: 2026-12-01T00:00:00Z, notAfter: 2026-12-09T00:00:00Z}\n",
            "b.yaml:2:11: spec.window: 8 days is longer than the 7-day history retention"
            " (limits.historyDays): a send could not be proven once it left it",
        ),
    ],
)
def test_window_problems_are_positioned(text: str, expected: str) -> None:
    found, problems = window(text)
    assert found is None
    assert [str(p) for p in problems] == [expected]


def test_instants_render_in_a_zone_and_utc() -> None:
    ts = dt.datetime(2026, 12, 8, 20, 30, tzinfo=dt.UTC).timestamp()
    assert format_instant(ts, dt.UTC) == "2026-12-08 20:30 UTC"
    assert format_instant(ts, SHANGHAI) == "2026-12-09 04:30 CST (20:30 UTC 12-08)"
    assert time_zone("utc") is dt.UTC
    with pytest.raises(ValueError, match="unknown time zone"):
        time_zone("Mars/Olympus")


@dataclass(frozen=True)
class _Send:
    send_cap: ClassVar[str] = "maxBroadcasts"


@dataclass(frozen=True)
class _Other:
    pass


def test_send_caps_default_to_one_with_an_exact_override() -> None:
    two = [_Send(), _Send(), _Other()]
    assert count_sends(two) == {"maxBroadcasts": 2, "maxMassMessages": 0}
    assert send_limit((), "maxBroadcasts") == 1
    assert send_cap("allowBroadcasts").flag == "--allow-broadcasts"
    [violation] = send_violations(two, Safety())  # type: ignore[arg-type]
    assert str(violation) == (
        "maxBroadcasts: 2 broadcasts in total, over 1 (to allow it: --allow-broadcasts 2)"
    )
    allowed = {"maxBroadcasts": 1}
    [exact] = evaluate_safety(two, Safety(), allow_sends=allowed)  # type: ignore[arg-type]
    assert str(exact) == (
        "allowBroadcasts: 2 broadcasts in total, over 1 (to allow it: --allow-broadcasts 2)"
    )
    assert evaluate_safety(two, Safety(), allow_sends={"maxBroadcasts": 2}) == []  # type: ignore[arg-type]
    assert evaluate_safety(two, Safety(), force=True) == []  # type: ignore[arg-type]
    assert send_violations(two, Safety(max_sends=(("maxBroadcasts", 2),))) == []  # type: ignore[arg-type]


def test_quota_defers_past_the_cap_never_bursts() -> None:
    quota = Quota(2, 3600, 1)
    now = 10_000.0
    assert quota.used([now - 4000, now - 100], now) == 1
    assert quota.slots([now - 100], 2, now) == [now, now - 100 + 3600]
    assert quota.slots([], 3, now) == [now, now + 1, now + 3600]
    line = deferral_line("news/x", 0, dt.UTC)
    assert line == "news/x: deferred until 1970-01-01 00:00 UTC, over the quota"


def test_changed_paths_name_nested_elements() -> None:
    old = {"body": [{"text": "a"}, {"custom": {"data": "d", "desc": "x"}}], "onlineOnly": False}
    new = {"body": [{"text": "a"}, {"custom": {"data": "d", "desc": "y"}}], "onlineOnly": True}
    assert changed_paths(old, new) == ["body[1].custom.desc", "onlineOnly"]
    assert changed_paths(old, old) == []
    assert changed_paths({"body": [1]}, {"body": [1, 2]}) == ["body[1]"]
    assert changed_paths(1, 2) == ["(the whole value)"]


def test_the_wall_clock_follows_the_test_offset_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RECONCILER_CLOCK_OFFSET", "3600")
    moved = wall_clock()
    wall_clock()
    monkeypatch.setenv("RECONCILER_CLOCK_OFFSET", "x")
    assert moved - wall_clock() > 3500
    assert [r.getMessage() for r in caplog.records] == [
        "RECONCILER_CLOCK_OFFSET=3600 moves this run's clock by +3600 s: windows and quotas are"
        " judged at that time"
    ]


def test_config_reads_the_send_caps_history_days_and_time_zone(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text(
        "timeZone: Asia/Shanghai\nsafety: {maxBroadcasts: 3}\nlimits: {historyDays: 30}\n"
    )
    config = load_config(tmp_path / "reconciler.yaml", environ={})
    assert config.safety.max_sends == (("maxBroadcasts", 3),)
    assert config.limits.history_days == 30
    assert config.time_zone == "Asia/Shanghai"
    (tmp_path / "reconciler.yaml").write_text("timeZone: Mars/Olympus\n")
    [problem] = check_config(tmp_path / "reconciler.yaml")
    assert str(problem).endswith(":1:11: timeZone: unknown time zone 'Mars/Olympus'")


def test_a_plan_file_keeps_configured_send_caps_and_its_bytes_without_them() -> None:
    def made(safety: Safety) -> Plan:
        return assemble_plan(
            Diff.of([]),
            target=TargetIdentity("sandbox", "sandbox", path="x"),
            desired_digest="d",
            fingerprints={},
            live_mass_speed=None,
            limits=Limits(),
            safety=safety,
        )

    assert "sendCaps" not in dump_plan(made(Safety()))
    capped = made(Safety(max_sends=(("maxBroadcasts", 4),)))
    assert load_plan(dump_plan(capped)).safety.max_sends == (("maxBroadcasts", 4),)


def test_the_apply_flag_is_built_from_the_cap_table() -> None:
    args = build_parser().parse_args(["apply", "--allow-broadcasts", "2"])
    assert args.allow_broadcasts == 2
