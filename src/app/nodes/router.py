"""The router node: sends the task to the subgraph named by its type."""

from __future__ import annotations

from typing import Literal

from langgraph.types import Command

from src.app.state import CSMState


async def route_task(
    state: CSMState,
) -> Command[Literal["health_scan", "generate_qbr", "check_expansion", "track_feature_adoption"]]:
    """Go to the subgraph for `task["type"]` (unknown types never get here: the state rejects them).

    Hand-offs of an earlier run on the same thread are cleared: only check_expansion writes new ones.
    """
    return Command(goto=state.task.type, update={"handoffs": []})
