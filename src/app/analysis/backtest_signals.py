"""Per-signal backtest analysis and the baselines a scorecard is measured against.

For each signal: coverage, the AUC of its raw value and of its points, what dropping it costs, and warnings
(reversed direction, banding that loses signal, a likely leak). Baselines: the best single signal, an
equal-weight score and a cross-validated logistic regression on the same signals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from src.app.analysis.backtest_data import HistoryRow
from src.app.analysis.backtest_metrics import auc
from src.app.analysis.scorecard_model import ScorecardSpec, as_number
from src.app.analysis.scorecards import multiplier_factors, observed_signals, signal_points

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]
    BoolArray = NDArray[np.bool_]

LEAK_AUC = 0.95
"""A signal ranking churners better than this alone is probably recorded after the fact."""
REVERSED_AUC = 0.47
"""A signal below this AUC in its declared direction points the other way."""
BANDING_LOSS = 0.05
"""Raw-value AUC this much above the points' AUC means the bands throw signal away."""
CV_FOLDS = 5


class SignalStats(BaseModel):
    """How one signal relates to churn on its own and inside the scorecard."""

    signal: str
    weight: float
    coverage: float
    auc: float | None
    points_auc: float | None
    drop_delta: float | None
    reversed: bool
    banding_loses_signal: bool
    leak_warning: bool


class BestSignal(BaseModel):
    """The signal that ranks churners best on its own (on the rows where it was observed)."""

    signal: str | None
    auc: float | None


class Baselines(BaseModel):
    """What simpler or fitted models reach on the same rows."""

    best_signal: BestSignal
    equal_weight: float | None
    logistic_regression: float | None


@dataclass(frozen=True)
class PointsTable:
    """Every row's points per signal under one scorecard (NaN when excluded), raw values and multipliers."""

    names: list[str]
    weights: FloatArray
    points: FloatArray
    observed: BoolArray
    raw: FloatArray
    factor: FloatArray

    def fractions(self) -> FloatArray:
        """Points as a fraction of each signal's weight (NaN when excluded or weightless)."""
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore"):
            return self.points / np.where(self.weights > 0, self.weights, np.nan)

    def combined(self, keep: BoolArray) -> FloatArray:
        """Scores from the `keep` signals as the engine computes them (excluded rescaled, multipliers applied)."""
        import numpy as np

        points = np.where(keep, self.points, np.nan)
        available = np.where(np.isnan(points), 0.0, self.weights).sum(axis=1)
        total = self.weights[keep].sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.nansum(points, axis=1) * total / available * self.factor
        rounded: FloatArray = np.round(np.clip(np.nan_to_num(scores), 0.0, 100.0), 2)
        return rounded


def points_table(rows: Sequence[HistoryRow], scorecard: ScorecardSpec) -> PointsTable:
    """The points, observation mask, raw values and multiplier factor of every row under the scorecard."""
    import numpy as np

    names = list(scorecard.signals)
    points, observed, raw, factor = [], [], [], []
    for row in rows:
        earned = signal_points(row.signals, scorecard)
        seen = set(observed_signals(row.signals, scorecard))
        points.append([np.nan if earned[name] is None else earned[name] for name in names])
        observed.append([name in seen for name in names])
        raw.append([_raw(row, scorecard, name, earned[name]) for name in names])
        factor.append(float(np.prod([value for _, value in multiplier_factors(row.signals, scorecard)])))
    return PointsTable(
        names=names,
        weights=np.array([scorecard.signals[name].weight for name in names], dtype=float),
        points=np.array(points, dtype=float).reshape(len(rows), len(names)),
        observed=np.array(observed, dtype=bool).reshape(len(rows), len(names)),
        raw=np.array(raw, dtype=float).reshape(len(rows), len(names)),
        factor=np.array(factor, dtype=float),
    )


def _raw(row: HistoryRow, scorecard: ScorecardSpec, name: str, points: float | None) -> float:
    """A signal's raw value oriented so that higher is healthier (categories: their points); NaN if missing."""
    spec = scorecard.signals[name]
    value = row.signals.get(scorecard.field_of(name))
    if value is None:
        return float("nan")
    if spec.categories is not None:
        return float("nan") if points is None else points
    number = as_number(value)
    if number is None:
        return float("nan")
    return -number if spec.direction == "lower_is_better" else number


def signal_stats(table: PointsTable, y: FloatArray, scored: BoolArray, full_auc: float | None) -> list[SignalStats]:
    """Coverage, own AUC, points AUC, AUC change when dropped and warnings, for every signal."""
    import numpy as np

    stats = []
    everything = np.ones(len(table.names), dtype=bool)
    for index, name in enumerate(table.names):
        seen = table.observed[:, index]
        raw_auc = _rounded(auc(y[seen], -table.raw[seen, index]))
        points_auc = _rounded(auc(y[seen], -table.points[seen, index]))
        keep = everything.copy()
        keep[index] = False
        dropped = _rounded(auc(y[scored], -table.combined(keep)[scored])) if keep.any() else None
        stats.append(
            SignalStats(
                signal=name,
                weight=float(table.weights[index]),
                coverage=round(float(seen.mean()), 4) if len(seen) else 0.0,
                auc=raw_auc,
                points_auc=points_auc,
                drop_delta=None if dropped is None or full_auc is None else round(dropped - full_auc, 4),
                reversed=raw_auc is not None and raw_auc < REVERSED_AUC,
                banding_loses_signal=_loses(raw_auc, points_auc),
                leak_warning=raw_auc is not None and max(raw_auc, 1 - raw_auc) > LEAK_AUC,
            )
        )
    return stats


def _loses(raw_auc: float | None, points_auc: float | None) -> bool:
    return raw_auc is not None and points_auc is not None and raw_auc - points_auc > BANDING_LOSS


def baselines(
    table: PointsTable, y: FloatArray, scored: BoolArray, stats: list[SignalStats], *, seed: int
) -> Baselines:
    """The best single signal, an equal-weight score and a cross-validated logistic regression, on scored rows."""
    import numpy as np

    ranked = sorted((s for s in stats if s.auc is not None), key=lambda s: (-(s.auc or 0.0), s.signal))
    best = BestSignal(signal=ranked[0].signal, auc=ranked[0].auc) if ranked else BestSignal(signal=None, auc=None)
    fractions = np.where(table.observed, table.fractions(), np.nan)[scored]
    has_any = ~np.isnan(fractions).all(axis=1)
    equal = np.nanmean(fractions[has_any], axis=1) if has_any.any() else np.empty(0)
    return Baselines(
        best_signal=best,
        equal_weight=_rounded(auc(y[scored][has_any], -equal)),
        logistic_regression=_rounded(logistic_cv_auc(table.raw[scored], y[scored], seed=seed)),
    )


def logistic_cv_auc(features: FloatArray, y: FloatArray, *, seed: int) -> float | None:
    """Out-of-fold AUC of a logistic regression (median-imputed, with missing flags, standardised)."""
    import numpy as np
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    usable = features[:, ~np.isnan(features).all(axis=0)]
    events = int(y.sum())
    if usable.shape[1] == 0 or min(events, len(y) - events) < CV_FOLDS:
        return None
    model = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True), StandardScaler(), LogisticRegression(max_iter=1000)
    )
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    predicted = cross_val_predict(model, usable, y.astype(int), cv=folds, method="predict_proba")[:, 1]
    return auc(y, np.asarray(predicted, dtype=float))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
