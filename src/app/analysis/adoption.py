"""Feature adoption facts and QBR ROI metrics computed from an account record."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from src.app.schemas import AccountRecord, CSMHealthScore

UNDERUTILIZED_USAGE = 10
"""An available feature used fewer times than this (in the record's usage period) is underutilized."""

PLAN_BENCHMARK_ADOPTION: dict[str, float] = {
    "starter": 0.55,
    "standard": 0.60,
    "professional": 0.65,
    "enterprise": 0.70,
}
"""Typical adoption rate (features used / available) of healthy accounts on each plan."""
DEFAULT_BENCHMARK_ADOPTION = 0.60
"""Benchmark adoption rate for a plan missing from the benchmark map."""

CLOSED_TICKET_STATUSES = frozenset({"closed", "resolved", "solved"})
"""Ticket statuses that do not count as open; any other status does."""
NOT_AVAILABLE = "n/a"
"""The value of a ROI metric that the record cannot support."""


class AdoptionFacts(BaseModel):
    """The deterministic adoption facts of one account, before the LLM writes recommendations."""

    account_id: str
    plan: str
    features_available: list[str]
    features_used: list[str] = Field(description="Features with any usage, most used first.")
    adoption_rate: float = Field(ge=0, le=1, description="Available features used / features available.")
    underutilized_features: list[str] = Field(description="Available features used below the threshold.")
    feature_usage: dict[str, int]
    benchmark_comparison: dict[str, float]


def build_adoption_facts(account: AccountRecord, *, benchmarks: Mapping[str, float] | None = None) -> AdoptionFacts:
    """Adoption facts of the account, compared with its plan's benchmark adoption rate.

    `benchmarks` maps plan names to benchmark rates and replaces `PLAN_BENCHMARK_ADOPTION` when given; a plan
    missing from the map is compared with `DEFAULT_BENCHMARK_ADOPTION`.
    """
    usage = account.feature_usage
    available = list(dict.fromkeys(account.features_available))
    used = sorted((f for f, count in usage.items() if count > 0), key=lambda f: (-usage[f], f))
    used_available = [f for f in available if usage.get(f, 0) > 0]
    rate = round(len(used_available) / len(available), 4) if available else 0.0
    underutilized = sorted(
        (f for f in available if usage.get(f, 0) < UNDERUTILIZED_USAGE), key=lambda f: (usage.get(f, 0), f)
    )
    benchmark = (benchmarks or PLAN_BENCHMARK_ADOPTION).get(account.plan.lower(), DEFAULT_BENCHMARK_ADOPTION)
    return AdoptionFacts(
        account_id=account.account_id,
        plan=account.plan,
        features_available=available,
        features_used=used,
        adoption_rate=rate,
        underutilized_features=underutilized,
        feature_usage=dict(usage),
        benchmark_comparison={
            "account_adoption_rate": rate,
            "plan_benchmark": benchmark,
            "delta": round(rate - benchmark, 4),
        },
    )


def roi_metrics(account: AccountRecord, score: CSMHealthScore | None) -> dict[str, float | str]:
    """The QBR's ROI figures: ARR, seats, active-user growth, open tickets and health (when scored)."""
    metrics: dict[str, float | str] = {
        "arr": account.arr,
        **_seat_metrics(account),
        **_growth_metrics(account),
    }
    metrics["open_tickets"] = sum(t.status.lower() not in CLOSED_TICKET_STATUSES for t in account.tickets)
    if score is not None:
        metrics["health_score"] = score.score
        metrics["health_rag"] = score.rag
    return metrics


def _seat_metrics(account: AccountRecord) -> dict[str, float | str]:
    purchased, active = account.seats_purchased, account.seats_active
    utilization: float | str = round(active / purchased, 4) if purchased and active is not None else NOT_AVAILABLE
    return {
        "seats_purchased": NOT_AVAILABLE if purchased is None else purchased,
        "seats_active": NOT_AVAILABLE if active is None else active,
        "seat_utilization": utilization,
    }


def _growth_metrics(account: AccountRecord) -> dict[str, float | str]:
    history = account.usage_history
    if len(history) < 2:
        return {
            "active_users_start": NOT_AVAILABLE,
            "active_users_end": NOT_AVAILABLE,
            "active_user_growth_pct": NOT_AVAILABLE,
        }
    first, last = history[0], history[-1]
    growth: float | str = round((last - first) / first * 100, 1) if first else NOT_AVAILABLE
    return {"active_users_start": first, "active_users_end": last, "active_user_growth_pct": growth}
