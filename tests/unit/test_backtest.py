"""The backtest on a synthetic history with a known hazard: metrics, guards, suggest, determinism, report, plot."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from src.app.analysis.backtest import BacktestResult, run_backtest, write_suggested
from src.app.analysis.backtest_data import BacktestError, HistoryRow, history_rows, load_history
from src.app.analysis.backtest_metrics import auc
from src.app.analysis.backtest_report import plot_backtest, render_report_text
from src.app.analysis.scorecards import load_default_scorecard, load_scorecard, parse_scorecard
from src.app.analysis.synthetic_history import TRUE_WEIGHTS, synthetic_history, write_history_csv

N_ACCOUNTS = 3000


@pytest.fixture(scope="module")
def raw_rows() -> list[dict[str, Any]]:
    return synthetic_history(N_ACCOUNTS, seed=7)


@pytest.fixture(scope="module")
def rows(raw_rows: list[dict[str, Any]]) -> list[HistoryRow]:
    history = history_rows(raw_rows, outcome_col="churned", as_of_col="as_of")
    assert history.problems == []
    return history.rows


@pytest.fixture(scope="module")
def result(rows: list[HistoryRow]) -> BacktestResult:
    return run_backtest(rows, load_default_scorecard(), suggest=True, resamples=200)


def ranks(values: list[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    order = np.argsort(values, kind="stable")
    out = np.empty(len(values))
    out[order] = np.arange(len(values))
    return out


def test_json_has_the_promised_keys(result: BacktestResult) -> None:
    data = json.loads(result.model_dump_json())
    assert {"auc", "auc_ci", "baselines", "bands", "calibration", "signals", "insufficient_share", "suggested"} <= set(
        data
    )
    assert set(data["baselines"]) == {"best_signal", "equal_weight", "logistic_regression"}
    assert {"auc_train", "auc_test", "weights", "thresholds"} <= set(data["suggested"])
    assert "test_scores" not in data["suggested"]
    low, high = data["auc_ci"]
    assert low < data["auc"] < high


def test_metrics_describe_the_default_scorecard(result: BacktestResult) -> None:
    assert result.scored == N_ACCOUNTS and result.insufficient_share == 0.0
    assert 0.7 < (result.auc or 0) < 0.82
    assert (result.baselines.logistic_regression or 0) > (result.auc or 0)  # the weighted-sum ceiling is higher
    assert result.baselines.best_signal.signal == "support_tickets"
    assert [band.rag for band in result.bands] == ["GREEN", "AMBER", "RED"]
    assert sum(band.share for band in result.bands) == pytest.approx(1, abs=1e-3)
    assert sum(band.recall for band in result.bands) == pytest.approx(1, abs=1e-3)
    red = result.bands[2]
    assert red.lift is not None and red.lift > 2
    assert result.top_decile.accounts == N_ACCOUNTS // 10 and (result.top_decile.lift or 0) > 2
    assert sum(bucket.accounts for bucket in result.calibration) == N_ACCOUNTS
    assert 0 < result.alerts.accounts < N_ACCOUNTS
    by_name = {s.signal: s for s in result.signals}
    assert by_name["nps_score"].coverage == pytest.approx(0.7, abs=0.03)
    assert by_name["support_tickets"].drop_delta is not None and by_name["support_tickets"].drop_delta < 0
    assert by_name["feature_adoption_rate"].drop_delta is not None and by_name["feature_adoption_rate"].drop_delta > 0


def test_suggest_recovers_the_generator_weight_ranking(result: BacktestResult) -> None:
    suggested = result.suggested
    assert suggested is not None
    assert sum(suggested.weights.values()) == pytest.approx(100)
    names = list(TRUE_WEIGHTS)
    true, fitted = ranks([TRUE_WEIGHTS[n] for n in names]), ranks([suggested.weights[n] for n in names])
    spearman = float(np.corrcoef(true, fitted)[0, 1])
    assert spearman > 0.85
    top = sorted(names, key=lambda n: -suggested.weights[n])[:3]
    assert set(top) == {"support_tickets", "usage_trend", "invoice_payment_status"}
    assert suggested.weights["feature_adoption_rate"] < 5  # the default's largest weight barely matters


def test_suggest_beats_the_default_on_held_out_rows_by_the_implied_margin(
    result: BacktestResult, raw_rows: list[dict[str, Any]]
) -> None:
    suggested = result.suggested
    assert suggested is not None
    test = [row for row in raw_rows if date.fromisoformat(row["as_of"]) >= suggested.split_date]
    y = np.array([row["churned"] for row in test], dtype=float)
    oracle = auc(y, np.array([row["true_risk"] for row in test]))
    assert oracle is not None and suggested.current_auc_test is not None and suggested.auc_test is not None
    margin = oracle - suggested.current_auc_test
    assert margin > 0.03  # the generator's weights differ enough from the default's to matter
    assert suggested.auc_test >= suggested.current_auc_test + 0.6 * margin
    assert suggested.gain_ci is not None and suggested.gain_ci[0] > 0
    assert suggested.thresholds["amber"] < suggested.thresholds["green"]


def test_the_suggested_scorecard_is_valid_and_written_only_when_asked(result: BacktestResult, tmp_path: Path) -> None:
    assert result.suggested is not None
    card = parse_scorecard(result.suggested.scorecard_toml)
    assert card.total_weight() == pytest.approx(100)
    assert "~ signals.support_tickets.weight: 10.0 ->" in result.suggested.diff
    assert list(tmp_path.iterdir()) == []
    path = write_suggested(result, tmp_path / "suggested.toml")
    assert load_scorecard(path) == card


def test_same_input_gives_the_same_json(rows: list[HistoryRow]) -> None:
    subset = rows[:800]
    first = run_backtest(subset, load_default_scorecard(), suggest=True, resamples=50, seed=3)
    second = run_backtest(subset, load_default_scorecard(), suggest=True, resamples=50, seed=3)
    assert first.model_dump_json() == second.model_dump_json()


def test_signal_flags_reversed_banding_and_leak(rows: list[HistoryRow]) -> None:
    text = """
name = "flags"
version = "1"
coverage_floor = 0
[rag]
green = 70
amber = 40
[signals.risk_curve]
missing = "zero"
field = "true_risk"
weight = 25
direction = "lower_is_better"
curve = [[0, 1.0], [1, 0.0]]
[signals.risk_banded]
missing = "zero"
field = "true_risk"
weight = 25
direction = "lower_is_better"
bands = [{ at_most = 0.7, points = 25 }]
else_points = 0
[signals.risk_reversed]
missing = "zero"
field = "true_risk"
weight = 25
direction = "higher_is_better"
curve = [[0, 0.0], [1, 1.0]]
[signals.leak]
missing = "zero"
field = "leaked"
weight = 25
direction = "lower_is_better"
curve = [[0, 1.0], [1, 0.0]]
[churn.levels]
both = { GREEN = "critical", AMBER = "critical", RED = "critical" }
contract_proximity = { GREEN = "high", AMBER = "high", RED = "critical" }
behavioral = { GREEN = "medium", AMBER = "high", RED = "high" }
none = { GREEN = "low", AMBER = "medium", RED = "medium" }
"""
    card = parse_scorecard(text)
    leaky = [replace(row, signals={**row.signals, "leaked": float(row.churned)}) for row in rows[:1500]]
    stats = {s.signal: s for s in run_backtest(leaky, card, resamples=20).signals}
    assert not stats["risk_curve"].reversed and not stats["risk_curve"].banding_loses_signal
    assert stats["risk_banded"].banding_loses_signal
    assert stats["risk_reversed"].reversed
    assert stats["leak"].leak_warning and not stats["risk_curve"].leak_warning


# --- guards ------------------------------------------------------------------------------------------------------


def test_too_few_accounts_or_churn_events_is_a_clear_error(rows: list[HistoryRow]) -> None:
    with pytest.raises(BacktestError, match="too few accounts with enough data to score: 20"):
        run_backtest(rows[:20], load_default_scorecard())
    retained = [row for row in rows if not row.churned][:200] + [row for row in rows if row.churned][:4]
    with pytest.raises(BacktestError, match="too few churn events to judge a score: 4 churned"):
        run_backtest(retained, load_default_scorecard())


def test_rows_dated_on_or_after_their_outcome_are_refused(rows: list[HistoryRow]) -> None:
    bad = replace(rows[0], outcome_date=rows[0].as_of)
    with pytest.raises(
        BacktestError, match=rf"1 rows are dated on or after their outcome date.*line 1 \({bad.account_id}\)"
    ):
        run_backtest([bad, *rows[1:100]], load_default_scorecard())


def test_a_churn_beyond_the_horizon_counts_as_retained(rows: list[HistoryRow]) -> None:
    short = run_backtest(rows[:1500], load_default_scorecard(), horizon_days=30, resamples=20)
    full = run_backtest(rows[:1500], load_default_scorecard(), horizon_days=90, resamples=20)
    assert short.churned < full.churned


def test_suggest_needs_history_spread_over_time(rows: list[HistoryRow]) -> None:
    same_day = [replace(row, as_of=date(2024, 1, 1), outcome_date=None) for row in rows[:300]]
    with pytest.raises(BacktestError, match="different as-of dates"):
        run_backtest(same_day, load_default_scorecard(), suggest=True, resamples=20)


# --- files, report, plot -----------------------------------------------------------------------------------------


def test_load_history_reads_csv_and_reports_bad_rows_by_line(raw_rows: list[dict[str, Any]], tmp_path: Path) -> None:
    sample = [dict(row) for row in raw_rows[:50]]
    sample[2]["usage_trend"] = "sideways"
    sample[4]["churned"] = "maybe"
    sample[6]["as_of"] = None
    sample[8]["stakeholder_engagement"] = None
    sample[8]["seats_utilization_rate"] = None
    path = tmp_path / "history.csv"
    write_history_csv(sample, path)

    history = load_history(path, outcome_col="churned", as_of_col="as_of")

    assert len(history.rows) == 47
    assert [(p.line, p.message.split(" ")[0]) for p in history.problems] == [
        (4, "usage_trend='sideways'"),
        (6, "churned='maybe'"),
        (8, "missing"),
    ]
    row = next(r for r in history.rows if r.account_id == sample[8]["account_id"])
    assert "stakeholder_engagement" not in row.signals and row.signals["tenure_days"] > 0
    assert isinstance(row.signals["days_to_renewal"], int)


def test_load_history_reads_json_and_jsonl(raw_rows: list[dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "h.json").write_text(json.dumps(raw_rows[:5]), encoding="utf-8")
    (tmp_path / "h.jsonl").write_text("\n".join(json.dumps(r) for r in raw_rows[:5]) + "\n{oops\n", encoding="utf-8")
    assert len(load_history(tmp_path / "h.json", outcome_col="churned", as_of_col="as_of").rows) == 5
    lines = load_history(tmp_path / "h.jsonl", outcome_col="churned", as_of_col="as_of")
    assert len(lines.rows) == 5 and lines.problems[0].line == 6
    (tmp_path / "h.txt").write_text("x", encoding="utf-8")
    with pytest.raises(BacktestError, match="unknown history format .txt"):
        load_history(tmp_path / "h.txt", outcome_col="churned", as_of_col="as_of")


def test_report_text_fits_80_columns(result: BacktestResult) -> None:
    text = render_report_text(result)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "ROC-AUC" in text and "Suggested scorecard" in text and "support_tickets" in text


def test_plot_writes_a_png(result: BacktestResult, tmp_path: Path) -> None:
    path = plot_backtest(result, tmp_path / "backtest.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
