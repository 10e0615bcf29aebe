"""`reconciler.yaml`, fuzzed: `validate` and `load_config` answer with positioned problems only.

Seeds are valid configurations; hypothesis damages their text (deletes, inserts, swaps words) or
replaces a value with a random one. Whatever comes out, `validate` exits 0 or 1 and every problem
it prints is one `file:line:col: message` line whose position lies inside the file;
`load_config` returns a config or raises `ConfigError` made of such lines; choosing any target
either works or raises `ConfigError`. Nothing else may escape.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_common import PROBLEM, fuzz_settings, json_values

from reconciler.config import load_config, select_target
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.load import dump_documents
from reconciler.validate import command

SEEDS = [
    """defaultTarget: prod
targets:
  sandbox: {type: sandbox, path: .reconciler/sandbox.db}
  prod:
    type: tencent
    region: cn
    sdkAppId: ${TIM_SDKAPPID}
    identifier: administrator
    secretKey: ${TIM_SECRET_KEY}
    wechat: {appId: "${WECHAT_APPID}", secret: "${WECHAT_SECRET}"}
inventory: reconciler-inventory
safety: {maxDestroys: 0, maxSubscriberRemovals: 1000, maxSubscriberRemovalPercent: 10}
limits: {callsPerSecond: 200, concurrency: 16}
""",
    """targets:
  local:
    type: tencent
    endpoint: http://127.0.0.1:8754
    sdkAppId: 1400000000
    identifier: ${ADMIN}
    secretKey: $${literal}
    wechat:
      appId: wx1
      secret: ${WX}
      endpoint: http://localhost:8754/
  sandbox: {type: sandbox}
inventory: ${INVENTORY}
""",
]
ENVIRON = {
    "TIM_SDKAPPID": "1400000001",
    "TIM_SECRET_KEY": "k",
    "WECHAT_APPID": "wx",
    "WECHAT_SECRET": "s",
    "ADMIN": "administrator",
    "WX": "s",
    "INVENTORY": "inv",
}
WORDS = [
    "sandbox",
    "tencent",
    "prod",
    "cn",
    "mars",
    "${TIM_SDKAPPID}",
    "${UNSET}",
    "${1BAD}",
    "${",
    "$$",
    "http://im.example.com",
    "https://",
    "ftp://x",
    "-1",
    "0",
    "1e400",
    "0x10",
    "true",
    "null",
    "~",
    "[]",
    "{}",
    "defaultTarget",
    "targets",
    "type",
    "region",
    "endpoint",
    "sdkAppId",
    "secretKey",
    "wechat",
    "limits",
    "safety",
    "concurrency",
    "callsPerSecond",
    "maxSubscriberRemovalPercent",
    "inventory",
    "&a",
    "*a",
    "!!python/object:os.system",
    "新",
]
PIECES = [*":-[]{},&*!|>'\"%@`#?\n\t ~.$", "a", "1", "\n  ", ": ", "- ", "\x00", "\ufeff"]


def _damaged(seed: str, data: st.DataObject) -> str:
    text = seed
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        action = data.draw(st.sampled_from(["word", "word", "insert", "delete"]), label="edit")
        if action == "word":
            words = list(re.finditer(r"[\w$.{}/:-]+", text))
            hit = data.draw(st.sampled_from(words), label="at")
            text = text[: hit.start()] + data.draw(st.sampled_from(WORDS)) + text[hit.end() :]
            continue
        at = data.draw(st.integers(0, len(text)), label="pos")
        if action == "insert":
            piece = "".join(data.draw(st.lists(st.sampled_from(PIECES), max_size=3)))
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + text[at + data.draw(st.integers(1, 4)) :]
    return text


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    return found


def _restructured(seed: str, data: st.DataObject) -> str:
    """The seed with one value (at any depth) replaced by a random JSON value, as YAML."""
    from reconciler.load import load_text

    (document,) = load_text(seed, "seed").documents
    doc = json.loads(json.dumps(document.data))
    path = data.draw(st.sampled_from(_paths(doc)[1:]), label="path")
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = data.draw(json_values, label="value")
    return dump_documents([doc])


def _config_text(data: st.DataObject) -> str:
    seed = data.draw(st.sampled_from(SEEDS), label="seed")
    how = data.draw(st.sampled_from(["damaged", "restructured", "raw"]), label="how")
    if how == "damaged":
        return _damaged(seed, data)
    if how == "restructured":
        return _restructured(seed, data)
    return data.draw(st.text(max_size=60), label="raw")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("configfuzz")
    (path / "m").mkdir()
    (path / "m" / "a.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: MassSpeed\nmetadata: {name: s}\nspec: {speed: 1}\n"
    )
    return path


def test_the_seeds_are_valid(workdir: Path) -> None:
    for seed in SEEDS:
        (workdir / "reconciler.yaml").write_text(seed)
        out = io.StringIO()
        assert (
            command(
                [str(workdir / "m")],
                config=str(workdir / "reconciler.yaml"),
                fmt="text",
                stdout=out,
                stdin=io.StringIO(),
            )
            == 0
        ), out.getvalue()
        config = load_config(workdir / "reconciler.yaml", environ=ENVIRON)
        for name in config.targets:
            select_target(config, name)


def _in_file(problem: dict[str, Any], lines: int) -> bool:
    return 1 <= problem["line"] <= lines + 1 and problem["col"] >= 1


@fuzz_settings(ci=400)
@given(data=st.data())
def test_validate_reports_config_problems_with_positions(
    workdir: Path, data: st.DataObject
) -> None:
    text = _config_text(data)
    config = workdir / "reconciler.yaml"
    config.write_text(text, encoding="utf-8")
    out = io.StringIO()
    code = command(
        [str(workdir / "m")], config=str(config), fmt="json", stdout=out, stdin=io.StringIO()
    )
    report = json.loads(out.getvalue())
    assert code == (0 if report["valid"] else 1)
    lines = text.count("\n") + 1
    for problem in report["problems"]:
        assert problem["file"] == str(config) or problem["file"].endswith("reconciler.yaml")
        assert _in_file(problem, lines), problem
        assert "\n" not in problem["message"] and problem["message"], problem


@fuzz_settings(ci=400)
@given(data=st.data(), unset=st.sets(st.sampled_from(sorted(ENVIRON))))
def test_load_config_returns_a_config_or_a_positioned_error(
    workdir: Path, data: st.DataObject, unset: set[str]
) -> None:
    config = workdir / "reconciler.yaml"
    config.write_text(_config_text(data), encoding="utf-8")
    environ = {k: v for k, v in ENVIRON.items() if k not in unset}
    try:
        loaded = load_config(config, environ=environ)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            assert PROBLEM.match(line), line
        return
    for name in [*loaded.targets, *loaded.unresolved_targets, "nope"]:
        try:
            select_target(loaded, name)
        except ConfigError as exc:
            assert str(exc)
    assert loaded.limits.concurrency >= 1 and loaded.limits.calls_per_second > 0
    assert loaded.safety.max_destroys >= 0
    assert not math.isnan(loaded.safety.max_subscriber_removal_percent)


def test_nothing_but_our_errors_escape_a_hostile_yaml_tag(workdir: Path) -> None:
    config = workdir / "reconciler.yaml"
    config.write_text("targets: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ReconcilerError) as caught:
        load_config(config, environ={})
    assert PROBLEM.match(str(caught.value).splitlines()[0])


def test_a_target_named_with_a_line_break_is_shown_quoted_on_one_line(workdir: Path) -> None:
    """Found by the fuzz: `targets: {"\\r": null}` printed a raw carriage return in a problem."""
    config = workdir / "reconciler.yaml"
    config.write_text('defaultTarget: prod\ntargets:\n  "a\\rb": null\n  "x y": {type: tencent}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config, environ={})
    assert str(caught.value).splitlines() == [
        f"{config}:1:16: defaultTarget: no target named 'prod' (targets: 'a\\rb', 'x y')",
        f"{config}:3:11: targets['a\\rb']: must be a mapping, not null",
        f"{config}:4:10: targets['x y']: missing required field 'identifier'",
        f"{config}:4:10: targets['x y']: missing required field 'sdkAppId'",
        f"{config}:4:10: targets['x y']: missing required field 'secretKey'",
        f"{config}:4:10: targets['x y']: needs region: or endpoint:",
    ]


def test_an_empty_targets_mapping_is_a_problem_not_a_crash(workdir: Path) -> None:
    """Found by the fuzz: `targets: {}` raised IndexError in load_config."""
    config = workdir / "reconciler.yaml"
    config.write_text("inventory: inv\ntargets: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config, environ={})
    assert str(caught.value) == (
        f"{config}:2:10: targets: empty; declare a target, or leave `targets` out to use the"
        " embedded sandbox"
    )


def test_integral_floats_are_read_as_integers(workdir: Path) -> None:
    """Found by the fuzz: `sdkAppId: 0.0` (an integer to JSON Schema) raised TypeError."""
    config = workdir / "reconciler.yaml"
    config.write_text(
        "targets:\n  p: {type: tencent, region: cn, sdkAppId: 1400000001.0, identifier: a,"
        " secretKey: '${K}'}\nlimits: {concurrency: 4.0}\n"
        "safety: {maxDestroys: 2.0, maxSubscriberRemovals: 10.0}\n"
    )
    loaded = load_config(config, environ={"K": "k"})
    target = select_target(loaded, "p")
    assert getattr(target, "sdkappid", None) == 1400000001
    assert (loaded.limits.concurrency, loaded.safety.max_destroys) == (4, 2)
    assert type(loaded.limits.concurrency) is int and type(loaded.safety.max_destroys) is int
    assert loaded.safety.max_subscriber_removals == 10


def test_nan_is_a_problem(workdir: Path) -> None:
    """Found by the nightly fuzz: `.nan` passed the schema, and a NaN removal percentage would
    let every plan through the safety check."""
    config = workdir / "reconciler.yaml"
    config.write_text(
        "limits: {callsPerSecond: .nan, concurrency: 2}\n"
        "safety: {maxSubscriberRemovalPercent: .nan}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config, environ={})
    assert str(caught.value).splitlines() == [
        f"{config}:1:26: limits.callsPerSecond: must be a number, not .nan",
        f"{config}:2:39: safety.maxSubscriberRemovalPercent: must be a number, not .nan",
    ]


def test_a_malformed_endpoint_is_a_positioned_problem(workdir: Path) -> None:
    """Found by the nightly fuzz: `endpoint: http://[127.0.0.1:8754` raised ValueError."""
    config = workdir / "reconciler.yaml"
    config.write_text(
        "targets:\n  p: {type: tencent, endpoint: 'http://[127.0.0.1:8754', sdkAppId: 1,"
        " identifier: a, secretKey: '${K}'}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config, environ={"K": "k"})
    assert str(caught.value) == (
        f"{config}:2:32: targets.p.endpoint: endpoint 'http://[127.0.0.1:8754' is not a valid URL"
    )
