"""The page scorer of configured scorecards against the per-account reference, on random scorecards and records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from src.app.analysis.derived_signals import StoredScores
from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.scan import BATCH_MIN_RECORDS, score_book, score_record
from src.app.analysis.scorecard_batch import _on_curve, score_page
from src.app.analysis.scorecard_model import ScorecardSet, ScorecardSpec, Segment
from src.app.analysis.scorecards import _on_curve as reference_curve
from src.app.analysis.scorecards import load_default_scorecard, load_scorecard_set, parse_scorecard
from src.app.analysis.signals import AccountDataError
from src.app.schemas import CSMHealthScore
from tests.unit.test_health_batch import CATEGORIES, INTS
from tests.unit.test_health_batch import records as signal_records
from tests.unit.test_scoring_path import TENURE, TREND, tenant_card

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
TZ = ZoneInfo("Europe/Berlin")
EXACT_INT = 2**53

NUMERIC_FIELDS = [*INTS, "feature_adoption_rate", "seats_utilization_rate", "csat", "arr"]
CATEGORY_FIELDS: dict[str, list[str]] = {
    **{name: [*values, "odd"] for name, values in CATEGORIES.items()},
    "region": ["emea", "amer", "1", "1.0", "True", "None"],
}
THRESHOLDS = [-5, 0, 0.5, 0.8, 1, 1.0001, 2, 5, 7, 9, 10, 30, 31, 60, 90, 180, 100_000]
FRACTIONS = [0, 0.1, 0.25, 1 / 3, 0.5, 0.7, 1]
COMPARATORS = ["at_most", "below", "at_least", "above"]
RAGS = ["GREEN", "AMBER", "RED"]
LEVELS = ["low", "medium", "high", "critical"]

EXTRA_VALUES = st.sampled_from(
    [None, "<absent>", 0, 1, 2.25, 3, 5.5, 7.5, -2, "3", "4.5", " 9 ", "x", True, 10**400, float("nan"), [1], "emea"]
)
"""Values of fields a scorecard may read beyond the signals: numbers, numeric text, odd types, huge integers."""


def _with_one_full(draw: st.DrawFn, count: int) -> list[float]:
    """`count` fractions of the weight, one of them the full weight (the best outcome must earn it)."""
    fractions = [draw(st.sampled_from(FRACTIONS)) for _ in range(count)]
    fractions[draw(st.integers(0, count - 1))] = 1
    return fractions


@st.composite
def signal_specs(draw: st.DrawFn) -> dict[str, Any]:
    weight = draw(st.sampled_from([1, 2.5, 5, 10, 20, 33.3]))
    kind = draw(st.sampled_from(["bands", "curve", "categories"]))
    spec: dict[str, Any] = {"weight": weight}
    if kind == "categories":
        field = draw(st.sampled_from(list(CATEGORY_FIELDS)))
        values = draw(st.lists(st.sampled_from(CATEGORY_FIELDS[field]), min_size=1, max_size=5, unique=True))
        spec["categories"] = {v: weight * f for v, f in zip(values, _with_one_full(draw, len(values)), strict=True)}
    else:
        field = draw(st.sampled_from(NUMERIC_FIELDS))
        spec["direction"] = draw(st.sampled_from(["higher_is_better", "lower_is_better"]))
        if kind == "bands":
            count = draw(st.integers(1, 4))
            fractions = _with_one_full(draw, count + 1)
            spec["bands"] = [
                {draw(st.sampled_from(COMPARATORS)): draw(st.sampled_from(THRESHOLDS)), "points": weight * fraction}
                for fraction in fractions[:-1]
            ]
            spec["else_points"] = weight * fractions[-1]
        else:
            xs = sorted(draw(st.lists(st.sampled_from(THRESHOLDS), min_size=2, max_size=4, unique=True)))
            spec["curve"] = [[x, f] for x, f in zip(xs, _with_one_full(draw, len(xs)), strict=True)]
    spec["field"] = field
    spec["missing"] = draw(st.sampled_from(["neutral", "zero", "exclude"]))
    if spec["missing"] == "neutral":
        spec["neutral_points"] = weight * draw(st.sampled_from(FRACTIONS))
    if draw(st.booleans()):
        spec["penalty"] = {
            "field": draw(st.sampled_from(["open_ticket_count", "escalation_count_90_days", "csat", "region"])),
            "points_per_unit": draw(st.sampled_from([0, 0.5, 1, 3])),
            "max_units": draw(st.sampled_from([None, 0, 2, 5])),
        }
    return spec


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.sampled_from([*NUMERIC_FIELDS, *CATEGORY_FIELDS, "plan"]))
    condition: dict[str, Any] = {"field": field, "when_missing": draw(st.booleans())}
    if draw(st.booleans()):
        options = CATEGORY_FIELDS.get(field, ["enterprise", "3", 3, 7.5, 1])
        condition["in"] = draw(st.lists(st.sampled_from(options), min_size=1, max_size=3, unique=True))
    if not condition.get("in") or draw(st.booleans()):
        condition[draw(st.sampled_from(COMPARATORS))] = draw(st.sampled_from(THRESHOLDS))
    return condition


@st.composite
def scorecards(draw: st.DrawFn, name: str) -> ScorecardSpec:
    signals = draw(st.lists(signal_specs(), min_size=1, max_size=6))
    green, amber = draw(st.sampled_from([(70, 40), (50, 49.99), (100, 0), (30, 10)]))
    triggers = {
        trigger: {
            "rag_in": draw(st.lists(st.sampled_from(RAGS), max_size=3, unique=True)),
            "conditions": draw(st.lists(conditions(), min_size=1, max_size=2)),
        }
        for trigger in ("contract_proximity", "behavioral")
        if draw(st.booleans())
    }
    outcomes = ("both", "contract_proximity", "behavioral", "none")
    data = {
        "name": name,
        "version": "1",
        "coverage_floor": draw(st.sampled_from([0, 0.3, 0.5, 0.9, 1])),
        "rag": {"green": green, "amber": amber},
        "signals": {f"s{index}": spec for index, spec in enumerate(signals)},
        "multipliers": [
            {
                "field": draw(st.sampled_from(["collections_risk", "tam_health_rag", "region", "csat"])),
                "factors": draw(
                    st.dictionaries(
                        st.sampled_from(["RED", "AMBER", "CRITICAL", "emea", "3", "7.5", "True"]),
                        st.sampled_from([0, 0.5, 0.8, 1, 1.2]),
                        min_size=1,
                        max_size=3,
                    )
                ),
                "key": draw(st.sampled_from([None, "adjustment"])),
            }
            for _ in range(draw(st.integers(0, 2)))
        ],
        "churn": {
            **triggers,
            "levels": {outcome: {rag: draw(st.sampled_from(LEVELS)) for rag in RAGS} for outcome in outcomes},
        },
        "alert": {
            "rag_in": draw(st.lists(st.sampled_from(RAGS), max_size=2, unique=True)),
            "churn_risk_in": draw(st.lists(st.sampled_from(LEVELS), max_size=2, unique=True)),
            "conditions_any": draw(st.lists(conditions(), max_size=2)),
        },
    }
    try:
        return ScorecardSpec.model_validate(data)
    except ValidationError:
        assume(False)
        raise


@st.composite
def scorecard_sets(draw: st.DrawFn) -> ScorecardSet:
    cards = {"a": draw(scorecards("a")), "b": draw(scorecards("b")), "default": load_default_scorecard()}
    segments = [
        Segment(name="first", scorecard="a", when=(draw(conditions()),)),
        Segment(name="second", scorecard=draw(st.sampled_from(["b", "default"])), when=(draw(conditions()),)),
        Segment(name="rest", scorecard=draw(st.sampled_from(list(cards)))),
    ]
    return ScorecardSet(name="random", scorecards=cards, segments=tuple(segments))


@st.composite
def accounts(draw: st.DrawFn, *, valid_only: bool) -> dict[str, Any]:
    record = draw(signal_records(valid_only=valid_only))
    for field in ("csat", "arr", "region", "plan"):
        value = draw(EXTRA_VALUES if field != "plan" else st.sampled_from(["enterprise", "standard", "<absent>"]))
        if value != "<absent>":
            record[field] = value
    return record


def _reference(
    record: dict[str, Any],
    scorer: CSMHealthScorer,
    previous: CSMHealthScore | None = None,
    history: dict[str, StoredScores] | None = None,
) -> CSMHealthScore | str:
    """What `score_book` makes of the record one by one: its score, or the kind of error."""
    account_id = record["account_id"]
    try:
        return score_record(record, account_id, scorer=scorer, previous=previous, now=NOW, tz=TZ, history=history)
    except AccountDataError as error:
        return error.kind
    except Exception as error:
        return type(error).__name__


def _plain(record: dict[str, Any]) -> bool:
    """Whether every signal value has the plain type of its field (what the page scorer takes without pydantic).

    An integer too large for a float anywhere in the record leaves it to the per-account path too: a condition that
    reads it raises, and the page scorer does not follow which conditions the reference would have skipped.
    """
    if any(type(value) is int and abs(value) >= EXACT_INT for value in record.values()):
        return False
    for name in INTS:
        value = record.get(name)
        if value is not None and not (type(value) is int and abs(value) < EXACT_INT):
            return False
    for name in ("feature_adoption_rate", "seats_utilization_rate"):
        if record.get(name) is not None and type(record[name]) not in (int, float):
            return False
    return all(record.get(name) is None or type(record[name]) is str for name in CATEGORIES)


def _assert_same(page: list[dict[str, Any]], scored: list[CSMHealthScore | None], references: list[Any]) -> None:
    for record, batch, reference in zip(page, scored, references, strict=True):
        if batch is not None:
            assert isinstance(reference, CSMHealthScore), f"batch scored what the reference refused: {reference}"
            assert batch.model_dump_json() == reference.model_dump_json()
            assert batch.should_alert == reference.should_alert
        elif isinstance(reference, CSMHealthScore):
            assert not _plain(record), f"batch left a plainly valid record to the per-account path: {record}"


@settings(max_examples=300, deadline=None)
@given(cards=scorecard_sets(), page=st.lists(accounts(valid_only=False), min_size=1, max_size=12))
def test_random_scorecards_score_a_page_as_account_by_account(cards: ScorecardSet, page: list[dict[str, Any]]) -> None:
    scorer = CSMHealthScorer(scorecards=cards)
    references = [_reference(record, scorer) for record in page]
    _assert_same(page, score_page(page, scorer=scorer, previous={}, now=NOW, tz=TZ), references)


@settings(max_examples=200, deadline=None)
@given(
    cards=scorecard_sets(), page=st.lists(accounts(valid_only=True), min_size=1, max_size=12), seed=st.integers(0, 3)
)
def test_plainly_valid_records_are_scored_at_once_with_deltas(
    cards: ScorecardSet, page: list[dict[str, Any]], seed: int
) -> None:
    scorer = CSMHealthScorer(scorecards=cards)
    yesterday = NOW - timedelta(days=1)
    previous = {
        record["account_id"]: score.model_copy(update={"computed_at": yesterday, "score": max(score.score - 1, 0)})
        for record in page[seed::3]
        if isinstance(score := _reference(record, scorer), CSMHealthScore)
    }
    references = [_reference(record, scorer, previous.get(record["account_id"])) for record in page]
    _assert_same(page, score_page(page, scorer=scorer, previous=previous, now=NOW, tz=TZ), references)


@settings(max_examples=200, deadline=None)
@given(page=st.lists(signal_records(valid_only=False), min_size=1, max_size=12))
def test_the_shipped_default_as_a_configured_scorecard(page: list[dict[str, Any]]) -> None:
    scorer = CSMHealthScorer(scorecards=load_scorecard_set("src/app/data/scorecards/default.toml"))
    references = [_reference(record, scorer) for record in page]
    _assert_same(page, score_page(page, scorer=scorer, previous={}, now=NOW, tz=TZ), references)


STARTS = st.sampled_from([None, "2020-01-01", "2026-09-15", "2026-11-24T05:00:00+00:00", "2027-01-01", "soon", 7])


@settings(max_examples=100, deadline=None)
@given(
    page=st.lists(accounts(valid_only=True), min_size=1, max_size=8),
    starts=st.lists(STARTS, min_size=8, max_size=8),
    slopes=st.lists(st.sampled_from([None, -1.0, 0.0, 0.4, 2.0]), min_size=8, max_size=8),
)
def test_derived_tenure_and_trend_signals_match_the_reference(
    tmp_path_factory: Any, page: list[dict[str, Any]], starts: list[Any], slopes: list[float | None]
) -> None:
    folder: Path = tmp_path_factory.mktemp("cards")
    path = tenant_card(folder, extra_signal=TENURE + TREND)
    set_path = folder / "set.toml"
    set_path.write_text(
        "name = 'derived'\n"
        "[[segments]]\nname = 'new'\nscorecard = 'tenant'\nwhen = [{ field = 'tenure_days', at_most = 90 }]\n"
        "[[segments]]\nname = 'rest'\nscorecard = 'default'\n"
        f"[scorecards.tenant]\nfile = '{path.name}'\n",
        encoding="utf-8",
    )
    scorer = CSMHealthScorer(scorecards=load_scorecard_set(set_path))
    history: dict[str, StoredScores] = {}
    for index, (record, start, slope) in enumerate(zip(page, starts, slopes, strict=False)):
        record["account_id"] = f"acct-{index}"
        if start is not None:
            record["start_date"] = start
        if slope is not None:
            history[record["account_id"]] = [
                (NOW - timedelta(days=day), 50 - slope * day, ("tenant", "2")) for day in range(0, 40, 3)
            ]
    references = [_reference(record, scorer, history=history) for record in page]
    scored = score_page(page, scorer=scorer, previous={}, now=NOW, tz=TZ, history=history)
    _assert_same(page, scored, references)


def test_score_book_scores_a_configured_page_at_once(tmp_path: Path) -> None:
    scorer = CSMHealthScorer(scorecards=load_scorecard_set(tenant_card(tmp_path)))
    good = {
        "feature_adoption_rate": 0.5,
        "usage_trend": "declining",
        "stakeholder_engagement": "medium",
        "invoice_payment_status": "overdue_30",
        "seats_utilization_rate": 0.7,
        "days_to_renewal": 20,
    }
    page = [{"account_id": f"a{i:03}", **good, "login_frequency_days": i} for i in range(BATCH_MIN_RECORDS)]
    page += [{"account_id": "bad", **good, "nps_score": 11}, {"account_id": "sparse", "usage_trend": "stable"}]
    scored = score_page(page, scorer=scorer, previous={}, now=NOW, tz=TZ)
    assert all(score is not None for score in scored[:BATCH_MIN_RECORDS]) and scored[-2:] == [None, None]
    outcome = score_book(page, scorer=scorer, previous={}, now=NOW, tz=TZ)
    one_by_one = [_reference(record, scorer) for record in page[:BATCH_MIN_RECORDS]]
    assert [s.model_dump_json() for s in outcome.scores] == [s.model_dump_json() for s in one_by_one]  # type: ignore[union-attr]
    assert {s.churn_triggered_by for s in outcome.scores} == {"both", "contract_proximity"}
    assert [(e.account_id, e.kind) for e in outcome.errors] == [
        ("bad", "invalid_data"),
        ("sparse", "insufficient_data"),
    ]


FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    xs=st.lists(FINITE, min_size=2, max_size=5, unique=True),
    ys=st.lists(st.floats(0, 1), min_size=5, max_size=5),
    points=st.lists(st.one_of(FINITE, st.sampled_from([0.0, 1.0])), min_size=1, max_size=20),
)
def test_curves_interpolate_bit_for_bit_as_the_reference(xs: list[float], ys: list[float], points: list[float]) -> None:
    """Unrounded: an operation done in another order shows here even where rounding to cents would hide it."""
    curve = tuple(zip(sorted(xs), ys, strict=False))
    points += [x for x, _ in curve]
    expected = [reference_curve(x, curve) for x in points]
    assert _on_curve(np.array(points), curve).tolist() == expected


PENALISED = """
name = "penalised"
version = "1"
coverage_floor = 0

[rag]
green = 70
amber = 40

[signals.tickets]
field = "avg_ticket_sentiment"
weight = 100
categories = { positive = 100, neutral = 70, negative = 30, critical = 0 }
missing = "neutral"
neutral_points = 70
penalty = { field = "csat", points_per_unit = 3, max_units = 5 }

[churn.levels]
both = { GREEN = "critical", AMBER = "critical", RED = "critical" }
contract_proximity = { GREEN = "high", AMBER = "high", RED = "critical" }
behavioral = { GREEN = "medium", AMBER = "high", RED = "high" }
none = { GREEN = "low", AMBER = "medium", RED = "medium" }
"""


def test_penalty_units_are_capped_and_read_as_numbers() -> None:
    card = parse_scorecard(PENALISED)
    scorer = CSMHealthScorer(
        scorecards=ScorecardSet(name="p", scorecards={"p": card}, segments=(Segment(name="all", scorecard="p"),))
    )
    units = [None, 0, -0.0, 1, 4.5, 5, 5.5, "5.5", 7, -1, "x", True, float("inf"), 10**400]
    page = [{"account_id": f"a{i}", "avg_ticket_sentiment": "positive", "csat": u} for i, u in enumerate(units)]
    scored = score_page(page, scorer=scorer, previous={}, now=NOW, tz=TZ)
    _assert_same(page, scored, [_reference(record, scorer) for record in page])
    assert [s.score if s else None for s in scored] == [
        100,
        100,
        100,
        97,
        86.5,
        85,
        85,
        85,
        85,
        100,
        100,
        100,
        100,
        None,
    ]
