"""The Sales graph: one flow per expansion hand-off (validate -> record the opportunity -> draft the AE's note)."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from src.app.context import CSMContext
from src.app.nodes.sales import draft_ae_note, fan_out_handoffs, record_opportunity, validate_handoff
from src.app.state import OpportunityInput, OpportunityState, SalesInput, SalesOutput, SalesState


def build_opportunity_graph() -> CompiledStateGraph[OpportunityState, CSMContext, OpportunityInput, SalesOutput]:
    """Compile the flow that handles one hand-off record."""
    builder = StateGraph(
        OpportunityState, context_schema=CSMContext, input_schema=OpportunityInput, output_schema=SalesOutput
    )
    builder.add_node("validate_handoff", validate_handoff)  # SPEC §3 fields, known account, internal recipient
    builder.add_node("record_opportunity", record_opportunity)  # one record per account, type and quarter
    builder.add_node("draft_ae_note", draft_ae_note)  # the AE's draft (the rep's when no AE), audited
    builder.add_edge(START, "validate_handoff")
    builder.add_edge("record_opportunity", "draft_ae_note")
    builder.add_edge("draft_ae_note", END)
    return builder.compile(name="handle_expansion_opportunity")


SalesGraph = CompiledStateGraph[SalesState, CSMContext, SalesInput, SalesOutput]
"""The compiled Sales graph."""


def build_sales_graph() -> SalesGraph:
    """Compile the Sales graph (no checkpointer, so `langgraph dev` can load it)."""
    builder = StateGraph(SalesState, context_schema=CSMContext, input_schema=SalesInput, output_schema=SalesOutput)
    builder.add_node("handle_expansion_opportunity", build_opportunity_graph())  # one run per hand-off
    builder.add_conditional_edges(START, fan_out_handoffs, ["handle_expansion_opportunity"])  # Send per record
    builder.add_edge("handle_expansion_opportunity", END)
    return builder.compile(name="sales")


graph = build_sales_graph()
