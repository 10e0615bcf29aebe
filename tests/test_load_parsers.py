"""libyaml's parser and PyYAML's own give the same documents, positions and problems.

`load_text` reads a file with libyaml's events when PyYAML has them and falls back to PyYAML's
pure parser on any problem. Whatever the text, the result must be what the pure parser alone
gives: the same data, the same position for every mapping, key, value and item, and the same
problems. Every YAML file of the repository is compared, then hypothesis-made texts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import given, settings

from reconciler import load
from reconciler.load import LoadResult, Node, NodeList

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("RECONCILER_FUZZ_EXAMPLES", "300"))


def shape(value: Any) -> Any:
    """A value with every position spelled out, for exact comparison."""
    if isinstance(value, Node):
        return (
            "map",
            value.position,
            [
                (k, value.key_positions[k], value.value_positions[k], shape(v))
                for k, v in value.items()
            ],
        )
    if isinstance(value, NodeList):
        return (
            "seq",
            value.position,
            [(p, shape(v)) for p, v in zip(value.item_positions, value, strict=True)],
        )
    return (type(value).__name__, value)


def summary(result: LoadResult) -> Any:
    return [(d.index, d.position, shape(d.data)) for d in result.documents], result.problems


def same(text: str) -> None:
    assert summary(load.load_text(text, "f.yaml")) == summary(load._load_pure(text, "f.yaml"))


def yaml_files() -> list[Path]:
    found = [
        p
        for p in ROOT.rglob("*.y*ml")
        if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    ]
    assert len(found) > 20, found  # examples, manifests of the tests, golden inputs
    return sorted(found)


def test_libyaml_is_used_here() -> None:
    """CI's PyYAML wheels carry libyaml: the fast path is the one exercised, except where the
    two parsers part."""
    assert load.LIBYAML
    assert load._load_fast("a: 1\nb: 名\n", "f.yaml") is not None
    for text in ["a: 1\t\n", "? a\n", "a: \ufeff\n", "a: b\u2028\n", "url: x?y=1\n"]:
        assert load._load_fast(text, "f.yaml") is None, text
        same(text)


def test_every_yaml_file_of_the_repository_reads_the_same() -> None:
    for path in yaml_files():
        same(path.read_text(encoding="utf-8", errors="replace").removeprefix("\ufeff"))


def test_a_file_with_a_problem_is_read_by_the_pure_parser() -> None:
    for text in [
        "a: 1\na: 2\n",  # duplicate key: a problem of ours
        "a: [1, 2\n",  # a syntax error
        "{1: x}\n",  # a key that is not a string
        "a: &x [1]\nb: *y\n",  # an unknown alias
        "a: !!python/object {}\n",  # a tag SafeLoader refuses
        "[" * 100 + "]" * 100 + "\n",  # deeper than MAX_DEPTH
        "a: \x07\n",  # a control character
    ]:
        assert load._load_fast(text, "f.yaml") is None, text
        result = load.load_text(text, "f.yaml")
        assert result.problems, text
        same(text)


def test_positions_count_characters_not_bytes() -> None:
    text = "name: 新闻公众号\nintro: ok\nlist:\n\t- x\n"  # a tab is not indentation in YAML
    same(text)
    text = "名前: 新闻\n值: [甲, 乙, {丙: 丁}]\n---\n- 一\n- 二: 三\n"
    result = load.load_text(text, "f.yaml")
    assert not result.problems
    assert result.documents[0].data.value_positions["值"].col == 4
    same(text)


PIECES = st.sampled_from(
    [
        "a",
        "b",
        "名",
        ":",
        ": ",
        "- ",
        "\n",
        "  ",
        "\t",
        "[",
        "]",
        "{",
        "}",
        ",",
        "#",
        "'",
        '"',
        "&x ",
        "*x",
        "---\n",
        "...\n",
        "|\n",
        ">-\n",
        "? ",
        "!!str ",
        "%YAML 1.1\n",
        "1",
        "null",
        "true",
        "\\",
        "\r\n",
        "\ufeff",
        "\u2028",
        "\x85",
        "|+\n",
        "<<: *x\n",
        "%TAG ! tag:x,2000:\n",
        "!x ",
        "~",
    ]
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(PIECES, max_size=40).map("".join))
def test_any_text_reads_the_same(text: str) -> None:
    same(text)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        ),
        max_leaves=20,
    ),
    st.sampled_from([None, True, False]),
)
def test_any_dumped_document_reads_the_same(value: Any, flow: bool | None) -> None:
    import yaml

    same(yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True))
