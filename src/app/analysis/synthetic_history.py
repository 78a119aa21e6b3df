"""A seeded synthetic churn history drawn from a known logistic hazard, to check that a backtest recovers it.

Each account gets raw signals (as `csm import` reads them) observed on an as-of date. Its churn within the
horizon is drawn with probability `sigmoid(INTERCEPT + SLOPE * true_risk)`, where `true_risk` is the
`TRUE_WEIGHTS`-weighted share of points the account *loses* under the default scorecard's mapping of its
full, unmasked signals. The true weights differ from the default scorecard's on purpose (tickets and usage
matter more, adoption much less), so a suggested scorecard can beat the default by a known margin. Some
low-weight signals are then hidden, as real data hides them.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from src.app.analysis.scorecards import load_default_scorecard, signal_points

TRUE_WEIGHTS: dict[str, float] = {
    "support_tickets": 24,
    "usage_trend": 20,
    "invoice_payment_status": 16,
    "login_frequency_days": 12,
    "escalation_count_90_days": 9,
    "days_since_last_interaction": 7,
    "days_to_renewal": 5,
    "feature_adoption_rate": 3,
    "nps_score": 2,
    "seats_utilization_rate": 1,
    "stakeholder_engagement": 1,
}
"""The generator's weight per default-scorecard signal (they sum to 100)."""

INTERCEPT = -6.0
SLOPE = 12.0
HIDDEN_SHARE: dict[str, float] = {
    "stakeholder_engagement": 0.15,
    "seats_utilization_rate": 0.15,
    "nps_score": 0.3,
    "login_frequency_days": 0.05,
}
"""How often each signal is left out of the emitted row."""

HISTORY_START = date(2024, 1, 1)
HISTORY_SPAN_DAYS = 540


def synthetic_history(n_accounts: int = 2000, *, seed: int = 0, horizon_days: int = 90) -> list[dict[str, Any]]:
    """One row per account: raw signals, `as_of`, `churned`, `outcome_date`, `arr`, `start_date`, `true_risk`.

    Args:
        n_accounts: How many accounts (rows).
        seed: The random seed; the same seed gives the same rows.
        horizon_days: Churners churn within this many days after `as_of`; others are seen retained at its end.

    Returns:
        The rows, in account order; `true_risk` is the hazard's input, for measuring what a model could reach.
    """
    rng = random.Random(seed)
    scorecard = load_default_scorecard()
    rows = []
    for index in range(n_accounts):
        as_of = HISTORY_START + timedelta(days=rng.randrange(HISTORY_SPAN_DAYS))
        signals = _signals(rng)
        earned = signal_points(signals, scorecard)
        lost = sum(
            weight * (1 - (earned[name] or 0.0) / scorecard.signals[name].weight)
            for name, weight in TRUE_WEIGHTS.items()
        )
        risk = lost / sum(TRUE_WEIGHTS.values())
        churned = rng.random() < 1 / (1 + math.exp(-(INTERCEPT + SLOPE * risk)))
        days_to_outcome = rng.randint(1, horizon_days) if churned else horizon_days
        contract_end = as_of + timedelta(days=signals.pop("days_to_renewal"))  # emitted as a date, as imported
        rows.append(
            {
                "account_id": f"syn-{index:05d}",
                "as_of": as_of.isoformat(),
                "churned": churned,
                "outcome_date": (as_of + timedelta(days=days_to_outcome)).isoformat(),
                "arr": float(round(rng.lognormvariate(10, 1))),
                "plan": rng.choice(("standard", "enterprise")),
                "start_date": (as_of - timedelta(days=rng.randint(30, 2000))).isoformat(),
                "contract_end_date": contract_end.isoformat(),
                **_hide(signals, rng),
                "true_risk": round(risk, 6),
            }
        )
    return rows


def write_history_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Write history rows as CSV (columns in first-seen order; None as an empty cell)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({key: "" if row.get(key) is None else row[key] for key in columns} for row in rows)


def _signals(rng: random.Random) -> dict[str, Any]:
    return {
        "feature_adoption_rate": round(rng.random(), 2),
        "usage_trend": _pick(rng, {"growing": 3, "stable": 4, "declining": 2, "inactive": 1}),
        "login_frequency_days": min(int(rng.expovariate(1 / 25)), 180),
        "days_since_last_interaction": min(int(rng.expovariate(1 / 45)), 240),
        "invoice_payment_status": _pick(rng, {"current": 14, "overdue_30": 3, "overdue_60": 2, "overdue_90_plus": 1}),
        "avg_ticket_sentiment": _pick(rng, {"positive": 5, "neutral": 8, "negative": 5, "critical": 2}),
        "open_ticket_count": min(int(rng.expovariate(1 / 1.5)), 9),
        "days_to_renewal": rng.randint(1, 400),
        "seats_utilization_rate": round(rng.uniform(0.1, 1.3), 2),
        "stakeholder_engagement": _pick(rng, {"high": 6, "medium": 9, "low": 5}),
        "nps_score": rng.randint(0, 10),
        "escalation_count_90_days": _pick(rng, {0: 12, 1: 5, 2: 2, 3: 1}),
    }


def _pick(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _hide(signals: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {name: None if rng.random() < HIDDEN_SHARE.get(name, 0.0) else value for name, value in signals.items()}
