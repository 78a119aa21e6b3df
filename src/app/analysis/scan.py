"""The batch core of a health scan: score every record independently, collecting per-account errors."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from src.app.analysis.derived_signals import StoredScores, derived_values, same_scorecard
from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.signals import AccountDataError, observed_signals, signals_from_record
from src.app.schemas import CSMHealthScore, StoredScore

BATCH_MIN_RECORDS = 32
"""Fewest scorable records for which a page is scored at once with numpy rather than account by account."""
NUMPY_REPAID_RECORDS = 2000
"""Fewest records for which a page is scored with numpy while numpy is not yet imported: its import (~0.15 s)
costs more than it saves on a small book (~15 µs per account), so a 1,000-account `csm scan` scores per account."""


class AccountError(BaseModel):
    """Why one account could not be scored."""

    account_id: str
    kind: str
    message: str
    problems: list[str] = Field(default_factory=list)


class ScanOutcome(BaseModel):
    """The scores computed by a scan and the accounts that could not be scored."""

    scores: list[CSMHealthScore] = Field(default_factory=list)
    errors: list[AccountError] = Field(default_factory=list)


def score_book(
    records: Iterable[Mapping[str, Any]],
    *,
    scorer: CSMHealthScorer,
    previous: Mapping[str, StoredScore],
    now: datetime,
    tz: ZoneInfo,
    history: Mapping[str, StoredScores] | None = None,
) -> ScanOutcome:
    """Score each record from its own data; a bad record becomes an `AccountError` and never stops the batch.

    Args:
        records: Raw account records (any status; the caller filters).
        scorer: The health scorer.
        previous: Each account's last score, by account id, for deltas.
        now: The scan time: renewal countdowns are measured from it and scores are stamped with it.
        tz: The time zone in which contract end dates are read.
        history: Each account's recent scores, when a scorecard reads the score trend.
    """
    records = list(records)
    batched = _batched(records, scorer=scorer, previous=previous, now=now, tz=tz, history=history)
    outcome = ScanOutcome()
    scored = list(filter(None, batched))
    if len(scored) == len(records):  # the whole page scored at once
        outcome.scores.extend(scored)
        return outcome
    for index, record in enumerate(records):
        result = batched[index] or _score_one(
            record, index, scorer=scorer, previous=previous, now=now, tz=tz, history=history or {}
        )
        if isinstance(result, AccountError):
            outcome.errors.append(result)
        else:
            outcome.scores.append(result)
    return outcome


def _batched(
    records: list[Mapping[str, Any]],
    *,
    scorer: CSMHealthScorer,
    previous: Mapping[str, StoredScore],
    now: datetime,
    tz: ZoneInfo,
    history: Mapping[str, StoredScores] | None,
) -> list[CSMHealthScore | None]:
    """The scores of a page at once (`scorecard_batch.score_page`); None where a record scores per account.

    A page too small to repay numpy's fixed cost scores every record per account.
    """
    plain = [
        (type(r) is dict or isinstance(r, Mapping)) and isinstance(r.get("account_id"), str) and bool(r["account_id"])
        for r in records
    ]
    fewest = BATCH_MIN_RECORDS if "numpy" in sys.modules else NUMPY_REPAID_RECORDS
    if sum(plain) < fewest:
        return [None] * len(records)
    from src.app.analysis.scorecard_batch import score_page  # numpy: imported by the first page worth it

    if all(plain):
        return score_page(records, scorer=scorer, previous=previous, now=now, tz=tz, history=history)
    page = [r for r, ok in zip(records, plain, strict=True) if ok]
    scored = iter(score_page(page, scorer=scorer, previous=previous, now=now, tz=tz, history=history))
    return [next(scored) if ok else None for ok in plain]


def _score_one(
    record: Mapping[str, Any],
    index: int,
    *,
    scorer: CSMHealthScorer,
    previous: Mapping[str, StoredScore],
    now: datetime,
    tz: ZoneInfo,
    history: Mapping[str, StoredScores],
) -> CSMHealthScore | AccountError:
    account_id = record.get("account_id") if isinstance(record, Mapping) else None
    if not isinstance(account_id, str) or not account_id:
        problem = f"missing required field: account_id (record #{index})"
        return AccountError(
            account_id=f"<missing account_id #{index}>",
            kind="invalid_data",
            message=problem,
            problems=[problem],
        )
    try:
        return score_record(
            record, account_id, scorer=scorer, previous=previous.get(account_id), now=now, tz=tz, history=history
        )
    except AccountDataError as error:
        return AccountError(account_id=account_id, kind=error.kind, message=str(error), problems=error.problems)
    except Exception as error:  # one broken record must never stop the scan
        return AccountError(account_id=account_id, kind="error", message=f"{type(error).__name__}: {error}")


def score_record(
    record: Mapping[str, Any],
    account_id: str,
    *,
    scorer: CSMHealthScorer,
    previous: StoredScore | None,
    now: datetime,
    tz: ZoneInfo,
    history: Mapping[str, StoredScores] | None = None,
) -> CSMHealthScore:
    """Score one raw record: with every required signal by the scorer's fast path, else with what was observed.

    A record lacking some signals is scored with its coverage; only below the scorecard's coverage floor is it
    "insufficient data". Derived signals (tenure, score trend) are added when a configured scorecard reads them.

    Raises:
        AccountDataError: Invalid fields, or coverage below the floor.
    """
    account = record
    if scorer.derived_fields:
        card = scorer.scorecard_for(record)
        past = same_scorecard((history or {}).get(account_id, ()), (card.name, card.version))
        account = {**record, **derived_values(record, scorer.derived_fields, as_of=now, history=past)}
    try:
        signals = signals_from_record(record, now=now, tz=tz)
    except AccountDataError as error:
        if error.kind != "insufficient_data":
            raise
        values = observed_signals(record, now=now, tz=tz)
        return scorer.score_values(values, account_id, previous=previous, computed_at=now, account=account)
    return scorer.score(signals, account_id, previous=previous, computed_at=now, account=account)
