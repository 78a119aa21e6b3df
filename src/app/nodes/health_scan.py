"""Health-scan nodes: score the book, choose alerts, prompt for churn narratives, dispatch alerts."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from langgraph.runtime import Runtime

from src.app.analysis.health import CSMHealthScorer, weakest_signals
from src.app.analysis.scan import score_book
from src.app.analysis.signals import DETAIL_FIELDS, AccountDataError, days_until, parse_identity
from src.app.context import CSMContext
from src.app.nodes.alerts import alert_status, dispatch_churn_alert, fallback_narrative, most_severe_first
from src.app.nodes.common import account_brief, jsonable, task_account_ids
from src.app.nodes.llm import prompt_requests
from src.app.prompts import health_scan as prompt
from src.app.schemas import SCORE_FIELDS, ChurnNarrative, CSMHealthScore, trusted_score
from src.app.state import WorkError, WorkState
from src.app.tools.store import AccountPages, CSMStore, UnreadableAccount, UnreadableAccounts

log = structlog.get_logger(__name__)

SIGNAL_OVERRIDE_KEYS = ("signals", "days_to_renewal")
SCAN_PAGE_SIZE = 2000
"""Accounts scored, checked and saved together; a whole-book scan holds one page of records at a time."""


def require_scorer(ctx: CSMContext) -> CSMHealthScorer:
    """The configured scorer, or the error the facade reports when there is none."""
    if ctx.scorer is None:
        raise RuntimeError("CSMHealthScorer not configured")
    return ctx.scorer


def apply_task_overrides(records: list[dict[str, Any]], task: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records with the task's signal overrides applied to copies (the task and records are never mutated)."""
    signals: Mapping[str, Any] = task["signals"] if isinstance(task.get("signals"), Mapping) else {}
    renewal = task.get("days_to_renewal")
    if not signals and not isinstance(renewal, Mapping | int):
        return records
    updated = []
    for record in records:
        copy = {**record, **signals}
        if isinstance(renewal, Mapping) and record.get("account_id") in renewal:
            copy["days_to_renewal"] = renewal[record["account_id"]]
        elif isinstance(renewal, int):
            copy["days_to_renewal"] = renewal
        updated.append(copy)
    return updated


async def score_accounts(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Score every requested account, page by page, and append the new scores to the history.

    A task with `"summary": true` keeps only the scores that should alert for the result (plus counts), so a
    whole-book scan of a large book neither holds nor returns every account's breakdown.
    """
    ctx = runtime.context
    scorer = require_scorer(ctx)
    task = state["task"]
    account_ids = task_account_ids(task)
    now, keep_all = ctx.clock(), not task.get("summary")
    kept: list[dict[str, Any]] = []
    errors: list[WorkError] = []
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    scanned = 0
    with _older_objects_left_alone():
        async for records in _account_pages(ctx.store, account_ids):
            scores, page_errors = await _score_page(ctx, scorer, records, task, now)
            errors += page_errors
            counts.update(score.rag for score in scores)
            scanned += len(records)
            kept += [score.model_dump(mode="json") for score in scores if keep_all or score.should_alert]
            if account_ids is not None:
                seen.update(str(record.get("account_id")) for record in records)
    unreadable = _unreadable_accounts(ctx.store, account_ids)
    missing = sorted(set(account_ids or []) - seen - {u.account_id for u in unreadable})
    errors = [
        *(WorkError(account_id=u.account_id, stage="load_accounts", message=u.message) for u in unreadable),
        *(WorkError(account_id=m, stage="score_accounts", message=f"Account '{m}' was not found") for m in missing),
        *errors,
    ]
    log.info("health_scan_scored", scored=counts.total(), errors=len(errors))
    return {
        "scores": sorted(kept, key=lambda score: str(score["account_id"])),
        "scanned_count": scanned,
        "scan_counts": {"scored": counts.total(), **{rag: counts[rag] for rag in ("GREEN", "AMBER", "RED")}},
        "errors": errors,
    }


@contextmanager
def _older_objects_left_alone() -> Iterator[None]:
    """Keep the garbage collector's full passes off the objects that existed before the block.

    A running app holds millions of long-lived objects (LangGraph, litellm, the store engine); without this, the
    full collections that a scan's allocations trigger walk all of them again and again (~1.5 s of a 100k scan).
    Objects created inside the block are collected as usual; the older ones are handed back at the end.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _unreadable_accounts(store: CSMStore, account_ids: list[str] | None) -> list[UnreadableAccount]:
    """The records the store's source could not read, limited to the requested accounts when some were named."""
    if not isinstance(store, UnreadableAccounts):
        return []
    return [u for u in store.unreadable_accounts() if account_ids is None or u.account_id in account_ids]


async def _account_pages(store: CSMStore, account_ids: list[str] | None) -> AsyncIterator[list[dict[str, Any]]]:
    """The requested account records in pages (a store that pages is never asked for the whole book at once).

    A whole-book scan reads the records without their `DETAIL_FIELDS`: nothing it scores or alerts on uses them.
    """
    if account_ids is None and isinstance(store, AccountPages):
        async for page in store.iter_accounts(active_only=True, page_size=SCAN_PAGE_SIZE, omit=DETAIL_FIELDS):
            yield page
        return
    records = await store.load_accounts(account_ids, active_only=account_ids is None)
    for start in range(0, len(records), SCAN_PAGE_SIZE):
        yield records[start : start + SCAN_PAGE_SIZE]


async def _score_page(
    ctx: CSMContext, scorer: CSMHealthScorer, records: list[dict[str, Any]], task: Mapping[str, Any], now: datetime
) -> tuple[list[CSMHealthScore], list[WorkError]]:
    """Score one page, save the scores that are new to the history, and return them as history holds them."""
    tz = ctx.settings.tz
    previous = await ctx.store.latest_scores([str(record.get("account_id")) for record in records])
    outcome = score_book(apply_task_overrides(records, task), scorer=scorer, previous=previous, now=now, tz=tz)
    errors = [WorkError(account_id=e.account_id, stage="score_accounts", message=e.message) for e in outcome.errors]
    scores, identity_errors = _with_valid_identity(outcome.scores, records)
    repeated = {s.account_id: previous[s.account_id] for s in scores if _repeats(s, previous.get(s.account_id), tz)}
    await ctx.store.save_scores([s for s in scores if s.account_id not in repeated])
    return [repeated.get(s.account_id, s) for s in scores], errors + identity_errors  # as history holds them


async def select_alerts(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Pick at most N alertable accounts, most severe first, skipping those within the alert cooldown.

    Alerts already raised today for the same state count toward N, so a scan restarted after a crash alerts
    the same accounts an uninterrupted one would have, and a second scan on the same day adds no flood.
    """
    ctx = runtime.context
    alertable = {s["account_id"]: s for s in state.get("scores", []) if s["should_alert"]}
    unchecked = [trusted_score({k: s[k] for k in SCORE_FIELDS}) for s in alertable.values()]  # ordered, not used
    chosen: list[CSMHealthScore] = []
    budget = ctx.settings.max_alerts_per_scan
    for candidate in most_severe_first(unchecked):
        if len(chosen) >= budget:
            break
        score = CSMHealthScore.model_validate(alertable[candidate.account_id])
        status = await alert_status(ctx, score)
        if status == "done_today":  # raised by an earlier (maybe interrupted) scan today: it uses up the cap
            budget -= 1
        elif status == "due":
            chosen.append(score)
    records = await ctx.store.load_accounts([s.account_id for s in chosen], active_only=False)
    by_id = {str(r.get("account_id")): r for r in records}
    now, tz = ctx.clock(), ctx.settings.tz
    facts = {
        s.account_id: _alert_facts(
            s, by_id[s.account_id], days_until(by_id[s.account_id].get("contract_end_date"), now=now, tz=tz)
        )
        for s in chosen
    }
    return {"facts": facts}


async def build_prompt(state: WorkState) -> dict[str, Any]:
    """One churn-narrative request per chosen account."""
    return {"llm_requests": prompt_requests(state.get("facts", {}), prompt, ChurnNarrative.__name__)}


async def draft_alerts(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Dispatch each chosen alert on its four channels and assemble the scan result."""
    ctx = runtime.context
    chosen = list(state.get("facts", {}))
    scores = {
        s["account_id"]: CSMHealthScore.model_validate(s) for s in state.get("scores", []) if s["account_id"] in chosen
    }
    records = {str(r["account_id"]): r for r in await ctx.store.load_accounts(chosen, active_only=False)}
    alerts = []
    for account_id in chosen:
        account = parse_identity(records[account_id])
        parsed = state.get("parsed", {}).get(account_id)
        narrative = ChurnNarrative.model_validate(parsed) if parsed else fallback_narrative(account, scores[account_id])
        alerts.append(
            await dispatch_churn_alert(
                ctx, account=account, score=scores[account_id], narrative=narrative, task_type="health_scan"
            )
        )
    return {"result": _scan_result(state, [a.model_dump(mode="json") for a in alerts])}


def _with_valid_identity(
    scores: list[CSMHealthScore], records: list[dict[str, Any]]
) -> tuple[list[CSMHealthScore], list[WorkError]]:
    """Drop the scores of accounts whose identity fields are invalid (they could not be alerted or drafted).

    Only the identity fields are checked: the detail fields (tickets, usage history...) are the business of the
    tasks that read them, and a whole-book scan does not even load them.
    """
    by_id = {str(record.get("account_id")): record for record in records}
    valid, errors = [], []
    for score in scores:
        try:
            parse_identity(by_id[score.account_id])
        except AccountDataError as problem:
            errors.append(WorkError(account_id=score.account_id, stage="score_accounts", message=str(problem)))
        else:
            valid.append(score)
    return valid, errors


def _repeats(score: CSMHealthScore, stored: CSMHealthScore | None, tz: ZoneInfo) -> bool:
    """Whether `stored` is the same score computed earlier on the same local day (a rerun adds no history row)."""
    if stored is None or stored.computed_at.astimezone(tz).date() != score.computed_at.astimezone(tz).date():
        return False
    same = ("score", "rag", "churn_risk_level", "churn_triggered_by", "signal_breakdown")
    return all(getattr(stored, name) == getattr(score, name) for name in same)


def _alert_facts(score: CSMHealthScore, record: Mapping[str, Any], days_to_renewal: int | None) -> dict[str, Any]:
    account = parse_identity(record)
    signals = {k: record.get(k) for k in ("usage_trend", "login_frequency_days", "nps_score", "invoice_payment_status")}
    return {
        "account": account_brief(account, record.get("days_to_renewal", days_to_renewal)),
        "score": {
            "score": score.score,
            "rag": score.rag,
            "churn_risk_level": score.churn_risk_level,
            "churn_triggered_by": score.churn_triggered_by,
            "previous_score": score.previous_score,
        },
        "weakest_signals": [
            {"signal": name, "points": points, "max_points": top} for name, points, top in weakest_signals(score)
        ],
        "signals": signals,
    }


def _scan_result(state: WorkState, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    scores = state.get("scores", [])  # already JSON-safe dumps: not copied again below
    errors = state.get("errors", [])
    scoring_failed = any(error["stage"] == "score_accounts" for error in errors)
    counts = state.get("scan_counts", {})
    result: dict[str, Any] = jsonable(
        {
            "task_type": "health_scan",
            "health_score": scores[0] if len(scores) == 1 else None,
            "scanned_count": state.get("scanned_count", 0),
            "scored_count": counts.get("scored", len(scores)),
            "rag_counts": {rag: count for rag, count in counts.items() if rag != "scored"},
            "scores_included": "alertable" if state["task"].get("summary") else "all",
            "alerts_dispatched": sum(1 for alert in alerts if alert["alerts_sent"] > 0),
            "alerts": alerts,
            "errors": errors,
            "llm_usage": state.get("llm_usage", {}),
            "confidence": "medium" if scoring_failed else "high",
        }
    )
    return {"health_scores": scores, **result}
