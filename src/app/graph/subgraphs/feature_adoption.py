"""Feature-adoption subgraph: adoption figures -> recommendations -> report and the rep's draft."""

from __future__ import annotations

from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph

from src.app.context import CSMContext
from src.app.graph.subgraphs.llm_steps import add_llm_steps, new_subgraph
from src.app.nodes.adoption import build_prompt, draft_adoption_report, score_adoption
from src.app.state import TaskInput, TaskOutput, WorkState


def build_feature_adoption_graph() -> CompiledStateGraph[WorkState, CSMContext, TaskInput, TaskOutput]:
    """Compile the feature-adoption subgraph."""
    builder = new_subgraph()
    builder.add_node("score_adoption", score_adoption)  # adoption rate, underused features, benchmark
    builder.add_node("build_prompt", build_prompt)  # recommendations prompt
    builder.add_node("draft_adoption_report", draft_adoption_report)  # report + draft to the rep
    builder.add_edge(START, "score_adoption")
    builder.add_edge("score_adoption", "build_prompt")
    add_llm_steps(builder, prompt="build_prompt", draft="draft_adoption_report")
    builder.add_edge("draft_adoption_report", END)
    return builder.compile(name="track_feature_adoption")
