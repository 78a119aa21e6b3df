"""Every QBR and churn-alert draft of the 300-account sample book reads clean: no raw keys, agreement, rounding."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from src.app.analysis.adoption import build_adoption_facts
from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.signals import AccountDataError, parse_account, signals_from_record
from src.app.data.sample_book import load_sample_book
from src.app.documents.facts import build_qbr_document
from src.app.documents.wording import lint_subject_body, lint_text
from src.app.nodes.alerts import alert_sections, alert_subject, fallback_narrative, trend_lines
from src.app.nodes.qbr import qbr_draft_sections, qbr_subject
from src.app.nodes.render import render_text
from src.app.schemas import QBRContent

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def test_qbr_and_alert_drafts_of_the_whole_sample_book_read_clean() -> None:
    scorer, problems, checked = CSMHealthScorer(), [], 0
    for record in load_sample_book(today=NOW.date()):
        try:
            signals = signals_from_record(record, now=NOW, tz=ZoneInfo("UTC"))
        except AccountDataError:
            continue
        account = parse_account(record)
        score = scorer.score(signals, account.account_id, computed_at=NOW)
        facts = build_adoption_facts(account)
        qbr = QBRContent(
            account_id=account.account_id,
            account_name=account.name,
            period="Q4 2026",
            trigger="quarterly",
            health_summary="",
            roi_metrics={},
            feature_adoption_scorecard={},
            expansion_next_steps=[],
        )
        doc = build_qbr_document(qbr, account, [score], now=NOW)
        paths = {"pptx": Path("deck.pptx")}
        subject = qbr_subject(doc)
        body = render_text(subject, qbr_draft_sections(doc, paths))
        trend = {"change_7_days": None, "change_30_days": None}
        alert = render_text(
            alert_subject(account, score), alert_sections(score, fallback_narrative(account, score), trend)
        )
        for name, subject_, text in (("qbr", subject, body), ("alert", alert_subject(account, score), alert)):
            found = lint_text(text) + lint_subject_body(subject_, text)
            problems += [f"{account.account_id} {name}: {problem}" for problem in found]
        assert facts.adoption_rate >= 0 and trend_lines(trend)
        checked += 1
    assert checked > 250 and problems == []
