"""Expansion nodes: find candidates, prompt for talk tracks, record opportunities, hand off to Sales."""

from __future__ import annotations

from typing import Any

import structlog
from langgraph.runtime import Runtime

from src.app.analysis.expansion import find_expansion_candidates
from src.app.context import CSMContext
from src.app.documents.wording import fmt_money, opportunity_label, plural, possessive
from src.app.nodes.account_facts import account_brief, snapshot
from src.app.nodes.delivery import audit, data_error, draft_for_rep
from src.app.nodes.llm import prompt_requests
from src.app.nodes.render import Section
from src.app.prompts import expansion as prompt
from src.app.schemas import CSMHandoffRequest, ExpansionCandidate, ExpansionOpportunity, ExpansionPitches, jsonable
from src.app.state import SalesHandoff, WorkState
from src.app.tasks import ExpansionTask, as_task, current_quarter
from src.app.tools.store import SavedArtifact

log = structlog.get_logger(__name__)


async def score_expansion(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Find deterministic expansion candidates for an active account (none for inactive ones)."""
    ctx = runtime.context
    account_id = as_task(state["task"], ExpansionTask).account_id
    snap = await snapshot(ctx, account_id)
    errors = [] if snap.data_problem is None else [data_error(account_id, snap.data_problem)]
    if snap.account.status != "active":
        return {"facts": {}, "errors": errors}
    candidates = find_expansion_candidates(snap.account, snap.signals)
    if not candidates:
        return {"facts": {}, "errors": errors}
    facts = {
        "account": account_brief(snap.account, snap.days_to_renewal),
        "candidates": [candidate.model_dump() for candidate in candidates],
    }
    return {"facts": {account_id: facts}, "errors": errors}


async def build_prompt(state: WorkState) -> dict[str, Any]:
    """The talk-track request (none when there are no candidates)."""
    return {"llm_requests": prompt_requests(state.get("facts", {}), prompt, ExpansionPitches.__name__)}


async def draft_opportunities(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Record each opportunity once per quarter and draft a summary to the rep."""
    ctx = runtime.context
    account_id = as_task(state["task"], ExpansionTask).account_id
    result: dict[str, Any] = {"task_type": "check_expansion", "account_id": account_id, "opportunities": []}
    facts = state.get("facts", {}).get(account_id)
    if facts is None:
        return {"result": {**result, "opportunities_found": 0, "notion_page_ids": [], "draft_id": None}}
    # The opportunities come from the rules: when the LLM gave no usable talk tracks (its error is in `errors`),
    # they are still recorded, drafted and handed off, each with the deterministic talk track.
    pitches = ExpansionPitches.model_validate(state.get("parsed", {}).get(account_id) or {})
    opportunities = merge_pitches(account_id, facts["candidates"], pitches)
    quarter = current_quarter(ctx.clock(), ctx.settings.tz)
    heading, why, sections = expansion_draft(facts["account"]["name"], opportunities)
    draft = await draft_for_rep(
        ctx,
        account_id=account_id,
        key=f"expansion:{account_id}:{quarter}",
        kind="expansion",
        task_type="check_expansion",
        heading=heading,
        sections=sections,
        why=why,
    )
    page_ids = [
        (await save_opportunity(ctx, o, quarter=quarter, task_type="check_expansion")).artifact_id
        for o in opportunities
    ]
    result.update(
        opportunities=[o.model_dump() for o in opportunities],
        opportunities_found=len(opportunities),
        notion_page_ids=page_ids,
        draft_id=draft.draft_id,
    )
    return {"result": result}


async def handoff_to_sales(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Hand every opportunity that is not low-confidence to the Sales side, audited.

    With a Sales executor in the context (the facade), each SPEC §3 payload goes to `ctx.sales.execute`.
    Without one, they leave as typed `handoffs` records: the edge a parent graph (the supervisor) follows
    to the Sales graph. A caller that embeds neither skips the hand-off (the facade warns).
    """
    ctx = runtime.context
    result = dict(state["result"])
    quarter = current_quarter(ctx.clock(), ctx.settings.tz)
    payloads = [handoff_request(o, quarter) for o in result["opportunities"] if o["confidence"] != "low"]
    dispatch_results: list[dict[str, Any]] = []
    for payload in payloads:
        if ctx.sales is not None:
            dispatch_results.append(await ctx.sales.execute(payload.model_dump(), dict(ctx.caller_context)))
        await audit(
            ctx,
            artifact="handoff",
            target="sales" if ctx.sales is not None else "sales_graph",
            key=str(payload.idempotency_key),
            account_id=payload.account_id,
            task_type="check_expansion",
            detail={"confidence": payload.confidence, "estimated_arr_impact": payload.estimated_arr_impact},
        )
    handoffs = [sales_handoff(payload) for payload in payloads] if ctx.sales is None else []
    if handoffs:
        log.info("sales_handoffs_emitted", account_id=result["account_id"], count=len(handoffs))
    result.update(
        dispatched_to_sales=len(dispatch_results),
        sales_dispatch_results=dispatch_results,
        errors=state.get("errors", []),
        llm_usage=state.get("llm_usage", {}),
        confidence=_overall_confidence(result["opportunities"]),
    )
    return {"result": jsonable(result), "handoffs": handoffs}


def handoff_request(opportunity: dict[str, Any], quarter: str) -> CSMHandoffRequest:
    """The SPEC §3 payload of one opportunity, its evidence as one string, keyed once per account, type and quarter."""
    fields = {k: v for k, v in opportunity.items() if k != "evidence"}
    key = f"handoff:{opportunity['account_id']}:{opportunity['opportunity_type']}:{quarter}"
    evidence = [str(item) for item in opportunity["evidence"]]
    return CSMHandoffRequest(**fields, evidence="; ".join(evidence), evidence_items=evidence, idempotency_key=key)


def sales_handoff(payload: CSMHandoffRequest) -> SalesHandoff:
    """The typed hand-off record for the Sales graph: the SPEC §3 payload plus why it was handed over."""
    return SalesHandoff(
        type=payload.type,
        account_id=payload.account_id,
        opportunity_type=payload.opportunity_type,
        evidence=payload.evidence,
        evidence_items=payload.evidence_list(),
        idempotency_key=str(payload.idempotency_key),
        estimated_arr_impact=payload.estimated_arr_impact,
        recommended_talk_track=payload.recommended_talk_track,
        confidence=payload.confidence,
        reason=f"The CSM agent's expansion check found {_with_article(opportunity_label(payload.opportunity_type))} "
        "opportunity in this quarter's account data.",
    )


def merge_pitches(
    account_id: str, candidates: list[dict[str, Any]], pitches: ExpansionPitches
) -> list[ExpansionOpportunity]:
    """Opportunities from the deterministic candidates; the LLM only supplies talk tracks (extras ignored)."""
    tracks = {pitch.opportunity_type: pitch.recommended_talk_track for pitch in pitches.opportunities}
    opportunities = []
    for raw in candidates:
        candidate = ExpansionCandidate.model_validate(raw)
        track = tracks.get(candidate.opportunity_type) or fallback_talk_track(candidate)
        opportunities.append(
            ExpansionOpportunity(account_id=account_id, recommended_talk_track=track, **candidate.model_dump())
        )
    return opportunities


async def save_opportunity(
    ctx: CSMContext, opportunity: ExpansionOpportunity, *, quarter: str, task_type: str
) -> SavedArtifact:
    """Record an opportunity once per account, type and quarter, audited (both the CSM and Sales sides use it)."""
    key = opportunity_key(opportunity, quarter)
    saved = await ctx.store.save_opportunity(opportunity, idempotency_key=key)
    await audit(
        ctx,
        artifact="page:opportunity",
        target="store:opportunities",
        key=key,
        account_id=opportunity.account_id,
        task_type=task_type,
        detail={"opportunity_id": saved.artifact_id},
    )
    return saved


def opportunity_key(opportunity: ExpansionOpportunity, quarter: str) -> str:
    """One opportunity per account, type and quarter."""
    return f"opportunity:{opportunity.account_id}:{opportunity.opportunity_type}:{quarter}"


def _with_article(label: str) -> str:
    """The label in lower case after its article: "an integration", "a seat expansion"."""
    text = label.lower()
    return f"{'an' if text[:1] in 'aeiou' else 'a'} {text}"


FALLBACK_TALK_TRACKS = {
    "seats": "Walk the admin through the seat usage above and propose enough seats for the team's growth.",
    "module": "Walk the team through how heavily they use these features and offer a trial of the module.",
    "integration": "Walk their technical owner through the requests above and offer to scope the integration.",
}
"""The deterministic talk track of each opportunity type, used when the LLM gave none."""


def fallback_talk_track(candidate: ExpansionCandidate) -> str:
    """The rules' talk track: points at the evidence listed above it instead of repeating it."""
    return FALLBACK_TALK_TRACKS.get(
        candidate.opportunity_type, "Walk the customer through the evidence above and agree a next step."
    )


def expansion_draft(account_name: str, opportunities: list[ExpansionOpportunity]) -> tuple[str, str, list[Section]]:
    """The rep's expansion draft: its subject, why the rep gets it, and one evidence and one talk-track section each."""
    heading = f"{plural(len(opportunities), 'expansion opportunity', 'expansion opportunities')} at {account_name}"
    why = f"You own {account_name}; this quarter's expansion check found something worth raising with the customer."
    sections: list[Section] = []
    for opportunity in opportunities:
        title = (
            f"{opportunity_label(opportunity.opportunity_type)}: {opportunity.confidence} confidence, "
            f"about {fmt_money(opportunity.estimated_arr_impact)} in ARR"
        )
        sections.append(Section(title=title, paragraphs=["What the account data shows:"], bullets=opportunity.evidence))
        sections.append(Section(title="How to raise it", paragraphs=[opportunity.recommended_talk_track]))
    handed = sum(o.confidence != "low" for o in opportunities)
    if handed:
        which = (
            ("This opportunity goes" if handed == 1 else "These opportunities go")
            if handed == len(opportunities)
            else f"The {plural(handed, 'opportunity', 'opportunities')} at medium or high confidence "
            f"{'goes' if handed == 1 else 'go'}"
        )
        step = (
            f"{which} to Sales, and {possessive(account_name)} account executive gets a note. "
            "Agree a joint call before either of you contacts the customer."
        )
        sections.append(Section(title="Next step", paragraphs=[step]))
    return heading, why, sections


def _overall_confidence(opportunities: list[dict[str, Any]]) -> str:
    levels = [o["confidence"] for o in opportunities]
    return "high" if "high" in levels else "medium" if levels else "low"
