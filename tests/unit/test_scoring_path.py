"""Scorecards on the scoring path: CSM_SCORECARD, coverage not a block, no cross-scorecard deltas, derived inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings

from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.scan import score_book
from src.app.analysis.scorecards import load_scorecard_set
from src.app.analysis.signals import AccountDataError
from src.app.config import CSMSettings
from src.app.context import scorer_from_settings
from src.app.schemas import CSMHealthScore, CSMHealthSignals
from src.app.tools.store.sql import SQLStore
from tests.unit.test_scorecards import FULL, signals_strategy

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
TZ = ZoneInfo("UTC")
RECORD: dict[str, Any] = {"account_id": "a", "name": "A", "plan": "enterprise", "arr": 50_000.0, **FULL}
LOW_WEIGHT = ("stakeholder_engagement", "seats_utilization_rate")


def tenant_card(tmp_path: Path, *, name: str = "tenant", extra_signal: str = "") -> Path:
    """The default scorecard renamed, with tickets weighted 20 instead of adoption, plus an optional signal."""
    text = (Path("src/app/data/scorecards/default.toml")).read_text(encoding="utf-8")
    text = text.replace('name = "default"', f'name = "{name}"').replace('version = "1"', 'version = "2"')
    text = text.replace("[signals.feature_adoption_rate]\nweight = 20", "[signals.feature_adoption_rate]\nweight = 10")
    path = tmp_path / f"{name}.toml"
    path.write_text(text + extra_signal, encoding="utf-8")
    return path


@settings(max_examples=150, deadline=None)
@given(signals=signals_strategy)
def test_the_default_scorer_path_carries_coverage_and_equals_the_default_scorecard(signals: CSMHealthSignals) -> None:
    seed = CSMHealthScorer().score(signals, "a", computed_at=NOW)
    via_card = CSMHealthScorer(scorecards=load_scorecard_set("src/app/data/scorecards/default.toml"))
    assert via_card.score(signals, "a", computed_at=NOW).model_dump() == seed.model_dump()
    assert seed.scorecard == ("default", "1") and seed.coverage is not None


def test_lacking_two_low_weight_signals_gives_a_score_with_coverage_not_an_error() -> None:
    record = {k: v for k, v in RECORD.items() if k not in LOW_WEIGHT}
    outcome = score_book([record], scorer=CSMHealthScorer(), previous={}, now=NOW, tz=TZ)
    assert outcome.errors == []
    [score] = outcome.scores
    assert (score.coverage, score.missing_signals) == (0.9, ["seats_utilization_rate", "stakeholder_engagement"])
    assert score.scorecard == ("default", "1")


def test_a_full_record_is_fully_covered_and_a_neutral_signal_is_named_missing() -> None:
    [full] = score_book([RECORD], scorer=CSMHealthScorer(), previous={}, now=NOW, tz=TZ).scores
    assert (full.coverage, full.missing_signals) == (1.0, [])
    record = {k: v for k, v in RECORD.items() if k != "nps_score"}
    [partial] = score_book([record], scorer=CSMHealthScorer(), previous={}, now=NOW, tz=TZ).scores
    assert (partial.coverage, partial.missing_signals) == (0.97, ["nps_score"])
    assert partial.score == full.score  # NPS 8 earns 2 points, and so does the neutral value


def test_below_the_coverage_floor_is_insufficient_data() -> None:
    sparse = {"account_id": "s", "usage_trend": "stable", "feature_adoption_rate": 0.5}
    [error] = score_book([sparse], scorer=CSMHealthScorer(), previous={}, now=NOW, tz=TZ).errors
    assert error.kind == "insufficient_data" and "coverage 35% is below the floor" in error.message


def test_csm_scorecard_selects_the_tenant_scorecard(tmp_path: Path) -> None:
    scorer = scorer_from_settings(CSMSettings(scorecard=tenant_card(tmp_path)))
    [score] = score_book([RECORD], scorer=scorer, previous={}, now=NOW, tz=TZ).scores
    [seed] = score_book([RECORD], scorer=CSMHealthScorer(), previous={}, now=NOW, tz=TZ).scores
    assert score.scorecard == ("tenant", "2")
    assert score.score != seed.score


def test_an_invalid_csm_scorecard_fails_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nversion = "1"\ncoverage_floor = 3\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"coverage_floor \(line 3\)"):
        scorer_from_settings(CSMSettings(scorecard=bad))


def test_scores_of_different_scorecards_are_never_compared(tmp_path: Path) -> None:
    signals = CSMHealthSignals(**FULL)
    default = CSMHealthScorer().score(signals, "a", computed_at=NOW - timedelta(days=1))
    tenant = CSMHealthScorer(scorecards=load_scorecard_set(tenant_card(tmp_path)))
    after_switch = tenant.score(signals, "a", previous=default, computed_at=NOW)
    assert after_switch.previous_score is None and after_switch.signal_deltas == {}
    again = tenant.score(signals, "a", previous=after_switch, computed_at=NOW)
    assert again.previous_score == after_switch.score
    legacy = CSMHealthScore.model_validate(
        {k: v for k, v in default.model_dump().items() if k not in {"scorecard_name", "scorecard_version", "coverage"}}
    )
    assert legacy.scorecard == ("default", "1")  # rows stored before scorecards were the seed's, i.e. default v1
    assert CSMHealthScorer().score(signals, "a", previous=legacy, computed_at=NOW).previous_score == legacy.score


TENURE = """
[signals.tenure_days]
weight = 10
direction = "higher_is_better"
curve = [[0, 0.0], [730, 1.0]]
missing = "neutral"
neutral_points = 5
"""


def test_a_scorecard_may_weight_tenure_from_the_start_date(tmp_path: Path) -> None:
    path = tenant_card(tmp_path, extra_signal=TENURE)
    text = path.read_text(encoding="utf-8").replace(
        "[signals.usage_trend]\nweight = 15", "[signals.usage_trend]\nweight = 5"
    )
    text = text.replace(
        "categories = { growing = 15, stable = 10, declining = 3, inactive = 0 }",
        "categories = { growing = 5, stable = 3, declining = 1, inactive = 0 }",
    )
    path.write_text(text, encoding="utf-8")
    scorer = CSMHealthScorer(scorecards=load_scorecard_set(path))
    assert scorer.derived_fields == {"tenure_days"}
    old = {**RECORD, "account_id": "old", "start_date": "2020-01-01"}
    new = {**RECORD, "account_id": "new", "start_date": (NOW - timedelta(days=73)).date().isoformat()}
    scores = {s.account_id: s for s in score_book([old, new], scorer=scorer, previous={}, now=NOW, tz=TZ).scores}
    assert scores["old"].signal_breakdown["tenure_days"] > scores["new"].signal_breakdown["tenure_days"]
    assert scores["new"].signal_breakdown["tenure_days"] == pytest.approx(1.0 * 100 / 100, abs=0.01)


TREND = """
[signals.score_trend_30d]
weight = 10
direction = "higher_is_better"
curve = [[-1, 0.0], [1, 1.0]]
missing = "neutral"
neutral_points = 5
"""


async def test_a_scorecard_may_weight_the_score_trend_from_stored_history(tmp_path: Path) -> None:
    path = tenant_card(tmp_path, extra_signal=TREND)
    scorer = CSMHealthScorer(scorecards=load_scorecard_set(path))
    store = SQLStore("sqlite://")
    try:
        past = [
            CSMHealthScore(
                account_id="a",
                score=80 - day,
                rag="GREEN",
                churn_risk_level="low",
                signal_breakdown={},
                computed_at=NOW - timedelta(days=20 - day),
                scorecard_name="tenant",
                scorecard_version="2",
            )
            for day in range(0, 20, 2)
        ]
        other = CSMHealthScore(
            account_id="a",
            score=10,
            rag="RED",
            churn_risk_level="high",
            signal_breakdown={},
            computed_at=NOW - timedelta(days=1),
        )  # the default's: not part of the trend
        await store.save_scores([*past, other])
        history = await store.score_points(["a"], since=NOW - timedelta(days=90))
        assert [card for _, _, card in history["a"]].count(("default", "1")) == 1
        [score] = score_book([RECORD], scorer=scorer, previous={}, now=NOW, tz=TZ, history=history).scores
        assert score.signal_breakdown["score_trend_30d"] == 0.0  # falling a point a day: the curve's bottom
        [flat] = score_book([RECORD], scorer=scorer, previous={}, now=NOW, tz=TZ).scores
        assert flat.signal_breakdown["score_trend_30d"] > score.signal_breakdown["score_trend_30d"]
    finally:
        await store.aclose()


async def test_stored_scores_record_their_scorecard(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'csm.sqlite'}")
    try:
        [score] = score_book([RECORD], scorer=CSMHealthScorer(), previous={}, now=NOW, tz=TZ).scores
        await store.save_scores([score])
        stored = (await store.latest_scores(["a"]))["a"]
        assert (stored.scorecard, stored.coverage) == (("default", "1"), 1.0)
    finally:
        await store.aclose()


def test_a_scorecard_unmappable_value_is_invalid_data(tmp_path: Path) -> None:
    scorer = CSMHealthScorer(scorecards=load_scorecard_set(tenant_card(tmp_path)))
    with pytest.raises(AccountDataError) as caught:
        scorer.score_values({"usage_trend": "sideways"}, "a")
    assert caught.value.kind == "invalid_data"
