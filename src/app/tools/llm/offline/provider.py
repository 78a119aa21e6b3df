"""The offline provider: litellm plumbing, fenced-facts extraction, the writer table and schema-default answers."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from src.app.config import OFFLINE_MODEL
from src.app.prompts.fencing import FACTS_OPEN
from src.app.tools.llm.offline.adoption import adoption_insights
from src.app.tools.llm.offline.churn import churn_narrative
from src.app.tools.llm.offline.expansion import expansion_pitches
from src.app.tools.llm.offline.phrasing import Answer, Facts, as_dict, as_list, clean, num, read_account
from src.app.tools.llm.offline.qbr import qbr_narrative
from src.app.tools.llm.offline.supervisor import supervisor_route

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # must precede the import: no cost-map download

import litellm  # noqa: E402
from litellm.llms.custom_llm import CustomLLM  # noqa: E402
from litellm.types.utils import ModelResponse, Usage  # noqa: E402

OFFLINE_PROVIDER = OFFLINE_MODEL.partition("/")[0]

_DECODER = json.JSONDecoder(strict=False)
_FACTS_MARKER = re.compile(re.escape(FACTS_OPEN) + r"\s*")


class OfflineWriter(CustomLLM):
    """litellm handler for `offline/<anything>`: schema-valid JSON written from the prompt's fenced facts."""

    def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Answer a synchronous completion."""
        return _respond(kwargs)

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        """Answer an asynchronous completion (no I/O happens, so this is `completion`)."""
        return _respond(kwargs)


def register_offline_provider() -> None:
    """Add the offline provider to `litellm.custom_provider_map` once, keeping any other entries."""
    if not any(item.get("provider") == OFFLINE_PROVIDER for item in litellm.custom_provider_map):
        litellm.custom_provider_map.append({"provider": OFFLINE_PROVIDER, "custom_handler": OfflineWriter()})


def _respond(kwargs: Mapping[str, Any]) -> ModelResponse:
    """Build litellm's response object around the written answer, with usage estimated at ~4 chars a token."""
    messages = list(kwargs.get("messages") or [])
    optional_params = kwargs.get("optional_params") or {}
    content = _write_answer(messages, optional_params.get("response_format"))
    prompt_tokens = max(1, sum(len(_text(message)) for message in messages) // 4)
    completion_tokens = max(1, len(content) // 4)
    return ModelResponse(
        id="offline-" + hashlib.sha256(content.encode()).hexdigest()[:24],
        model=f"{OFFLINE_PROVIDER}/{kwargs.get('model') or OFFLINE_MODEL.partition('/')[2]}",
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        usage=Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
    )


def _write_answer(messages: list[Any], response_format: object) -> str:
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
            facts = _fenced_object(_text(message))
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


def _text(message: object) -> str:
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
