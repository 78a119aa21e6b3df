"""Expansion subgraph: candidates -> talk tracks -> opportunity records and draft -> hand-off to Sales."""

from __future__ import annotations

from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph

from src.app.context import CSMContext
from src.app.graph.subgraphs.llm_steps import add_llm_steps, new_subgraph
from src.app.nodes.expansion import build_prompt, draft_opportunities, handoff_to_sales, score_expansion
from src.app.state import TaskInput, TaskOutput, WorkState


def build_expansion_graph() -> CompiledStateGraph[WorkState, CSMContext, TaskInput, TaskOutput]:
    """Compile the expansion subgraph."""
    builder = new_subgraph()
    builder.add_node("score_expansion", score_expansion)  # deterministic seats/module/integration candidates
    builder.add_node("build_prompt", build_prompt)  # talk-track prompt (no request when no candidates)
    builder.add_node("draft_opportunities", draft_opportunities)  # opportunity records + draft to the rep
    builder.add_node("handoff_to_sales", handoff_to_sales)  # the Sales hand-off seam
    builder.add_edge(START, "score_expansion")
    builder.add_edge("score_expansion", "build_prompt")
    add_llm_steps(builder, prompt="build_prompt", draft="draft_opportunities")
    builder.add_edge("draft_opportunities", "handoff_to_sales")
    builder.add_edge("handoff_to_sales", END)
    return builder.compile(name="check_expansion")
