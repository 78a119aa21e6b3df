"""Every draft kind of the 300-account sample book reads clean: no raw keys, agreement, rounding, no false "weak".

The drafts are built the way the nodes build them, with the offline writer's prose (and the rules' fallback
prose where the nodes have one): churn alert email and chat, QBR, expansion note to the rep, AE note, adoption
report, and each owner's daily digest with its chat message.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from src.app.analysis.adoption import build_adoption_facts
from src.app.analysis.expansion import find_expansion_candidates
from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.signals import AccountDataError, days_until, parse_account, signals_from_record
from src.app.data.sample_book import load_sample_book
from src.app.documents.facts import build_qbr_document
from src.app.documents.numbers import model_texts, unknown_numbers
from src.app.documents.wording import lint_subject_body, lint_text
from src.app.nodes.account_facts import account_brief
from src.app.nodes.adoption import adoption_draft
from src.app.nodes.alerts import (
    alert_chat_text,
    alert_sections,
    alert_subject,
    alert_trend,
    fallback_narrative,
)
from src.app.nodes.digest import (
    DIGEST_WHY,
    RAG_WEIGHT,
    DigestRow,
    digest_chat_text,
    digest_heading,
    digest_sections,
    mover_line,
)
from src.app.nodes.expansion import expansion_draft, handoff_request, merge_pitches, sales_handoff
from src.app.nodes.health_scan import alert_facts
from src.app.nodes.qbr import qbr_draft_sections, qbr_subject
from src.app.nodes.render import greeting, render_text
from src.app.nodes.sales import note_sections, note_subject, note_why
from src.app.schemas import (
    AdoptionInsights,
    ChurnNarrative,
    CSMHealthScore,
    ExpansionPitches,
    FeatureAdoptionReport,
    QBRContent,
)
from src.app.tools.llm.offline.adoption import adoption_insights
from src.app.tools.llm.offline.churn import churn_narrative
from src.app.tools.llm.offline.expansion import expansion_pitches

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")
REP = "maria.lopez@example.com"


def as_json(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts as the writer reads them from the prompt (a JSON round trip)."""
    loaded: dict[str, Any] = json.loads(json.dumps(facts, default=str))
    return loaded


def email(subject: str, why: str, sections: Any) -> tuple[str, str]:
    return subject, render_text(subject, sections, intro=[greeting(REP), why])


def book_drafts() -> dict[str, list[tuple[str, str, str]]]:
    """Every draft of the sample book by kind, as (account, subject, text); chat messages have no subject."""
    scorer, drafts = CSMHealthScorer(), defaultdict(list)
    digests: dict[str, list[DigestRow]] = defaultdict(list)
    movers: dict[str, list[str]] = defaultdict(list)
    for record in load_sample_book(today=NOW.date()):
        try:
            signals = signals_from_record(record, now=NOW, tz=UTC_ZONE)
        except AccountDataError:
            continue
        account = parse_account(record)
        name, key = account.name, account.account_id
        score = scorer.score(signals, key, computed_at=NOW)
        week_ago = score.model_copy(update={"score": min(100.0, score.score + 9.5), "computed_at": NOW - timedelta(7)})
        days = days_until(account.contract_end_date, now=NOW, tz=UTC_ZONE)

        # Churn alert: the offline writer's narrative and the rules' fallback, email and chat.
        trend = alert_trend([week_ago], score, account.usage_history, tz=UTC_ZONE)
        facts = as_json(alert_facts(score, record, days) | {"trend": trend})
        for narrative in (ChurnNarrative.model_validate(churn_narrative(facts)), fallback_narrative(account, score)):
            subject = alert_subject(account, score)
            why = f"You own {name}, and today's health scan found it at {score.churn_risk_level} churn risk."
            drafts["alert"].append((key, *email(subject, why, alert_sections(score, narrative, trend))))
            drafts["alert chat"].append((key, "", alert_chat_text(account, score, narrative, trend)))

        # QBR draft to the rep.
        qbr = QBRContent(
            account_id=key,
            account_name=name,
            period="Q4 2026",
            trigger="quarterly",
            health_summary="",
            roi_metrics={},
            feature_adoption_scorecard={},
            expansion_next_steps=[],
        )
        doc = build_qbr_document(qbr, account, [score], now=NOW)
        subject = qbr_subject(doc)
        drafts["qbr"].append((key, subject, render_text(subject, qbr_draft_sections(doc, {"pptx": Path("deck.pptx")}))))

        # Expansion note to the rep (writer's talk tracks and the rules' fallback) and each AE note.
        candidates = find_expansion_candidates(account, signals)
        if candidates:
            facts = as_json(
                {"account": account_brief(account, days), "candidates": [c.model_dump() for c in candidates]}
            )
            for pitches in (ExpansionPitches.model_validate(expansion_pitches(facts)), ExpansionPitches()):
                opportunities = merge_pitches(key, facts["candidates"], pitches)
                drafts["expansion"].append((key, *email(*expansion_draft(name, opportunities))))
            for opportunity in opportunities:
                handoff = sales_handoff(handoff_request(opportunity.model_dump(), "2026-Q4"))
                for to_rep in (False, True):
                    sections = note_sections(opportunity, reason=handoff["reason"], to_rep=to_rep)
                    note = email(note_subject(opportunity, name), note_why(name, to_rep=to_rep), sections)
                    drafts["ae note"].append((key, *note))

        # Adoption report to the rep.
        adoption = build_adoption_facts(account)
        facts = as_json({"account": account_brief(account, None), **adoption.model_dump()})
        insights = AdoptionInsights.model_validate(adoption_insights(facts))
        report = FeatureAdoptionReport(
            account_id=key,
            features_used=adoption.features_used,
            adoption_rate=adoption.adoption_rate,
            underutilized_features=adoption.underutilized_features,
            recommendations=insights.recommendations,
            benchmark_comparison=adoption.benchmark_comparison,
            summary=insights.summary,
        )
        parts = adoption_draft(name, report, adoption.feature_usage)
        drafts["adoption"].append((key, *email(parts["heading"], parts["why"], parts["sections"])))

        # Digest rows: every Amber or Red account, by owner; a fall since yesterday makes a mover.
        owner = account.rep_email or REP
        yesterday = score.model_copy(update={"score": score.score + 6, "computed_at": NOW - timedelta(1)})
        movers[owner].append(mover_line(account, score, yesterday))
        if score.rag in RAG_WEIGHT:
            renewal = None if days is None else NOW.date() + timedelta(days=days)
            row = DigestRow(account=account, score=score, week_change=-10, renewal=renewal, at_risk=account.arr)
            digests[owner].append(row)
    for owner, rows in digests.items():
        heading = digest_heading(NOW.date(), rows)
        drafts["digest"].append((owner, *email(heading, DIGEST_WHY, digest_sections(rows, movers[owner], 3, 5))))
        drafts["digest chat"].append((owner, "", digest_chat_text(heading, owner, rows, 3)))
    return drafts


def test_every_draft_kind_of_the_whole_sample_book_reads_clean() -> None:
    drafts = book_drafts()
    assert set(drafts) == {
        "alert",
        "alert chat",
        "qbr",
        "expansion",
        "ae note",
        "adoption",
        "digest",
        "digest chat",
    }
    assert len(drafts["qbr"]) > 250 and len(drafts["expansion"]) >= 20 and len(drafts["digest"]) >= 2
    problems = [
        f"{kind} {key}: {problem}"
        for kind, items in drafts.items()
        for key, subject, text in items
        for problem in lint_text(subject) + lint_text(text) + lint_subject_body(subject, text)
    ]
    assert problems == [], "\n".join(problems[:40])


def test_the_offline_churn_narrative_quotes_only_figures_among_its_facts() -> None:
    """The churn narrative's figure check (nodes/llm.py) passes for the offline writer over the whole book."""
    scorer, checked, problems = CSMHealthScorer(), 0, []
    for record in load_sample_book(today=NOW.date()):
        try:
            signals = signals_from_record(record, now=NOW, tz=UTC_ZONE)
        except AccountDataError:
            continue
        account = parse_account(record)
        score = scorer.score(signals, account.account_id, computed_at=NOW)
        days = days_until(account.contract_end_date, now=NOW, tz=UTC_ZONE)
        week_ago = score.model_copy(update={"score": min(100.0, score.score + 9.5), "computed_at": NOW - timedelta(7)})
        for history in ([], [week_ago]):
            trend = alert_trend(history, score, account.usage_history, tz=UTC_ZONE)
            facts = as_json(alert_facts(score, record, days) | {"trend": trend})
            unknown = unknown_numbers(model_texts(churn_narrative(facts)), facts)
            problems += [f"{account.account_id}: {number}" for number in unknown]
            checked += 1
    assert checked > 500 and problems == []


def test_the_linter_catches_what_the_drafts_must_not_say() -> None:
    assert lint_text("Feature adoption is weak (15/20 points).")
    assert lint_text("The team uses 1 features; see feature_adoption_rate.")
    assert lint_text("Driftwood Labs's admins use 6 features (Tasks, Reports and SSO).")
    assert lint_subject_body("Churn risk high: Acme (11/100, Red)", "Health score 11.5/100 (Red).")
    assert lint_text(":rotating_light: *Churn risk high* for Acme (38/100, Red).") == []


def test_scores_are_never_fractions_in_any_draft() -> None:
    score = CSMHealthScore.model_validate(
        {
            "account_id": "a",
            "score": 11.5,
            "rag": "RED",
            "signal_breakdown": {"feature_adoption_rate": 15},
            "churn_risk_level": "high",
            "computed_at": NOW,
        }
    )
    assert "12/100" in " ".join(
        p for s in alert_sections(score, ChurnNarrative(churn_narrative="x"), {}) for p in s.paragraphs
    )
