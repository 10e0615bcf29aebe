"""The JSON Schemas: valid draft 2020-12, documented for editors, shipped in the wheel."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from reconciler.schemas import CONFIG_SCHEMA, KINDS, load_schema, schema_dir, validator

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = sorted((ROOT / "schemas").glob("*.schema.json"))


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_every_schema_is_valid(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _properties(schema: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(schema, dict):
        for name, sub in schema.get("properties", {}).items():
            yield f"{path}.{name}", sub
        for key, sub in schema.items():
            if key != "properties":
                yield from _properties(sub, path)
            else:
                for name, prop in sub.items():
                    yield from _properties(prop, f"{path}.{name}")
    elif isinstance(schema, list):
        for item in schema:
            yield from _properties(item, path)


@pytest.mark.parametrize("name", [*KINDS, CONFIG_SCHEMA])
def test_every_field_has_a_description_for_editors(name: str) -> None:
    schema = load_schema(name)
    assert schema["description"]
    undocumented = [
        path
        for path, prop in _properties(schema)
        if not prop.get("description") and path.rsplit(".", 1)[-1] != "type"
    ]
    assert undocumented == []


def test_lookup_finds_the_repository_copy_in_a_checkout() -> None:
    assert schema_dir() == ROOT / "schemas"
    assert validator("MassSpeed") is validator("MassSpeed")
    assert set(KINDS) | {CONFIG_SCHEMA} <= {p.name.split(".")[0] for p in SCHEMAS}


def test_wheel_ships_the_schemas(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("reconciler-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {
            Path(name).name: archive.read(name)
            for name in archive.namelist()
            if name.startswith("reconciler/schemas/")
        }
    assert shipped == {p.name: p.read_bytes() for p in SCHEMAS}


def test_manifest_schema_dispatches_on_kind() -> None:
    resources = [
        (p.name, Resource.from_contents(json.loads(p.read_text(encoding="utf-8")))) for p in SCHEMAS
    ]
    registry: Registry[Any] = Registry().with_resources(resources)
    combined = Draft202012Validator(load_schema("manifest"), registry=registry)
    good = {
        "apiVersion": "reconciler/v1",
        "kind": "MassSpeed",
        "metadata": {"name": "wx"},
        "spec": {"speed": 2},
    }
    assert list(combined.iter_errors(good)) == []
    bad = good | {"spec": {"speed": 7}}
    assert [e.message for e in combined.iter_errors(bad)] == ["7 is greater than the maximum of 4"]
    assert [e.message for e in combined.iter_errors({"kind": "Pod"})] == [
        "'Pod' is not one of ['Broadcast', 'MassMessage', 'MassSpeed', 'OfficialAccount',"
        " 'SubscriberSet', 'UserAccounts']"
    ]
