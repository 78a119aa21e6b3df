"""Health-scan subgraph: score the book -> choose alerts -> churn narratives -> alerts on four channels."""

from __future__ import annotations

from langgraph.graph import END, START
from langgraph.graph.state import CompiledStateGraph

from src.app.context import CSMContext
from src.app.graph.subgraphs.llm_steps import add_llm_steps, new_subgraph
from src.app.nodes.health_scan import build_prompt, draft_alerts, score_accounts, select_alerts
from src.app.state import TaskInput, TaskOutput, WorkState


def build_health_scan_graph() -> CompiledStateGraph[WorkState, CSMContext, TaskInput, TaskOutput]:
    """Compile the health-scan subgraph."""
    builder = new_subgraph()
    builder.add_node("score_accounts", score_accounts)  # deterministic scores, saved to history
    builder.add_node("select_alerts", select_alerts)  # most severe first, cap, cooldown
    builder.add_node("build_prompt", build_prompt)  # churn-narrative prompts for alerted accounts only
    builder.add_node("draft_alerts", draft_alerts)  # store flag, event, email draft, chat message
    builder.add_edge(START, "score_accounts")
    builder.add_edge("score_accounts", "select_alerts")
    builder.add_edge("select_alerts", "build_prompt")
    add_llm_steps(builder, prompt="build_prompt", draft="draft_alerts")
    builder.add_edge("draft_alerts", END)
    return builder.compile(name="health_scan")
