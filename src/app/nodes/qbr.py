"""QBR nodes: gather the account's facts, prompt for the narrative, save the QBR page and the rep's draft."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from src.app.analysis.adoption import build_adoption_facts, roi_metrics
from src.app.analysis.expansion import find_expansion_candidates
from src.app.context import CSMContext
from src.app.nodes.account_facts import account_brief, score_facts, snapshot, weakest_facts
from src.app.nodes.delivery import audit, data_error, draft_for_rep, parsed_output
from src.app.nodes.llm import prompt_requests
from src.app.nodes.render import Section
from src.app.prompts import qbr as prompt
from src.app.schemas import QBRContent, QBRNarrative, jsonable
from src.app.state import WorkState
from src.app.tasks import QBRTask, as_task


async def score_qbr(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Collect the deterministic QBR facts: score, ROI metrics, adoption and expansion candidates."""
    ctx = runtime.context
    task = as_task(state["task"], QBRTask)
    account_id = task.account_id
    snap = await snapshot(ctx, account_id)
    adoption = build_adoption_facts(snap.account)
    facts = {
        "account": account_brief(snap.account, snap.days_to_renewal),
        "period": task.resolved_period(ctx.clock(), ctx.settings.tz),
        "trigger": task.trigger,
        "score": score_facts(snap.score),
        "roi_metrics": roi_metrics(snap.account, snap.score),
        "adoption": {
            "adoption_rate": adoption.adoption_rate,
            "features_used": adoption.features_used,
            "underutilized_features": adoption.underutilized_features,
        },
        "expansion_candidates": [c.model_dump() for c in find_expansion_candidates(snap.account, snap.signals)],
        "weakest_signals": weakest_facts(snap.score),
    }
    errors = [] if snap.data_problem is None else [data_error(account_id, snap.data_problem)]
    return {"facts": {account_id: facts}, "errors": errors}


async def build_prompt(state: WorkState) -> dict[str, Any]:
    """The QBR narrative request."""
    return {"llm_requests": prompt_requests(state["facts"], prompt, QBRNarrative.__name__)}


async def draft_qbr(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Save the QBR page and draft it to the rep; nothing is written when the narrative is missing."""
    ctx = runtime.context
    account_id, facts = next(iter(state["facts"].items()))
    narrative = QBRNarrative.model_validate(parsed_output(state, account_id))
    qbr = _qbr_content(facts, narrative)
    key = f"qbr:{account_id}:{qbr.period}:{qbr.trigger}"
    # The draft comes first: a page marks the QBR done for the scheduler, so it must never exist without its draft.
    draft = await draft_for_rep(
        ctx,
        account_id=account_id,
        key=key,
        kind="qbr",
        task_type="generate_qbr",
        heading=f"QBR {qbr.period}: {qbr.account_name}",
        sections=_qbr_sections(qbr),
    )
    page = await ctx.store.save_qbr(qbr, idempotency_key=key)
    await audit(
        ctx,
        artifact="page:qbr",
        target="store:qbr_pages",
        key=key,
        account_id=account_id,
        task_type="generate_qbr",
        detail={"page_id": page.artifact_id},
    )
    confidence = "high" if facts["score"] is not None else "medium"
    return {
        "result": jsonable(
            {
                "task_type": "generate_qbr",
                "qbr": qbr,
                "qbr_page_id": page.artifact_id,
                "draft_id": draft.draft_id,
                "created": page.created,
                "errors": state.get("errors", []),
                "llm_usage": state.get("llm_usage", {}),
                "confidence": confidence,
            }
        )
    }


def _qbr_content(facts: dict[str, Any], narrative: QBRNarrative) -> QBRContent:
    account = facts["account"]
    adoption = facts["adoption"]
    return QBRContent(
        account_id=account["account_id"],
        account_name=account["name"],
        period=facts["period"],
        trigger=facts["trigger"],
        health_summary=narrative.health_summary,
        roi_metrics=facts["roi_metrics"],
        feature_adoption_scorecard={
            "adoption_rate": f"{adoption['adoption_rate']:.0%}",
            "features_used": ", ".join(adoption["features_used"]) or "none",
            "underutilized": ", ".join(adoption["underutilized_features"]) or "none",
        },
        expansion_next_steps=narrative.expansion_next_steps,
        risks=narrative.risks,
        roi_highlights=narrative.roi_highlights,
        adoption_commentary=narrative.adoption_commentary,
    )


def _qbr_sections(qbr: QBRContent) -> list[Section]:
    return [
        Section(title="Health summary", paragraphs=[qbr.health_summary]),
        Section(title="Return on investment", bullets=[f"{k}: {v}" for k, v in qbr.roi_metrics.items()]),
        Section(paragraphs=[], bullets=qbr.roi_highlights),
        Section(
            title="Feature adoption",
            paragraphs=[qbr.adoption_commentary] if qbr.adoption_commentary else [],
            bullets=[f"{k}: {v}" for k, v in qbr.feature_adoption_scorecard.items()],
        ),
        Section(title="Expansion next steps", bullets=qbr.expansion_next_steps),
        Section(title="Risks", bullets=qbr.risks),
    ]
