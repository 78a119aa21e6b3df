"""QBR subgraph: account facts -> QBR prompt -> narrative -> QBR page and the rep's draft."""

from __future__ import annotations

from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph

from src.app.context import CSMContext
from src.app.graph.subgraphs.llm_steps import add_llm_steps, new_subgraph
from src.app.nodes.qbr import build_prompt, draft_qbr, score_qbr
from src.app.state import TaskInput, TaskOutput, WorkState


def build_qbr_graph() -> CompiledStateGraph[WorkState, CSMContext, TaskInput, TaskOutput]:
    """Compile the QBR subgraph."""
    builder = new_subgraph()
    builder.add_node("score_qbr", score_qbr)  # score, ROI metrics, adoption, expansion candidates
    builder.add_node("build_prompt", build_prompt)  # QBR narrative prompt from those facts
    builder.add_node("draft_qbr", draft_qbr)  # QBR page + draft to the rep
    builder.add_edge(START, "score_qbr")
    builder.add_edge("score_qbr", "build_prompt")
    add_llm_steps(builder, prompt="build_prompt", draft="draft_qbr")
    builder.add_edge("draft_qbr", END)
    return builder.compile(name="generate_qbr")
