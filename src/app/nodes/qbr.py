"""QBR nodes: gather the account's facts, prompt for the narrative, save the QBR page and the rep's draft."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from langgraph.runtime import Runtime

from src.app.analysis.adoption import build_adoption_facts, roi_metrics
from src.app.analysis.expansion import find_expansion_candidates
from src.app.context import CSMContext
from src.app.documents.document import QBRDocument
from src.app.documents.periods import local_day
from src.app.documents.qbr_markdown import render_qbr_markdown
from src.app.nodes.account_facts import account_brief, score_facts, snapshot, weakest_facts
from src.app.nodes.delivery import audit, data_error, draft_for_rep, parsed_output
from src.app.nodes.llm import prompt_requests
from src.app.nodes.qbr_documents import (
    DocumentFormat,
    documents_folder,
    qbr_document,
    quarters_history,
    trend_facts,
    write_documents,
)
from src.app.nodes.render import Section
from src.app.prompts import qbr as prompt
from src.app.schemas import CSMHealthScore, QBRContent, QBRNarrative, jsonable
from src.app.state import WorkState
from src.app.tasks import QBRTask, as_task


async def score_qbr(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Collect the deterministic QBR facts: score, ROI metrics, adoption and expansion candidates."""
    ctx = runtime.context
    task = as_task(state["task"], QBRTask)
    account_id = task.account_id
    snap = await snapshot(ctx, account_id)
    adoption = build_adoption_facts(snap.account)
    period = task.resolved_period(ctx.clock(), ctx.settings.tz)
    history = await quarters_history(ctx.store, ctx.settings.tz, account_id, period)
    if snap.score is not None and not _scored_today(history, snap.score, ctx.settings.tz):
        await ctx.store.save_scores([snap.score])  # the score this QBR reports joins the history it is read from
        history = [*history, snap.score]
    facts = {
        "account": account_brief(snap.account, snap.days_to_renewal),
        "period": period,
        "trigger": task.trigger,
        "score": score_facts(snap.score),
        "trend": trend_facts(history, period, ctx.clock(), ctx.settings.tz),
        "roi_metrics": roi_metrics(snap.account, snap.score),
        "adoption": {
            "adoption_rate": adoption.adoption_rate,
            "features_used": adoption.features_used,
            "features_used_count": len(adoption.features_used),
            "underutilized_features": adoption.underutilized_features,
            "underutilized_count": len(adoption.underutilized_features),
        },
        "expansion_candidates": [c.model_dump() for c in find_expansion_candidates(snap.account, snap.signals)],
        "weakest_signals": weakest_facts(snap.score),
    }
    errors = [] if snap.data_problem is None else [data_error(account_id, snap.data_problem)]
    scores = [] if snap.score is None else [snap.score.model_dump(mode="json")]
    return {"facts": {account_id: facts}, "errors": errors, "scores": scores}


def _scored_today(history: list[CSMHealthScore], score: CSMHealthScore, tz: ZoneInfo) -> bool:
    return any(local_day(s.computed_at, tz) == local_day(score.computed_at, tz) for s in history)


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
    fresh = [CSMHealthScore.model_validate(score) for score in state.get("scores", [])]
    doc = await qbr_document(ctx.store, ctx.settings, qbr, now=ctx.clock(), fresh=fresh[0] if fresh else None)
    paths = await asyncio.to_thread(write_documents, doc, documents_folder(ctx))  # file I/O off the event loop
    qbr = qbr.model_copy(update={"document_markdown": render_qbr_markdown(doc)})
    # The draft comes first: a page marks the QBR done for the scheduler, so it must never exist without its draft.
    draft = await draft_for_rep(
        ctx,
        account_id=account_id,
        key=key,
        kind="qbr",
        task_type="generate_qbr",
        heading=qbr_subject(doc),
        sections=qbr_draft_sections(doc, paths),
        why=f"You own {doc.account_name}; its {doc.period} QBR is ready for you to review before you present it.",
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
                "documents": {fmt: str(path) for fmt, path in paths.items()},
                "health_score": fresh[0] if fresh else None,
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


def qbr_subject(doc: QBRDocument) -> str:
    """The draft's subject: period, account, and the score as the body shows it."""
    period = f"{doc.period} to date" if doc.to_date else doc.period
    score = (
        f" ({doc.health.score.display}, {doc.health.rag.capitalize()})" if doc.health.score and doc.health.rag else ""
    )
    return f"QBR {period}: {doc.account_name}{score}"


def qbr_draft_sections(doc: QBRDocument, paths: Mapping[DocumentFormat, Path]) -> list[Section]:
    """The rep's QBR draft: where the deck is, then the health, value, adoption, risks, asks and next steps."""
    health = doc.health
    files = [f"{label}: {paths[fmt]}" for fmt, label in _FILES.items() if fmt in paths]
    strengths = [f"{line.text} ({line.strength})" for line in health.strengths]
    watch = [f"{line.text} ({line.strength})" if line.strength else line.text for line in health.watch]
    sections = [
        Section(title="The deck and the document", paragraphs=["Ready to present or share:"], bullets=files),
        Section(title="Health", paragraphs=[f"{health.headline} {health.trend}", health.narrative]),
        Section(title="Going well", bullets=strengths),
        Section(title="To watch", bullets=watch),
        Section(title="Value delivered", bullets=[f"{f.label}: {f.display}" for f in doc.value], paragraphs=[]),
        Section(bullets=doc.highlights),
        Section(
            title="Adoption",
            paragraphs=[
                f"{doc.adoption.rate.display}; typical for the plan: {doc.adoption.benchmark.display}.",
                doc.adoption.summary,
                doc.adoption.commentary,
            ],
        ),
        Section(title="Risks", bullets=doc.risks),
        Section(title="Asks", bullets=doc.asks),
        Section(title="Next steps", bullets=doc.next_steps),
    ]
    return [
        section.model_copy(update={"paragraphs": [p for p in section.paragraphs if p]})
        for section in sections
        if any(section.paragraphs) or section.bullets
    ]


_FILES: dict[DocumentFormat, str] = {
    "pptx": "Deck (PowerPoint)",
    "html": "Document (HTML)",
    "md": "Markdown (the Notion page)",
}
