"""What the `csm` commands run: the offline demo day, single tasks, and the drafts queue."""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from collections.abc import Awaitable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.runtime import open_agent, scheduler_for
from src.app.analysis.adoption import build_adoption_facts
from src.app.analysis.expansion import find_expansion_candidates
from src.app.analysis.signals import AccountDataError, parse_account
from src.app.cli.render import Console, accounts_progress, progress, render_drafts, render_result, render_scan
from src.app.config import CSMSettings, settings_for
from src.app.data.sample_book import load_sample_book
from src.app.nodes.qbr_documents import DocumentFormat, document_path, qbr_document, write_document
from src.app.schemas import CSMHealthScore, QBRContent
from src.app.tasks import current_quarter
from src.app.tools.llm.usage import metered
from src.app.tools.store import CSMStore, ScoreHistory
from src.app.tools.store.sql import SQLStore

T = TypeVar("T")
DEMO_QBRS = 5
DEMO_EXPANSIONS = 8
DEMO_ADOPTION = 5


async def run_task(task: dict[str, Any], *, data_dir: Path | None, quiet: bool) -> dict[str, Any]:
    """Run one task on the configured store (seeded with the sample book when empty)."""
    settings = settings_for(data_dir)
    console = Console(quiet=quiet)
    async with open_agent(settings) as (agent, store):
        await ensure_accounts(store, settings, console)
        if _whole_book_scan(task) and isinstance(store, SQLStore):
            result = await _scan_with_progress(agent, store, task, console)
        else:
            with progress(console, f"Running {task['type']}"):
                result = await agent.execute(task, {})
        if not quiet:  # --json prints the result itself: no table to lay out
            render_result(console, result)
            if "llm_usage" in result:
                console.print(usage_line(result["llm_usage"]))
        return result


async def run_qbr(
    task: dict[str, Any], *, fmt: DocumentFormat, output: Path | None, data_dir: Path | None, quiet: bool
) -> dict[str, Any]:
    """Render one account's QBR document from the stored QBR and score history, writing the QBR first if needed."""
    settings = settings_for(data_dir)
    console = Console(quiet=quiet)
    now = datetime.now(settings.tz)
    period = task.get("period") or current_quarter(now, settings.tz)
    async with open_agent(settings) as (agent, store):
        await ensure_accounts(store, settings, console)
        stored = await store.latest_qbr(task["account_id"], period) if isinstance(store, ScoreHistory) else None
        generated, fresh = stored is None, None
        if stored is None:
            with progress(console, "Writing the QBR"):
                result = await agent.execute({**task, "period": period}, {})
            if "error" in result:
                render_result(console, result)
                return result
            stored = QBRContent.model_validate(result["qbr"])
            fresh = CSMHealthScore.model_validate(result["health_score"]) if result.get("health_score") else None
        doc = await qbr_document(store, settings, stored, now=now, period=period, fresh=fresh)
    path = write_document(doc, fmt, output or document_path(Path.cwd(), doc, fmt))
    summary = {
        "account_id": doc.account_id,
        "period": doc.period,
        "format": fmt,
        "output": str(path),
        "generated": generated,
        "health": f"{doc.health.headline} {doc.health.trend}",
    }
    render_result(console, summary)
    return summary


def _whole_book_scan(task: dict[str, Any]) -> bool:
    return task.get("type") == "health_scan" and not task.get("account_id") and task.get("account_ids") is None


async def _scan_with_progress(
    agent: CustomerSuccessAgent, store: SQLStore, task: dict[str, Any], console: Console
) -> dict[str, Any]:
    """A whole-book scan showing accounts done / total (counted first) and the rate, advanced page by page."""
    from src.app.scan.progress import scan_progress

    total = await store.count_accounts(active_only=True)
    with accounts_progress(console, "Health scan", total) as advance, scan_progress(advance):
        return await agent.execute(task, {})


async def ensure_accounts(store: CSMStore, settings: CSMSettings, console: Console) -> None:
    """Load the sample book into a fresh local store and say so, also under --json (on stderr).

    Only a store that was never used is seeded: one with score history or audit rows but no accounts was emptied
    on purpose, and scanning the sample book in its place would raise alerts on accounts that do not exist.
    A Notion book is never seeded.
    """
    if not isinstance(store, SQLStore) or await store.count("accounts") > 0:  # a count, not the whole book
        return
    if await store.count("health_scores") or await store.count("audit_log"):
        raise EmptyStoreError(
            f"the store at {_shown(settings.resolved_database_url)} has no accounts but has been used before; "
            "import accounts with `csm import FILE` (a fresh --data-dir starts on the sample book)"
        )
    loaded = await store.upsert_accounts(load_sample_book(today=datetime.now(settings.tz).date()))
    notice = f"Empty store: loaded the sample book ({loaded} accounts)."
    if console.quiet:
        print(notice, file=sys.stderr)
    else:
        console.print(f"[dim]{notice}[/dim]")


def _shown(url: str) -> str:
    """A database URL as it may be printed (password hidden)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class EmptyStoreError(RuntimeError):
    """The store has no accounts and is not fresh, so the sample book is not loaded in their place."""


async def list_drafts(*, data_dir: Path | None, limit: int, quiet: bool) -> dict[str, Any]:
    """The review queue, newest first."""
    async with open_agent(settings_for(data_dir)) as (_, store):
        drafts = [draft.model_dump(mode="json") for draft in await store.list_drafts(limit=limit)]
    render_drafts(Console(quiet=quiet), drafts)
    return {"drafts": drafts}


async def run_demo(*, data_dir: Path | None, quiet: bool) -> dict[str, Any]:
    """A full offline day on the sample book: scan, alerts, contract check, QBRs, expansion, adoption."""
    base = CSMSettings()
    settings = base.embedded_backends(data_dir=data_dir or base.data_dir / "demo")
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    console = Console(quiet=quiet)
    timings: dict[str, float] = {}
    with metered() as usage:
        summary = await _demo_day(settings, console, timings)
    summary["llm_usage"] = usage.summary()
    console.print(usage_line(summary["llm_usage"]))
    return summary


def usage_line(usage: dict[str, Any]) -> str:
    """One line on the LLM calls, tokens and cost of a run."""
    calls = usage["calls"]
    return (
        f"LLM: {calls} call{'' if calls == 1 else 's'}, {usage['total_tokens']:,} tokens "
        f"({usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion), ${usage['cost_usd']:.4f}"
    )


async def _demo_day(settings: CSMSettings, console: Console, timings: dict[str, float]) -> dict[str, Any]:
    async with open_agent(settings) as (agent, store):
        book = load_sample_book(today=datetime.now(settings.tz).date())
        await _timed(timings, "load", store.upsert_accounts(book))
        if isinstance(store, SQLStore):
            scan = await _timed(
                timings, "health_scan", _scan_with_progress(agent, store, {"type": "health_scan"}, console)
            )
        else:
            with progress(console, f"Health scan of {len(book)} accounts"):
                scan = await _timed(timings, "health_scan", agent.execute({"type": "health_scan"}, {}))
        scheduler = scheduler_for(agent, store, settings)
        with progress(console, "Contract check (renewals within 60 days)"):
            contract = await _timed(timings, "contract_check", scheduler.run_job("csm_daily_contract_check"))
        picks = _demo_picks(await store.load_accounts())
        qbrs = await _run_many(console, agent, timings, "generate_qbr", picks["qbr"])
        expansions = await _run_many(console, agent, timings, "check_expansion", picks["expansion"])
        adoption = await _run_many(console, agent, timings, "track_feature_adoption", picks["adoption"])
        drafts = [d.model_dump(mode="json") for d in await store.list_drafts(limit=1000)]
    handed = [d for r in expansions for d in r.get("sales_dispatch_results", [])]
    ae_drafts = sorted({d["draft_id"] for d in handed if d.get("draft_id")})
    render_scan(console, scan)
    console.print(f"Sales hand-offs: {len(handed)} opportunities, {len(ae_drafts)} drafts to account executives.")
    render_drafts(console, drafts[:12], total=len(drafts), folder=settings.data_dir / "outbox")
    return {
        "data_dir": str(settings.data_dir),
        "accounts": len(book),
        "scored": len(scan.get("health_scores", [])),
        "rag_counts": dict(Counter(s["rag"] for s in scan.get("health_scores", []))),
        "errors": scan.get("errors", []),
        "alerts_dispatched": scan.get("alerts_dispatched", 0),
        "contract_check": {k: contract.get(k) for k in ("status", "rechecked", "alerts", "qbrs")},
        "qbrs": [r.get("qbr_page_id") for r in qbrs],
        "opportunities": sum(r.get("opportunities_found", 0) for r in expansions),
        "sales_handoffs": len(handed),
        "ae_drafts": len(ae_drafts),
        "adoption_reports": len([r for r in adoption if "error" not in r]),
        "failed_tasks": [r for r in [*qbrs, *expansions, *handed, *adoption] if "error" in r],
        "drafts": len(drafts),
        "timings_s": timings,
    }


async def _timed(timings: dict[str, float], name: str, work: Awaitable[T]) -> T:
    started = time.perf_counter()
    result = await work
    timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - started, 3)
    return result


async def _run_many(
    console: Console,
    agent: CustomerSuccessAgent,
    timings: dict[str, float],
    task_type: str,
    account_ids: list[str],
) -> list[dict[str, Any]]:
    results = []
    with progress(console, f"{task_type} for {len(account_ids)} accounts", total=len(account_ids)) as advance:
        for account_id in account_ids:
            task = {"type": task_type, "account_id": account_id}
            results.append(await _timed(timings, task_type, agent.execute(task, {})))
            advance()
    return results


def _demo_picks(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Which accounts the demo writes QBRs, expansion checks and adoption reports for."""
    accounts = []
    for record in records:
        try:
            accounts.append(parse_account(record))
        except AccountDataError:
            continue
    by_arr = sorted(accounts, key=lambda a: (-a.arr, a.account_id))
    with_candidates = [a for a in by_arr if find_expansion_candidates(a)]
    by_adoption = sorted(accounts, key=lambda a: (build_adoption_facts(a).adoption_rate, a.account_id))
    return {
        "qbr": [a.account_id for a in by_arr[:DEMO_QBRS]],
        "expansion": [a.account_id for a in with_candidates[:DEMO_EXPANSIONS]],
        "adoption": [a.account_id for a in by_adoption[:DEMO_ADOPTION]],
    }
