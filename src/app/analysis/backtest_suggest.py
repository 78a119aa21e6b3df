"""Suggest a better scorecard from a churn history: non-negative weights and RAG cut-offs fitted on older rows.

The weights are those of a logistic model of churn on each signal's share of its points, constrained to be
non-negative (a healthier signal never raises risk) and rescaled to the scorecard's points budget. The cut-offs
put RED where accounts churn at least `RED_LIFT` times the base rate and GREEN where they churn at most
`GREEN_LIFT` times it. Both are judged on the newer, held-out rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from src.app.analysis.backtest_data import BacktestError, HistoryRow
from src.app.analysis.backtest_metrics import auc, auc_ci, auc_gain_ci
from src.app.analysis.scorecard_model import ScorecardSpec
from src.app.analysis.scorecard_toml import scorecard_diff, scorecard_to_toml
from src.app.analysis.scorecards import score_with_scorecard

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]
    BoolArray = NDArray[np.bool_]

MIN_SPLIT_EVENTS = 5
"""Each side of the time split needs this many churned and retained accounts."""
L2_PENALTY = 1e-3
RED_LIFT = 2.0
GREEN_LIFT = 0.5
WINDOW_POINTS = 5
MIN_WINDOW_ACCOUNTS = 20
WEIGHT_DECIMALS = 1
POINT_DECIMALS = 6


class SuggestedScorecard(BaseModel):
    """The fitted scorecard and how it compares with the current one on the held-out (newer) rows."""

    split_date: date
    train_accounts: int
    test_accounts: int
    auc_train: float | None
    auc_test: float | None
    auc_test_ci: tuple[float, float] | None
    current_auc_test: float | None
    current_auc_test_ci: tuple[float, float] | None
    gain_ci: tuple[float, float] | None
    weights: dict[str, float]
    current_weights: dict[str, float]
    thresholds: dict[str, float]
    current_thresholds: dict[str, float]
    scorecard_toml: str
    diff: str
    test_scores: list[float] = Field(exclude=True)
    test_churned: list[bool] = Field(exclude=True)
    current_test_scores: list[float] = Field(exclude=True)


def time_split(rows: Sequence[HistoryRow], *, test_fraction: float) -> tuple[BoolArray, date]:
    """A mask of the test rows (the newest `test_fraction` by as-of date, whole dates kept together) and its date.

    Raises:
        BacktestError: Every row has the same as-of date, so older and newer cannot be told apart.
    """
    import numpy as np

    dates = sorted(row.as_of for row in rows)
    cutoff = dates[min(int(round(len(dates) * (1 - test_fraction))), len(dates) - 1)]
    if cutoff == dates[0]:
        raise BacktestError("a time-based split needs rows with different as-of dates (all share the earliest)")
    return np.array([row.as_of >= cutoff for row in rows], dtype=bool), cutoff


def suggest_scorecard(
    rows: Sequence[HistoryRow],
    y: FloatArray,
    fractions: FloatArray,
    scorecard: ScorecardSpec,
    *,
    test_fraction: float,
    seed: int,
    resamples: int,
) -> SuggestedScorecard:
    """Fit weights and cut-offs on the older rows and compare with `scorecard` on the newer ones.

    Args:
        rows: The rows the current scorecard could score.
        y: 1 for each churned row.
        fractions: Each row's points per signal as a fraction of the weight (NaN when excluded).
        scorecard: The current scorecard, whose points budget, shapes and rules are kept.
        test_fraction: Share of the newest rows held out.
        seed: Bootstrap seed.
        resamples: Bootstrap resamples for the intervals.

    Raises:
        BacktestError: Too few churned or retained rows on a side of the split, or no signal predicts churn.
    """
    test, split_date = time_split(rows, test_fraction=test_fraction)
    for side, mask in (("older (training)", ~test), ("newer (test)", test)):
        events = int(y[mask].sum())
        if min(events, int(mask.sum()) - events) < MIN_SPLIT_EVENTS:
            raise BacktestError(f"the {side} rows need {MIN_SPLIT_EVENTS} churned and retained accounts each")
    names = list(scorecard.signals)
    weights = fit_weights(fractions[~test], y[~test], names=names, budget=scorecard.total_weight())
    reweighted = rescaled(scorecard, weights)
    scores = _scores(rows, reweighted)
    thresholds = cutoffs(scores[~test], y[~test], scorecard)
    suggested = rescaled(scorecard, weights, thresholds)
    current = _scores(rows, scorecard)
    yt = y[test]
    return SuggestedScorecard(
        split_date=split_date,
        train_accounts=int((~test).sum()),
        test_accounts=int(test.sum()),
        auc_train=_round(auc(y[~test], -scores[~test])),
        auc_test=_round(auc(yt, -scores[test])),
        auc_test_ci=auc_ci(yt, -scores[test], seed=seed, resamples=resamples),
        current_auc_test=_round(auc(yt, -current[test])),
        current_auc_test_ci=auc_ci(yt, -current[test], seed=seed, resamples=resamples),
        gain_ci=auc_gain_ci(yt, -current[test], -scores[test], seed=seed, resamples=resamples),
        weights=weights,
        current_weights={name: spec.weight for name, spec in scorecard.signals.items()},
        thresholds={"green": thresholds[0], "amber": thresholds[1]},
        current_thresholds={"green": scorecard.rag.green, "amber": scorecard.rag.amber},
        scorecard_toml=scorecard_to_toml(suggested),
        diff=scorecard_diff(scorecard, suggested),
        test_scores=[float(value) for value in scores[test]],
        test_churned=[bool(value) for value in yt],
        current_test_scores=[float(value) for value in current[test]],
    )


def fit_weights(fractions: FloatArray, y: FloatArray, *, names: list[str], budget: float) -> dict[str, float]:
    """Non-negative logistic weights of the signals' points fractions, rescaled to `budget` points.

    Excluded (NaN) fractions are filled with their column's mean; weights are rounded to 0.1 keeping the total.

    Raises:
        BacktestError: Every weight came out zero.
    """
    import numpy as np
    from scipy.optimize import minimize

    seen = ~np.isnan(fractions)
    means = np.nansum(fractions, axis=0) / np.maximum(seen.sum(axis=0), 1)
    filled = np.where(seen, fractions, means[None, :])
    count = filled.shape[1]

    def loss(theta: FloatArray) -> tuple[float, FloatArray]:
        z = theta[0] - filled @ theta[1:]
        residual = 1 / (1 + np.exp(-z)) - y
        value = float(np.mean(np.logaddexp(0.0, z) - y * z) + L2_PENALTY / 2 * theta[1:] @ theta[1:])
        gradient = np.r_[residual.mean(), -(filled.T @ residual) / len(y) + L2_PENALTY * theta[1:]]
        return value, gradient

    bounds = [(None, None)] + [(0.0, None)] * count
    fitted = minimize(loss, np.zeros(count + 1), jac=True, method="L-BFGS-B", bounds=bounds).x[1:]
    if fitted.sum() <= 0:
        raise BacktestError("no signal predicts churn on the training rows; no weights to suggest")
    return dict(zip(names, _largest_remainder(fitted / fitted.sum() * budget), strict=True))


def _largest_remainder(values: FloatArray) -> list[float]:
    """Round to `WEIGHT_DECIMALS` keeping the total (largest remainders get the spare units)."""
    import numpy as np

    scale = 10**WEIGHT_DECIMALS
    units = np.floor(values * scale)
    spare = int(round(values.sum() * scale - units.sum()))
    order = np.argsort(-(values * scale - units), kind="stable")
    units[order[:spare]] += 1
    return [round(float(unit) / scale, WEIGHT_DECIMALS) for unit in units]


def rescaled(
    scorecard: ScorecardSpec, weights: dict[str, float], thresholds: tuple[float, float] | None = None
) -> ScorecardSpec:
    """The scorecard with each signal's points scaled to its new weight, and new (green, amber) when given."""
    data = scorecard.model_dump(by_alias=True, exclude_none=True)
    for name, signal in data["signals"].items():
        new = weights.get(name, signal["weight"])
        _scale_signal(signal, new / signal["weight"] if signal["weight"] else 0.0)
        signal["weight"] = new
    if thresholds is not None:
        data["rag"] = {"green": thresholds[0], "amber": thresholds[1]}
        data["name"], data["version"] = f"{scorecard.name}-suggested", f"{scorecard.version}+backtest"
    return ScorecardSpec.model_validate(data)


def _scale_signal(signal: dict[str, Any], factor: float) -> None:
    def scale(points: float) -> float:
        return round(points * factor, POINT_DECIMALS)

    for band in signal.get("bands", ()):
        band["points"] = scale(band["points"])
    for key in ("else_points", "neutral_points"):
        if key in signal:
            signal[key] = scale(signal[key])
    if "categories" in signal:
        signal["categories"] = {value: scale(points) for value, points in signal["categories"].items()}
    if "penalty" in signal:
        signal["penalty"]["points_per_unit"] = scale(signal["penalty"]["points_per_unit"])


def cutoffs(scores: FloatArray, y: FloatArray, scorecard: ScorecardSpec) -> tuple[float, float]:
    """(green, amber) integer cut-offs from the training scores, by the local churn rate around each score.

    RED runs from the bottom up to the first score whose neighbourhood (± `WINDOW_POINTS`) churns less than
    `RED_LIFT` times the base rate; GREEN starts at the first score above it whose neighbourhood churns at most
    `GREEN_LIFT` times the base rate. A cut-off with no qualifying score keeps the current one.
    """
    base = float(y.mean())
    rates = {t: _local_rate(scores, y, t) for t in range(1, 101)}
    amber = next((float(t) for t, rate in rates.items() if rate is not None and rate < RED_LIFT * base), None)
    amber = scorecard.rag.amber if amber is None else amber
    above = [t for t, rate in rates.items() if t > amber and rate is not None and rate <= GREEN_LIFT * base]
    green = float(above[0]) if above else max(scorecard.rag.green, amber + 1)
    return min(green, 100.0), min(amber, min(green, 100.0) - 1)


def _local_rate(scores: FloatArray, y: FloatArray, score: int) -> float | None:
    """The churn rate of accounts scoring within `WINDOW_POINTS` of `score` (None with too few of them)."""
    near = abs(scores - score) <= WINDOW_POINTS
    return float(y[near].mean()) if near.sum() >= MIN_WINDOW_ACCOUNTS else None


def _scores(rows: Sequence[HistoryRow], scorecard: ScorecardSpec) -> FloatArray:
    import numpy as np

    return np.array(
        [score_with_scorecard(row.signals, scorecard, row.account_id).score or 0.0 for row in rows], dtype=float
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
