"""Runs whose work goes to Celery workers: the dispatcher protocol, and a whole-book scan cut into page tasks.

A scan on workers is one `health_scan` task per page of account ids (`AccountRanges.page_bounds`), then one alert
step. Each page task scores and saves its accounts and records on the run its counts and its alert candidates.
Once every page has an outcome, whoever sees it first (the worker recording the last page, a redelivered page,
or the scheduler right after recording the dispatch) sends the alert step, which reads the pages' candidates
back, chooses the alerts over the whole book as one process would (most severe first, the per-scan cap, the
cooldown), dispatches them idempotently by key and drafts the digests. An alert step sent twice by that race
finds its outcome recorded and does nothing (or, if both run at once, writes each artifact once by its key).

A page's outcome is keyed by its number, so a number must mean the same accounts in every attempt of the run.
The first attempt records its page bounds on the run before sending anything (`page_plan`); a run resumed or
taken over later sends those same pages again, even if the book changed in between. With pages cut afresh, a
shifted page k + 1 sent by the new attempt could lose its key to the old attempt's page k + 1 still queued,
and the accounts between the two cuts would be scored by neither. Accounts added since the first attempt fall
in the pages that cover their ids, as in one uninterrupted run: scored if that page has not run yet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from src.app.tasks import ScannedPages
from src.app.tools.store import PageBounds, RunLedger

PAGE_KEY_PREFIX = "health_scan:page:"
PLAN_KEY = "health_scan:plan"
PLANNED = "planned"
"""The status of the page plan's row: not an outcome, so no count of the run includes it."""
ALERT_STEP_KEY = "health_scan:alerts"
ALERT_STEP: dict[str, Any] = {"type": "health_scan", "summary": True, "digest": True, "step": "alerts"}
"""The task that alerts on a scan whose pages were scored on workers (the worker adds `pages_scored`)."""


class TaskDispatcher(Protocol):
    """Sends a run's tasks to workers (`CSM_EXECUTOR=celery`) instead of running them here."""

    async def enqueue(self, run_id: str, job_id: str, tasks: Sequence[dict[str, Any]]) -> int:
        """Send every task for run `run_id`; the number sent."""
        ...


def page_tasks(bounds: Sequence[PageBounds]) -> list[dict[str, Any]]:
    """One summary `health_scan` task per (after, upto) page of the book, numbered in id order."""
    return [
        {"type": "health_scan", "summary": True, "page": [after, upto], "step": "page", "index": index}
        for index, (after, upto) in enumerate(bounds)
    ]


async def page_plan(ledger: RunLedger, run_id: str, bounds: Sequence[PageBounds]) -> list[PageBounds]:
    """The run's pages: `bounds` on its first attempt, else the bounds its first attempt recorded."""
    plan = {"bounds": [list(page) for page in bounds]}
    await ledger.record_task(run_id, PLAN_KEY, account_id=None, status=PLANNED, detail=plan)
    recorded = await ledger.task_detail(run_id, PLAN_KEY)
    if recorded is None:
        raise RuntimeError(f"run {run_id} has no page plan after recording one")
    return [(after, upto) for after, upto in recorded["bounds"]]


def scan_step_key(task: Mapping[str, Any]) -> str | None:
    """The run-task key of a scan's page task or alert step; None for any other task."""
    if task.get("step") == "page":
        return f"{PAGE_KEY_PREFIX}{int(task.get('index') or 0):06d}"
    return ALERT_STEP_KEY if task.get("step") == "alerts" else None


def step_outcome(
    task: Mapping[str, Any], result: Mapping[str, Any]
) -> tuple[dict[str, int] | None, dict[str, Any] | None]:
    """What a scan step records on its run besides its status: (counts the run adds up, detail for later steps)."""
    if "error" in result or task.get("step") not in ("page", "alerts"):
        return None, None
    if task.get("step") == "alerts":
        names = {"alerts": "alerts_dispatched", "alerts_held_back": "alerts_held_back", "digests": "digests"}
        return {name: int(result.get(key) or 0) for name, key in names.items()}, None
    errors = list(result.get("errors", []))
    totals = {"scanned": int(result["scanned_count"]), "scored": int(result["scored_count"])}
    detail = {
        "scanned": totals["scanned"],
        "rag_counts": dict(result.get("rag_counts", {})),
        "candidates": [list(candidate) for candidate in result.get("alert_candidates", [])],
        "errors": errors,
    }
    return totals | {"account_errors": len(errors)}, detail


async def with_scanned_pages(ledger: RunLedger, run_id: str, task: dict[str, Any]) -> dict[str, Any]:
    """The alert step with its run's pages added up as `pages_scored`; any other task as it is."""
    if task.get("step") != "alerts":
        return task
    pages = [ScannedPages.model_validate(detail) for detail in await ledger.task_details(run_id, PAGE_KEY_PREFIX)]
    rag_counts: Counter[str] = Counter()
    for page in pages:
        rag_counts.update(page.rag_counts)
    total = ScannedPages(
        scanned=sum(page.scanned for page in pages),
        rag_counts=dict(rag_counts),
        candidates=[candidate for page in pages for candidate in page.candidates],
        errors=[error for page in pages for error in page.errors],
    )
    return {**task, "pages_scored": total.model_dump(mode="json")}


async def queue_alert_step(ledger: RunLedger, dispatcher: TaskDispatcher, run_id: str, job_id: str) -> bool:
    """Send a scan's alert step if every page of the run has an outcome and the step has none; whether it did."""
    progress = await ledger.run_progress(run_id)
    if progress is None or progress.status != "running":
        return False
    pages = progress.dispatched.get("pages")
    if not isinstance(pages, int) or progress.done < pages or await ledger.task_recorded(run_id, ALERT_STEP_KEY):
        return False
    await dispatcher.enqueue(run_id, job_id, [dict(ALERT_STEP)])
    return True
