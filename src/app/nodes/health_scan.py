"""Health-scan nodes: score the book, choose alerts, prompt for churn narratives, dispatch alerts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import structlog
from langgraph.runtime import Runtime

from src.app.analysis.health import weakest_signals
from src.app.analysis.signals import DETAIL_FIELDS, days_until, parse_identity
from src.app.context import CSMContext
from src.app.nodes.account_facts import account_brief, require_scorer
from src.app.nodes.alerts import TREND_DAYS, alert_statuses, alert_trend, dispatch_churn_alert, fallback_narrative
from src.app.nodes.digest import send_daily_digests
from src.app.nodes.llm import prompt_requests
from src.app.nodes.outbox import deliver_pending
from src.app.prompts import health_scan as prompt
from src.app.scan.book import in_pages, whole_book
from src.app.scan.heap import older_objects_left_alone
from src.app.scan.page import SEVERITY_LEVELS, ScanSpec, score_page
from src.app.schemas import AccountRisk, ChurnNarrative, CSMHealthScore, RiskOf, StoredScore, jsonable
from src.app.state import WorkError, WorkState
from src.app.tasks import HealthScanTask, ScannedPages, as_task
from src.app.tools.store import AccountRanges, CSMStore, PriorScores, UnreadableAccounts, score_history

log = structlog.get_logger(__name__)


async def score_accounts(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Score every requested account, page by page, and append the new scores to the history.

    Each page is scored at once with array operations and saved in bulk. A task with `"summary": true` keeps only
    counts and the alert candidates, so the scan neither holds nor returns every account's breakdown.
    """
    ctx = runtime.context
    task = as_task(state["task"], HealthScanTask)
    spec = ScanSpec.for_task(task, scorer=require_scorer(ctx), now=ctx.clock(), tz=ctx.settings.tz)
    account_ids = task.account_scope()
    if task.pages_scored is not None:  # the alert step of a scan whose pages were scored on workers
        return _scored_on_workers(task.pages_scored)
    with older_objects_left_alone():
        if task.page is not None:
            pages = [await score_page(ctx.store, spec, await _page_records(ctx.store, task.page))]
            errors = []
        elif account_ids is None:
            pages = await whole_book(ctx.store, spec)
            errors = _unreadable_errors(ctx.store, None)
        else:
            records = await ctx.store.load_accounts(account_ids, active_only=False)
            pages = [await score_page(ctx.store, spec, page) for page in in_pages(records)]
            errors = _unreadable_errors(ctx.store, account_ids)
            found = {str(record.get("account_id")) for record in records} | {e["account_id"] for e in errors}
            errors += [_not_found(missing) for missing in sorted(set(account_ids) - found)]
    counts: Counter[str] = Counter()
    for page in pages:
        counts.update(page.rag_counts)
    log.info("health_scan_scored", scored=counts.total(), errors=len(errors) + sum(len(p.errors) for p in pages))
    return {
        "scores": sorted((score for page in pages for score in page.scores), key=lambda score: score["account_id"]),
        "alert_candidates": sorted(candidate for page in pages for candidate in page.candidates),
        "alert_rags": {account_id: rag for page in pages for account_id, rag in page.candidate_rags.items()},
        "scanned_count": sum(page.scanned for page in pages),
        "scan_counts": {"scored": counts.total(), **{rag: counts[rag] for rag in ("GREEN", "AMBER", "RED")}},
        "errors": errors + [error for page in pages for error in page.errors],
    }


async def _page_records(store: CSMStore, page: tuple[str | None, str | None]) -> list[dict[str, Any]]:
    """The active accounts of one page of the book, without the fields a whole-book scan does not read."""
    if not isinstance(store, AccountRanges):
        raise TypeError(f"a page of the book is read by id range; {type(store).__name__} cannot")
    return await store.accounts_in_range(*page, active_only=True, omit=DETAIL_FIELDS)


def _scored_on_workers(pages: ScannedPages) -> dict[str, Any]:
    """The scan state of pages scored elsewhere: counts, candidates (most severe first) and errors."""
    counts = {rag: pages.rag_counts.get(rag, 0) for rag in ("GREEN", "AMBER", "RED")}
    errors = [WorkError(account_id=e.get("account_id"), stage=e["stage"], message=e["message"]) for e in pages.errors]
    return {
        "scores": [],
        "alert_candidates": sorted(pages.candidates),
        "scanned_count": pages.scanned,
        "scan_counts": {"scored": sum(pages.rag_counts.values()), **counts},
        "errors": errors,
    }


def _not_found(account_id: str) -> WorkError:
    return WorkError(account_id=account_id, stage="score_accounts", message=f"Account '{account_id}' was not found")


def _unreadable_errors(store: CSMStore, account_ids: list[str] | None) -> list[WorkError]:
    """The records the store's source could not read, limited to the requested accounts when some were named."""
    if not isinstance(store, UnreadableAccounts):
        return []
    return [
        WorkError(account_id=u.account_id, stage="load_accounts", message=u.message)
        for u in store.unreadable_accounts()
        if account_ids is None or u.account_id in account_ids
    ]


async def select_alerts(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Pick at most N alertable accounts, most severe first, skipping those within the alert cooldown.

    Alerts already raised today for the same state count toward N, so a scan restarted after a crash alerts
    the same accounts an uninterrupted one would have, and a second scan on the same day adds no flood. The
    candidates' scores are read back from the history, where the scan has just saved them.
    """
    ctx = runtime.context
    if as_task(state["task"], HealthScanTask).page is not None:  # one page of many: the alert step chooses
        return {"facts": {}, "alert_scores": [], "alerts_held_back": 0}
    chosen: list[CSMHealthScore] = []
    budget = ctx.settings.max_alerts_per_scan
    candidates = [account_id for _, _, account_id in state.get("alert_candidates", [])]
    while candidates and len(chosen) < budget:
        batch, candidates = candidates[: budget * 2], candidates[budget * 2 :]
        scores = await ctx.store.latest_scores(batch)
        statuses = await alert_statuses(ctx, list(scores.values()))
        for score in (scores[account_id] for account_id in batch if account_id in scores):
            status = statuses[score.account_id]
            if status == "done_today":  # raised by an earlier (maybe interrupted) scan today: it uses up the cap
                budget -= 1
            elif status == "due":
                chosen.append(score)
            if len(chosen) >= budget:
                break
    held_back = await _held_back(ctx, {s.account_id for s in chosen}, state)
    records = await ctx.store.load_accounts([s.account_id for s in chosen], active_only=False)
    by_id = {str(r.get("account_id")): r for r in records}
    now, tz = ctx.clock(), ctx.settings.tz
    since = now - timedelta(days=max(TREND_DAYS) + 1)
    history = await score_history(ctx.store, [s.account_id for s in chosen], since=since)
    facts = {
        s.account_id: alert_facts(
            s, by_id[s.account_id], days_until(by_id[s.account_id].get("contract_end_date"), now=now, tz=tz)
        )
        | {"trend": alert_trend(history.get(s.account_id, []), s, _usage(by_id[s.account_id]), tz=tz)}
        for s in chosen
    }
    return {"facts": facts, "alert_scores": [s.model_dump(mode="json") for s in chosen], "alerts_held_back": held_back}


async def _held_back(ctx: CSMContext, chosen: set[str], state: WorkState) -> int:
    """How many candidates the cap kept from an alert: those not chosen that were due (not in their cooldown)."""
    unseen = [
        (rank, account_id) for rank, _, account_id in state.get("alert_candidates", []) if account_id not in chosen
    ]
    rags = state.get("alert_rags", {})
    risks: list[RiskOf] = [
        AccountRisk(account_id, rags[account_id], SEVERITY_LEVELS[rank])
        for rank, account_id in unseen
        if account_id in rags
    ]
    unknown = [account_id for _, account_id in unseen if account_id not in rags]  # pages scored on workers
    if unknown:
        store = ctx.store
        scores: Mapping[str, StoredScore]
        read = store.prior_scores if isinstance(store, PriorScores) else store.latest_scores
        scores = await read(unknown)
        risks += scores.values()
    return list((await alert_statuses(ctx, risks)).values()).count("due")


async def build_prompt(state: WorkState) -> dict[str, Any]:
    """One churn-narrative request per chosen account."""
    return {"llm_requests": prompt_requests(state.get("facts", {}), prompt, ChurnNarrative.__name__)}


async def draft_alerts(state: WorkState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Dispatch each chosen alert on its four channels and assemble the scan result."""
    ctx = runtime.context
    task = as_task(state["task"], HealthScanTask)
    if task.page is not None:  # a page's outcome: its counts and its alert candidates for the alert step
        return {"result": _scan_result(state, []) | {"alert_candidates": state.get("alert_candidates", [])}}
    redelivered = await deliver_pending(ctx)  # what earlier runs could not deliver goes first
    chosen = list(state.get("facts", {}))
    scores = {s["account_id"]: CSMHealthScore.model_validate(s) for s in state.get("alert_scores", [])}
    records = {str(r["account_id"]): r for r in await ctx.store.load_accounts(chosen, active_only=False)}
    alerts = []
    for account_id in chosen:
        account = parse_identity(records[account_id])
        parsed = state.get("parsed", {}).get(account_id)
        narrative = ChurnNarrative.model_validate(parsed) if parsed else fallback_narrative(account, scores[account_id])
        alerts.append(
            await dispatch_churn_alert(
                ctx,
                account=account,
                score=scores[account_id],
                narrative=narrative,
                task_type="health_scan",
                trend=state.get("facts", {}).get(account_id, {}).get("trend"),
            )
        )
    result = _scan_result(state, [a.model_dump(mode="json") for a in alerts])
    result["redelivered"] = redelivered
    if task.digest:
        alerted = {alert.account_id for alert in alerts}
        result |= await send_daily_digests(ctx, alerted=alerted, held_back=result["alerts_held_back"])
    return {"result": result}


def _usage(record: Mapping[str, Any]) -> list[int]:
    """The record's monthly active users, oldest first ([] when missing or malformed)."""
    usage = record.get("usage_history")
    if not isinstance(usage, list):
        return []
    return [int(value) for value in usage if isinstance(value, int | float) and not isinstance(value, bool)]


def alert_facts(score: CSMHealthScore, record: Mapping[str, Any], days_to_renewal: int | None) -> dict[str, Any]:
    """The churn narrative's facts (before the trend): identity, score, weakest signals and a few raw signals."""
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
    summary = as_task(state["task"], HealthScanTask).summary
    scores = state.get("alert_scores", []) if summary else state.get("scores", [])  # JSON-safe dumps already
    errors = state.get("errors", [])
    scoring_failed = any(error["stage"] == "score_accounts" for error in errors)
    counts = state.get("scan_counts", {})
    result: dict[str, Any] = jsonable(
        {
            "task_type": "health_scan",
            "health_score": scores[0] if len(scores) == 1 and not summary else None,
            "scanned_count": state.get("scanned_count", 0),
            "scored_count": counts.get("scored", len(scores)),
            "rag_counts": {rag: count for rag, count in counts.items() if rag != "scored"},
            "scores_included": "alerted" if summary else "all",
            "alerts_dispatched": sum(1 for alert in alerts if alert["alerts_sent"] > 0),
            "alerts_held_back": state.get("alerts_held_back", 0),
            "alerts": alerts,
            "errors": errors,
            "llm_usage": state.get("llm_usage", {}),
            "confidence": "medium" if scoring_failed else "high",
        }
    )
    return {"health_scores": scores, **result}
