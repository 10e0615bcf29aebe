"""Where the JSON Schemas are, the validators built from them, and their findings as problems.

An installed wheel carries them as `reconciler/schemas/` (pyproject force-includes the repository's
top-level `schemas/` there); an editable checkout has only the top-level copy. This module is the
one place that knows both.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator, ValidationError

import reconciler
from reconciler.errors import Problem
from reconciler.load import Node, format_path, key_position_of, locate, shown, type_name
from reconciler.model import Position

#: The schema of `reconciler.yaml`.
CONFIG_SCHEMA: Final = "reconciler"
#: Schemas that are not a manifest kind's: the config, any document, the plan's JSON.
NOT_KINDS: Final = frozenset({CONFIG_SCHEMA, "manifest", "plan", "drift-ignore"})


def schema_dir() -> Path:
    """The directory holding the schemas: the wheel's copy if present, else the checkout's."""
    package = Path(reconciler.__file__).parent
    shipped = package / "schemas"
    if (shipped / "OfficialAccount.schema.json").is_file():
        return shipped
    return package.parent / "schemas"


def _kinds() -> tuple[str, ...]:
    names = (path.name.removesuffix(".schema.json") for path in schema_dir().glob("*.schema.json"))
    return tuple(sorted(name for name in names if name not in NOT_KINDS))


#: The manifest kinds: every `schemas/<Kind>.schema.json` (a new kind's schema registers it).
KINDS: Final = _kinds()


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema `schemas/<name>.schema.json`."""
    with (schema_dir() / f"{name}.schema.json").open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


@cache
def validator(name: str) -> Draft202012Validator:
    """A draft 2020-12 validator for `schemas/<name>.schema.json`, built once."""
    return Draft202012Validator(load_schema(name))


_TYPE_NAMES: Final = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def schema_problems(name: str, data: Any, fallback: Position) -> list[Problem]:
    """Every schema violation of `data` against `schemas/<name>.schema.json`, positioned."""
    problems: set[Problem] = set()
    for error in validator(name).iter_errors(data):
        for pos, message in _describe(error, data, fallback):
            problems.add(Problem(pos.file, pos.line, pos.col, message))
    return sorted(problems)


def _is_variable(branch: Any) -> bool:
    return isinstance(branch, dict) and branch.get("$ref") == "#/$defs/variable"


def _describe(error: ValidationError, root: Any, fallback: Position) -> list[tuple[Position, str]]:
    path = list(error.absolute_path)
    where = format_path(path)
    prefix = f"{where}: " if where else ""
    pos = locate(root, path, fallback)
    instance: Any = error.instance
    kind: Any = error.validator
    value: Any = error.validator_value
    schema: Any = error.schema
    custom = schema.get("x-message") if isinstance(schema, dict) else None
    if kind == "additionalProperties" and isinstance(instance, Node):
        known = sorted(schema.get("properties", {}))
        found = []
        for key in instance:
            if key in known:
                continue
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            key_pos = key_position_of(instance, key) or pos
            found.append((key_pos, f"{prefix}unknown field {shown(key)}{suggestion}"))
        return found
    if kind == "anyOf" and error.context:
        # a field that may also be a ${VAR}: what the value breaks is its own form's rule
        own = [e for e in error.context if not _is_variable(value[e.relative_schema_path[0]])]
        return [found for e in own for found in _describe(e, root, fallback)]
    if kind == "required":
        missing = [f for f in value if f not in instance]
        return [(pos, f"{prefix}missing required field '{f}'") for f in missing]
    if custom and kind == "pattern":
        return [(pos, f"{prefix}{shown(instance)} {custom}")]
    if kind == "type":
        names = [value] if isinstance(value, str) else list(value)
        wanted = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
        return [(pos, f"{prefix}must be {wanted}, not {type_name(instance)}")]
    if kind == "const":
        return [(pos, f"{prefix}must be {shown(value)}, not {shown(instance)}")]
    if kind == "enum":
        choices = ", ".join(str(v) for v in value)
        return [(pos, f"{prefix}must be one of {choices}, not {shown(instance)}")]
    if kind == "minimum":
        return [(pos, f"{prefix}must be at least {value}, not {instance!r}")]
    if kind == "maximum":
        return [(pos, f"{prefix}must be at most {value}, not {instance!r}")]
    if kind == "exclusiveMinimum":
        return [(pos, f"{prefix}must be more than {value}, not {instance!r}")]
    if kind == "minLength" and value == 1:
        return [(pos, f"{prefix}must not be empty")]
    if kind == "uniqueItems":
        return [(pos, f"{prefix}lists an item more than once")]
    if kind == "pattern":
        return [(pos, f"{prefix}{shown(instance)} does not match {value}")]
    if custom:  # the schema's own words (an audience's one-of, an article's content)
        return [(pos, f"{prefix}{custom}")]
    if kind in ("minItems", "maxItems"):
        return [
            (pos, f"{prefix}must hold {'at least' if kind == 'minItems' else 'at most'} {value}")
        ]
    return [(pos, f"{prefix}{error.message}")]  # pragma: no cover - every keyword we use is above
