"""One page of a health scan: score the records, save what is new to the history, and report it compactly.

It imports only the analysis, the schemas and the store protocol (no graph, no LLM client), so a distributed
executor can run it on a page range in a worker of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from src.app.analysis.derived_signals import TREND_FIELDS, TREND_WINDOWS, StoredScores
from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.scan import score_book
from src.app.analysis.signals import AccountDataError, identity_problems, plain_identities
from src.app.schemas import ChurnRiskLevel, CSMHealthScore, Rag, StoredScore
from src.app.state import WorkError
from src.app.tasks import HealthScanTask
from src.app.tools.store import CSMStore, PriorScores, ScorePoints

SEVERITY_RANK: dict[ChurnRiskLevel, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}
"""Churn risk levels, most severe first: the first key of the order in which alerts are chosen."""
SEVERITY_LEVELS: tuple[ChurnRiskLevel, ...] = tuple(SEVERITY_RANK)
"""The churn risk level of each severity rank."""

TREND_FIELDS_SET = frozenset(TREND_FIELDS)

AlertCandidate = tuple[int, float, str]
"""An account that should alert, as it sorts for alerting: (severity rank, score, account id)."""


@dataclass(frozen=True)
class ScanSpec:
    """Everything a page needs besides its records and the store; plain data, so it pickles."""

    scorer: CSMHealthScorer
    now: datetime
    tz: ZoneInfo
    signals: Mapping[str, Any] = field(default_factory=dict)
    """Signal values the task overrides on every record."""
    days_to_renewal: int | Mapping[str, int] | None = None
    """A renewal countdown the task sets, for every account (an int) or per account id."""
    keep_scores: bool = True
    """Return every score (JSON-safe); False returns only the counts and the alert candidates."""

    @classmethod
    def for_task(cls, task: HealthScanTask, *, scorer: CSMHealthScorer, now: datetime, tz: ZoneInfo) -> ScanSpec:
        """The spec of a `health_scan` task (its signal overrides and its `summary` flag)."""
        return cls(
            scorer=scorer,
            now=now,
            tz=tz,
            signals=dict(task.signals),
            days_to_renewal=task.days_to_renewal,
            keep_scores=not task.summary,
        )


@dataclass
class PageResult:
    """What scoring one page did, small enough to send back from another process."""

    scanned: int = 0
    rag_counts: Counter[str] = field(default_factory=Counter)
    errors: list[WorkError] = field(default_factory=list)
    candidates: list[AlertCandidate] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    """Every score as history holds it (JSON-safe), when the spec keeps scores."""
    candidate_rags: dict[str, Rag] = field(default_factory=dict)
    """Each candidate's RAG, by account id (with its severity rank: the risk state the alert cooldown compares)."""


def alert_candidate(score: CSMHealthScore) -> AlertCandidate:
    """The sort key under which an alertable score competes for the scan's alerts."""
    return SEVERITY_RANK[score.churn_risk_level], score.score, score.account_id


async def score_page(store: CSMStore, spec: ScanSpec, records: list[dict[str, Any]]) -> PageResult:
    """Score one page, save the scores that are new to the history, and report them as history holds them.

    A score identical to one already saved on the same local day is not saved again (a rerun adds no row).
    """
    ids = [str(record.get("account_id")) for record in records]
    previous: Mapping[str, StoredScore]
    previous = await store.prior_scores(ids) if isinstance(store, PriorScores) else await store.latest_scores(ids)
    history = await _trend_history(store, spec, ids)
    outcome = score_book(
        apply_overrides(records, spec), scorer=spec.scorer, previous=previous, now=spec.now, tz=spec.tz, history=history
    )
    errors = [WorkError(account_id=e.account_id, stage="score_accounts", message=e.message) for e in outcome.errors]
    scores, identity_errors = _with_valid_identity(outcome.scores, records)
    repeated = await _repeated(store, scores, previous, spec.tz)
    await store.save_scores([s for s in scores if s.account_id not in repeated] if repeated else scores)
    held = [repeated.get(s.account_id, s) for s in scores] if repeated else scores
    alerting = [score for score in held if score.should_alert]
    return PageResult(
        scanned=len(records),
        rag_counts=Counter(map(attrgetter("rag"), held)),
        errors=errors + identity_errors,
        candidates=[alert_candidate(score) for score in alerting],
        candidate_rags={score.account_id: score.rag for score in alerting},
        scores=[score.model_dump(mode="json") for score in held] if spec.keep_scores else [],
    )


async def _trend_history(store: CSMStore, spec: ScanSpec, ids: list[str]) -> dict[str, StoredScores]:
    """The page's recent score history, read only when a configured scorecard weighs the score's trend."""
    if not TREND_FIELDS_SET & spec.scorer.derived_fields or not isinstance(store, ScorePoints):
        return {}
    since = spec.now - timedelta(days=max(TREND_WINDOWS))
    return dict(await store.score_points(ids, since=since))


def apply_overrides(records: list[dict[str, Any]], spec: ScanSpec) -> list[dict[str, Any]]:
    """The records with the spec's signal overrides applied to copies (the records are never mutated)."""
    renewal = spec.days_to_renewal
    if not spec.signals and renewal is None:
        return records
    updated = []
    for record in records:
        copy = {**record, **spec.signals}
        if isinstance(renewal, Mapping) and record.get("account_id") in renewal:
            copy["days_to_renewal"] = renewal[record["account_id"]]
        elif isinstance(renewal, int):
            copy["days_to_renewal"] = renewal
        updated.append(copy)
    return updated


def _with_valid_identity(
    scores: list[CSMHealthScore], records: list[dict[str, Any]]
) -> tuple[list[CSMHealthScore], list[WorkError]]:
    """Drop the scores of accounts whose essential identity is invalid (they could not be alerted or drafted).

    Only the identity fields are checked: the detail fields (tickets, usage history...) are the business of the
    tasks that read them, and a whole-book scan does not even load them. A bad field that is not essential
    (`arr: "lots"`) is reported and the score kept.
    """
    plain_records = plain_identities(records)
    if all(plain_records):
        return scores, []
    by_id = {str(record.get("account_id")): (record, ok) for record, ok in zip(records, plain_records, strict=True)}
    valid, errors = [], []
    for score in scores:
        record, plain = by_id[score.account_id]
        if plain:
            valid.append(score)
            continue
        try:
            problems = identity_problems(record)
        except AccountDataError as problem:
            errors.append(WorkError(account_id=score.account_id, stage="score_accounts", message=str(problem)))
            continue
        valid.append(score)
        if problems:
            message = f"account {score.account_id} was scored; ignored invalid fields: " + "; ".join(problems)
            errors.append(WorkError(account_id=score.account_id, stage="identity", message=message))
    return valid, errors


async def _repeated(
    store: CSMStore, scores: list[CSMHealthScore], previous: Mapping[str, StoredScore], tz: ZoneInfo
) -> dict[str, CSMHealthScore]:
    """The stored scores that the new ones repeat, by account id: a rerun on the same local day adds no row.

    Only accounts already scored today are compared, with their whole stored score (read for them alone).
    """
    days: dict[datetime, date] = {}

    def local_day(moment: datetime) -> date:
        day = days.get(moment)
        if day is None:
            day = days[moment] = moment.astimezone(tz).date()
        return day

    today = set()
    for score in scores:
        prior = previous.get(score.account_id)
        if prior is not None and local_day(prior.computed_at) == local_day(score.computed_at):
            today.add(score.account_id)
    if not today:
        return {}
    stored = await store.latest_scores(sorted(today))
    return {s.account_id: stored[s.account_id] for s in scores if _repeats(s, stored.get(s.account_id), tz)}


def _repeats(score: CSMHealthScore, stored: CSMHealthScore | None, tz: ZoneInfo) -> bool:
    """Whether `stored` is the same score computed earlier on the same local day (a rerun adds no history row)."""
    if stored is None or stored.computed_at.astimezone(tz).date() != score.computed_at.astimezone(tz).date():
        return False
    same = ("score", "rag", "churn_risk_level", "churn_triggered_by", "signal_breakdown", "scorecard", "coverage")
    return all(getattr(stored, name) == getattr(score, name) for name in same)
