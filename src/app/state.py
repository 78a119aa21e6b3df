"""Typed graph states: the router-level state, the shared work state of the four subgraphs, and their I/O."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, Field, field_validator
from typing_extensions import TypedDict  # pydantic validates TypedDicts inside models only from this on 3.11

from src.app.schemas import Confidence, OpportunityType, Rag, SalesTaskType
from src.app.tasks import Task, parse_task


class SalesHandoff(TypedDict):
    """One expansion opportunity handed from the CSM graph to the Sales graph (SPEC §3 payload + reason)."""

    type: SalesTaskType
    """Always `handle_expansion_opportunity`: the Sales task this record asks for."""
    account_id: str
    """The account the opportunity belongs to."""
    opportunity_type: OpportunityType
    """seats, module or integration."""
    evidence: str
    """The deterministic facts behind the opportunity, as one string (the platform's shape)."""
    evidence_items: NotRequired[list[str]]
    """The same facts as a list."""
    idempotency_key: NotRequired[str]
    """The hand-off's key: the same on every rerun in the quarter."""
    estimated_arr_impact: float
    """Estimated additional ARR."""
    recommended_talk_track: str
    """How the account executive could open the conversation."""
    confidence: Confidence
    """How sure the CSM side is (only medium/high are handed off)."""
    reason: NotRequired[str]
    """Why the record was handed over (absent in a bare SPEC §3 payload)."""


class CSMState(BaseModel):
    """Router-level state of the customer-success graph (validated on input: bad task types never run)."""

    task: Task = Field(description="The caller's task, typed by its `type`; never mutated.")
    result: dict[str, Any] = Field(default_factory=dict, description="The JSON-safe result of the task.")
    handoffs: list[SalesHandoff] = Field(
        default_factory=list, description="Expansion hand-offs not dispatched in-process, for a parent's Sales edge."
    )

    @field_validator("task", mode="before")
    @classmethod
    def _typed_task(cls, task: Any) -> Any:
        return parse_task(task)  # the seed's ValueError for unknown types, one naming the field otherwise


class CSMOutput(TypedDict):
    """What the customer-success graph returns."""

    result: dict[str, Any]
    handoffs: NotRequired[list[SalesHandoff]]


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
    """Input of each subgraph: the caller's typed task."""

    task: Task


class TaskOutput(TypedDict):
    """Output of each subgraph: only its result (and expansion's hand-offs), so parents never see duplicates."""

    result: dict[str, Any]
    handoffs: NotRequired[list[SalesHandoff]]


class WorkState(TypedDict, total=False):
    """The one state shared by the four subgraphs (score -> prompt -> call -> parse -> draft)."""

    task: Task
    """The caller's typed task (read-only)."""
    facts: dict[str, dict[str, Any]]
    """Deterministic facts per key (account id), the only input the prompts see."""
    scores: list[dict[str, Any]]
    """Health scores computed in this run (health_scan)."""
    alert_candidates: list[tuple[int, float, str]]
    """Accounts whose score should alert, most severe first: (severity rank, score, account id) (health_scan)."""
    alert_rags: dict[str, Rag]
    """The RAG of each alert candidate scored in this process, by account id (health_scan)."""
    alert_scores: list[dict[str, Any]]
    """The scores of the accounts chosen for an alert in this run (health_scan)."""
    alerts_held_back: int
    """Accounts due an alert that the per-scan cap held back (health_scan)."""
    scanned_count: int
    """How many account records the scan looked at."""
    scan_counts: dict[str, int]
    """How many accounts the scan scored, in total ("scored") and per RAG status."""
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
    handoffs: list[SalesHandoff]
    """Expansion hand-offs for the Sales graph when no Sales executor is in the context (check_expansion)."""


class OpportunityInput(TypedDict):
    """Input of the per-opportunity Sales flow: one hand-off record, validated by its first node."""

    handoff: SalesHandoff


class OpportunityState(TypedDict, total=False):
    """State of one hand-off in the Sales graph (validate_handoff -> record_opportunity -> draft_ae_note)."""

    handoff: SalesHandoff
    """The record as received (untrusted until validated)."""
    opportunity: dict[str, Any]
    """The validated `ExpansionOpportunity` (JSON)."""
    reason: str
    """Why the opportunity was handed over."""
    quarter: str
    """The quarter the opportunity is recorded in, e.g. 'Q4 2026' (the de-duplication window)."""
    account_name: str
    """The account's name, from the store."""
    recipient_role: Literal["ae", "rep"]
    """Who the note goes to: the account executive, or the rep when no AE is on record."""
    opportunity_id: str
    """The stored opportunity record's id."""
    opportunity_created: bool
    """False when this quarter's record already existed (e.g. the CSM side saved it first)."""
    sales_results: Annotated[list[dict[str, Any]], operator.add]
    """This hand-off's result (one item)."""


class SalesInput(TypedDict):
    """Input of the Sales graph: the hand-off records to process."""

    handoffs: list[SalesHandoff]


class SalesState(TypedDict, total=False):
    """State of the Sales graph: hand-offs in, one result per hand-off out."""

    handoffs: list[SalesHandoff]
    """The hand-off records to process (one `Send` each)."""
    sales_results: Annotated[list[dict[str, Any]], operator.add]
    """One JSON-safe result per hand-off, success or fail-open error (append-only)."""


class SalesOutput(TypedDict):
    """What the Sales graph returns."""

    sales_results: list[dict[str, Any]]


Delegate = Literal["customer_success", "sales"]


class SupervisorInput(TypedDict):
    """Input of the supervisor: a task dict or a short natural-language request."""

    request: dict[str, Any] | str


class SupervisorState(TypedDict, total=False):
    """State of the supervisor graph; its keys are shared with the embedded CSM and Sales graphs."""

    request: dict[str, Any] | str
    """The caller's request (read-only)."""
    task: dict[str, Any]
    """The task delegated: the request itself, or the task a text request was resolved to."""
    delegate: Delegate
    """Which graph the task was delegated to."""
    result: dict[str, Any]
    """The customer-success graph's result."""
    handoffs: list[SalesHandoff]
    """Hand-offs for the Sales graph (from check_expansion, or a direct Sales task)."""
    sales_results: list[dict[str, Any]]
    """The Sales graph's results, one per hand-off."""


class SupervisorOutput(TypedDict, total=False):
    """What the supervisor returns."""

    task: dict[str, Any]
    delegate: Delegate
    result: dict[str, Any]
    handoffs: list[SalesHandoff]
    sales_results: list[dict[str, Any]]


class RequestInput(TypedDict):
    """Input of the request-interpretation subgraph."""

    request: str


class RequestState(WorkState, total=False):
    """The shared work state plus the text request being interpreted (build_prompt -> call -> parse -> resolve)."""

    request: str
    """The natural-language request (untrusted text, fenced as data in the prompt)."""
    delegate: Delegate
    """Which graph the resolved task goes to."""


class RequestOutput(TypedDict):
    """What interpreting a text request yields: the task and the graph to delegate it to."""

    task: dict[str, Any]
    delegate: Delegate
