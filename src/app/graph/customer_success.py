"""The customer-success graph: route_task -> one of four compiled subgraphs -> END."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from src.app.context import CSMContext
from src.app.graph.subgraphs.expansion import build_expansion_graph
from src.app.graph.subgraphs.feature_adoption import build_feature_adoption_graph
from src.app.graph.subgraphs.health_scan import build_health_scan_graph
from src.app.graph.subgraphs.qbr import build_qbr_graph
from src.app.nodes.router import route_task
from src.app.state import CSMOutput, CSMState


def build_customer_success_graph(
    *, checkpointer: Checkpointer = None
) -> CompiledStateGraph[CSMState, CSMContext, CSMState, CSMOutput]:
    """Compile the customer-success graph (no checkpointer unless given, so `langgraph dev` can load it)."""
    builder = StateGraph(CSMState, context_schema=CSMContext, output_schema=CSMOutput)
    builder.add_node("route_task", route_task)  # typed routing on task["type"]
    builder.add_node("health_scan", build_health_scan_graph())  # score the book, alert
    builder.add_node("generate_qbr", build_qbr_graph())  # quarterly business review
    builder.add_node("check_expansion", build_expansion_graph())  # opportunities -> Sales
    builder.add_node("track_feature_adoption", build_feature_adoption_graph())  # adoption report
    builder.add_edge(START, "route_task")
    for subgraph in ("health_scan", "generate_qbr", "check_expansion", "track_feature_adoption"):
        builder.add_edge(subgraph, END)
    return builder.compile(checkpointer=checkpointer, name="customer_success")


graph = build_customer_success_graph()
