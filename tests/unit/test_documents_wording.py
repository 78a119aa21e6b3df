"""The wording layer: labels, plurals, possessives, one rounding rule, strength words and the text checker."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from src.app.analysis.health import SIGNAL_KEYS, Scorecard
from src.app.documents.wording import (
    SIGNAL_LABELS,
    counted_list,
    describe_change,
    describe_percent_change,
    feature_label,
    fmt_date,
    fmt_moment,
    fmt_money,
    fmt_percent,
    fmt_score,
    join_list,
    lint_subject_body,
    lint_text,
    plural,
    possessive,
    score_delta,
    signal_label,
    signal_line,
    strength_word,
)


def test_every_signal_and_multiplier_key_has_a_human_label() -> None:
    multipliers = {"collections_risk", "tam_health_rag"}
    for key in (*SIGNAL_KEYS, *multipliers):
        assert key in SIGNAL_LABELS
        assert "_" not in signal_label(key)
    assert set(Scorecard().max_points()) <= set(SIGNAL_LABELS)
    assert signal_label("feature_adoption_rate") == "Feature adoption"
    assert signal_label("brand_new_signal") == "Brand new signal"  # never a raw key, even for an unknown one


def test_signal_lines_and_feature_labels() -> None:
    assert signal_line("feature_adoption_rate", 5, 20) == "Feature adoption 5/20"
    assert signal_line("feature_adoption_rate", 15.04, 20) == "Feature adoption 15/20"
    assert signal_line("collections_risk", -8.44) == "Collections risk -8.4 points"
    assert feature_label("email_sync") == "Email sync"
    assert feature_label("api_access") == "API access"
    assert feature_label("sso") == "SSO"


@pytest.mark.parametrize(
    ("count", "noun", "expected"),
    [
        (1, "feature", "1 feature"),
        (0, "feature", "0 features"),
        (6, "feature", "6 features"),
        (2, "opportunity", "2 opportunities"),
        (3, "day", "3 days"),
        (2, "status", "2 statuses"),
        (1234, "user", "1,234 users"),
    ],
)
def test_plural(count: int, noun: str, expected: str) -> None:
    assert plural(count, noun) == expected


def test_possessives() -> None:
    assert possessive("Driftwood Labs") == "Driftwood Labs'"
    assert possessive("Acme") == "Acme's"
    assert possessive("Beacon Robotics") == "Beacon Robotics'"


def test_lists_agree_with_their_counts() -> None:
    assert join_list([]) == ""
    assert join_list(["a"]) == "a"
    assert join_list(["a", "b", "c"]) == "a, b and c"
    assert join_list(["a", "b"], "or") == "a or b"
    assert counted_list(["Tasks"], "feature") == "1 feature (Tasks)"
    assert counted_list([], "feature") == "0 features"
    text = counted_list([f"F{i}" for i in range(8)], "feature", limit=5)
    assert text == "8 features (F0, F1, F2, F3, F4 and 3 more)"
    assert lint_text(text) == []


def test_one_rounding_rule_for_scores() -> None:
    assert fmt_score(11.5) == "12"  # half up, not banker's rounding
    assert fmt_score(12.5) == "13"
    assert fmt_score(11.49) == "11"
    assert fmt_score(63.8, out_of=True) == "64/100"
    assert score_delta(63.8, 92.8) == 64 - 93  # the delta is the difference of the shown numbers
    subject = f"Health {fmt_score(11.5, out_of=True)}"
    body = f"The score is {fmt_score(11.5, out_of=True)} today."
    assert lint_subject_body(subject, body) == []
    assert lint_subject_body("Health 11/100", "The score is 11.5/100.") == [
        'subject says "11/100" but the body does not'
    ]


def test_changes_money_percentages_and_dates() -> None:
    assert describe_change(-24) == "down 24 points"
    assert describe_change(1) == "up 1 point"
    assert describe_change(0) == "unchanged"
    assert describe_percent_change(-0.3412) == "down 34%"
    assert describe_percent_change(0.004) == "unchanged"
    assert fmt_money(49400.0) == "$49,400"
    assert fmt_percent(0.8051) == "81%"
    assert fmt_date(date(2026, 12, 2)) == "2 Dec 2026"
    assert fmt_moment(datetime(2026, 12, 2, 8, 5, tzinfo=UTC)) == "2 Dec 2026 08:05 UTC"


def test_strength_never_says_weak_at_half_the_points_or_more() -> None:
    assert strength_word(15, 20) == "fair"
    assert strength_word(10, 20) == "fair"
    assert strength_word(9.9, 20) == "weak"
    assert strength_word(16, 20) == "strong"
    for points in range(0, 21):
        assert (strength_word(points, 20) == "weak") == (points < 10)
    with pytest.raises(ValueError, match="positive"):
        strength_word(1, 0)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("The feature_adoption_rate fell.", 'raw identifier "feature_adoption_rate"'),
        ("The team uses 1 features.", '"1 features" should be singular'),
        ("It has 6 feature.", '"6 feature" should be plural'),
        ("Driftwood Labs's team", 'wrong possessive "Labs\'s"'),
        ("actively uses 6 features (a, b, c, d and e)", '"6 features" but 5 listed'),
        ("16 features (a, b and 11 more)", '"16 features" but 13 listed'),
        ("Feature adoption is weak (15/20 points).", '"weak" for 15/20, at least half the points'),
        ("Feature adoption 10/20 (weak)", '"weak" for 10/20, at least half the points'),
    ],
)
def test_lint_text_catches_each_kind_of_error(text: str, problem: str) -> None:
    assert lint_text(text) == [problem]


def test_lint_text_passes_clean_text() -> None:
    text = (
        "Beacon Robotics' health score is 64/100 (Amber), down 29 points in Q4 2026 to date. "
        "The team uses 1 feature heavily and 3 features (Tasks, Reports and SSO) lightly; "
        "16 features (a, b, c, d, e and 11 more) are available. Login frequency 4/10 is weak, "
        "Feature adoption 15/20 is fair. 3 tickets (2 open and 1 closed), version 1 was fine, "
        "6 feature requests came in. The deck is at /tmp/qbr_deck.pptx; write to a_b@example.com. "
        "Source: `health_score.signal_breakdown.usage_trend`."
    )
    assert lint_text(text) == []
