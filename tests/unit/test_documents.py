"""The QBR document: trends from stored history, sourced figures, and its HTML, Markdown and deck renderings."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pptx import Presentation

from src.app.analysis.adoption import roi_metrics
from src.app.analysis.health import SIGNAL_KEYS, CSMHealthScorer
from src.app.analysis.signals import AccountDataError, signals_from_record
from src.app.documents.charts import bar_svg, score_history_svg
from src.app.documents.document import QBRDocument
from src.app.documents.facts import build_qbr_document
from src.app.documents.periods import Quarter
from src.app.documents.qbr_deck import write_deck
from src.app.documents.qbr_html import render_qbr_html
from src.app.documents.qbr_markdown import render_qbr_markdown
from src.app.documents.wording import lint_text, rounded_score
from src.app.schemas import AccountRecord, CSMHealthScore, FeatureAdoptionReport, QBRContent

SAMPLE_BOOK = Path(__file__).resolve().parents[2] / "src" / "app" / "data" / "sample_book.json"
MID_PERIOD = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
FALL_STARTS = datetime(2026, 11, 28, tzinfo=UTC)
FALL = {"usage_trend": "declining", "login_frequency_days": 45, "stakeholder_engagement": "low", "nps_score": 4}


@pytest.fixture(scope="module")
def raw_account() -> dict[str, Any]:
    book = json.loads(SAMPLE_BOOK.read_text(encoding="utf-8"))
    return next(record for record in book["accounts"] if record["name"] == "Beacon Robotics")


@pytest.fixture(scope="module")
def account(raw_account: dict[str, Any]) -> AccountRecord:
    return AccountRecord.model_validate(raw_account)


@pytest.fixture(scope="module")
def history(raw_account: dict[str, Any]) -> list[CSMHealthScore]:
    """Scores stored across Q3 and Q4 2026: steady, then a fall over the last week of November."""
    signals = signals_from_record(raw_account, now=MID_PERIOD, tz=ZoneInfo("UTC"))
    fallen = signals.model_copy(update=FALL)
    scorer = CSMHealthScorer()
    days = [datetime(2026, 8, 15, 7, tzinfo=UTC), datetime(2026, 9, 30, 7, tzinfo=UTC)]
    days += [datetime(2026, 11, 25, 7, tzinfo=UTC) + timedelta(days=n) for n in range(7)]
    scores = [
        scorer.score(fallen if day >= FALL_STARTS else signals, raw_account["account_id"], computed_at=day)
        for day in days
    ]
    assert scores[-1].score < scores[0].score - 10
    return list(reversed(scores))  # stored history may come in any order


def qbr_for(account: AccountRecord, **fields: Any) -> QBRContent:
    defaults: dict[str, Any] = {
        "account_id": account.account_id,
        "account_name": account.name,
        "period": "Q4 2026",
        "trigger": "quarterly",
        "health_summary": "The rollout is on track, though logins slowed late in November.",
        "roi_metrics": roi_metrics(account, None),
        "feature_adoption_scorecard": {},
        "expansion_next_steps": ["Plan the rollout to the second department."],
        "risks": ["The executive sponsor changes role in January."],
        "roi_highlights": ["Onboarding time fell by a week."],
    }
    return QBRContent.model_validate({**defaults, **fields})


@pytest.fixture(scope="module")
def doc(account: AccountRecord, history: list[CSMHealthScore]) -> QBRDocument:
    report = FeatureAdoptionReport(
        account_id=account.account_id,
        features_used=[],
        adoption_rate=0.75,
        underutilized_features=[],
        recommendations=["Run a Forecasting session with the sales leads."],
        benchmark_comparison={},
    )
    return build_qbr_document(qbr_for(account), account, history, now=MID_PERIOD, adoption_report=report)


def test_delta_is_the_fall_since_last_quarters_close_from_stored_history(
    doc: QBRDocument, history: list[CSMHealthScore]
) -> None:
    q4_start = datetime(2026, 10, 1, tzinfo=UTC)
    start = max((s for s in history if s.computed_at < q4_start), key=lambda s: s.computed_at)
    current = max(history, key=lambda s: s.computed_at)
    fall = rounded_score(current.score) - rounded_score(start.score)
    assert fall < 0
    assert doc.health.delta == fall
    assert doc.health.start_score is not None and doc.health.start_score.value == start.score
    assert doc.health.trend == (
        f"Down {-fall} points in Q4 2026 to date (from {rounded_score(start.score)} at the close of Q3 2026)."
    )
    assert doc.to_date and doc.subtitle.endswith("Q4 2026 to date")
    assert [q.label for q in doc.quarters] == ["Q1 2026", "Q2 2026", "Q3 2026", "Q4 2026 to date"]
    assert [q.score for q in doc.quarters] == [None, None, start.score, current.score]


def test_a_finished_period_is_not_to_date_and_unchanged_only_when_it_is(
    account: AccountRecord, history: list[CSMHealthScore]
) -> None:
    after = build_qbr_document(qbr_for(account), account, history, now=datetime(2027, 1, 5, tzinfo=UTC))
    assert not after.to_date and "to date" not in after.health.trend
    assert after.health.trend.startswith("Down ") and " over Q4 2026 " in after.health.trend
    steady = [s for s in history if s.computed_at.month < 11]
    same = build_qbr_document(qbr_for(account), account, steady, now=MID_PERIOD)
    assert same.health.delta == 0 and same.health.trend.startswith("Unchanged in Q4 2026 to date")
    first = build_qbr_document(qbr_for(account), account, history[:3], now=MID_PERIOD)
    assert first.health.delta is None and first.health.trend == "No score from before Q4 2026 to compare with."


def test_every_figure_cites_its_source(doc: QBRDocument, account: AccountRecord) -> None:
    assert doc.sources and len({(f.source_field, f.record, f.display) for f in doc.sources}) == len(doc.sources)
    arr = next(f for f in doc.sources if f.source_field == "account.arr")
    assert arr.value == account.arr and arr.display == f"${account.arr:,.0f}"
    assert arr.record == f"account {account.account_id} ({account.name})" and arr.read_at == MID_PERIOD
    scores = [f for f in doc.sources if f.source_field.startswith("health_score.")]
    assert scores and all(account.account_id in f.record for f in scores)
    shown = [line.figure for line in doc.health.strengths + doc.health.watch] + doc.value
    assert all(figure in doc.sources for figure in shown)


def test_adoption_groups_are_disjoint_and_next_steps_include_the_report(doc: QBRDocument) -> None:
    statuses = {feature.feature: feature.status for feature in doc.adoption.features}
    assert len(statuses) == len(doc.adoption.features)
    assert "Run a Forecasting session with the sales leads." in doc.next_steps
    assert lint_text(doc.adoption.summary) == []


def test_other_accounts_scores_and_bad_periods_are_refused(
    account: AccountRecord, history: list[CSMHealthScore]
) -> None:
    stranger = history[0].model_copy(update={"account_id": "acct-9999"})
    with pytest.raises(ValueError, match="acct-9999"):
        build_qbr_document(qbr_for(account), account, [*history, stranger], now=MID_PERIOD)
    with pytest.raises(ValueError, match="quarter"):
        build_qbr_document(qbr_for(account), account, history, now=MID_PERIOD, period="December")
    assert Quarter.parse("Q1 2027").previous().label == "Q4 2026"


def visible_text(html: str) -> str:
    """The text a reader sees, minus code (source field names) and charts."""
    for tag in ("style", "svg", "code"):
        html = re.sub(rf"<{tag}\b.*?</{tag}>", " ", html, flags=re.DOTALL)
    return re.sub(r"<[^>]+>", " ", html)


def test_html_is_standalone_with_svg_charts_and_no_raw_keys(doc: QBRDocument) -> None:
    html = render_qbr_html(doc)
    assert html.count("<svg") >= 2 and "<script" not in html
    assert "http://" not in visible_text(html) and "<link" not in html
    text = visible_text(html)
    for heading in ("Health summary", "Value delivered", "Adoption", "Risks and asks", "Next steps", "sources"):
        assert heading in text
    assert not [key for key in SIGNAL_KEYS if key in text]
    assert lint_text(text) == []
    assert "Beacon Robotics&#39; health score" in html


def test_html_escapes_record_and_llm_text(account: AccountRecord, history: list[CSMHealthScore]) -> None:
    hostile = account.model_copy(update={"name": "<script>alert(1)</script> Co"})
    doc = build_qbr_document(qbr_for(hostile, risks=["<img src=x onerror=alert(1)>"]), hostile, history, now=MID_PERIOD)
    html = render_qbr_html(doc)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Co" in html


def test_markdown_has_every_section_and_reads_clean(doc: QBRDocument) -> None:
    markdown = render_qbr_markdown(doc)
    for heading in (
        "# Beacon Robotics: Quarterly Business Review, Q4 2026",
        "## Health summary",
        "## Value delivered",
        "## Adoption",
        "## Risks and asks",
        "## Next steps",
        "## Appendix: sources",
    ):
        assert heading in markdown
    assert f"{doc.health.delta}".lstrip("-") in markdown
    assert lint_text(markdown) == []


def test_deck_reopens_with_six_slides_and_native_charts(doc: QBRDocument, tmp_path: Path) -> None:
    path = write_deck(doc, tmp_path / "qbr.pptx")
    deck = Presentation(str(path))
    charts = [shape.chart for slide in deck.slides for shape in slide.shapes if shape.has_chart]
    assert len(deck.slides) >= 6
    assert len(charts) >= 2
    plots = [type(plot).__name__ for plot in charts[0].plots]
    assert plots == ["AreaPlot", "LinePlot"]  # the score line in front of the RAG bands
    texts = [shape.text_frame.text for slide in deck.slides for shape in slide.shapes if shape.has_text_frame]
    assert lint_text("\n".join(texts)) == []


def test_charts_are_inline_safe_svg() -> None:
    day = datetime(2026, 10, 1, tzinfo=UTC).date()
    svg = score_history_svg([(day, 80.0), (day + timedelta(days=30), 35.0)], green=70, amber=40)
    assert svg.startswith("<svg") and "<script" not in svg and "<?xml" not in svg
    bars = bar_svg([("<b>Rules</b>", 3, "#c62828")], title="Uses")
    assert "<b>" not in bars and "&lt;b&gt;Rules" in bars
    with pytest.raises(ValueError, match="amber"):
        score_history_svg([], green=40, amber=70)


def test_markdown_reads_clean_for_every_account_of_the_sample_book() -> None:
    book = json.loads(SAMPLE_BOOK.read_text(encoding="utf-8"))
    scorer = CSMHealthScorer()
    problems: dict[str, list[str]] = {}
    for raw in book["accounts"]:
        account = AccountRecord.model_validate(raw)
        days = (datetime(2026, 9, 30, 7, tzinfo=UTC), datetime(2026, 12, 1, 7, tzinfo=UTC))
        try:
            signals = signals_from_record(raw, now=MID_PERIOD, tz=ZoneInfo("UTC"))
        except AccountDataError:
            scores = []  # the book holds a few accounts with missing signals: their QBR has no score
        else:
            scores = [scorer.score(signals, account.account_id, computed_at=day) for day in days]
        markdown = render_qbr_markdown(build_qbr_document(qbr_for(account), account, scores, now=MID_PERIOD))
        if found := lint_text(markdown):
            problems[account.account_id] = found
    assert problems == {}
