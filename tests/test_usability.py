"""Issue 14: what a new user meets first, end to end through the command line.

Each test runs `reconciler.cli.main` (or `reconciler sandbox serve` in a subprocess) the way the
README tells a user to, and asserts the exact output.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator
from test_e2e_common import (
    IM_SECRET,
    WECHAT_SECRET,
    Project,
    Vendor,
    account_doc,
    config_text,
    no_changes,
    served_sandbox,
    users,
)

from reconciler.cli import main
from reconciler.config import TencentTarget, load_config, select_target
from reconciler.connect import _wechat_setting
from reconciler.errors import ConfigError
from reconciler.load import display_path, load_file
from reconciler.providers.http import _unknown_host
from reconciler.schemas import load_schema

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HEADER = "apiVersion: reconciler/v1\n"
SPEED = f"{HEADER}kind: MassSpeed\nmetadata: {{name: wx}}\nspec: {{speed: 2}}\n"
USERS = f"{HEADER}kind: UserAccounts\nmetadata: {{name: users}}\nspec: {{members: [alice]}}\n"


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return directory


def yaml_data(path: Path) -> object:
    return load_file(path).documents[0].data


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# -- 2: a date-shaped value the calendar does not have ------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("faceUrl", "2030-13-45", "month must be in 1..12"),
        ("introduction", "2020-02-30", "day is out of range for month"),
    ],
)
def test_an_impossible_date_is_a_positioned_problem(
    field: str,
    value: str,
    reason: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        {
            "a.yaml": f"{HEADER}kind: OfficialAccount\nmetadata: {{id: news}}\n"
            f"spec:\n  owner: alice\n  name: News\n  {field}: {value}\n"
        },
    )
    col = len(f"  {field}: ") + 1
    expected = (
        f"a.yaml:7:{col}: '{value}' reads as a date but is not one ({reason});"
        " quote it if it is a string\n"
    )
    assert run(["validate", "."], capsys) == (1, expected, "")
    code, out, err = run(["plan", "."], capsys)
    assert (code, out, err) == (1, "", expected)


def test_an_impossible_date_in_mass_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        {
            "a.yaml": f"{HEADER}kind: MassSpeed\nmetadata: {{name: wx}}\n"
            "spec:\n  speed: 2020-02-30\n"
        },
    )
    code, out, err = run(["validate", "."], capsys)
    assert (code, err) == (1, "")
    assert out.splitlines()[0] == (
        "a.yaml:5:10: '2020-02-30' reads as a date but is not one (day is out of range for"
        " month); quote it if it is a string"
    )


def test_an_impossible_date_in_the_drift_ignore_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        {
            "m/a.yaml": USERS,
            "ignore.yaml": """\
                - account: news
                  field: name
                  reason: the desk renames it by hand
                  owner: alice
                  expires: 2030-13-45
            """,
        },
    )
    code, out, err = run(["drift", "m", "--ignore", "ignore.yaml"], capsys)
    assert (code, out) == (1, "")
    assert err == (
        "ignore.yaml:5:12: '2030-13-45' reads as a date but is not one (month must be in"
        " 1..12); quote it if it is a string\n"
    )


# -- 4: no manifests is an error ------------------------------------------------------------------

NO_MANIFESTS = (
    "error: no manifests found in 'empty' (a manifest is a .yaml or .yml file with"
    " apiVersion: reconciler/v1)\n"
)


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "empty"],
        ["plan", "empty"],
        ["plan", "empty", "--prune"],
        ["apply", "empty", "--prune", "--auto-approve"],
        ["drift", "empty"],
    ],
)
def test_an_empty_directory_is_an_error_not_a_plan_to_destroy_everything(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    assert run(argv, capsys) == (1, "", NO_MANIFESTS)
    assert not (tmp_path / ".reconciler").exists()  # nothing opened, nothing sent


def test_a_directory_of_other_yaml_only_says_what_it_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, {"empty/docker-compose.yml": COMPOSE, "empty/empty.yaml": "# nothing yet\n"})
    assert run(["plan", "empty", "--prune"], capsys) == (
        1,
        "",
        "error: no manifests found in 'empty' (skipped 2 YAML files without"
        " apiVersion: reconciler/v1)\n",
    )


def test_empty_stdin_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert run(["validate", "-"], capsys) == (
        1,
        "",
        "error: no manifests found in <stdin> (a manifest is a .yaml or .yml file with"
        " apiVersion: reconciler/v1)\n",
    )


# -- 15: other YAML in the repository ------------------------------------------------------------

COMPOSE = "services:\n  web:\n    image: nginx\n"
WORKFLOW = "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n"


def test_a_walk_skips_yaml_that_is_not_reconciler_s_and_says_how_many(tmp_path: Path) -> None:
    project = tmp_path / "repo"
    shutil.copytree(EXAMPLES, project)
    write(project, {"docker-compose.yml": COMPOSE, "ci/build.yaml": WORKFLOW})
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "10 documents valid\n")
    assert done.stderr == (
        "WARNING reconciler.validate: skipped 2 YAML files that are not reconciler manifests"
        " (no apiVersion: reconciler/v1; name a file to read it anyway)\n"
    )


def test_yaml_named_on_the_command_line_is_read_whatever_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, {"docker-compose.yml": COMPOSE, "m/users.yaml": USERS})
    assert run(["validate", "m", "docker-compose.yml"], capsys) == (
        1,
        "docker-compose.yml:1:1: missing required field 'kind'\n",
        "",
    )


def test_a_manifest_with_a_mistyped_api_version_is_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `kind: OfficialAccount` makes it reconciler's: validate reports it, fmt formats it (one rule)
    monkeypatch.chdir(tmp_path)
    text = "apiVersion: reconcilr/v1\nkind: OfficialAccount\nmetadata:\n    id: news\n"
    text += "spec: {owner: alice, name: News}\n"
    write(tmp_path, {"m/news.yaml": text, "m/docker-compose.yml": COMPOSE})
    assert run(["validate", "m"], capsys) == (
        1,
        "m/news.yaml:1:13: apiVersion: must be 'reconciler/v1', not 'reconcilr/v1'\n",
        "",
    )
    assert main(["fmt", "m"]) == 0
    out, err = capsys.readouterr()
    assert out == "m/news.yaml\n"
    assert err.startswith("fmt: skipped 1 YAML file that holds no reconciler manifests")
    assert (tmp_path / "m" / "news.yaml").read_text().count("\n  id: news\n") == 1


@pytest.mark.parametrize("broken", ["on: push\nx: [1\n", "kind: Deployment\nkind: Service\n"])
def test_foreign_yaml_that_does_not_load_is_skipped_too(
    broken: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, {"m/users.yaml": USERS, "m/ci.yml": broken})
    assert run(["validate", "m"], capsys) == (0, "1 document valid\n", "")


def test_a_manifest_that_does_not_load_is_reported_not_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, {"m/users.yaml": USERS.replace("[alice]", "[alice")})
    code, out, _ = run(["validate", "m"], capsys)
    assert (code, out.split(": ")[0]) == (1, "m/users.yaml:4:23")


# -- 7: every problem in one run ------------------------------------------------------------------


def test_every_problem_is_reported_in_one_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the corpus case: before, a field error hid its document's unknown set, and an unknown set
    # hid a member both declared and absent (three runs to see nine problems)
    case = Path(__file__).resolve().parent / "manifests" / "all-problems-in-one-run"
    monkeypatch.chdir(case)
    expected = (case / "expected.txt").read_text()
    assert run(["validate", "."], capsys) == (1, expected, "")
    assert run(["plan", "."], capsys) == (1, "", expected)
    assert len(expected.splitlines()) == 9


def test_an_owner_missing_from_user_accounts_points_at_the_owner_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # only the plan can know: the owner may be an IM user that already exists at the vendor
    monkeypatch.chdir(tmp_path)
    news = f"{HEADER}kind: OfficialAccount\nmetadata: {{id: news}}\nspec:\n  name: News\n"
    write(tmp_path, {"m/news.yaml": news + "  owner: ghost\n", "m/users.yaml": USERS})
    assert run(["validate", "m"], capsys) == (0, "2 documents valid\n", "")
    code, out, _ = run(["plan", "m"], capsys)
    assert code == 1
    assert (
        "  @TOA#_news: owner 'ghost' does not exist and is not declared in UserAccounts"
        " (spec.owner at m/news.yaml:6:10)\n"
    ) in out
    code, out, _ = run(["plan", "m", "--format", "json"], capsys)
    assert code == 1
    errors = json.loads(out)["errors"]
    assert errors == [
        {
            "account": "@TOA#_news",
            "message": "owner 'ghost' does not exist and is not declared in UserAccounts"
            " (spec.owner at m/news.yaml:6:10)",
            "type": "problem",
        }
    ]


# -- 1: ${VAR} in every field it may fill ----------------------------------------------------------


def from_environment(config: str) -> str:
    """`config_text`'s reconciler.yaml with both endpoints read from the environment."""
    lines = config.splitlines()
    lines[4] = "    endpoint: ${TIM_ENDPOINT}"
    lines[-1] = '      endpoint: "${WECHAT_ENDPOINT}"'
    return "\n".join([*lines, "inventory: ${INVENTORY_USER}", ""])


def test_whole_url_endpoints_from_the_environment_work(
    project: Project, vendor: Vendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write("reconciler.yaml", from_environment(config_text(project.base_url)))
    project.manifests(account_doc("news", name="News"), users("ops_admin"))
    # validate runs in CI without the environment: the placeholders are valid as they are
    assert project.cli("validate", "m").out == "2 documents valid\n"
    monkeypatch.setenv("TIM_ENDPOINT", project.base_url)
    monkeypatch.setenv("WECHAT_ENDPOINT", project.base_url)
    monkeypatch.setenv("INVENTORY_USER", "gitops-inventory")
    applied = project.cli("apply", "m", "--auto-approve")
    assert applied.code == 0, applied.text
    no_changes(project.cli("plan", "m"))
    assert "gitops-inventory" in vendor.subscribers("@TOA#_news", with_inventory=True)


def test_a_value_from_the_environment_meets_the_field_s_rules_at_its_position(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = from_environment(config_text(project.base_url)).replace(
        "defaultTarget: local\ntargets:\n",
        "defaultTarget: local\ntargets:\n  box: {type: sandbox}\n",
    )
    project.write("reconciler.yaml", text)
    project.manifests(users("ops_admin"))
    monkeypatch.setenv("TIM_ENDPOINT", "ftp://user:hunter2@example.com")
    monkeypatch.setenv("WECHAT_ENDPOINT", project.base_url)
    monkeypatch.setenv("INVENTORY_USER", "gitops-inventory")
    # only the target that uses the variable fails, and only when it is selected
    assert project.cli("plan", "m", "--target", "box").code == 0
    wrong = project.cli("plan", "m")
    assert (wrong.code, wrong.out) == (1, "")
    assert wrong.err == (
        "error: target 'local' cannot be used:\n"
        "reconciler.yaml:6:15: targets.local.endpoint: the value of ${TIM_ENDPOINT} does not"
        " match ^https?://\n"
    )
    assert "hunter2" not in wrong.err
    monkeypatch.setenv("INVENTORY_USER", "has a space")
    top = project.cli("plan", "m", "--target", "box")
    assert (top.code, top.err) == (
        1,
        "reconciler.yaml:14:12: inventory: the value of ${INVENTORY_USER} is not a valid UserID:"
        " 1 to 32 printable ASCII characters, no spaces\n",
    )


def test_the_schema_lets_editors_accept_a_variable_in_each_field_it_may_fill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = """\
        inventory: ${INVENTORY_USER}
        targets:
          prod:
            type: tencent
            region: ${TIM_REGION}
            endpoint: ${TIM_ENDPOINT}
            sdkAppId: ${TIM_SDKAPPID}
            identifier: ${TIM_ADMIN}
            secretKey: ${TIM_SECRET_KEY}
            wechat:
              appId: ${WECHAT_APPID}
              secret: ${WECHAT_SECRET}
              endpoint: ${WECHAT_ENDPOINT}
        """
    write(tmp_path, {"reconciler.yaml": config, "m/users.yaml": USERS})
    validator = Draft202012Validator(load_schema("reconciler"))
    assert list(validator.iter_errors(yaml_data(tmp_path / "reconciler.yaml"))) == []
    assert run(["validate", "m"], capsys) == (0, "1 document valid\n", "")
    # the real rule still holds where no variable stands
    write(tmp_path, {"reconciler.yaml": config.replace("${TIM_REGION}", "mars")})
    code, out, _ = run(["validate", "m"], capsys)
    assert (code, out) == (
        1,
        "reconciler.yaml:5:13: targets.prod.region: must be one of cn, sgp, kr, jpn, ger, ind,"
        " usa, idn, not 'mars'\n",
    )


# -- 9: a tencent target pointed at `reconciler sandbox serve` ---------------------------------


def test_a_host_that_does_not_resolve_is_not_retried_and_names_the_setting(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `.invalid` never resolves (RFC 6761): what api.weixin.qq.com does on a machine offline
    config = config_text(project.base_url).splitlines()
    config[-1] = "      endpoint: https://wechat.invalid"
    project.write("reconciler.yaml", "\n".join(config) + "\n")
    project.manifests(users("ops_admin"), SPEED)
    started = time.monotonic()
    result = project.cli("plan", "m")
    assert time.monotonic() - started < 3  # five attempts would wait 0.4 + 0.8 + 1.6 + 3.2 s
    assert (result.code, result.out) == (1, "")
    assert result.err.startswith(
        "error: wechat (stable_token) on wxsandbox00000000: the host wechat.invalid does not"
        " resolve ("
    )
    assert result.err.endswith("); check targets.local.wechat.endpoint\n")


def test_only_a_name_that_does_not_exist_is_final() -> None:
    def failure(code: int) -> httpx.ConnectError:
        error = httpx.ConnectError("[Errno -2] Name or service not known")
        error.__cause__ = socket.gaierror(code, "Name or service not known")
        return error

    assert _unknown_host(failure(socket.EAI_NONAME)) == "Name or service not known"
    assert _unknown_host(failure(socket.EAI_AGAIN)) is None  # a resolver's blip: retried
    assert _unknown_host(httpx.ConnectError("refused")) is None


def test_the_default_wechat_endpoint_is_named_as_the_one_not_set() -> None:
    assert _wechat_setting("local", "https://api.weixin.qq.com") == (
        "targets.local.wechat.endpoint (not set: WeChat calls go to https://api.weixin.qq.com)"
    )
    assert _wechat_setting("a b", "http://127.0.0.1:1") == "targets['a b'].wechat.endpoint"


def test_the_banner_of_sandbox_serve_is_a_target_that_works_as_pasted(tmp_path: Path) -> None:
    project = tmp_path / "repo"
    shutil.copytree(EXAMPLES, project)
    with served_sandbox(tmp_path / "served.db", "--wechat-appid", "true") as server:
        assert server.process.stdout is not None
        lines = list(iter(server.process.stdout.readline, "Press Ctrl+C to stop.\n"))
        assert '      appId: "true"\n' in lines  # a word YAML reads as a boolean is quoted
        block = lines[lines.index("targets:\n") :]
        assert f"      endpoint: {server.base_url}\n" in block
        (project / "reconciler.yaml").write_text("".join(block), encoding="utf-8")
        assert "(export SANDBOX_SECRET_KEY and SANDBOX_WECHAT_SECRET," in lines[9]
        env = {
            "SANDBOX_SECRET_KEY": lines[4].removeprefix("    secret key:   ").strip(),
            "SANDBOX_WECHAT_SECRET": lines[7].removeprefix("    secret:       ").strip(),
        }
        assert env == {"SANDBOX_SECRET_KEY": IM_SECRET, "SANDBOX_WECHAT_SECRET": WECHAT_SECRET}
        for command in (["apply", ".", "--auto-approve"], ["plan", "."]):
            done = subprocess.run(
                [sys.executable, "-m", "reconciler", *command],
                cwd=project,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
    assert "No changes. The live system matches the manifests." in done.stdout


# -- 10: what -v says the embedded sandbox calls ---------------------------------------------------


def test_verbose_logs_of_the_embedded_sandbox_name_the_sandbox_not_the_vendor(
    tmp_path: Path,
) -> None:
    project = tmp_path / "repo"
    shutil.copytree(EXAMPLES, project)
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "-v", "plan", "."],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    requests = [line for line in done.stderr.splitlines() if "HTTP Request: " in line]
    assert requests
    assert all(" https://sandbox/v4/" in r or " https://sandbox/cgi-bin/" in r for r in requests)
    assert "qq.com" not in done.stderr


def test_a_region_from_the_environment_picks_its_domain(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text(
        "targets:\n  prod:\n    type: tencent\n    region: ${TIM_REGION}\n    sdkAppId: 1\n"
        "    identifier: admin\n    secretKey: ${TIM_KEY}\n",
        encoding="utf-8",
    )
    loaded = load_config(config, environ={"TIM_REGION": "sgp", "TIM_KEY": "k"})
    target = select_target(loaded, "prod")
    assert isinstance(target, TencentTarget)
    assert (target.endpoint, target.region) == ("https://adminapisgp.im.qcloud.com", "sgp")
    wrong = load_config(config, environ={"TIM_REGION": "mars", "TIM_KEY": "k"})
    with pytest.raises(ConfigError) as caught:
        select_target(wrong, "prod")
    assert str(caught.value) == (
        "target 'prod' cannot be used:\n"
        f"{display_path(config)}:4:13: targets.prod.region: must be one of cn, sgp, kr, jpn, ger,"
        " ind, usa, idn, not the value of ${TIM_REGION}"
    )
    unset = load_config(config, environ={"TIM_KEY": "k"})
    with pytest.raises(ConfigError, match="environment variable TIM_REGION is not set"):
        select_target(unset, "prod")


# -- 12: a saved plan beside manifests ----------------------------------------------------------


def test_a_saved_plan_mixed_with_manifests_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, {"m/users.yaml": USERS})
    assert run(["plan", "m", "--out", "p.json"], capsys)[0] == 0
    for argv in (["apply", "p.json", "m"], ["apply", "m", "p.json", "--auto-approve"]):
        assert run(argv, capsys) == (
            1,
            "",
            "error: p.json is a saved plan: apply it alone (reconciler apply p.json);"
            " a plan file cannot be mixed with manifests\n",
        )
    assert not (tmp_path / ".reconciler").exists()  # nothing read, nothing sent


# -- 14: the drift ignore file has a schema, positions and "did you mean" -----------------------


def test_the_drift_ignore_file_s_problems_are_positioned_all_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        {
            "m/a.yaml": USERS,
            "ignore.yaml": """\
                ignore:
                  - account: news
                    feild: name
                    reason: the desk renames it by hand
                    owner: alice
                    expires: 2030-12-31
                  - account: news
                    field: nmae
                    reason: ""
                    owner: alice
                    expires: soon
                  - account: news
            """,
        },
    )
    code, out, err = run(["drift", "m", "--ignore", "ignore.yaml"], capsys)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "ignore.yaml:2:5: ignore[0]: missing required field 'field'",
        "ignore.yaml:3:5: ignore[0]: unknown field 'feild' (did you mean 'field'?)",
        "ignore.yaml:8:12: ignore[1].field: must be one of account, name, introduction, faceUrl,"
        " organization, customString, maxSubscriberNum, subscribers, subscriberProfiles, users,"
        " speed, not 'nmae'",
        "ignore.yaml:9:13: ignore[1].reason: must not be empty",
        "ignore.yaml:11:14: ignore[1].expires: 'soon' is not a date (YYYY-MM-DD)",
        "ignore.yaml:12:5: ignore[2]: missing required field 'expires'",
        "ignore.yaml:12:5: ignore[2]: missing required field 'field'",
        "ignore.yaml:12:5: ignore[2]: missing required field 'owner'",
        "ignore.yaml:12:5: ignore[2]: missing required field 'reason'",
    ]
    assert not (tmp_path / ".reconciler").exists()  # refused before any read


def test_the_drift_ignore_schema_is_the_one_editors_get() -> None:
    schema = load_schema("drift-ignore")
    Draft202012Validator.check_schema(schema)
    entry = {
        "account": "news",
        "field": "name",
        "reason": "r",
        "owner": "o",
        "expires": "2030-01-01",
    }
    validator = Draft202012Validator(schema)
    assert validator.is_valid([entry]) and validator.is_valid({"ignore": [entry]})
    assert not validator.is_valid({"ignore": [entry], "extra": 1})


# -- 8: reconciler.yaml is found above the manifests, as git finds its root ---------------------


def test_reconciler_yaml_is_found_above_the_manifests_not_past_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "repo"
    (project / ".git").mkdir(parents=True)
    write(
        project,
        {
            "reconciler.yaml": "targets:\n  sandbox: {type: sandbox, path: state/box.db}\n",
            "manifests/prod/users.yaml": USERS,
        },
    )
    monkeypatch.chdir(project / "manifests" / "prod")
    assert run(["apply", ".", "--auto-approve"], capsys)[0] == 0
    assert (project / "state" / "box.db").is_file()  # the project's database, not ./.reconciler
    assert not (project / "manifests" / "prod" / ".reconciler").exists()
    code, out, _ = run(["plan", "."], capsys)
    assert code == 0
    assert out.startswith(
        f"Target: sandbox 'sandbox', embedded sandbox at {project.resolve()}/state/box.db\n"
    )
    # a reconciler.yaml outside the repository is never taken
    write(tmp_path, {"reconciler.yaml": "targets:\n  sandbox: {type: sandbox, path: outside.db}\n"})
    (project / "reconciler.yaml").unlink()
    assert run(["plan", "."], capsys)[0] == 0
    assert not (tmp_path / "outside.db").exists()
