"""The supervisor graph: a request -> the customer-success or Sales graph, with the hand-off edge between them."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from src.app.context import CSMContext
from src.app.graph.customer_success import build_customer_success_graph
from src.app.graph.sales import build_sales_graph
from src.app.graph.subgraphs.llm_steps import add_llm_steps
from src.app.nodes.supervisor import build_prompt, resolve_request, route_handoffs, route_request
from src.app.state import (
    RequestInput,
    RequestOutput,
    RequestState,
    SupervisorInput,
    SupervisorOutput,
    SupervisorState,
)


def build_request_graph() -> CompiledStateGraph[RequestState, CSMContext, RequestInput, RequestOutput]:
    """Compile the subgraph that turns a text request into a task (prompt -> call -> parse -> resolve)."""
    builder = StateGraph(
        RequestState, context_schema=CSMContext, input_schema=RequestInput, output_schema=RequestOutput
    )
    builder.add_node("build_prompt", build_prompt)  # the request, fenced as data
    builder.add_node("resolve_request", resolve_request)  # SupervisorRoute -> task; account hint checked in the store
    builder.add_edge(START, "build_prompt")
    add_llm_steps(builder, prompt="build_prompt", draft="resolve_request")
    builder.add_edge("resolve_request", END)
    return builder.compile(name="interpret_request")


def build_supervisor_graph(
    *, checkpointer: Checkpointer = None
) -> CompiledStateGraph[SupervisorState, CSMContext, SupervisorInput, SupervisorOutput]:
    """Compile the supervisor (no checkpointer unless given, so `langgraph dev` can load it)."""
    builder = StateGraph(
        SupervisorState, context_schema=CSMContext, input_schema=SupervisorInput, output_schema=SupervisorOutput
    )
    builder.add_node("route_request", route_request)  # task dicts by type; text is interpreted first
    builder.add_node("interpret_request", build_request_graph())  # LLM routing with typed output
    builder.add_node("customer_success", build_customer_success_graph())  # the CSM graph, embedded as is
    builder.add_node("sales", build_sales_graph())  # the Sales graph: one flow per hand-off
    builder.add_edge(START, "route_request")
    builder.add_edge("interpret_request", "customer_success")
    builder.add_conditional_edges("customer_success", route_handoffs, {"sales": "sales", END: END})  # hand-off edge
    builder.add_edge("sales", END)
    return builder.compile(checkpointer=checkpointer, name="supervisor")


graph = build_supervisor_graph()
