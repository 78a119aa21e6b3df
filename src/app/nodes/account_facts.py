"""Facts about one account that the QBR, expansion and adoption subgraphs share."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from src.app.analysis.health import CSMHealthScorer, weakest_signals
from src.app.analysis.signals import AccountDataError, days_until, parse_account, signals_from_record
from src.app.context import CSMContext, scorer_from_settings
from src.app.schemas import AccountRecord, CSMHealthScore, CSMHealthSignals


class AccountSnapshot(BaseModel):
    """One account as the single-account subgraphs see it: identity, signals and a fresh score when possible."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    record: dict[str, Any]
    account: AccountRecord
    signals: CSMHealthSignals | None
    score: CSMHealthScore | None
    days_to_renewal: int | None
    data_problem: str | None


async def snapshot(ctx: CSMContext, account_id: str) -> AccountSnapshot:
    """Load and score one account; missing or invalid signals are reported, not invented."""
    record, account = await load_account(ctx, account_id)
    now, tz = ctx.clock(), ctx.settings.tz
    renewal = days_until(account.contract_end_date, now=now, tz=tz)
    try:
        signals = signals_from_record(record, now=now, tz=tz)
    except AccountDataError as problem:
        return AccountSnapshot(
            record=record,
            account=account,
            signals=None,
            score=None,
            days_to_renewal=renewal,
            data_problem=str(problem),
        )
    previous = (await ctx.store.latest_scores([account_id])).get(account_id)
    score = task_scorer(ctx).score(signals, account_id, previous=previous, computed_at=now)
    return AccountSnapshot(
        record=record,
        account=account,
        signals=signals,
        score=score,
        days_to_renewal=renewal,
        data_problem=None,
    )


def score_facts(score: CSMHealthScore | None) -> dict[str, Any] | None:
    """The score as prompt facts (None when the account could not be scored)."""
    if score is None:
        return None
    return {
        "score": score.score,
        "rag": score.rag,
        "churn_risk_level": score.churn_risk_level,
        "churn_triggered_by": score.churn_triggered_by,
        "previous_score": score.previous_score,
    }


def weakest_facts(score: CSMHealthScore | None) -> list[dict[str, Any]]:
    """The signals that cost the most points, as prompt facts."""
    if score is None:
        return []
    return [{"signal": name, "points": points, "max_points": top} for name, points, top in weakest_signals(score)]


async def load_account(ctx: CSMContext, account_id: str) -> tuple[dict[str, Any], AccountRecord]:
    """The raw record and the validated identity/detail of one account, or a clear ValueError."""
    records = await ctx.store.load_accounts([account_id], active_only=False)
    if not records:
        raise ValueError(f"Account '{account_id}' was not found in the store")
    return records[0], parse_account(records[0])


def account_brief(account: AccountRecord, days_to_renewal: int | None) -> dict[str, Any]:
    """The identity facts every prompt gets (never email addresses: the LLM does not choose recipients)."""
    return {
        "account_id": account.account_id,
        "name": account.name,
        "arr": account.arr,
        "plan": account.plan,
        "days_to_renewal": days_to_renewal,
    }


def task_scorer(ctx: CSMContext) -> CSMHealthScorer:
    """The configured scorer, else the default one from settings: only a health scan requires one configured."""
    return ctx.scorer if ctx.scorer is not None else scorer_from_settings(ctx.settings)


def require_scorer(ctx: CSMContext) -> CSMHealthScorer:
    """The configured scorer, or the error the facade reports when there is none."""
    if ctx.scorer is None:
        raise RuntimeError("CSMHealthScorer not configured")
    return ctx.scorer
