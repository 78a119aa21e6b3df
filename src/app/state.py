"""Typed graph states: the router-level state, the shared work state of the four subgraphs, and their I/O."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Annotated, Any, TypedDict, cast

from pydantic import BaseModel, Field, field_validator

from src.app.schemas import TASK_TYPES, TaskType


def check_task_type(task: Mapping[str, Any]) -> TaskType:
    """Return the task's type, or raise ValueError naming the unsupported value."""
    task_type = task.get("type")
    if task_type not in TASK_TYPES:
        raise ValueError(f"Unknown task type: '{task_type}'. Supported: {', '.join(TASK_TYPES)}")
    return cast(TaskType, task_type)


class CSMState(BaseModel):
    """Router-level state of the customer-success graph (validated on input: bad task types never run)."""

    task: dict[str, Any] = Field(description="The caller's task; never mutated.")
    result: dict[str, Any] = Field(default_factory=dict, description="The JSON-safe result of the task.")

    @field_validator("task")
    @classmethod
    def _known_task_type(cls, task: dict[str, Any]) -> dict[str, Any]:
        check_task_type(task)
        return task


class CSMOutput(TypedDict):
    """What the customer-success graph returns."""

    result: dict[str, Any]


class LLMRequest(TypedDict):
    """One LLM completion to make: its key (usually the account id), output schema name and messages."""

    key: str
    schema: str
    messages: list[dict[str, str]]


class WorkError(TypedDict):
    """A per-account or per-step problem reported in the result instead of raised."""

    account_id: str | None
    stage: str
    message: str


class TaskInput(TypedDict):
    """Input of each subgraph: the caller's task."""

    task: dict[str, Any]


class TaskOutput(TypedDict):
    """Output of each subgraph: only its result, so parent reducers never see duplicated items."""

    result: dict[str, Any]


class WorkState(TypedDict, total=False):
    """The one state shared by the four subgraphs (score -> prompt -> call -> parse -> draft)."""

    task: dict[str, Any]
    """The caller's task (read-only)."""
    facts: dict[str, dict[str, Any]]
    """Deterministic facts per key (account id), the only input the prompts see."""
    scores: list[dict[str, Any]]
    """Health scores computed in this run (health_scan)."""
    scanned_count: int
    """How many account records the scan looked at."""
    llm_requests: list[LLMRequest]
    """Completions still to make (the repair loop narrows this to failed keys)."""
    llm_replies: dict[str, str | None]
    """Raw text per key from the last call."""
    parsed: dict[str, dict[str, Any]]
    """Validated LLM output per key (merged across repair rounds)."""
    llm_attempt: int
    """How many call/parse rounds have run."""
    llm_usage: dict[str, int]
    """Prompt and completion tokens spent in this run."""
    errors: Annotated[list[WorkError], operator.add]
    """Problems found along the way (append-only)."""
    result: dict[str, Any]
    """The task's JSON-safe result, written by the draft node."""
