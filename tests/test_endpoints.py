"""The vendors' addresses are written once: the schema's regions are `REGION_DOMAINS`'s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from reconciler.endpoints import REGION_DOMAINS, WECHAT_ENDPOINT
from reconciler.schemas import CONFIG_SCHEMA, load_schema


def region_enums(node: Any) -> Iterator[list[str]]:
    """Every `region` property's `enum` in a schema, wherever it sits."""
    if isinstance(node, dict):
        region = node.get("properties", {}).get("region")
        # the region may be a `${VAR}` too: its names are then one branch of an anyOf
        for form in [region, *region.get("anyOf", [])] if isinstance(region, dict) else []:
            if "enum" in form:
                yield form["enum"]
        for value in node.values():
            yield from region_enums(value)
    elif isinstance(node, list):
        for value in node:
            yield from region_enums(value)


def test_the_schema_lists_exactly_the_known_regions() -> None:
    assert list(region_enums(load_schema(CONFIG_SCHEMA))) == [list(REGION_DOMAINS)]


def test_the_schema_names_the_default_wechat_endpoint() -> None:
    assert f"(default {WECHAT_ENDPOINT})" in json.dumps(load_schema(CONFIG_SCHEMA))
