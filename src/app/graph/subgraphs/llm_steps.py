"""Wiring shared by the four subgraphs: prompt -> call -> parse (-> repair loop) -> draft."""

from __future__ import annotations

from typing import Any

from langgraph.graph import StateGraph

from src.app.context import CSMContext
from src.app.nodes.llm import call_llm, parse_response, route_after_parse
from src.app.state import TaskInput, TaskOutput, WorkState


def new_subgraph() -> StateGraph[WorkState, CSMContext, TaskInput, TaskOutput]:
    """A builder over the shared work state with the narrow task-in / result-out contract."""
    return StateGraph(WorkState, context_schema=CSMContext, input_schema=TaskInput, output_schema=TaskOutput)


def add_llm_steps(builder: StateGraph[Any, CSMContext, Any, Any], *, prompt: str, draft: str) -> None:
    """Add `call_llm` and `parse_response` between a prompt node and a draft node (any state with WorkState's keys)."""
    builder.add_node("call_llm", call_llm)  # litellm completions, bounded concurrency and retries
    builder.add_node("parse_response", parse_response)  # validate JSON; queue repairs while rounds remain
    builder.add_edge(prompt, "call_llm")
    builder.add_edge("call_llm", "parse_response")
    builder.add_conditional_edges("parse_response", route_after_parse, {"call_llm": "call_llm", "draft": draft})
