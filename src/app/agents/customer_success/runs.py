"""Resumable runs: one-account tasks run on a deterministic thread and resume where a dead run stopped.

`invoke_resumable` runs a graph on a thread whose id is derived from the task (`run_thread_id`): when the
thread holds an unfinished run of the same task (the process died, or a node raised), the run resumes from
its last checkpoint (steps already done, LLM calls included, are not repeated); otherwise a fresh run
starts. Checkpoints are written before each next step (`durability="sync"`) and the thread is deleted once
the run completes, so finished runs leave nothing behind and a rerun always starts clean.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from typing import Any

import structlog
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.types import Command, Durability

from src.app.state import CSMState
from src.app.tasks import AdoptionTask, ExpansionTask, HealthScanTask, QBRTask

log = structlog.get_logger(__name__)

DURABILITY: Durability = "sync"
"""Each step's checkpoint is written before the next step starts: a crash loses at most the step in flight."""
CHECKPOINTED_TYPES: tuple[type, ...] = (CSMState, HealthScanTask, QBRTask, ExpansionTask, AdoptionTask)
"""The models the customer-success graph's state holds (`open_checkpointer(..., allowed_types=)`)."""


def run_thread_id(task: Mapping[str, Any], *, subject: str, day: date) -> str:
    """The deterministic thread id of a task's run: `csm:{type}:{subject}:{period or day}:{task digest}`.

    The period is the task's QBR `period` when it has one, else the local day, so a rerun the same day (or
    of the same quarter's QBR) finds an unfinished run to resume. The digest of the whole task keeps
    different tasks on one account apart (e.g. a quarterly and a contract-proximity QBR).
    """
    period = task.get("period") if isinstance(task.get("period"), str) else None
    canonical = json.dumps(task, sort_keys=True, default=str, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return f"csm:{task.get('type')}:{subject}:{period or day.isoformat()}:{digest}"


async def invoke_resumable(
    graph: Pregel[Any, Any, Any, Any],
    graph_input: Any,
    *,
    checkpointer: BaseCheckpointSaver[str],
    thread_id: str,
    context: Any,
    resume: Any = None,
) -> dict[str, Any]:
    """Run `graph` (compiled with `checkpointer`) on `thread_id`: resume an unfinished run there, else start one.

    A run paused by `interrupt()` (a draft waiting for a person) keeps its thread and returns its `__interrupt__`
    values with the `thread_id`; pass the person's answer as `resume` to continue it (`Command(resume=...)`).
    The thread is deleted when the run completes; a run that raises keeps its checkpoints for the next call.
    """
    config: Any = {"configurable": {"thread_id": thread_id}}
    unfinished = bool((await graph.aget_state(config)).next)
    if resume is not None and not unfinished:
        raise ValueError(f"Nothing to resume: no paused run on thread {thread_id!r}")
    if unfinished:
        log.info("run_resumed", thread_id=thread_id)
    start = Command(resume=resume) if resume is not None else None if unfinished else graph_input
    output = await graph.ainvoke(start, config, context=context, durability=DURABILITY)
    if output.get("__interrupt__"):
        log.info("run_paused", thread_id=thread_id)
        return {"__interrupt__": [item.value for item in output["__interrupt__"]], "thread_id": thread_id}
    await checkpointer.adelete_thread(thread_id)
    result: dict[str, Any] = output
    return result
