"""`csm scorecard` and `csm backtest` through the CLI: the synthetic history's known hazard is recovered."""

from __future__ import annotations

import importlib.util
import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from src.app.analysis.backtest_metrics import auc
from src.app.analysis.scorecards import load_scorecard
from src.app.analysis.synthetic_history import TRUE_WEIGHTS, synthetic_history, write_history_csv
from src.app.cli import app

DEFAULT = "src/app/data/scorecards/default.toml"


def csm(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def raw_rows() -> list[dict[str, Any]]:
    return synthetic_history(3000, seed=11)


@pytest.fixture(scope="module")
def history(raw_rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "history.csv"
    write_history_csv(raw_rows, path)
    return path


@pytest.fixture(scope="module")
def report(history: Path) -> dict[str, Any]:
    result = csm("backtest", str(history), "--outcome", "churned", "--as-of", "as_of", "--suggest", "--json")
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def ranks(values: list[float]) -> np.ndarray:
    return np.argsort(np.argsort(values)).astype(float)


def test_backtest_json_has_the_promised_keys(report: dict[str, Any]) -> None:
    for key in ("auc", "auc_ci", "baselines", "bands", "calibration", "signals", "insufficient_share", "suggested"):
        assert key in report
    assert set(report["baselines"]) >= {"best_signal", "equal_weight", "logistic_regression"}
    assert set(report["suggested"]) >= {"auc_train", "auc_test", "weights", "thresholds"}


def test_backtest_suggest_recovers_the_generator_weight_ranking(report: dict[str, Any]) -> None:
    weights = report["suggested"]["weights"]
    names = list(TRUE_WEIGHTS)
    spearman = float(np.corrcoef(ranks([TRUE_WEIGHTS[n] for n in names]), ranks([weights[n] for n in names]))[0, 1])
    assert spearman > 0.85
    assert set(sorted(names, key=lambda n: -weights[n])[:3]) == {
        "support_tickets",
        "usage_trend",
        "invoice_payment_status",
    }


def test_backtest_suggest_beats_the_default_held_out_by_the_implied_margin(
    report: dict[str, Any], raw_rows: list[dict[str, Any]]
) -> None:
    suggested = report["suggested"]
    split = date.fromisoformat(suggested["split_date"])
    test = [row for row in raw_rows if date.fromisoformat(row["as_of"]) >= split]
    oracle = auc(np.array([row["churned"] for row in test], dtype=float), np.array([r["true_risk"] for r in test]))
    assert oracle is not None
    margin = oracle - suggested["current_auc_test"]
    assert margin > 0.03
    assert suggested["auc_test"] >= suggested["current_auc_test"] + 0.6 * margin
    assert suggested["gain_ci"][0] > 0


def test_backtest_report_fits_80_columns_and_writes_only_when_asked(history: Path, tmp_path: Path) -> None:
    target, plot = tmp_path / "suggested.toml", tmp_path / "plot.png"
    result = csm("backtest", str(history), "--suggest", "--write", str(target), "--plot", str(plot))
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines() if not line.startswith("wrote ")) <= 80
    assert "ROC-AUC" in result.stdout and "Suggested scorecard" in result.stdout
    assert load_scorecard(target).total_weight() == pytest.approx(100)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["/nonexistent/history.csv"], 1, "cannot read the file"),
        (["{history}", "--outcome", "nope"], 1, "no usable rows"),
        (["{history}", "--horizon", "soon"], 2, "--horizon 'soon'"),
        (["{history}", "--write", "x.toml"], 2, "add --suggest"),
        (["{history}", "--scorecard", "/nonexistent.toml"], 1, "cannot read the file"),
    ],
)
def test_bad_backtest_input_is_one_line_and_a_non_zero_exit(
    history: Path, args: list[str], code: int, message: str
) -> None:
    result = csm("backtest", *(arg.format(history=history) for arg in args))
    assert result.exit_code == code
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_missing_backtest_extra_names_the_install(history: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    result = csm("backtest", str(history))
    assert result.exit_code == 1
    assert "pip install 'csm-agent[backtest]'" in result.stderr


def test_scorecard_validate_names_field_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nversion = "1"\ncoverage_floor = 2\n\n[rag]\ngreen = 30\namber = 40\n', encoding="utf-8")
    result = csm("scorecard", "validate", str(bad))
    assert result.exit_code == 1
    assert "coverage_floor (line 3)" in result.stderr and "rag (line 5): amber (40.0) must be lower" in result.stderr
    ok = csm("scorecard", "validate", DEFAULT)
    assert ok.exit_code == 0 and "default v1" in ok.stdout


def test_scorecard_show_and_diff(tmp_path: Path) -> None:
    shown = csm("scorecard", "show")
    assert shown.exit_code == 0 and "Scorecard 'default' version '1'" in shown.stdout
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80
    other = tmp_path / "other.toml"
    other.write_text(Path(DEFAULT).read_text(encoding="utf-8").replace("green = 70", "green = 75"), encoding="utf-8")
    diff = csm("scorecard", "diff", DEFAULT, str(other))
    assert diff.exit_code == 0 and "~ rag.green: 70.0 -> 75.0" in diff.stdout
    assert csm("scorecard", "show", "--toml").stdout.startswith("# Scorecard 'default'")
