"""The import readers' fast JSON paths: every value, error and line is the standard library's."""

from __future__ import annotations

import io
import json
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.app.cli.import_readers import loads, object_or_problem, read_rows

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\0", '"', "\\", "\n", "\ud800"]))
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
)
JSONISH = st.text(alphabet=st.sampled_from(list('{}[]",:0123456789.eE+- \n\t\\uNaInfitylsrc\x00\x0cé')), max_size=40)


def same(left: Any, right: Any) -> bool:
    """Equal as values, NaN equal to NaN, key order and int/float kinds compared too."""
    return repr(left) == repr(right)


@settings(max_examples=300, deadline=None)
@given(value=VALUES, ascii_only=st.booleans(), indent=st.sampled_from([None, 0, 1, 4]))
def test_loads_decodes_what_the_standard_library_decodes(value: Any, ascii_only: bool, indent: int | None) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert same(loads(text), json.loads(text))


@settings(max_examples=400, deadline=None)
@given(text=JSONISH)
def test_loads_refuses_what_the_standard_library_refuses(text: str) -> None:
    try:
        expected = json.loads(text)
    except json.JSONDecodeError as error:
        with pytest.raises(json.JSONDecodeError) as raised:
            loads(text)
        assert (raised.value.msg, raised.value.pos) == (error.msg, error.pos)
    else:
        assert same(loads(text), expected)


def test_loads_keeps_the_standard_librarys_answers_where_the_fast_parser_refuses() -> None:
    assert loads('"\\ud800"') == "\ud800"  # an unpaired surrogate escape
    assert loads("[" * 300 + "]" * 300) == json.loads("[" * 300 + "]" * 300)  # past the fast parser's depth
    with pytest.raises(RecursionError):
        loads("[" * 100_000 + "]" * 100_000)


RECORDS = st.lists(
    st.dictionaries(st.sampled_from(["account_id", "name", "notes", "tickets", "arr"]), VALUES, min_size=1),
    max_size=8,
)
LAYOUTS = st.sampled_from(["one per line", "indented", "two per line", "same line as the bracket", "spaced commas"])


def array_text(items: list[Any], layout: str) -> tuple[str, list[int]]:
    """A JSON array of `items` laid out as named, and the line each item starts on."""
    parts = [json.dumps(item, indent=1 if layout == "indented" else None) for item in items]
    if layout == "indented":  # as json.dumps(indent=...) nests them: every line of an item indented alike
        parts = ["\n".join("  " + line for line in part.splitlines()) for part in parts]
    separators = {"two per line": [", ", ",\n"], "same line as the bracket": [","], "spaced commas": [" ,\n"]}
    text, lines = ("[" if layout == "same line as the bracket" else "[\n"), []
    for index, part in enumerate(parts):
        if index:
            options = separators.get(layout, [",\n"])
            text += options[index % len(options)]
        lines.append(text.count("\n") + 1)
        text += part
    return text + "\n]\n", lines


@settings(max_examples=150, deadline=None)
@given(items=RECORDS, layout=LAYOUTS, chunk=st.sampled_from([5, 64, 1 << 20]))
def test_array_items_and_lines_match_the_standard_library_in_every_layout(
    items: list[dict[str, Any]], layout: str, chunk: int
) -> None:
    text, lines = array_text(items, layout)
    with patch("src.app.cli.import_readers.CHUNK_CHARS", chunk):
        rows = list(read_rows(io.BytesIO(text.encode()), "json"))
    assert [(line, index) for line, index, _ in rows] == list(zip(lines, range(len(items)), strict=True))
    for (line, index, row), item in zip(rows, json.loads(text), strict=True):
        assert same(row, object_or_problem(item, line, index))
