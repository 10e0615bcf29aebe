"""The GitHub Action (`action.yml`, `ci/github/action.sh`), its example workflow and the GitLab
template (`ci/gitlab/reconciler.gitlab-ci.yml`): valid YAML, every input used, every reconciler
command they run parses with those flags, the scripts themselves run against a sandbox and a
GitHub/GitLab on 127.0.0.1, and actionlint and shellcheck (from the dev extra) pass."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from forge_server import GITHUB, GITLAB, Forge, serve_forge
from test_ci import NEWS_DOC, TOKEN
from test_e2e_common import ENV, Project, Vendor

from reconciler.cli import build_parser
from reconciler.load import load_text

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
ACTION_SCRIPT = ROOT / "ci" / "github" / "action.sh"
WORKFLOW = ROOT / "ci" / "github" / "reconciler.yml"
GITLAB_TEMPLATE = ROOT / "ci" / "gitlab" / "reconciler.gitlab-ci.yml"
#: the tools of the dev extra, beside this Python
BIN = Path(sys.executable).parent


def load(path: Path) -> Any:
    """A YAML file through reconciler's one YAML module (duplicate keys refused)."""
    result = load_text(path.read_text(encoding="utf-8"), str(path))
    assert result.problems == []
    [document] = result.documents
    return document.data


def tool(name: str) -> str:
    """A linter installed by the dev extra: missing is a failure, never a skip."""
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return found


# -- static checks -------------------------------------------------------------------------------


def test_the_action_is_valid_and_uses_every_input() -> None:
    action = load(ACTION)
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == {
        "command",
        "path",
        "target",
        "args",
        "python-version",
        "github-token",
    }
    steps = json.dumps(action["runs"]["steps"])
    for name in action["inputs"]:
        assert f"inputs.{name} }}}}" in steps, name
    # every variable the step hands the script is read by it
    [run] = [s for s in action["runs"]["steps"] if s.get("id") == "run"]
    script = ACTION_SCRIPT.read_text(encoding="utf-8")
    assert run["run"] == 'bash "$ACTION_PATH/ci/github/action.sh"'
    ci_source = (ROOT / "reconciler" / "ci.py").read_text(encoding="utf-8")
    for variable in run["env"]:
        read = f"${variable}" in script or f"${{{variable}" in script
        if variable == "ACTION_PATH":
            read = f"${variable}" in run["run"]
        elif variable == "GITHUB_TOKEN":  # read by `reconciler ci`
            read = f'"{variable}"' in ci_source
        assert read, variable
    # every output comes from the step, and the step writes it (the runs below show it)
    for name, output in action["outputs"].items():
        assert output["value"] == f"${{{{ steps.run.outputs.{name} }}}}"


def test_the_workflow_and_the_template_are_valid_yaml() -> None:
    # YAML 1.1 reads the key `on` as true (GitHub's parser does not), which reconciler's loader
    # refuses as a key: the workflow is read as plain YAML
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow[True]
    assert set(triggers) == {"pull_request", "push", "schedule", "workflow_dispatch"}
    [job] = workflow["jobs"].values()
    assert job["concurrency"]["group"].startswith("reconciler-prod-")
    template = load(GITLAB_TEMPLATE)
    assert {"reconciler-plan", "reconciler-apply", "reconciler-drift"} <= set(template)
    for job_name in ("reconciler-apply", "reconciler-drift"):
        assert template[job_name]["resource_group"] == "reconciler-$RECONCILER_TARGET"
    for variable in template["variables"]:
        text = GITLAB_TEMPLATE.read_text(encoding="utf-8").split("\n.reconciler:", 1)[1]
        assert f"${variable}" in text, variable


def _reconciler_calls(text: str) -> Iterator[list[str]]:
    """Each `reconciler ...` command line of a script, as words, up to a redirection or `;`."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    joined = code.replace("\\\n", " ")
    for match in re.finditer(r"(?<![\w./-])reconciler ([a-z][^;|&>\n]*)", joined):
        if match.group(1).startswith("drift target="):  # the marker, in a sed expression
            continue
        words = shlex.split(match.group(1).replace('"${', '"$').replace("[@]}", ""))
        if words:
            yield words


def _options(words: list[str]) -> tuple[list[str], set[str]]:
    """The subcommand path and the option strings its parser knows."""
    parser = build_parser()
    names: list[str] = []
    for word in words:
        if word.startswith("-") or word.startswith("$"):
            break
        sub = next(
            a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"
        ).choices.get(word)  # type: ignore[attr-defined]
        if sub is None:
            break
        names.append(word)
        parser = sub
    known = {option for action in parser._actions for option in action.option_strings}
    return names, known


@pytest.mark.parametrize("path", [ACTION_SCRIPT, GITLAB_TEMPLATE])
def test_every_reconciler_command_the_scripts_run_exists_with_its_flags(path: Path) -> None:
    calls = list(_reconciler_calls(path.read_text(encoding="utf-8")))
    commands = set()
    for words in calls:
        names, known = _options(words)
        assert names, words
        commands.add(" ".join(names))
        for word in words:
            if word.startswith("--"):
                assert word in known, (names, word)
    assert commands == {"plan", "apply", "drift", "show", "ci comment", "ci issue"}


def test_actionlint_passes_on_the_example_workflow_and_the_action(tmp_path: Path) -> None:
    actionlint = tool("actionlint")
    shellcheck = tool("shellcheck")
    flags = ["-shellcheck", shellcheck, "-pyflakes", ""]
    done = subprocess.run(
        [actionlint, *flags, str(WORKFLOW)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # action.yml is checked where a workflow uses it as a local action: its metadata, and the
    # example's inputs and outputs against it
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ACTION, repo / "action.yml")
    local = WORKFLOW.read_text(encoding="utf-8").replace("OWNER/reconciler@v1", "./")
    assert "uses: ./" in local
    (repo / ".github" / "workflows" / "reconciler.yml").write_text(local, encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    done = subprocess.run([actionlint, *flags], capture_output=True, text=True, cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    # and it does look: an input the action lacks is reported
    (repo / ".github" / "workflows" / "reconciler.yml").write_text(
        local.replace("target: prod", "target: prod\n          nope: 1"), encoding="utf-8"
    )
    done = subprocess.run([actionlint, *flags], capture_output=True, text=True, cwd=repo)
    assert done.returncode == 1
    assert 'input "nope" is not defined in action "reconciler"' in done.stdout


def _gitlab_scripts() -> dict[str, str]:
    template = load(GITLAB_TEMPLATE)
    base = template[".reconciler"]["before_script"]
    assert base[0] == (
        'python -m pip install --disable-pip-version-check --quiet "$RECONCILER_PIP_SPEC"'
    )
    return {
        name: "\n".join([*base[1:], *template[name]["script"]])
        for name in ("reconciler-plan", "reconciler-apply", "reconciler-drift")
    }


def test_shellcheck_passes_on_the_scripts(tmp_path: Path) -> None:
    shellcheck = tool("shellcheck")
    done = subprocess.run([shellcheck, str(ACTION_SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    for name, script in _gitlab_scripts().items():
        file = tmp_path / f"{name}.sh"
        file.write_text(script + "\n", encoding="utf-8")
        # SC2086: $RECONCILER_PATH and $RECONCILER_ARGS are split into words on purpose
        done = subprocess.run(
            [shellcheck, "--shell=sh", "--exclude=SC2086", str(file)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout


# -- the scripts, run ----------------------------------------------------------------------------


@pytest.fixture
def forge() -> Iterator[Forge]:
    with serve_forge(TOKEN) as served:
        yield served


def _base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "GITLAB_", "CI_", "RECONCILER_"))
    }
    return {**env, **ENV, "NO_COLOR": "1", "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}


def _outputs(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines)


class Action:
    """Runs `ci/github/action.sh` as the action's step does, in `project`'s directory."""

    def __init__(self, project: Project, forge: Forge, tmp: Path) -> None:
        self.project, self.forge, self.tmp = project, forge, tmp
        self.runs = 0

    def __call__(self, event: str, **extra: str) -> tuple[int, dict[str, str], str, str]:
        self.runs += 1
        output = self.tmp / f"output-{self.runs}"
        summary = self.tmp / f"summary-{self.runs}"
        output.touch()
        payload = {"pull_request": {"number": 7}} if event == "pull_request" else {}
        event_file = self.tmp / "event.json"
        event_file.write_text(json.dumps(payload), encoding="utf-8")
        env = {
            **_base_env(),
            "GITHUB_ACTIONS": "true",
            "GITHUB_API_URL": self.forge.base_url + GITHUB,
            "GITHUB_REPOSITORY": "team/manifests",
            "GITHUB_EVENT_PATH": str(event_file),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_REF": "refs/heads/main",
            "RUNNER_TEMP": str(self.tmp),
            # what action.yml's step sets from the inputs and the event
            "RECONCILER_COMMAND": "",
            "RECONCILER_PATHS": "m",
            "RECONCILER_TARGET_NAME": "local",
            "RECONCILER_ARGS": "",
            "EVENT_NAME": event,
            "DEFAULT_BRANCH": "main",
            "GITHUB_TOKEN": TOKEN,
            **extra,
        }
        done = subprocess.run(
            ["bash", str(ACTION_SCRIPT)],
            cwd=self.project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert TOKEN not in done.stdout + done.stderr
        text = summary.read_text(encoding="utf-8") if summary.exists() else ""
        return done.returncode, _outputs(output), text, done.stdout + done.stderr


def test_the_action_plans_comments_applies_and_keeps_the_drift_issue(
    project: Project, vendor: Vendor, forge: Forge, tmp_path: Path
) -> None:
    project.manifests(NEWS_DOC)
    action = Action(project, forge, tmp_path)
    # pull request: plan, summary, ONE comment, saved plan beside its full text
    code, out, summary, log = action("pull_request")
    assert code == 0, log
    work = tmp_path / "reconciler-local-m"
    assert out == {
        "plan-path": str(work / "plan.json"),
        "artifact-name": "reconciler-plan-local-m",
        "artifact-dir": str(work),
        "exit-code": "2",
        "has-changes": "true",
    }
    assert summary.endswith("<!-- reconciler plan target=local path=m -->\n")
    assert "+ account @TOA#_news will be created" in (work / "plan.txt").read_text()
    assert [c["body"] for c in forge.comments[7]] == [summary]
    project.manifests(NEWS_DOC.replace("Daily News", "Daily Views"))
    code, out, summary, log = action("pull_request")
    assert code == 0, log
    assert [c["body"] for c in forge.comments[7]] == [summary]  # updated, not added
    assert "Daily Views" in summary
    # a push elsewhere plans, comments nowhere
    writes = len(forge.writes())
    code, out, _, log = action("push", GITHUB_REF="refs/heads/feature")
    assert (code, out["exit-code"], len(forge.writes())) == (0, "2", writes)
    # push to the default branch: apply, JSON result, summary
    code, out, summary, log = action("push")
    assert code == 0, log
    assert out == {
        "exit-code": "0",
        "has-changes": "true",
        "result-path": str(work / "apply.json"),
    }
    result = json.loads((work / "apply.json").read_text())
    assert result["exitCode"] == 0 and result["accounts"]["@TOA#_news"]["failed"] == []
    assert summary.startswith("### reconciler apply\n\n```\nTarget: tencent 'local'")
    assert "Applied: 1 created" in summary
    # schedule: drift; none, so no issue; then one, opened and updated; then gone, closed
    code, out, summary, log = action("schedule")
    assert (code, out["exit-code"], forge.issues) == (0, "0", {}), log
    vendor.modify("@TOA#_news", Name="Renamed")
    for _ in range(2):
        code, out, summary, log = action("schedule")
        assert (code, out["has-changes"]) == (0, "true"), log
    [issue] = forge.issues.values()
    assert (issue["title"], issue["body"], issue["state"]) == (
        "reconciler: drift on target local",
        summary,
        "open",
    )
    vendor.modify("@TOA#_news", Name="Daily Views")
    code, out, summary, log = action("schedule")
    assert (code, out["exit-code"], issue["state"]) == (0, "0", "closed"), log
    assert forge.issue_comments[issue["number"]] == [summary]


def test_the_action_fails_the_job_on_an_error_and_on_a_partial_apply(
    project: Project, forge: Forge, tmp_path: Path
) -> None:
    action = Action(project, forge, tmp_path)
    project.manifests(NEWS_DOC.replace("ops_admin", "ghost"), name="m/accounts.yaml")
    project.write("m/more.yaml", "apiVersion: reconciler/v1\nkind: Nope\n")
    for event in ("pull_request", "push", "schedule"):
        code, out, _, log = action(event)
        assert (code, out["exit-code"]) == (1, "1"), log
    code, _, _, log = action("pull_request", RECONCILER_COMMAND="destroy")
    assert code == 1
    assert log == "error: command must be plan, apply or drift, not 'destroy'\n"


def test_the_gitlab_jobs_run_as_written(
    project: Project, vendor: Vendor, forge: Forge, tmp_path: Path
) -> None:
    template = load(GITLAB_TEMPLATE)
    scripts = _gitlab_scripts()
    project.manifests(NEWS_DOC)

    def job(name: str, **extra: str) -> tuple[int, str]:
        env: Mapping[str, str] = {
            **_base_env(),
            **template["variables"],
            "RECONCILER_PATH": "m",
            "RECONCILER_TARGET": "local",
            "GITLAB_CI": "true",
            "CI_API_V4_URL": forge.base_url + GITLAB,
            "CI_PROJECT_ID": "7",
            "GITLAB_TOKEN": TOKEN,
            **extra,
        }
        done = subprocess.run(
            ["sh", "-e", "-c", scripts[name]],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert TOKEN not in done.stdout + done.stderr
        return done.returncode, done.stdout + done.stderr

    out = project.root / "reconciler-out"
    for _ in range(2):
        code, log = job("reconciler-plan", CI_MERGE_REQUEST_IID="3")
        assert code == 0, log
    assert [n["body"] for n in forge.comments[3]] == [(out / "plan.md").read_text()]
    assert (out / "plan.json").is_file() and (out / "plan.txt").is_file()
    code, log = job("reconciler-apply")
    assert code == 0, log
    assert json.loads((out / "apply.json").read_text())["exitCode"] == 0
    vendor.modify("@TOA#_news", Name="Renamed")
    code, log = job("reconciler-drift")
    assert code == 0, log
    [issue] = forge.issues.values()
    assert (issue["title"], issue["state"]) == ("reconciler: drift on target local", "opened")
    vendor.modify("@TOA#_news", Name="Daily News")
    code, log = job("reconciler-drift")
    assert (code, issue["state"]) == (0, "closed"), log
    # an error fails the job
    project.write("m/more.yaml", "apiVersion: reconciler/v1\nkind: Nope\n")
    for name in ("reconciler-plan", "reconciler-apply", "reconciler-drift"):
        assert job(name, CI_MERGE_REQUEST_IID="3")[0] == 1


def test_the_readme_shows_the_example_workflow_as_it_is() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = WORKFLOW.read_text(encoding="utf-8").splitlines(keepends=True)
    body = "".join(lines[next(n for n, line in enumerate(lines) if line.startswith("name:")) :])
    assert f"```yaml\n{body}```\n" in readme
