"""The LLM nodes every subgraph shares: build requests, call (bounded concurrency), parse with bounded repair."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Literal

import structlog
from langgraph.runtime import Runtime
from pydantic import BaseModel

from src.app.config import redact_secrets
from src.app.context import CSMContext
from src.app.documents.numbers import model_texts, unknown_numbers
from src.app.prompts import repair
from src.app.prompts.fencing import fence_facts
from src.app.schemas import AdoptionInsights, ChurnNarrative, ExpansionPitches, QBRNarrative, SupervisorRoute
from src.app.state import LLMRequest, WorkError, WorkState
from src.app.tools.llm.parsing import LLMParseError, parse_model
from src.app.tools.llm.usage import deliver_llm_usage, record_llm_usage

log = structlog.get_logger(__name__)

LLM_OUTPUT_SCHEMAS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (ChurnNarrative, QBRNarrative, ExpansionPitches, AdoptionInsights, SupervisorRoute)
}
MAX_LLM_ROUNDS = 3
"""One call plus at most two repair rounds per key."""
FIGURES_CHECKED = frozenset({QBRNarrative.__name__, ChurnNarrative.__name__})
"""Outputs whose prose may quote only numbers among the facts (every figure is computed, never written)."""


def prompt_requests(facts: Mapping[str, Mapping[str, Any]], prompt: ModuleType, schema: str) -> list[LLMRequest]:
    """One request per facts entry, rendered from a prompt module's SYSTEM and USER templates."""
    return [
        LLMRequest(
            key=key,
            schema=schema,
            messages=[
                {"role": "system", "content": prompt.SYSTEM},
                {"role": "user", "content": prompt.USER.format(facts_block=fence_facts(entry))},
            ],
        )
        for key, entry in facts.items()
    ]


async def call_llm(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Make every pending completion concurrently; a failed call becomes an error, never an exception.

    Each reply's usage goes into the state's token counts and into the run's usage meters (`llm_usage`), and
    to any usage sink (a worker's run ledger) before the node returns, i.e. before the reply is checkpointed.
    """
    requests = state.get("llm_requests", [])
    llm = runtime.context.llm
    outcomes = await asyncio.gather(
        *(llm.complete(r["messages"], schema=LLM_OUTPUT_SCHEMAS[r["schema"]]) for r in requests),
        return_exceptions=True,
    )
    replies: dict[str, str | None] = {}
    errors: list[WorkError] = []
    usage = dict(state.get("llm_usage", {"prompt_tokens": 0, "completion_tokens": 0}))
    for request, outcome in zip(requests, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            log.warning("llm_call_failed", key=request["key"], error_type=type(outcome).__name__)
            message = redact_secrets(_describe(outcome), runtime.context.settings)
            errors.append(WorkError(account_id=request["key"], stage="call_llm", message=message))
            continue
        replies[request["key"]] = outcome.content
        record_llm_usage(outcome)
        usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + outcome.prompt_tokens
        usage["completion_tokens"] = usage.get("completion_tokens", 0) + outcome.completion_tokens
    await deliver_llm_usage([outcome for outcome in outcomes if not isinstance(outcome, BaseException)])
    return {
        "llm_replies": replies,
        "llm_usage": usage,
        "llm_attempt": state.get("llm_attempt", 0) + 1,
        "errors": errors,
    }


async def parse_response(state: WorkState) -> dict[str, Any]:
    """Validate each reply into its schema; queue a repair request for failures while rounds remain."""
    parsed = dict(state.get("parsed", {}))
    replies = state.get("llm_replies", {})
    retry: list[LLMRequest] = []
    errors: list[WorkError] = []
    for request in state.get("llm_requests", []):
        if request["key"] not in replies:
            continue
        reply = replies[request["key"]]
        try:
            model = parse_model(reply, LLM_OUTPUT_SCHEMAS[request["schema"]])
            _check_figures(request, model, state.get("facts", {}).get(request["key"]))
        except LLMParseError as problem:
            if state.get("llm_attempt", 1) < MAX_LLM_ROUNDS:
                retry.append(_repair_request(request, reply, str(problem)))
            else:
                errors.append(WorkError(account_id=request["key"], stage="parse_response", message=str(problem)))
            continue
        parsed[request["key"]] = model.model_dump(mode="json")
    return {"parsed": parsed, "llm_requests": retry, "errors": errors}


def route_after_parse(state: WorkState) -> Literal["call_llm", "draft"]:
    """Loop back to the LLM while repair requests are pending, else go on to drafting."""
    return "call_llm" if state.get("llm_requests") else "draft"


def _check_figures(request: LLMRequest, model: BaseModel, facts: Mapping[str, Any] | None) -> None:
    """LLMParseError when the prose quotes a number that is not among the request's facts."""
    if request["schema"] not in FIGURES_CHECKED or facts is None:
        return
    unknown = unknown_numbers(model_texts(model.model_dump(mode="json")), facts)
    if unknown:
        raise LLMParseError(
            f"the text quotes numbers that are not among the facts ({', '.join(unknown)}); "
            "use only the figures given in the facts, as given, or write the sentence without a number"
        )


def _repair_request(request: LLMRequest, reply: str | None, problem: str) -> LLMRequest:
    messages = [*request["messages"], {"role": "assistant", "content": (reply or "")[:4000]}]
    messages.append({"role": "user", "content": repair.USER.format(problem=problem)})
    return LLMRequest(key=request["key"], schema=request["schema"], messages=messages)


def _describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__
