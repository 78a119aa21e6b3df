"""Facts about one account that the QBR, expansion and adoption subgraphs share."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from src.app.analysis.health import weakest_signals
from src.app.analysis.signals import AccountDataError, days_until, signals_from_record
from src.app.context import CSMContext
from src.app.nodes.common import load_account
from src.app.nodes.health_scan import require_scorer
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
    score = require_scorer(ctx).score(signals, account_id, previous=previous, computed_at=now)
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
