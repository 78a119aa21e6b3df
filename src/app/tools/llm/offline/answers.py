"""The offline writer's answers, with no litellm: the schema's writer over the prompt's fenced facts."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from src.app.prompts.fencing import FACTS_OPEN
from src.app.tools.llm.offline.adoption import adoption_insights
from src.app.tools.llm.offline.churn import churn_narrative
from src.app.tools.llm.offline.expansion import expansion_pitches
from src.app.tools.llm.offline.phrasing import Answer, Facts, as_dict, as_list, clean, num, read_account
from src.app.tools.llm.offline.qbr import qbr_narrative
from src.app.tools.llm.offline.supervisor import supervisor_route

_DECODER = json.JSONDecoder(strict=False)
_FACTS_MARKER = re.compile(re.escape(FACTS_OPEN) + r"\s*")


def estimated_tokens(text: str) -> int:
    """Tokens of a text as the offline writer counts them (~4 characters a token, at least 1)."""
    return max(1, len(text) // 4)


def write_answer(messages: list[Any], response_format: object) -> str:
    """The JSON answer: the writer named by the response schema, or one generated from the schema itself."""
    name, schema = _requested_schema(response_format)
    facts = _facts(messages)
    writer = _WRITERS.get(name)
    if writer is not None:
        answer = writer(facts)
    else:
        answer = _from_schema(schema, as_dict(schema.get("$defs")), read_account(facts).name)
    return json.dumps(answer, ensure_ascii=False)


def _requested_schema(response_format: object) -> tuple[str, dict[str, Any]]:
    """Name and JSON schema of a `{"type": "json_schema", "json_schema": {...}}` response format."""
    spec = as_dict(as_dict(response_format).get("json_schema"))
    return str(spec.get("name") or ""), as_dict(spec.get("schema"))


def _facts(messages: list[Any]) -> dict[str, Any]:
    """The facts of the last user message that has a JSON object right after a FACTS_OPEN marker ({} if none).

    Looking further back than the very last user message keeps repair turns ("your reply was invalid...")
    grounded. Markers that only mention the fence (as DATA_RULE does) are skipped since no object follows
    them, and a closing marker inside a JSON string cannot cut the object short.
    """
    for message in reversed(messages):
        if as_dict(message).get("role") == "user":
            facts = _fenced_object(message_text(message))
            if facts is not None:
                return facts
    return {}


def _fenced_object(text: str) -> dict[str, Any] | None:
    """The first JSON object that directly follows a FACTS_OPEN marker in `text`."""
    for marker in _FACTS_MARKER.finditer(text):
        try:
            value, _ = _DECODER.raw_decode(text, marker.end())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def message_text(message: object) -> str:
    """Text of a chat message whose content is a string or a list of text parts."""
    content = as_dict(message).get("content")
    if isinstance(content, str):
        return content
    return "".join(str(as_dict(part).get("text") or "") for part in as_list(content))


def _from_schema(node: Mapping[str, Any], defs: Mapping[str, Any], name: str) -> Any:
    """A minimal value valid for a JSON schema node: text for strings, [] for lists, 0 for numbers."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _from_schema(as_dict(defs.get(ref.rsplit("/", 1)[-1])), defs, name)
    for key in ("const", "default"):
        if key in node:
            return node[key]
    if as_list(node.get("enum")):
        return as_list(node.get("enum"))[0]
    options = [as_dict(option) for option in as_list(node.get("anyOf") or node.get("oneOf"))]
    if options:
        return None if any(o.get("type") == "null" for o in options) else _from_schema(options[0], defs, name)
    return _from_type(node, defs, name)


def _from_type(node: Mapping[str, Any], defs: Mapping[str, Any], name: str) -> Any:
    """The value for a typed schema node (object, array, string, number, boolean)."""
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        properties = as_dict(node.get("properties"))
        return {
            key: _from_schema(as_dict(properties.get(key)), defs, name)
            for key in as_list(node.get("required"))
            if isinstance(key, str)
        }
    if kind == "array":
        count = int(num(node.get("minItems")) or 0)
        return [_from_schema(as_dict(node.get("items")), defs, name) for _ in range(count)]
    if kind == "string":
        text = f"{clean(node.get('title'), limit=40) or 'Summary'} for {name}."
        return text[: int(num(node.get("maxLength")) or len(text))]
    if kind in ("integer", "number"):
        lowest = num(node.get("minimum")) or 0
        return math.ceil(lowest) if kind == "integer" else lowest
    return False if kind == "boolean" else None


_WRITERS: dict[str, Callable[[Facts], Answer]] = {
    "ChurnNarrative": churn_narrative,
    "QBRNarrative": qbr_narrative,
    "ExpansionPitches": expansion_pitches,
    "AdoptionInsights": adoption_insights,
    "SupervisorRoute": supervisor_route,
}
