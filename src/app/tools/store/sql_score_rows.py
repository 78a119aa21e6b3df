"""History rows of scores: the score's own columns plus a payload of its other fields, and the score read back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic_core import from_json, to_json

from src.app.schemas import DEFAULT_SCORECARD_NAME, DEFAULT_SCORECARD_VERSION, CSMHealthScore
from src.app.tools.store.sql_tables import HEALTH_SCORES, JSONText, as_utc

_COLUMN_FIELDS = (
    "account_id",
    "score",
    "rag",
    "churn_risk_level",
    "churn_triggered_by",
    "signal_breakdown",
    "computed_at",
    "scorecard_name",
    "scorecard_version",
)
"""The score's fields a history row stores in columns of their own (`signal_breakdown` in `breakdown`)."""
PAYLOAD_FIELDS = tuple(name for name in CSMHealthScore.model_fields if name not in _COLUMN_FIELDS)
"""The score's fields a history row's payload holds: those without a column. Rows written before this held the
whole score (its computed fields too) in the payload; `stored_score` reads both."""
STORED_SCORE_COLUMNS = (
    HEALTH_SCORES.c.account_id,
    HEALTH_SCORES.c.score,
    HEALTH_SCORES.c.rag,
    HEALTH_SCORES.c.churn_risk_level,
    HEALTH_SCORES.c.churn_triggered_by,
    HEALTH_SCORES.c.breakdown,
    HEALTH_SCORES.c.computed_at,
    HEALTH_SCORES.c.scorecard_name,
    HEALTH_SCORES.c.scorecard_version,
)
"""The history columns `stored_score` adds to a payload, in the order it takes them."""


def score_columns(scores: Sequence[CSMHealthScore]) -> dict[str, list[Any]]:
    """The history rows of scores as columns, the JSON ones serialised here once each (`computed_at` in UTC).

    The payload holds only the fields without a column (`PAYLOAD_FIELDS`), read from the score's own field dict.
    """
    rows = [score.__dict__ for score in scores]
    moments: dict[datetime, datetime] = {}  # a scan stamps every score alike
    return {
        "account_id": [row["account_id"] for row in rows],
        "score": [row["score"] for row in rows],
        "rag": [row["rag"] for row in rows],
        "churn_risk_level": [row["churn_risk_level"] for row in rows],
        "churn_triggered_by": [row["churn_triggered_by"] for row in rows],
        "breakdown": [JSONText(to_json(row["signal_breakdown"], inf_nan_mode="null").decode()) for row in rows],
        "computed_at": [
            moments.get(when) or moments.setdefault(when, as_utc(when)) for when in (row["computed_at"] for row in rows)
        ],
        "payload": [
            JSONText(to_json({name: row[name] for name in PAYLOAD_FIELDS}, inf_nan_mode="null").decode())
            for row in rows
        ],
        "scorecard_name": [row["scorecard_name"] for row in rows],
        "scorecard_version": [row["scorecard_version"] for row in rows],
    }


def stored_score(payload: Any, columns: Sequence[Any]) -> CSMHealthScore:
    """The score of a history row: its payload (JSON text or decoded) with `STORED_SCORE_COLUMNS`' values added.

    A row written before the payload left those out holds the whole score in its payload, read as it always was.
    """
    fields = from_json(payload) if isinstance(payload, str | bytes) else payload
    if "account_id" in fields:
        if isinstance(payload, str | bytes):
            return CSMHealthScore.model_validate_json(payload)
        return CSMHealthScore.model_validate(payload)
    account_id, score, rag, level, trigger, breakdown, when, name, version = columns
    return CSMHealthScore.model_validate(
        {
            **fields,
            "account_id": account_id,
            "score": score,
            "rag": rag,
            "churn_risk_level": level,
            "churn_triggered_by": trigger,
            "signal_breakdown": from_json(breakdown) if isinstance(breakdown, str | bytes) else breakdown,
            "computed_at": as_utc(datetime.fromisoformat(when) if isinstance(when, str) else when),
            "scorecard_name": name or DEFAULT_SCORECARD_NAME,
            "scorecard_version": version or DEFAULT_SCORECARD_VERSION,
        }
    )
