"""Backtest a scorecard against a churn history: does the score rank and band the accounts that churned?

Deterministic (seeded bootstrap, seeded folds); numpy, scipy and scikit-learn are imported only when run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from src.app.analysis.backtest_data import BacktestError, HistoryRow
from src.app.analysis.backtest_metrics import auc, auc_ci, roc_points, wilson
from src.app.analysis.backtest_signals import Baselines, SignalStats, baselines, points_table, signal_stats
from src.app.analysis.backtest_suggest import SuggestedScorecard, suggest_scorecard
from src.app.analysis.scorecard_model import RAGS, ScorecardSpec
from src.app.analysis.scorecards import ScorecardScore, score_with_scorecard
from src.app.schemas import Rag

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]
    BoolArray = NDArray[np.bool_]

MIN_ACCOUNTS = 30
"""Fewer scored accounts than this cannot tell a good score from luck."""
MIN_EVENTS = 10
"""Each outcome (churned, retained) needs at least this many scored accounts."""
TOP_SHARE = 0.10
BUCKET_POINTS = 10
MAX_LISTED = 5


class BandStats(BaseModel):
    """One RAG band: its accounts, how many churned, and what that is worth."""

    rag: Rag
    accounts: int
    share: float
    churned: int
    churn_rate: float | None
    lift: float | None
    recall: float
    arr_at_risk: float
    arr_churned: float


class CalibrationBucket(BaseModel):
    """Accounts whose score falls in [low, high): how many churned, with a 95 % Wilson interval."""

    low: float
    high: float
    accounts: int
    churned: int
    churn_rate: float | None
    churn_rate_ci: tuple[float, float]
    arr: float


class RiskSlice(BaseModel):
    """A set of flagged accounts (the riskiest share, or those the alert rule would alert) and its precision."""

    accounts: int
    share: float
    churned: int
    precision: float | None
    lift: float | None
    recall: float


class BacktestResult(BaseModel):
    """Everything a backtest reports; `model_dump_json()` is the `--json` output."""

    scorecard_name: str
    scorecard_version: str
    horizon_days: int
    accounts: int
    scored: int
    churned: int
    base_rate: float
    insufficient_share: float
    thresholds: dict[str, float]
    auc: float | None
    auc_ci: tuple[float, float] | None
    baselines: Baselines
    bands: list[BandStats]
    top_decile: RiskSlice
    alerts: RiskSlice
    calibration: list[CalibrationBucket]
    signals: list[SignalStats]
    roc: dict[str, list[tuple[float, float]]]
    suggested: SuggestedScorecard | None = None


def run_backtest(
    rows: Sequence[HistoryRow],
    scorecard: ScorecardSpec,
    *,
    horizon_days: int = 90,
    suggest: bool = False,
    seed: int = 0,
    resamples: int = 500,
    test_fraction: float = 0.3,
) -> BacktestResult:
    """Score every row with the scorecard and measure how well the scores foretell churn within the horizon.

    Args:
        rows: History rows (see `load_history`); a churn later than `horizon_days` after a row counts as retained.
        scorecard: The scorecard to test.
        horizon_days: How far after its as-of date a row's churn counts.
        suggest: Also fit weights and cut-offs on the older rows and judge them on the newer ones.
        seed: Seed of the bootstrap resamples and cross-validation folds.
        resamples: Bootstrap resamples for each confidence interval.
        test_fraction: Share of the newest rows held out when suggesting.

    Raises:
        BacktestError: Rows dated on or after their outcome, or too few accounts or churn events.
    """
    import numpy as np

    _check_dates(rows)
    results = [score_with_scorecard(row.signals, scorecard, row.account_id) for row in rows]
    scored = np.array([not result.insufficient for result in results], dtype=bool)
    y = np.array([_churned_within(row, horizon_days) for row in rows], dtype=float)
    _check_counts(y[scored])
    scores = np.array([result.score or 0.0 for result in results], dtype=float)
    arr = np.array([row.arr for row in rows], dtype=float)
    table = points_table(rows, scorecard)
    overall = auc(y[scored], -scores[scored])
    stats = signal_stats(table, y, scored, overall)
    kept = [row for row, ok in zip(rows, scored, strict=True) if ok]
    result = BacktestResult(
        scorecard_name=scorecard.name,
        scorecard_version=scorecard.version,
        horizon_days=horizon_days,
        accounts=len(rows),
        scored=int(scored.sum()),
        churned=int(y[scored].sum()),
        base_rate=round(float(y[scored].mean()), 4),
        insufficient_share=round(1 - float(scored.mean()), 4),
        thresholds={"green": scorecard.rag.green, "amber": scorecard.rag.amber},
        auc=None if overall is None else round(overall, 4),
        auc_ci=auc_ci(y[scored], -scores[scored], seed=seed, resamples=resamples),
        baselines=baselines(table, y, scored, stats, seed=seed),
        bands=_bands([r for r in results if not r.insufficient], y[scored], arr[scored]),
        top_decile=_riskiest(scores[scored], y[scored]),
        alerts=_slice(np.array([r.should_alert for r in results], dtype=bool)[scored], y[scored]),
        calibration=_calibration(scores[scored], y[scored], arr[scored]),
        signals=stats,
        roc={"current": roc_points(y[scored], -scores[scored])},
    )
    if suggest:
        fractions = table.fractions()[scored]
        result.suggested = suggest_scorecard(
            kept, y[scored], fractions, scorecard, test_fraction=test_fraction, seed=seed, resamples=resamples
        )
        test_y = np.array(result.suggested.test_churned, dtype=float)
        result.roc["current (held-out)"] = roc_points(test_y, -np.array(result.suggested.current_test_scores))
        result.roc["suggested (held-out)"] = roc_points(test_y, -np.array(result.suggested.test_scores))
    return result


def write_suggested(result: BacktestResult, path: str | Path) -> Path:
    """Write the suggested scorecard's TOML to `path` (only when asked: this is the only writer).

    Raises:
        BacktestError: The backtest was run without `suggest`.
    """
    if result.suggested is None:
        raise BacktestError("no suggested scorecard: run the backtest with suggest=True")
    target = Path(path)
    target.write_text(result.suggested.scorecard_toml, encoding="utf-8")
    return target


def _churned_within(row: HistoryRow, horizon_days: int) -> bool:
    if not row.churned:
        return False
    return row.outcome_date is None or row.outcome_date <= row.as_of + timedelta(days=horizon_days)


def _check_dates(rows: Sequence[HistoryRow]) -> None:
    late = [row for row in rows if row.outcome_date is not None and row.as_of >= row.outcome_date]
    if late:
        listed = ", ".join(f"line {row.line} ({row.account_id})" for row in late[:MAX_LISTED])
        more = f" and {len(late) - MAX_LISTED} more" if len(late) > MAX_LISTED else ""
        raise BacktestError(
            f"{len(late)} rows are dated on or after their outcome date, so their signals may already show the "
            f"outcome: {listed}{more}"
        )


def _check_counts(y: FloatArray) -> None:
    events = int(y.sum())
    if len(y) < MIN_ACCOUNTS:
        raise BacktestError(f"too few accounts with enough data to score: {len(y)} (need {MIN_ACCOUNTS})")
    if min(events, len(y) - events) < MIN_EVENTS:
        raise BacktestError(
            f"too few churn events to judge a score: {events} churned and {len(y) - events} retained "
            f"(need {MIN_EVENTS} of each)"
        )


def _bands(results: list[ScorecardScore], y: FloatArray, arr: FloatArray) -> list[BandStats]:
    import numpy as np

    rags = np.array([result.rag for result in results])
    base, events = float(y.mean()), float(y.sum())
    bands = []
    for rag in RAGS:
        inside = rags == rag
        count, churned = int(inside.sum()), int(y[inside].sum())
        rate = churned / count if count else None
        bands.append(
            BandStats(
                rag=rag,
                accounts=count,
                share=round(count / len(y), 4),
                churned=churned,
                churn_rate=None if rate is None else round(rate, 4),
                lift=None if rate is None or base == 0 else round(rate / base, 2),
                recall=round(churned / events, 4) if events else 0.0,
                arr_at_risk=round(float(arr[inside].sum()), 2),
                arr_churned=round(float(arr[inside & (y == 1)].sum()), 2),
            )
        )
    return bands


def _riskiest(scores: FloatArray, y: FloatArray) -> RiskSlice:
    """The `TOP_SHARE` lowest-scored accounts (ties by row order)."""
    import numpy as np

    flagged = np.zeros(len(y), dtype=bool)
    flagged[np.argsort(scores, kind="stable")[: max(int(round(len(y) * TOP_SHARE)), 1)]] = True
    return _slice(flagged, y)


def _slice(flagged: BoolArray, y: FloatArray) -> RiskSlice:
    count, churned = int(flagged.sum()), int(y[flagged].sum())
    base, events = float(y.mean()), float(y.sum())
    precision = churned / count if count else None
    return RiskSlice(
        accounts=count,
        share=round(count / len(y), 4),
        churned=churned,
        precision=None if precision is None else round(precision, 4),
        lift=None if precision is None or base == 0 else round(precision / base, 2),
        recall=round(churned / events, 4) if events else 0.0,
    )


def _calibration(scores: FloatArray, y: FloatArray, arr: FloatArray) -> list[CalibrationBucket]:
    buckets = []
    for low in range(0, 100, BUCKET_POINTS):
        high = low + BUCKET_POINTS
        inside = (scores >= low) & ((scores < high) if high < 100 else (scores <= high))
        count, churned = int(inside.sum()), int(y[inside].sum())
        buckets.append(
            CalibrationBucket(
                low=low,
                high=high,
                accounts=count,
                churned=churned,
                churn_rate=round(churned / count, 4) if count else None,
                churn_rate_ci=wilson(churned, count),
                arr=round(float(arr[inside].sum()), 2),
            )
        )
    return buckets
