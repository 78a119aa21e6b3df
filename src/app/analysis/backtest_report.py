"""A backtest for people: an 80-column text report and a PNG of score buckets, churn rates, cut-offs and ROC."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from src.app.analysis.backtest import BacktestResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WIDTH = 80


def render_report_text(result: BacktestResult) -> str:
    """The backtest as plain text, no line longer than 80 characters."""
    sections = [_summary(result), _bands(result), _calibration(result), _signals(result)]
    if result.suggested is not None:
        sections.append(_suggested(result))
    return "\n\n".join(sections) + "\n"


def _num(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _ci(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f" (95% CI {interval[0]:.3f}-{interval[1]:.3f})"


def _gain(new: float | None, old: float | None) -> str:
    return "-" if new is None or old is None else f"{new - old:+.3f}"


def _summary(result: BacktestResult) -> str:
    base = result.baselines
    best = base.best_signal
    return "\n".join(
        [
            f"Backtest of scorecard {result.scorecard_name} v{result.scorecard_version}"[:WIDTH],
            f"{result.accounts} accounts, {result.scored} scored, {result.churned} churned within "
            f"{result.horizon_days} days (base rate {result.base_rate:.1%})"[:WIDTH],
            f"insufficient data: {result.insufficient_share:.1%}",
            f"ROC-AUC {_num(result.auc)}{_ci(result.auc_ci)}",
            f"  best single signal  {_num(best.auc)} ({best.signal or '-'})"[:WIDTH],
            f"  equal-weight score  {_num(base.equal_weight)}",
            f"  logistic regression {_num(base.logistic_regression)} (5-fold cross-validated)",
            f"Riskiest 10%: precision {_num(result.top_decile.precision)}, lift {_num(result.top_decile.lift, '.2f')}",
            f"Alerts: {result.alerts.accounts} ({result.alerts.share:.1%}), precision "
            f"{_num(result.alerts.precision)}, recall {_num(result.alerts.recall)}",
        ]
    )


def _bands(result: BacktestResult) -> str:
    lines = ["Band   accounts  share  churn rate  lift  recall   ARR at risk"]
    lines += [
        f"{b.rag:<6} {b.accounts:>8}  {b.share:>5.1%}  {_num(b.churn_rate, '>10.1%')}  "
        f"{_num(b.lift, '>4.2f')}  {b.recall:>6.1%}  {b.arr_at_risk:>12,.0f}"
        for b in result.bands
    ]
    return "\n".join(lines)


def _calibration(result: BacktestResult) -> str:
    lines = ["Score     accounts  churned  churn rate  95% CI          ARR"]
    lines += [
        f"{b.low:>3.0f}-{b.high:<3.0f}  {b.accounts:>9}  {b.churned:>7}  {_num(b.churn_rate, '>10.1%')}  "
        f"{b.churn_rate_ci[0]:>5.1%}-{b.churn_rate_ci[1]:<6.1%}  {b.arr:>12,.0f}"
        for b in result.calibration
        if b.accounts
    ]
    return "\n".join(lines)


def _signals(result: BacktestResult) -> str:
    lines = ["Signal                       weight  cover    AUC  pts AUC  drop  flags"]
    for s in result.signals:
        flags = ",".join(
            flag
            for flag, on in (
                ("reversed", s.reversed),
                ("banding", s.banding_loses_signal),
                ("leak?", s.leak_warning),
            )
            if on
        )
        lines.append(
            f"{s.signal[:28]:<28} {s.weight:>6.1f}  {s.coverage:>5.0%}  {_num(s.auc, '>5.3f')}  "
            f"{_num(s.points_auc, '>7.3f')}  {_num(s.drop_delta, '>+5.2f')}  {flags}"[:WIDTH].rstrip()
        )
    lines.append("flags: reversed direction, banding loses signal, leak? (AUC > 0.95)")
    return "\n".join(lines)


def _suggested(result: BacktestResult) -> str:
    s = result.suggested
    if s is None:
        return ""
    lines = [
        f"Suggested scorecard: fitted on {s.train_accounts} rows before {s.split_date}, tested on {s.test_accounts}",
        f"  held-out AUC {_num(s.auc_test)}{_ci(s.auc_test_ci)}",
        f"  current      {_num(s.current_auc_test)}{_ci(s.current_auc_test_ci)}",
        f"  gain         {_gain(s.auc_test, s.current_auc_test)}{_ci(s.gain_ci)}",
        f"  cut-offs: GREEN >= {s.thresholds['green']:g} (now {s.current_thresholds['green']:g}), "
        f"AMBER >= {s.thresholds['amber']:g} (now {s.current_thresholds['amber']:g})",
        "Signal                        now  suggested",
    ]
    lines += [f"{name[:28]:<28} {s.current_weights[name]:>5.1f}  {w:>9.1f}" for name, w in s.weights.items()]
    return "\n".join(line[:WIDTH] for line in lines)


def plot_backtest(result: BacktestResult, path: str | Path) -> Path:
    """Save a PNG: accounts per score bucket (churned/retained), churn rate with its interval, cut-offs, ROC."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5), layout="constrained")
    buckets, roc = figure.subplots(1, 2, width_ratios=(3, 2))
    mids = [(b.low + b.high) / 2 for b in result.calibration]
    churned = [b.churned for b in result.calibration]
    retained = [b.accounts - b.churned for b in result.calibration]
    buckets.bar(mids, retained, width=9, color="#9ecae1", label="retained")
    buckets.bar(mids, churned, width=9, bottom=retained, color="#de2d26", label="churned")
    buckets.set(xlabel="health score", ylabel="accounts", xlim=(0, 100), title="Accounts per score bucket")
    rates = buckets.twinx()
    shown = [(m, b) for m, b in zip(mids, result.calibration, strict=True) if b.churn_rate is not None]
    rates.errorbar(
        [m for m, _ in shown],
        [b.churn_rate or 0.0 for _, b in shown],
        yerr=[
            [(b.churn_rate or 0.0) - b.churn_rate_ci[0] for _, b in shown],
            [b.churn_rate_ci[1] - (b.churn_rate or 0.0) for _, b in shown],
        ],
        color="black",
        marker="o",
        capsize=3,
        label="churn rate (95% CI)",
    )
    rates.set(ylabel="observed churn rate", ylim=(0, 1))
    _cutoffs(buckets, result)
    buckets.legend(loc="upper left")
    rates.legend(loc="upper right")
    for name, points in result.roc.items():
        roc.plot([x for x, _ in points], [y for _, y in points], label=name)
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", aspect="equal")
    roc.legend(loc="lower right")
    target = Path(path)
    figure.savefig(target, dpi=100)
    return target


def _cutoffs(axes: Axes, result: BacktestResult) -> None:
    marks = [(f"current {name}", value, "-") for name, value in result.thresholds.items()]
    if result.suggested is not None:
        marks += [(f"suggested {name}", value, "--") for name, value in result.suggested.thresholds.items()]
    for label, value, style in marks:
        axes.axvline(value, color="#31a354" if "green" in label else "#fd8d3c", linestyle=style, label=label)
