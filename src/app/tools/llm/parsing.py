"""Pull the JSON object out of messy LLM text and validate it into a pydantic model."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar, get_origin

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_DECODER = json.JSONDecoder(strict=False)  # tolerate raw newlines/tabs inside strings
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
_CLOSER_AHEAD = re.compile(r"\s*[}\]]")
_PREVIEW_CHARS = 200
_MAX_ERRORS = 5


class LLMParseError(ValueError):
    """The model's reply holds no usable JSON object, or the object does not fit the schema."""


def extract_json_object(text: str | None) -> dict[str, Any] | None:
    """Return the first JSON object in `text` (fenced blocks first), wrapping a top-level array as `items`.

    Tolerates prose before and after, braces inside strings and trailing commas. Returns None when the
    text is empty or holds no JSON object or array.
    """
    if not text or not text.strip():
        return None
    for candidate in [*_FENCE.findall(text), text]:
        found = _scan(candidate)
        if found is not None:
            return found
    return None


def parse_model(text: str | None, schema: type[M]) -> M:
    """Extract the JSON object from `text` and validate it as `schema`, unwrapping one wrapper level.

    Raises:
        LLMParseError: no JSON object was found, or neither the object nor one wrapped inside it fits.
    """
    data = extract_json_object(text)
    if data is None:
        raise LLMParseError(f"no JSON object found in model output: {_preview(text or '')!r}")
    error: ValidationError | None = None
    try:
        direct = schema.model_validate(data)
        if _shares_fields(data, schema):
            return direct
    except ValidationError as exc:
        error = exc
    inner = _validate_unwrapped(data, schema)
    if inner is not None:
        return inner
    if error is None:
        raise LLMParseError(f"{schema.__name__}: none of its fields found, got keys {_preview(str(sorted(data)))}")
    raise LLMParseError(f"{schema.__name__} validation failed: {_describe(error)}") from error


def _scan(text: str) -> dict[str, Any] | None:
    """First decodable object in `text`; an array of objects wins if it comes first, other arrays last."""
    fallback: list[Any] | None = None
    for match in re.finditer(r"[{\[]", text):
        try:
            value = _decode_at(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
        if isinstance(value, list):
            if any(isinstance(item, dict) for item in value):
                return {"items": value}
            fallback = value if fallback is None else fallback
    return None if fallback is None else {"items": fallback}


def _decode_at(text: str, start: int) -> Any:
    """Decode the JSON value at `start`; when it fails on a trailing comma, retry once without them."""
    try:
        return _DECODER.raw_decode(text, start)[0]
    except json.JSONDecodeError as error:
        closes = text[error.pos : error.pos + 1] in ("}", "]")
        if not (closes and text[start : error.pos].rstrip().endswith(",")):
            raise
        return _DECODER.raw_decode(_drop_trailing_commas(text[start:]))[0]


def _drop_trailing_commas(text: str) -> str:
    """Remove commas that directly precede `}` or `]` outside of JSON strings (`text` starts at a value)."""
    out: list[str] = []
    in_string = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif in_string:
            escaped = char == "\\"
            in_string = char != '"'
        elif char == '"':
            in_string = True
        elif char == "," and _CLOSER_AHEAD.match(text, index + 1):
            continue
        out.append(char)
    return "".join(out)


def _shares_fields(data: dict[str, Any], schema: type[BaseModel]) -> bool:
    """Whether `data` carries at least one of the schema's field names or aliases."""
    keys = set(schema.model_fields)
    keys.update(field.alias for field in schema.model_fields.values() if field.alias)
    return bool(keys & set(data))


def _validate_unwrapped(data: dict[str, Any], schema: type[M]) -> M | None:
    """Validate one level down: a nested object (`{"result": {...}}`) or a bare list for the list field."""
    inner: list[dict[str, Any]] = [value for value in data.values() if isinstance(value, dict)]
    list_fields = [name for name, field in schema.model_fields.items() if get_origin(field.annotation) is list]
    if len(list_fields) == 1:
        inner += [{list_fields[0]: value} for value in data.values() if isinstance(value, list)]
    for candidate in inner:
        try:
            model = schema.model_validate(candidate)
        except ValidationError:
            continue
        if _shares_fields(candidate, schema):
            return model
    return None


def _describe(error: ValidationError) -> str:
    """Field locations and messages of a validation error, without the offending input values."""
    parts = [
        f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)[:_MAX_ERRORS]
    ]
    more = error.error_count() - len(parts)
    return _preview("; ".join(parts) + (f" (+{more} more)" if more > 0 else ""))


def _preview(text: str) -> str:
    """`text` cut to the preview length."""
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"
