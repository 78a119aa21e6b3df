"""Feature-adoption nodes: compute adoption figures, prompt for recommendations, save the report and draft."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from src.app.analysis.adoption import build_adoption_facts
from src.app.context import CSMContext
from src.app.documents.wording import feature_label, fmt_percent, plural
from src.app.nodes.account_facts import account_brief, load_account
from src.app.nodes.delivery import audit, draft_for_rep, parsed_output
from src.app.nodes.llm import prompt_requests
from src.app.nodes.render import Section
from src.app.prompts import feature_adoption as prompt
from src.app.schemas import AdoptionInsights, FeatureAdoptionReport, jsonable
from src.app.state import WorkState
from src.app.tasks import AdoptionTask, as_task


async def score_adoption(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Adoption rate, used and underutilised features, and the plan benchmark for one account."""
    ctx = runtime.context
    account_id = as_task(state["task"], AdoptionTask).account_id
    _, account = await load_account(ctx, account_id)
    adoption = build_adoption_facts(account)
    facts = {"account": account_brief(account, None), **adoption.model_dump()}
    return {"facts": {account_id: facts}}


async def build_prompt(state: WorkState) -> dict[str, Any]:
    """The adoption-insights request."""
    return {"llm_requests": prompt_requests(state["facts"], prompt, AdoptionInsights.__name__)}


def adoption_draft(account_name: str, report: FeatureAdoptionReport, usage: dict[str, int]) -> dict[str, Any]:
    """The rep's adoption draft: `heading`, `why` and `sections` (summary, recommendations, underused features)."""
    underused = [
        f"{feature_label(feature)}: used {plural(usage.get(feature, 0), 'time')}"
        if usage.get(feature, 0)
        else f"{feature_label(feature)}: not used yet"
        for feature in report.underutilized_features
    ]
    sections = [
        Section(title="Summary", paragraphs=[report.summary]),
        Section(title="Recommendations", bullets=report.recommendations),
    ]
    if underused:
        sections.append(Section(title="Underused features", bullets=underused))
    return {
        "heading": f"Feature adoption at {account_name}: {fmt_percent(report.adoption_rate)} of features in use",
        "why": f"You own {account_name}; here is how its team uses the product and where help would pay off.",
        "sections": sections,
    }


async def draft_adoption_report(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Save the adoption report (once per account and day) and draft it to the rep."""
    ctx = runtime.context
    account_id, facts = next(iter(state["facts"].items()))
    insights = AdoptionInsights.model_validate(parsed_output(state, account_id))
    report = FeatureAdoptionReport(
        account_id=account_id,
        features_used=facts["features_used"],
        adoption_rate=facts["adoption_rate"],
        underutilized_features=facts["underutilized_features"],
        recommendations=insights.recommendations,
        benchmark_comparison=facts["benchmark_comparison"],
        summary=insights.summary,
    )
    key = f"adoption:{account_id}:{ctx.clock().astimezone(ctx.settings.tz).date().isoformat()}"
    draft = await draft_for_rep(
        ctx,
        account_id=account_id,
        key=key,
        kind="adoption",
        task_type="track_feature_adoption",
        **adoption_draft(facts["account"]["name"], report, facts.get("feature_usage") or {}),
    )
    saved = await ctx.store.save_adoption_report(report, idempotency_key=key)
    await audit(
        ctx,
        artifact="page:adoption_report",
        target="store:adoption_reports",
        key=key,
        account_id=account_id,
        task_type="track_feature_adoption",
        detail={"report_id": saved.artifact_id},
    )
    return {
        "result": jsonable(
            {
                "task_type": "track_feature_adoption",
                "report": report,
                "report_id": saved.artifact_id,
                "adoption_rate": report.adoption_rate,
                "underutilized_count": len(report.underutilized_features),
                "draft_id": draft.draft_id,
                "llm_usage": state.get("llm_usage", {}),
                "confidence": "high",
            }
        )
    }
