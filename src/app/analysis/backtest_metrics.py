"""Ranking and calibration metrics for a backtest: ROC-AUC with bootstrap intervals, ROC points, Wilson intervals.

Arrays: `y` is 1 for a churned account, `risk` is higher for an account more likely to churn.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

BOOTSTRAP_CHUNK = 100
Z_95 = 1.959963984540054
"""The two-sided 95 % normal quantile."""


def auc(y: FloatArray, risk: FloatArray) -> float | None:
    """ROC-AUC of `risk` for `y` (ties count half); None unless both outcomes occur."""
    from scipy.stats import rankdata

    positives = float(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(risk)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _bootstrap_aucs(y: FloatArray, risks: list[FloatArray], *, seed: int, resamples: int) -> list[FloatArray]:
    """The AUC of each risk on the same `resamples` resamples of the rows (NaN when a resample has one class)."""
    import numpy as np
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    out: list[list[FloatArray]] = [[] for _ in risks]
    for start in range(0, resamples, BOOTSTRAP_CHUNK):
        index = rng.integers(0, len(y), size=(min(BOOTSTRAP_CHUNK, resamples - start), len(y)))
        labels = y[index]
        positives = labels.sum(axis=1)
        negatives = len(y) - positives
        with np.errstate(divide="ignore", invalid="ignore"):
            for slot, risk in zip(out, risks, strict=True):
                ranks = rankdata(risk[index], axis=1)
                slot.append(((ranks * labels).sum(axis=1) - positives * (positives + 1) / 2) / (positives * negatives))
    return [np.concatenate(slot) for slot in out]


def auc_ci(y: FloatArray, risk: FloatArray, *, seed: int, resamples: int) -> tuple[float, float] | None:
    """A 95 % percentile bootstrap interval of the AUC, seeded; None without both outcomes."""
    import numpy as np

    if auc(y, risk) is None:
        return None
    (values,) = _bootstrap_aucs(y, [risk], seed=seed, resamples=resamples)
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def auc_gain_ci(
    y: FloatArray, base: FloatArray, new: FloatArray, *, seed: int, resamples: int
) -> tuple[float, float] | None:
    """A 95 % paired bootstrap interval of AUC(new) - AUC(base) on the same rows; None without both outcomes."""
    import numpy as np

    if auc(y, base) is None:
        return None
    before, after = _bootstrap_aucs(y, [base, new], seed=seed, resamples=resamples)
    low, high = np.nanpercentile(after - before, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def roc_points(y: FloatArray, risk: FloatArray, *, max_points: int = 60) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) points of the ROC curve, thinned to about `max_points`."""
    import numpy as np

    order = np.argsort(-risk, kind="stable")
    sorted_risk, labels = risk[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(sorted_risk))[0], len(y) - 1]
    tps = np.cumsum(labels)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    tpr = np.r_[0.0, tps / max(float(y.sum()), 1.0)]
    fpr = np.r_[0.0, fps / max(float(len(y) - y.sum()), 1.0)]
    keep = np.unique(np.linspace(0, len(tpr) - 1, min(max_points, len(tpr))).round().astype(int))
    return [(round(float(fpr[i]), 4), round(float(tpr[i]), 4)) for i in keep]


def wilson(events: int, total: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a rate `events / total` ((0, 1) when total is 0)."""
    if total == 0:
        return 0.0, 1.0
    rate = events / total
    spread = Z_95 * math.sqrt(rate * (1 - rate) / total + Z_95**2 / (4 * total**2))
    centre = rate + Z_95**2 / (2 * total)
    scale = 1 + Z_95**2 / total
    return round(max((centre - spread) / scale, 0.0), 4), round(min((centre + spread) / scale, 1.0), 4)
