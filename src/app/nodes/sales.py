"""Sales nodes: fan out the hand-offs, validate each, record the opportunity once a quarter, draft the AE's note."""

from __future__ import annotations

from typing import Any, Literal

import structlog
from langgraph.runtime import Runtime
from langgraph.types import Command, Send
from pydantic import ValidationError

from src.app.context import CSMContext
from src.app.documents.wording import fmt_money, opportunity_label
from src.app.nodes.account_facts import load_account
from src.app.nodes.delivery import draft_for_rep, internal_recipient
from src.app.nodes.expansion import save_opportunity
from src.app.nodes.render import Section
from src.app.schemas import SALES_TASK_TYPE, CSMHandoffRequest, ExpansionOpportunity
from src.app.state import OpportunityInput, OpportunityState, SalesHandoff, SalesState
from src.app.tasks import current_quarter

log = structlog.get_logger(__name__)

DEFAULT_REASON = "Handed over by the CSM agent."


def fan_out_handoffs(state: SalesState) -> list[Send]:
    """One `Send` per hand-off record: each runs the per-opportunity flow on its own."""
    return [Send("handle_expansion_opportunity", OpportunityInput(handoff=h)) for h in state.get("handoffs", [])]


async def validate_handoff(
    state: OpportunityState, runtime: Runtime[CSMContext]
) -> Command[Literal["record_opportunity", "__end__"]]:
    """Check the SPEC §3 fields, that the account exists and has an internal recipient; else end fail-open."""
    ctx = runtime.context
    handoff = state["handoff"]
    try:
        payload = CSMHandoffRequest.model_validate(handoff)
        _, account = await load_account(ctx, payload.account_id)
        _, role = internal_recipient(account, "ae", allowed_domains=ctx.settings.allowed_recipient_domains)
    except ValueError as problem:  # pydantic's ValidationError is a ValueError too
        log.warning("sales_handoff_rejected", account_id=_field(handoff, "account_id"), error=_describe(problem))
        return Command(goto="__end__", update={"sales_results": [rejected_result(handoff, _describe(problem))]})
    fields = payload.model_dump(exclude={"type", "evidence", "evidence_items", "idempotency_key"})
    opportunity = ExpansionOpportunity.model_validate({**fields, "evidence": payload.evidence_list()})
    return Command(
        goto="record_opportunity",
        update={
            "opportunity": opportunity.model_dump(mode="json"),
            "reason": str(handoff.get("reason") or DEFAULT_REASON),
            "quarter": current_quarter(ctx.clock(), ctx.settings.tz),
            "account_name": account.name,
            "recipient_role": role,
        },
    )


async def record_opportunity(state: OpportunityState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Save the opportunity under the CSM side's key, so both sides converge on one record per quarter."""
    opportunity = ExpansionOpportunity.model_validate(state["opportunity"])
    saved = await save_opportunity(runtime.context, opportunity, quarter=state["quarter"], task_type=SALES_TASK_TYPE)
    return {"opportunity_id": saved.artifact_id, "opportunity_created": saved.created}


async def draft_ae_note(state: OpportunityState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Draft the note to the account executive (the rep when no AE is on record), once per quarter."""
    opportunity = ExpansionOpportunity.model_validate(state["opportunity"])
    role = state["recipient_role"]
    draft = await draft_for_rep(
        runtime.context,
        account_id=opportunity.account_id,
        key=ae_note_key(opportunity, state["quarter"]),
        kind="ae_note",
        task_type=SALES_TASK_TYPE,
        heading=note_subject(opportunity, state["account_name"]),
        sections=note_sections(opportunity, reason=state["reason"], to_rep=role == "rep"),
        recipient="ae",
        why=note_why(state["account_name"], to_rep=role == "rep"),
    )
    result: dict[str, Any] = {
        "task_type": SALES_TASK_TYPE,
        "account_id": opportunity.account_id,
        "opportunity_type": opportunity.opportunity_type,
        "opportunity_id": state["opportunity_id"],
        "opportunity_created": state["opportunity_created"],
        "draft_id": draft.draft_id,
        "recipient": draft.to,
        "recipient_role": role,
        "quarter": state["quarter"],
        "reason": state["reason"],
        "confidence": opportunity.confidence,
    }
    if role == "rep":
        result["notice"] = f"No account executive on record for '{opportunity.account_id}': drafted to the rep."
    return {"sales_results": [result]}


def ae_note_key(opportunity: ExpansionOpportunity, quarter: str) -> str:
    """One AE note per account, opportunity type and quarter (reruns never duplicate the draft)."""
    return f"ae_note:{opportunity.account_id}:{opportunity.opportunity_type}:{quarter}"


def note_subject(opportunity: ExpansionOpportunity, account_name: str) -> str:
    """The note's subject: "Seat expansion at Acme Corp"."""
    return f"{opportunity_label(opportunity.opportunity_type)} at {account_name}"


def note_why(account_name: str, *, to_rep: bool) -> str:
    """The one line under the greeting that says why the recipient gets the note."""
    if to_rep:
        return f"You own {account_name}, which has no account executive on record, so this note comes to you."
    return f"You are the account executive for {account_name}, and the CSM side found an expansion opportunity there."


def note_sections(opportunity: ExpansionOpportunity, *, reason: str, to_rep: bool) -> list[Section]:
    """The note's body, written from the hand-off fields only (rendering escapes every piece of text)."""
    why = [
        reason,
        f"Confidence is {opportunity.confidence}, and the estimated ARR impact is about "
        f"{fmt_money(opportunity.estimated_arr_impact)}.",
    ]
    if to_rep:
        why.insert(0, "Please pass this to the right account executive.")
    return [
        Section(title="Why now", paragraphs=why),
        Section(title="What the account data shows", bullets=opportunity.evidence),
        Section(title="How to raise it", paragraphs=[opportunity.recommended_talk_track]),
        Section(
            title="Next step", paragraphs=["Agree a joint call with the account's CSM before contacting the customer."]
        ),
    ]


def rejected_result(handoff: SalesHandoff, error: str) -> dict[str, Any]:
    """The fail-open result of a hand-off that could not be handled (same shape as the CSM handlers')."""
    return {
        "task_type": SALES_TASK_TYPE,
        "account_id": _field(handoff, "account_id"),
        "opportunity_type": _field(handoff, "opportunity_type"),
        "error": error,
        "confidence": "low",
        "partial": True,
    }


def _field(handoff: object, name: str) -> str | None:
    value = handoff.get(name) if isinstance(handoff, dict) else None
    return value if isinstance(value, str) else None


def _describe(problem: ValueError) -> str:
    if isinstance(problem, ValidationError):
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in problem.errors())
        return f"Invalid hand-off payload: {fields}"
    return str(problem)
