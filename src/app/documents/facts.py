"""Assemble a `QBRDocument` from the stored QBR, the account record and the score history, citing each figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import TypeVar

from src.app.analysis.adoption import (
    CLOSED_TICKET_STATUSES,
    UNDERUTILIZED_USAGE,
    AdoptionFacts,
    build_adoption_facts,
)
from src.app.analysis.health import SIGNAL_MAX_POINTS
from src.app.documents.document import (
    AdoptionSection,
    FeatureStatus,
    FeatureUse,
    Figure,
    HealthSection,
    QBRDocument,
    QuarterScore,
    SignalLine,
)
from src.app.documents.periods import Quarter, by_time, daily_points, local_day, score_as_of, score_before
from src.app.documents.risks import account_asks, account_risks
from src.app.documents.wording import (
    counted_list,
    describe_change,
    describe_percent_change,
    feature_label,
    fmt_date,
    fmt_money,
    fmt_percent,
    fmt_score,
    plural,
    possessive,
    score_delta,
    signal_label,
    signal_line,
    strength_word,
)
from src.app.schemas import AccountRecord, CSMHealthScore, FeatureAdoptionReport, QBRContent

QUARTERS_SHOWN = 4
"""Quarters on the score-over-time chart, the period included."""

_T = TypeVar("_T")


class _Cite:
    """Makes figures that cite one account record, all read at the same moment."""

    def __init__(self, account: AccountRecord, read_at: datetime, tz: tzinfo) -> None:
        self.record = f"account {account.account_id} ({account.name})"
        self.account_id = account.account_id
        self.read_at = read_at
        self.tz = tz

    def account(self, label: str, value: float | str | None, display: str, field: str) -> Figure:
        return Figure(
            label=label,
            value=value,
            display=display,
            source_field=f"account.{field}",
            record=self.record,
            read_at=self.read_at,
        )

    def score(self, label: str, score: CSMHealthScore, value: float, display: str, field: str = "score") -> Figure:
        local = score.computed_at.astimezone(self.tz)
        record = f"health score of {self.account_id} computed {fmt_date(local.date())} {local:%H:%M %Z}"
        return Figure(
            label=label,
            value=value,
            display=display,
            source_field=f"health_score.{field}",
            record=record,
            read_at=self.read_at,
        )


def build_qbr_document(
    qbr: QBRContent,
    account: AccountRecord,
    scores: Sequence[CSMHealthScore],
    *,
    now: datetime,
    period: str | None = None,
    adoption_report: FeatureAdoptionReport | None = None,
    tz: tzinfo = UTC,
    green_threshold: float = 70,
    amber_threshold: float = 40,
    max_points: Mapping[str, float] | None = None,
) -> QBRDocument:
    """Build the QBR document of one account for one quarter.

    Args:
        qbr: The stored QBR: its prose (health summary, highlights, commentary, next steps, risks) and period.
        account: The account record, read at `now`; every account figure is computed from it.
        scores: The account's stored score history, in any order.
        now: When the document is made (naive means UTC); scores after it are ignored.
        period: The quarter, e.g. "Q4 2026"; defaults to the QBR's period.
        adoption_report: The latest adoption report, whose recommendations join the next steps.
        tz: The time zone of quarters and dates.
        green_threshold: The lowest GREEN score (chart bands).
        amber_threshold: The lowest AMBER score (chart bands).
        max_points: Max points per signal of the scorecard in use; defaults to the default scorecard's.

    Returns:
        The document. Raises ValueError for a period that is not a quarter label or a score of another account.
    """
    strangers = sorted({score.account_id for score in scores} - {account.account_id})
    if strangers:
        raise ValueError(f"scores of other accounts given for {account.account_id}: {', '.join(strangers)}")
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    today = local_day(now, tz)
    quarter = Quarter.parse(period or qbr.period)
    to_date = today <= quarter.end
    history = [score for score in by_time(scores) if score.computed_at <= now]
    cite = _Cite(account, now, tz)
    facts = build_adoption_facts(account)
    health = _health(qbr, account, history, quarter, to_date, cite, dict(max_points or SIGNAL_MAX_POINTS))
    quarters = [_quarter_close(q, history, today, to_date and q == quarter, cite) for q in quarter.last(QUARTERS_SHOWN)]
    value = _value_figures(account, cite)
    adoption = _adoption(account, facts, qbr, adoption_report, cite)
    shown = [f for f in (health.score, health.start_score) if f] + [line.figure for line in health.strengths]
    shown += [line.figure for line in health.watch] + [q.figure for q in quarters if q.figure]
    sources = _sources(shown + value + [adoption.rate, adoption.benchmark])
    return QBRDocument(
        account_id=account.account_id,
        account_name=account.name,
        title=f"{account.name}: Quarterly Business Review, {quarter.label}",
        subtitle=f"Prepared {fmt_date(today)}" + (f", {quarter.label} to date" if to_date else ""),
        period=quarter.label,
        period_start=quarter.start,
        period_end=quarter.end,
        to_date=to_date,
        generated_at=now,
        as_of=today,
        green_threshold=green_threshold,
        amber_threshold=amber_threshold,
        health=health,
        quarters=quarters,
        history=daily_points(history, quarter.last(QUARTERS_SHOWN)[0].start, min(quarter.end, today), tz),
        value=value,
        highlights=list(qbr.roi_highlights),
        adoption=adoption,
        risks=_unique(account_risks(account, health, today) + list(qbr.risks)),
        asks=account_asks(account, facts, today),
        next_steps=_unique(
            list(qbr.expansion_next_steps) + (adoption_report.recommendations if adoption_report else [])
        ),
        sources=sources,
    )


def _health(
    qbr: QBRContent,
    account: AccountRecord,
    history: Sequence[CSMHealthScore],
    quarter: Quarter,
    to_date: bool,
    cite: _Cite,
    max_points: dict[str, float],
) -> HealthSection:
    current = score_as_of(history, quarter.end, cite.tz)
    start = score_before(history, quarter.start, cite.tz)
    when = f"in {quarter.label} to date" if to_date else f"over {quarter.label}"
    closed = f"at the close of {quarter.previous().label}"
    if current is None:
        return HealthSection(
            score=None,
            rag=None,
            start_score=None,
            delta=None,
            headline=f"{possessive(account.name)} health has not been scored yet.",
            trend=f"No health score on record {when}.",
            strengths=[],
            watch=[],
            narrative=qbr.health_summary,
        )
    delta = None if start is None else score_delta(current.score, start.score)
    if start is None:
        trend = f"No score from before {quarter.label} to compare with."
    elif delta == 0:
        trend = f"Unchanged {when} ({fmt_score(start.score)} {closed})."
    else:
        trend = f"{describe_change(delta or 0).capitalize()} {when} (from {fmt_score(start.score)} {closed})."
    rag_word = current.rag.capitalize()
    return HealthSection(
        score=cite.score("Health score", current, current.score, fmt_score(current.score, out_of=True)),
        rag=current.rag,
        start_score=None
        if start is None
        else cite.score(f"Health score {closed}", start, start.score, fmt_score(start.score, out_of=True)),
        delta=delta,
        headline=f"{possessive(account.name)} health score is {fmt_score(current.score, out_of=True)} ({rag_word}).",
        trend=trend,
        strengths=_strengths(current, max_points, cite),
        watch=_watch(current, max_points, cite),
        narrative=qbr.health_summary,
    )


def _signal(score: CSMHealthScore, key: str, best: float | None, cite: _Cite) -> SignalLine:
    points = score.signal_breakdown.get(key, 0.0)
    label, text = signal_label(key), signal_line(key, points, best)
    return SignalLine(
        key=key,
        label=label,
        text=text,
        strength="" if best is None else strength_word(points, best),
        figure=cite.score(label, score, points, text.removeprefix(label).strip(), f"signal_breakdown.{key}"),
    )


def _strengths(score: CSMHealthScore, max_points: dict[str, float], cite: _Cite, limit: int = 3) -> list[SignalLine]:
    """The signals closest to full marks (at least 80 %), biggest first."""
    strong = [(key, score.signal_breakdown.get(key, 0.0), best) for key, best in max_points.items() if best > 0]
    strong = [row for row in strong if row[1] >= 0.8 * row[2]]
    strong.sort(key=lambda row: (-row[1], row[0]))
    return [_signal(score, key, best, cite) for key, _, best in strong[:limit]]


def _watch(score: CSMHealthScore, max_points: dict[str, float], cite: _Cite, limit: int = 3) -> list[SignalLine]:
    """The signals that lost the most points (below 80 %), then any multiplier that took points off."""
    rows = [(key, score.signal_breakdown.get(key, 0.0), best) for key, best in max_points.items() if best > 0]
    losing = sorted((row for row in rows if row[1] < 0.8 * row[2]), key=lambda row: (row[1] - row[2], row[0]))
    adjustments = sorted(key for key, points in score.signal_breakdown.items() if key not in max_points and points < 0)
    return [_signal(score, key, best, cite) for key, _, best in losing[:limit]] + [
        _signal(score, key, None, cite) for key in adjustments
    ]


def _quarter_close(
    quarter: Quarter, history: Sequence[CSMHealthScore], today: date, to_date: bool, cite: _Cite
) -> QuarterScore:
    label = f"{quarter.label} to date" if to_date else quarter.label
    close = score_as_of(history, min(quarter.end, today), cite.tz)
    if close is None:
        return QuarterScore(label=label, start=quarter.start, end=quarter.end, score=None, rag=None, figure=None)
    name = f"Health score, {quarter.label} to date" if to_date else f"Health score at the close of {quarter.label}"
    figure = cite.score(name, close, close.score, fmt_score(close.score, out_of=True))
    return QuarterScore(
        label=label, start=quarter.start, end=quarter.end, score=close.score, rag=close.rag, figure=figure
    )


def _value_figures(account: AccountRecord, cite: _Cite) -> list[Figure]:
    figures = [cite.account("Annual recurring revenue", account.arr, fmt_money(account.arr), "arr")]
    purchased, active = account.seats_purchased, account.seats_active
    if purchased is not None:
        figures.append(cite.account("Seats purchased", purchased, f"{purchased:,}", "seats_purchased"))
    if active is not None:
        figures.append(cite.account("Active seats", active, f"{active:,}", "seats_active"))
    if purchased and active is not None:
        ratio = active / purchased
        figures.append(cite.account("Seat utilization", ratio, fmt_percent(ratio), "seats_active / seats_purchased"))
    users = account.usage_history
    if len(users) >= 2:
        months = plural(len(users) - 1, "month")
        figures.append(cite.account(f"Active users {months} ago", users[0], f"{users[0]:,}", "usage_history[0]"))
        figures.append(cite.account("Active users now", users[-1], f"{users[-1]:,}", "usage_history[-1]"))
        if users[0]:
            change = (users[-1] - users[0]) / users[0]
            shown = describe_percent_change(change)
            figures.append(cite.account(f"Active users, change in {months}", change, shown, "usage_history"))
    open_tickets = sum(ticket.status.lower() not in CLOSED_TICKET_STATUSES for ticket in account.tickets)
    figures.append(cite.account("Open support tickets", open_tickets, f"{open_tickets:,}", "tickets[].status"))
    if account.contract_end_date is not None:
        end = account.contract_end_date
        day = end if not isinstance(end, datetime) else local_day(end, cite.tz)
        figures.append(cite.account("Contract end", day.isoformat(), fmt_date(day), "contract_end_date"))
    return figures


def _adoption(
    account: AccountRecord,
    facts: AdoptionFacts,
    qbr: QBRContent,
    report: FeatureAdoptionReport | None,
    cite: _Cite,
) -> AdoptionSection:
    features = [
        FeatureUse(feature=f, label=feature_label(f), uses=n, status=_status(n))
        for f, n in sorted(((f, account.feature_usage.get(f, 0)) for f in facts.features_available), key=_most_used)
    ]
    used = sum(feature.status != "unused" for feature in features)
    available = len(features)
    rate = cite.account(
        "Features in use",
        facts.adoption_rate,
        f"{used} of {plural(available, 'feature')} in use ({fmt_percent(facts.adoption_rate)})",
        "feature_usage / features_available",
    )
    benchmark_rate = facts.benchmark_comparison["plan_benchmark"]
    benchmark = Figure(
        label=f"Typical adoption on the {account.plan.capitalize()} plan",
        value=benchmark_rate,
        display=fmt_percent(benchmark_rate),
        source_field="analysis.adoption.PLAN_BENCHMARK_ADOPTION",
        record=f"plan {account.plan}",
        read_at=cite.read_at,
    )
    groups = {status: [f.label for f in features if f.status == status] for status in ("regular", "light", "unused")}
    parts = [
        f"{counted_list(groups['regular'], 'feature')} in regular use",
        f"{counted_list(groups['light'], 'feature')} used lightly (fewer than {UNDERUTILIZED_USAGE} times)",
        f"{counted_list(groups['unused'], 'feature')} not used yet",
    ]
    summary = "; ".join(part for part, group in zip(parts, groups.values(), strict=True) if group) + "."
    users = account.usage_history
    labels = [f"{len(users) - 1 - index} mo ago" if index < len(users) - 1 else "Now" for index in range(len(users))]
    return AdoptionSection(
        rate=rate,
        benchmark=benchmark,
        summary=summary[:1].upper() + summary[1:] if features else "No features are on record for this account.",
        features=features,
        active_users=list(zip(labels, users, strict=True)),
        seats_purchased=account.seats_purchased,
        commentary=qbr.adoption_commentary or (report.summary if report else ""),
    )


def _most_used(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _status(uses: int) -> FeatureStatus:
    if uses >= UNDERUTILIZED_USAGE:
        return "regular"
    return "light" if uses > 0 else "unused"


def _sources(figures: Sequence[Figure]) -> list[Figure]:
    """Figures for the appendix: one per value read (the same score shown twice is listed once)."""
    seen: set[tuple[str, str, str]] = set()
    sources = []
    for figure in figures:
        key = (figure.source_field, figure.record, figure.display)
        if key not in seen:
            seen.add(key)
            sources.append(figure)
    return sources


def _unique(items: Sequence[_T]) -> list[_T]:
    """Items in order, each once."""
    seen: list[_T] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
