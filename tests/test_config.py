"""`reconciler.yaml`: loading, `${VAR}` interpolation, target selection, secrets."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from reconciler.config import (
    Config,
    Limits,
    Safety,
    SandboxTarget,
    TencentTarget,
    WeChatCredentials,
    check_config,
    config_file,
    find_configs,
    load_config,
    select_target,
    split_paths,
)
from reconciler.errors import ConfigError
from reconciler.secret import Secret

PROD = """\
defaultTarget: sandbox
targets:
  sandbox: {type: sandbox, path: state/sb.db}
  prod:
    type: tencent
    region: sgp
    sdkAppId: ${TIM_SDKAPPID}
    identifier: administrator
    secretKey: ${TIM_SECRET_KEY}
    wechat:
      appId: ${WECHAT_APPID}
      secret: ${WECHAT_SECRET}
inventory: ops-inventory
safety: {maxDestroys: 2, maxSubscriberRemovals: 50, maxSubscriberRemovalPercent: 5}
limits: {callsPerSecond: 20, concurrency: 4}
"""
ENV = {
    "TIM_SDKAPPID": "1400123456",
    "TIM_SECRET_KEY": "s3cr3t-key-value",
    "WECHAT_APPID": "wx0123456789",
    "WECHAT_SECRET": "wechat-s3cr3t",
}


def write_config(directory: Path, text: str) -> Path:
    path = directory / "reconciler.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_no_file_means_the_embedded_sandbox_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, search_dir=tmp_path / "m", environ={})
    embedded = SandboxTarget("sandbox", tmp_path.resolve() / ".reconciler/sandbox.db")
    assert config == Config(path=None, default_target="sandbox", targets={"sandbox": embedded})
    assert select_target(config, None) == embedded


def test_the_config_file_a_run_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for folder in ("a", "b", "none"):
        (tmp_path / folder).mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "reconciler.yaml").write_text("{}\n")
    assert find_configs(["none", "b", "-", "x/reconciler.yaml", "a"]) == [
        Path("b/reconciler.yaml"),
        Path("x/reconciler.yaml"),  # named: validate reports it missing
        Path("a/reconciler.yaml"),
    ]
    assert split_paths(["m", "-", "a/reconciler.yaml"]) == (["m", "-"], [Path("a/reconciler.yaml")])
    # --config wins; else the first beside the manifests that exists; else the current directory
    # (None), whose file beats the one a saved plan recorded
    assert config_file("c.yaml", ["a"]) == Path("c.yaml")
    assert config_file(None, ["x/reconciler.yaml", "none", "b", "a"]) == Path("b/reconciler.yaml")
    assert config_file(None, ["none"]) is None
    assert config_file(None, recorded="a/reconciler.yaml") == Path("a/reconciler.yaml")
    (tmp_path / "reconciler.yaml").write_text("{}\n")
    assert config_file(None, recorded="a/reconciler.yaml") is None


def test_search_dir_finds_reconciler_yaml(tmp_path: Path) -> None:
    path = write_config(tmp_path, PROD)
    config = load_config(None, search_dir=tmp_path, environ=ENV)
    assert config.path == path.resolve()
    assert config.inventory == "ops-inventory"
    assert config.safety == Safety(
        max_destroys=2, max_subscriber_removals=50, max_subscriber_removal_percent=5.0
    )
    assert config.limits == Limits(calls_per_second=20.0, concurrency=4)
    # relative to reconciler.yaml, whatever the working directory
    assert select_target(config, None) == SandboxTarget(
        "sandbox", tmp_path.resolve() / "state/sb.db"
    )
    prod = select_target(config, "prod")
    assert prod == TencentTarget(
        name="prod",
        endpoint="https://adminapisgp.im.qcloud.com",
        sdkappid=1400123456,
        identifier="administrator",
        secret_key=Secret("s3cr3t-key-value"),
        wechat=WeChatCredentials("wx0123456789", Secret("wechat-s3cr3t")),
        region="sgp",
    )
    assert str(prod.secret_key) == "***"
    assert "s3cr3t" not in repr(config)


def test_current_directory_is_searched_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, "defaultTarget: local\ntargets:\n  local: {type: sandbox}\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(None, environ={})
    assert select_target(config, None) == SandboxTarget(
        "local", tmp_path.resolve() / ".reconciler/sandbox.db"
    )


def test_missing_variable_fails_only_when_its_target_is_selected(tmp_path: Path) -> None:
    path = write_config(tmp_path, PROD)
    env = {k: v for k, v in ENV.items() if k != "TIM_SECRET_KEY"} | {"WECHAT_APPID": ""}
    config = load_config(path, environ=env)
    assert select_target(config, None) == SandboxTarget(
        "sandbox", tmp_path.resolve() / "state/sb.db"
    )
    assert "prod" not in config.targets
    with pytest.raises(ConfigError) as info:
        select_target(config, "prod")
    assert str(info.value) == "\n".join(
        [
            "target 'prod' cannot be used: its credentials are missing",
            f"{path}:9:16: targets.prod.secretKey: environment variable TIM_SECRET_KEY is not set",
            f"{path}:11:14: targets.prod.wechat.appId:"
            " environment variable WECHAT_APPID is not set",
        ]
    )
    for secret in ("wechat-s3cr3t", "1400123456"):
        assert secret not in str(info.value)


def test_unknown_target(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, PROD), environ=ENV)
    with pytest.raises(ConfigError, match=r"^no target named 'qa' \(targets: prod, sandbox\)$"):
        select_target(config, "qa")


def test_endpoint_overrides_region_and_literals_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(
        tmp_path,
        """\
        targets:
          emu:
            type: tencent
            region: cn
            endpoint: http://127.0.0.1:8754/
            sdkAppId: 1400000000
            identifier: administrator
            secretKey: literal-key-do-not-show
            wechat: {appId: wx1, secret: literal-wechat, endpoint: "http://127.0.0.1:8754"}
        """,
    )
    with caplog.at_level(logging.WARNING, logger="reconciler.config"):
        config = load_config(path, environ={})
    target = select_target(config, None)
    assert isinstance(target, TencentTarget)
    assert (target.endpoint, target.region, target.sdkappid) == (
        "http://127.0.0.1:8754",
        "cn",
        1400000000,
    )
    assert target.wechat == WeChatCredentials(
        "wx1", Secret("literal-wechat"), "http://127.0.0.1:8754"
    )
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:8:16: targets.emu.secretKey is written in the file;"
        " use ${VAR} and keep it out of git",
        f"{path}:9:34: targets.emu.wechat.secret is written in the file;"
        " use ${VAR} and keep it out of git",
    ]
    assert "literal-key-do-not-show" not in caplog.text


def test_dollar_escape_and_top_level_variables(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "defaultTarget: ${TARGET}\ninventory: inv$$1\ntargets:\n"
        "  box:\n    type: sandbox\n    path: ${DB}\n",
    )
    config = load_config(path, environ={"TARGET": "box", "DB": "x.db"})
    assert config.inventory == "inv$1"
    assert select_target(config, None) == SandboxTarget("box", tmp_path.resolve() / "x.db")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"DB": "x.db"})
    assert str(info.value) == f"{path}:1:16: defaultTarget: environment variable TARGET is not set"
    unresolved = load_config(path, environ={"TARGET": "box"})
    with pytest.raises(ConfigError, match="environment variable DB is not set"):
        select_target(unresolved, "box")


def test_sdkappid_from_a_variable_must_be_a_number(tmp_path: Path) -> None:
    path = write_config(tmp_path, PROD)
    config = load_config(path, environ=ENV | {"TIM_SDKAPPID": "14oo"})
    with pytest.raises(ConfigError) as info:
        select_target(config, "prod")
    assert str(info.value).splitlines()[1] == (
        f"{path}:7:15: targets.prod.sdkAppId: the value of its variable is not a number"
    )


def test_invalid_file_is_a_config_error_with_every_problem(tmp_path: Path) -> None:
    path = write_config(tmp_path, "targets:\n  a: {type: sandbox}\n  b: {type: tencent}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value).splitlines() == [
        f"{path}:1:1: defaultTarget: missing; required when there are several targets"
        " and none is named 'sandbox'",
        f"{path}:3:6: targets.b: missing required field 'identifier'",
        f"{path}:3:6: targets.b: missing required field 'sdkAppId'",
        f"{path}:3:6: targets.b: missing required field 'secretKey'",
        f"{path}:3:6: targets.b: needs region: or endpoint:",
    ]


def test_explicit_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config file '.*nope\.yaml' not found$"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_single_target_is_the_default_and_empty_file_is_fine(tmp_path: Path) -> None:
    path = write_config(tmp_path, "targets:\n  only: {type: sandbox}\n")
    assert load_config(path, environ={}).default_target == "only"
    empty = write_config(tmp_path, "# nothing yet\n")
    config = load_config(empty, environ={})
    assert (config.default_target, list(config.targets)) == ("sandbox", ["sandbox"])
    assert check_config(empty) == []


def test_one_document_only(tmp_path: Path) -> None:
    path = write_config(tmp_path, "inventory: a\n---\ninventory: b\n")
    problems = check_config(path)
    assert [str(p) for p in problems] == [
        f"{path}:3:1: reconciler.yaml holds one document, not several"
    ]


def test_check_config_reports_broken_yaml(tmp_path: Path) -> None:
    path = write_config(tmp_path, "targets: [\n")
    assert [p.message for p in check_config(path)] == [
        "invalid YAML: while parsing a flow node, expected the node content,"
        " but found '<stream end>'"
    ]


def test_validate_warns_about_a_literal_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(
        tmp_path,
        "targets:\n  p:\n    type: tencent\n    region: cn\n    sdkAppId: 1\n"
        "    identifier: admin\n    secretKey: hunter2\n    wechat: {appId: a, secret: '${S}'}\n",
    )
    with caplog.at_level(logging.WARNING, logger="reconciler.config"):
        assert check_config(path) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:7:16: targets.p.secretKey is written in the file;"
        " use ${VAR} and keep it out of git"
    ]
    assert "hunter2" not in caplog.text


def test_an_endpoint_with_user_info_a_query_or_a_fragment_is_a_positioned_problem(
    tmp_path: Path,
) -> None:
    """Issue 12, item 9: the client appends paths and its own query (the UserSig) to the
    endpoint, so only scheme, host, port and a path prefix (a gateway's) may be in it."""
    path = write_config(
        tmp_path,
        """\
        defaultTarget: gw
        targets:
          gw:
            type: tencent
            endpoint: https://gw.internal/im?tenant=a
            sdkAppId: 1
            identifier: admin
            secretKey: ${K}
            wechat: {appId: a, secret: '${S}', endpoint: 'https://user:pa55@gw.internal/wx#x'}
          ok:
            type: tencent
            endpoint: https://gw.internal/im/
            sdkAppId: 1
            identifier: admin
            secretKey: ${K}
        """,
    )
    base = "must be a base URL (scheme, host, port, path) without"
    assert [str(p) for p in check_config(path)] == [
        f"{path}:5:15: targets.gw.endpoint: {base} a query (?...)",
        f"{path}:9:50: targets.gw.wechat.endpoint: {base} user info (user@) or a fragment (#...)",
    ]
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"K": "k", "S": "s"})
    assert "pa55" not in str(info.value)
    assert (
        str(info.value).splitlines()[0]
        == f"{path}:5:15: targets.gw.endpoint: {base} a query (?...)"
    )


def test_an_endpoint_from_a_variable_is_checked_when_its_target_is_selected(
    tmp_path: Path,
) -> None:
    path = write_config(
        tmp_path,
        "targets:\n  gw: {type: tencent, endpoint: 'https://${E}', sdkAppId: 1, identifier: a,"
        " secretKey: k}\n",
    )
    good = load_config(path, environ={"E": "gw.internal/im/"})
    target = select_target(good, "gw")
    assert isinstance(target, TencentTarget) and target.endpoint == "https://gw.internal/im"
    for value in ("gw.internal/im?x=1", "gw.internal/#", "u@gw.internal"):
        config = load_config(path, environ={"E": value})
        with pytest.raises(ConfigError) as info:
            select_target(config, "gw")
        assert (
            str(info.value)
            .splitlines()[1]
            .startswith(
                f"{path}:2:33: targets.gw.endpoint: the value of its variable must be a base URL"
            )
        ), value
    broken = load_config(path, environ={"E": "[::1"})  # connect() says it is no URL
    assert isinstance(select_target(broken, "gw"), TencentTarget)


def test_a_sandbox_path_through_a_symlink_loop_is_a_clean_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.cli import main

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    write_config(tmp_path, "targets:\n  sandbox: {type: sandbox, path: a/box.db}\n")
    (tmp_path / "m.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: UserAccounts\nmetadata: {name: u}\nspec: {members: [x]}\n"
    )
    monkeypatch.chdir(tmp_path)
    target = select_target(load_config(None, environ={}), None)
    assert target == SandboxTarget("sandbox", tmp_path / "a" / "box.db")
    assert main(["apply", "m.yaml", "--auto-approve"]) == 1
    err = capsys.readouterr().err  # the lock is keyed to the path as written, then the db fails
    assert err.startswith(f"error: cannot open the sandbox database {tmp_path}/a/box.db: "), err
    assert err.count("\n") == 1


def test_the_wechat_account_type_is_declared_or_unknown(tmp_path: Path) -> None:
    text = """\
        targets:
          prod:
            type: tencent
            region: cn
            sdkAppId: 1400000000
            identifier: administrator
            secretKey: ${K}
            wechat: {appId: wx1, secret: '${S}', accountType: %s}
        """
    env = {"K": "k", "S": "s"}
    for declared, expected in (("subscription", "subscription"), ("service", "service")):
        config = load_config(write_config(tmp_path, text % declared), environ=env)
        target = select_target(config, None)
        assert isinstance(target, TencentTarget) and target.wechat is not None
        assert target.wechat.account_type == expected
    unset = text.replace(", accountType: %s", "")
    target = select_target(load_config(write_config(tmp_path, unset), environ=env), None)
    assert isinstance(target, TencentTarget) and target.wechat is not None
    assert target.wechat.account_type is None
    path = write_config(tmp_path, text % "personal")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=env)
    assert str(caught.value) == (
        f"{path}:8:55: targets.prod.wechat.accountType: must be one of subscription, service,"
        " not 'personal'"
    )
