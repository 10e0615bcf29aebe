"""Load manifests, check them against their schemas and each other, and resolve the desired state.

`load_desired_state()` is what plan and apply call; `command()` is `reconciler validate`. Neither
touches the network: everything here reads local files (or stdin) only.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TextIO

from reconciler import config as config_module
from reconciler.errors import ConfigError, ManifestError, Problem
from reconciler.load import (
    CONFIG_NAME,
    MAX_FILE_BYTES,
    STDIN_NAME,
    Document,
    FileRefused,
    LoadResult,
    Node,
    display_path,
    iter_manifest_files,
    load_file,
    load_stream,
    load_walked,
    position_of,
    project_roots,
    resolve_inside,
    shown,
    type_name,
)
from reconciler.model import DesiredState
from reconciler.resolve import Resolver
from reconciler.schemas import KINDS, schema_problems

log = logging.getLogger(__name__)

#: The version of `validate --format json` output.
JSON_FORMAT_VERSION: Final = 1


def check_document(doc: Document) -> tuple[str | None, list[Problem]]:
    """The kind of `doc` and its schema problems (kind None: not a manifest at all)."""
    data = doc.data
    if not isinstance(data, Node):
        problem = Problem(
            doc.position.file,
            doc.position.line,
            doc.position.col,
            f"a manifest must be a mapping with apiVersion, kind, metadata and spec, not"
            f" {type_name(data)}",
        )
        return None, [problem]
    kind = data.get("kind")
    if kind not in KINDS:
        pos = position_of(data, "kind") or doc.position
        if "kind" not in data:
            message = "missing required field 'kind'"
        elif not isinstance(kind, str):
            message = f"kind: must be a string, not {type_name(kind)}"
        else:
            hint = difflib.get_close_matches(kind, KINDS, n=1)
            message = f"kind: unknown kind {shown(kind)}" + (
                f" (did you mean '{hint[0]}'?)"
                if hint
                else f" (expected one of {', '.join(KINDS)})"
            )
        return None, [Problem(pos.file, pos.line, pos.col, message)]
    return kind, schema_problems(kind, data, doc.position)


def _read_stdin(stdin: TextIO) -> str:
    return stdin.read(MAX_FILE_BYTES + 1)


def project_root(paths: Sequence[str], configs: Sequence[Path] | None = None) -> tuple[Path, ...]:
    """The directories every path a manifest names must resolve inside (symlinks resolved):
    that of each config file in use (`configs`; None: found as `validate` finds them) and the
    manifest roots on the command line (a directory, a file's directory, `.` for none or `-`).

    All of them are chosen by whoever runs reconciler, none by the manifests.
    """
    found = _config_files(paths, None) if configs is None else configs
    return project_roots([*found, *(paths or ["."])])


def collect(
    paths: Sequence[str],
    *,
    stdin: TextIO | None = None,
    configs: Sequence[Path] | None = None,
) -> tuple[DesiredState | None, list[Problem]]:
    """Load and check every manifest `paths` name; the state only when there is no problem.

    `configs` are the config files in use (their directories are part of the project root);
    None looks for them as `validate` does.
    """
    problems: list[Problem] = []
    documents: list[Document] = []
    base_dirs: dict[str, Path] = {}
    roots = project_root(paths, configs)
    named = {Path(p) for p in paths}
    skipped = 0
    files = iter_manifest_files(paths or ["."])
    for path in files:
        result: LoadResult | None
        if str(path) == "-":
            result = load_stream(_read_stdin(stdin if stdin is not None else sys.stdin))
            base_dirs[STDIN_NAME] = Path.cwd()
        else:
            display = display_path(path)
            if path in named:
                result = load_file(path, display)
            else:
                result = _outside(path, roots) or load_walked(path, display, KINDS)
            base_dirs[display] = Path(os.path.abspath(path)).parent
        if result is None:
            skipped += 1
            continue
        documents.extend(result.documents)
        problems.extend(result.problems)
    if not documents and not problems:
        raise ConfigError(_no_manifests(paths or ["."], skipped))
    if skipped:
        log.warning(
            "skipped %s that %s not reconciler manifests (no apiVersion: reconciler/v1;"
            " name a file to read it anyway)",
            "1 YAML file" if skipped == 1 else f"{skipped} YAML files",
            "is" if skipped == 1 else "are",
        )
    complete = not problems
    valid: list[tuple[str, Document]] = []
    broken: list[tuple[str, Document]] = []
    for doc in documents:
        kind, found = check_document(doc)
        problems.extend(found)
        if kind is not None:
            (broken if found else valid).append((kind, doc))
    state, found = Resolver(base_dirs, complete=complete, roots=roots).resolve(valid, broken)
    problems.extend(found)
    if problems:
        return None, sorted(set(problems))
    assert state is not None  # the resolver returns a state whenever there is no problem
    # every field of the resolver's state (the kinds' own `records` too), with the documents
    # counted here (the resolver does not see those that failed to load)
    return dataclasses.replace(state, documents=len(documents)), []


def _no_manifests(paths: Sequence[str], skipped: int) -> str:
    """No manifests at all is an error, as Terraform's "No configuration files" is: a plan of an
    empty or mistyped directory would otherwise destroy every account (with --prune)."""
    where = ", ".join("<stdin>" if p == "-" else f"'{p}'" for p in paths)
    if skipped:
        files = f"{skipped} YAML file{'' if skipped == 1 else 's'}"
        return f"no manifests found in {where} (skipped {files} without apiVersion: reconciler/v1)"
    return (
        f"no manifests found in {where} (a manifest is a .yaml or .yml file with"
        " apiVersion: reconciler/v1)"
    )


def _outside(path: Path, roots: tuple[Path, ...]) -> LoadResult | None:
    """A file found by walking a directory that resolves (a symlink) outside the project root."""
    try:
        resolve_inside(path, roots)
    except FileRefused as exc:
        return LoadResult([], [Problem(display_path(path), 1, 1, f"{exc.reason}; not read")])
    return None


def load_desired_state(
    paths: Sequence[str], *, stdin: TextIO | None = None, config: Path | None = None
) -> DesiredState:
    """Load, validate and resolve the manifests `paths` name (`-` is stdin; none means `.`).

    `config` is the reconciler.yaml in use (its directory is the project root, with the
    manifest roots); None looks for it as `validate` does. Raises `ManifestError` carrying every
    problem found, sorted. Never touches the network.
    """
    state, problems = collect(paths, stdin=stdin, configs=None if config is None else [config])
    if state is None:
        raise ManifestError(problems)
    log.debug("%s documents, %s accounts", state.documents, len(state.accounts))
    return state


def _config_files(paths: Sequence[str], config: str | None) -> list[Path]:
    if config is not None:
        return [Path(config)]
    found = config_module.find_configs(paths or ["."])
    if not found and Path(CONFIG_NAME).is_file():
        # `plan m` uses ./reconciler.yaml when no directory argument holds one: `validate m`
        # checks the same file, so CI's validate step sees what the plan step will load.
        found.append(Path(CONFIG_NAME))
    return found


def _github_escape(text: str, *, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def _limit_problems(state: DesiredState, configs: Sequence[Path]) -> list[Problem]:
    """What each kind finds against the limits of the reconciler.yaml in use (`Kind.check`)."""
    if not state.records:
        return []
    # imported only here, as the resolver does: validating the first kinds loads no vendor client
    from reconciler.kinds import registered

    limits = config_module.limits_of(configs[0]) if configs else config_module.Limits()
    return [p for kind in registered() if kind.check is not None for p in kind.check(state, limits)]


def command(
    paths: list[str], *, config: str | None, fmt: str, stdout: TextIO, stdin: TextIO
) -> int:
    """`reconciler validate`: 0 when every manifest (and reconciler.yaml) is valid, else 1.

    Problems go to `stdout` like any linter's (`file:line:col: message`, one a line, sorted; or
    JSON, or GitHub annotations), and the result is 1.
    """
    manifest_paths, explicit_configs = config_module.split_paths(paths)
    problems: list[Problem] = []
    state: DesiredState | None = None
    configs = explicit_configs + _config_files(manifest_paths, config)
    if manifest_paths or not explicit_configs:
        state, problems = collect(manifest_paths, stdin=stdin, configs=configs)
    config_problems = [p for path in configs for p in config_module.check_config(path)]
    problems.extend(config_problems)
    if state is not None and not config_problems:
        problems.extend(_limit_problems(state, configs))
    problems = sorted(set(problems))
    documents = state.documents if state is not None else 0
    if fmt == "json":
        payload = {
            "formatVersion": JSON_FORMAT_VERSION,
            "valid": not problems,
            "documents": documents,
            "problems": [
                {"file": p.file, "line": p.line, "col": p.col, "message": p.message}
                for p in problems
            ],
        }
        stdout.write(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return 1 if problems else 0
    if problems and fmt == "github":
        for p in problems:
            stdout.write(
                f"::error file={_github_escape(p.file, prop=True)},line={p.line},col={p.col}"
                f"::{_github_escape(p.message)}\n"
            )
        return 1
    if problems:
        stdout.writelines(f"{p}\n" for p in problems)
        return 1
    stdout.write(f"{documents} document{'' if documents == 1 else 's'} valid\n")
    return 0
