"""Where the JSON Schemas are, and the validators built from them.

An installed wheel carries them as `reconciler/schemas/` (pyproject force-includes the repository's
top-level `schemas/` there); an editable checkout has only the top-level copy. This module is the
one place that knows both.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator

import reconciler

#: The schema of `reconciler.yaml`.
CONFIG_SCHEMA: Final = "reconciler"
#: Schemas that are not a manifest kind's: the config, any document, the plan's JSON.
NOT_KINDS: Final = frozenset({CONFIG_SCHEMA, "manifest", "plan"})


def schema_dir() -> Path:
    """The directory holding the schemas: the wheel's copy if present, else the checkout's."""
    package = Path(reconciler.__file__).parent
    shipped = package / "schemas"
    if (shipped / "OfficialAccount.schema.json").is_file():
        return shipped
    return package.parent / "schemas"


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


#: The manifest kinds: every `schemas/<Kind>.schema.json` (a new kind's schema registers it).
KINDS: Final = tuple(
    sorted(
        name
        for path in schema_dir().glob("*.schema.json")
        if (name := path.name.removesuffix(".schema.json")) not in NOT_KINDS
    )
)
