"""Robust extraction of JSON objects from LLM text and validation into pydantic models."""

from __future__ import annotations

import pytest

from src.app.schemas import AdoptionInsights, ChurnNarrative, ExpansionPitches
from src.app.tools.llm.parsing import LLMParseError, extract_json_object, parse_model

PITCH = '{"opportunity_type": "seats", "recommended_talk_track": "Add 10 seats."}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Here you go:\n```\n{"a": {"b": [1, 2]}}\n```\nAnything else?', {"a": {"b": [1, 2]}}),
        ('Sure! {"a": 1} Hope this helps {"b": 2}', {"a": 1}),
        ('{"note": "braces } and { inside", "n": 2}', {"note": "braces } and { inside", "n": 2}),
        ('{"quote": "she said \\"}\\" loudly"}', {"quote": 'she said "}" loudly'}),
        ('{"a": [1, 2,], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}}),
        ('{"text": "keep, } this comma", "x": 1,}', {"text": "keep, } this comma", "x": 1}),
        ('{"text": "line one\nline two"}', {"text": "line one\nline two"}),
        ('[1] shows it: {"a": true}', {"a": True}),
        ('[{"x": 1}, {"x": 2}]', {"items": [{"x": 1}, {"x": 2}]}),
        ('The list: ["alpha", "beta"] done', {"items": ["alpha", "beta"]}),
    ],
)
def test_extract_json_object_finds_the_first_object(text: str, expected: dict[str, object]) -> None:
    assert extract_json_object(text) == expected


def test_fenced_block_wins_over_an_object_in_the_prose_before_it() -> None:
    text = 'The format is {"example": true}.\n```json\n{"real": 1}\n```'
    assert extract_json_object(text) == {"real": 1}


def test_an_outer_object_with_trailing_commas_is_not_lost_to_an_inner_one() -> None:
    assert extract_json_object('{"outer": {"x": 1}, "y": [1,],}') == {"outer": {"x": 1}, "y": [1]}


@pytest.mark.parametrize("text", [None, "", "   \n", "no json here", "{not: json}", '{"unterminated": 1'])
def test_extract_json_object_returns_none_without_json(text: str | None) -> None:
    assert extract_json_object(text) is None


def test_parse_model_validates_fenced_json_with_prose() -> None:
    body = '{"churn_narrative": "Acme is at risk.", "recommended_actions": ["Call"]}'
    text = f"Here is the analysis.\n```json\n{body}\n```\nLet me know if you need more."
    result = parse_model(text, ChurnNarrative)
    assert result == ChurnNarrative(churn_narrative="Acme is at risk.", recommended_actions=["Call"])


def test_parse_model_accepts_the_natural_list_wrapper() -> None:
    result = parse_model(f'{{"opportunities": [{PITCH}]}}', ExpansionPitches)
    assert [pitch.opportunity_type for pitch in result.opportunities] == ["seats"]


@pytest.mark.parametrize("wrapper", ["result", "data", "qbr"])
def test_parse_model_unwraps_one_wrapper_object(wrapper: str) -> None:
    text = f'{{"{wrapper}": {{"summary": "Adoption is 42%.", "recommendations": ["Train on API"]}}}}'
    assert parse_model(text, AdoptionInsights).recommendations == ["Train on API"]


def test_parse_model_unwraps_a_wrapper_around_a_schema_with_only_defaults() -> None:
    """ExpansionPitches validates `{}`-like input, so the wrapper must not silently yield no pitches."""
    result = parse_model(f'{{"result": {{"opportunities": [{PITCH}]}}}}', ExpansionPitches)
    assert len(result.opportunities) == 1


def test_parse_model_puts_a_bare_array_into_the_list_field() -> None:
    result = parse_model(f"[{PITCH}, {PITCH}]", ExpansionPitches)
    assert len(result.opportunities) == 2


def test_parse_model_without_json_says_so_and_truncates_the_text() -> None:
    with pytest.raises(LLMParseError, match="no JSON object found") as caught:
        parse_model("I cannot help with that. " * 100, ChurnNarrative)
    assert len(str(caught.value)) < 300


def test_parse_model_names_the_failing_fields_without_echoing_values() -> None:
    secret_value = "x" * 5000
    text = f'{{"churn_narrative": "{secret_value}", "recommended_actions": [1, 2]}}'
    with pytest.raises(LLMParseError) as caught:
        parse_model(text, ChurnNarrative)
    message = str(caught.value)
    assert message.startswith("ChurnNarrative validation failed")
    assert "churn_narrative" in message and "recommended_actions.0" in message
    assert secret_value[:50] not in message
    assert len(message) <= 300


def test_parse_model_reports_missing_required_field() -> None:
    with pytest.raises(LLMParseError, match="churn_narrative: Field required"):
        parse_model('{"recommended_actions": ["Call"]}', ChurnNarrative)


def test_parse_model_rejects_an_object_with_none_of_the_schema_fields() -> None:
    with pytest.raises(LLMParseError, match=r"ExpansionPitches: none of its fields found.*pitches"):
        parse_model('{"pitches": "none today"}', ExpansionPitches)


def test_llm_parse_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_model(None, ChurnNarrative)
