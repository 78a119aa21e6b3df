"""What the desk's pages and API show, assembled once for both and limited to what the user may see."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import HTTPException

from src.app.analysis.health import SIGNAL_MAX_POINTS
from src.app.desk.core import Desk, User
from src.app.desk.sources import RECORD_COLUMN, fields_by_signal, signal_source, store_label
from src.app.documents.charts import score_history_svg
from src.app.schemas import CSMHealthScore
from src.app.tools.store import DraftRecord, DraftStatus
from src.app.tools.store.sql_book import BookFilter
from src.app.tools.store.sql_tables import OPPORTUNITIES, QBR_PAGES

STATUSES: tuple[DraftStatus, ...] = ("pending", "approved", "edited", "rejected")
RENEWAL_WINDOWS = (30, 60, 90, 180)


async def can_see(desk: Desk, user: User, account_id: str | None) -> bool:
    """Leads see every account; reps only those whose `rep_email` is theirs."""
    if user.is_lead:
        return True
    return account_id is not None and await desk.records.owner_of(account_id) == user.email


async def visible_draft(desk: Desk, user: User, draft_id: str) -> DraftRecord:
    """The draft if the user may see it; 404 otherwise (an unseen draft's existence is not revealed)."""
    draft = await desk.records.draft(draft_id)
    if draft is None or not await can_see(desk, user, draft.account_id):
        raise HTTPException(status_code=404, detail="No such draft")
    return draft


def today(desk: Desk) -> date:
    """Today in the configured time zone."""
    return desk.now().astimezone(desk.settings.tz).date()


def book_filter(
    user: User, *, owner: str | None, rag: str | None, segment: str | None, renewal: int | None, q: str | None
) -> BookFilter:
    """The user's filter: a rep's owner is always themself."""
    return BookFilter(
        owner=user.owner_filter or (owner or None),
        rag=rag if rag in ("RED", "AMBER", "GREEN") else None,
        segment=segment or None,
        renewal_within_days=renewal if renewal in RENEWAL_WINDOWS else None,
        search=(q or "").strip() or None,
    )


async def book_view(desk: Desk, user: User, where: BookFilter) -> dict[str, Any]:
    """RAG counts, ARR at risk, movement, the riskiest accounts and the movers of the filtered book."""
    await desk.book.refresh()
    day = today(desk)
    counts = await desk.book.counts(where, today=day)
    whole_book = where == BookFilter()
    return {
        "counts": counts,
        "total": sum(c["accounts"] for c in counts.values()),
        "arr_at_risk": counts["RED"]["arr"] + counts["AMBER"]["arr"],
        "movement": await desk.book.movement(today=day) if whole_book else {},
        "riskiest": [asdict(r) for r in await desk.book.rows(where, today=day, order="risk", limit=25)],
        "fallers": [asdict(r) for r in await desk.book.rows(where, today=day, order="down", limit=5)],
        "risers": [asdict(r) for r in await desk.book.rows(where, today=day, order="up", limit=5)],
        "pending_drafts": (await desk.records.draft_counts(owner=user.owner_filter)).get("pending", 0),
    }


async def account_view(desk: Desk, user: User, account_id: str) -> dict[str, Any]:
    """One account: its record, score history chart, signals with movement, source and time, and timeline."""
    if not await can_see(desk, user, account_id):
        raise HTTPException(status_code=404, detail="No such account")
    found = await desk.records.account(account_id)
    if found is None:
        raise HTTPException(status_code=404, detail="No such account")
    row, record = found
    history = await desk.records.score_history(account_id)
    latest = history[-1] if history else None
    settings = desk.settings
    chart = score_history_svg(
        [(s.computed_at.astimezone(settings.tz).date(), s.score) for s in history],
        settings.green_threshold,
        settings.amber_threshold,
        title=f"Health score of {row.name}",
    )
    fields = None if latest is None else fields_by_signal(settings, latest)
    sources = {
        key: signal_source(None if fields is None else fields.get(key), record, updated_at=row.updated_at)
        for key in ({} if latest is None else latest.signal_breakdown)
    }
    return {
        "account": asdict(row),
        "record": {k: record.get(k) for k in ("plan", "ae_email", "chat_space", "seats_purchased", "seats_active")},
        "latest": None if latest is None else latest.model_dump(mode="json"),
        "source": {
            "store": store_label(settings),
            "column": RECORD_COLUMN,
            "record_updated_at": None if row.updated_at is None else row.updated_at.isoformat(timespec="seconds"),
            "scanned_at": None if latest is None else latest.computed_at.isoformat(timespec="seconds"),
            "changed_since_scan": latest is not None
            and row.updated_at is not None
            and row.updated_at > latest.computed_at,
        },
        "signals": [{**r, "source": sources[r["signal"]]} for r in signal_rows(history)],
        "chart_svg": chart,
        "timeline": await timeline(desk, account_id),
    }


def signal_rows(history: list[CSMHealthScore]) -> list[dict[str, Any]]:
    """Each signal's points now and the change since the newest score at least a week older."""
    if not history:
        return []
    latest = history[-1]
    week_ago = [s for s in history if s.computed_at <= latest.computed_at - timedelta(days=7)]
    base = week_ago[-1] if week_ago else None
    rows = []
    for name, points in latest.signal_breakdown.items():
        moved = None if base is None else round(points - base.signal_breakdown.get(name, 0.0), 2)
        best = SIGNAL_MAX_POINTS.get(name)
        rows.append(
            {
                "signal": name,
                "points": points,
                "max": best,
                "lost": (best or 0) - points if best else -points,
                "week": moved,
                "last_scan": latest.signal_deltas.get(name),
            }
        )
    return sorted(rows, key=lambda r: (-r["lost"], r["signal"]))


async def timeline(desk: Desk, account_id: str) -> list[dict[str, Any]]:
    """Alerts, drafts, QBRs, opportunities, hand-offs and audit rows of one account, newest first."""
    items: list[dict[str, Any]] = []
    for alert in await desk.records.store.list_alerts(account_id, limit=50):
        items.append(_item(alert.alerted_at, "alert", f"Churn alert ({alert.risk_state})", None))
    for draft in await desk.records.drafts(account_id=account_id, limit=50):
        items.append(
            _item(
                draft.created_at,
                "draft",
                f"{draft.kind} draft: {draft.subject} [{draft.status}]",
                f"/drafts/{draft.draft_id}",
            )
        )
    for qbr in await desk.book.artifacts(QBR_PAGES, owner=None, account_id=account_id, limit=20):
        items.append(_item(qbr["created_at"], "qbr", f"QBR {qbr['payload'].get('period')}", f"/qbrs/{qbr['id']}"))
    for opp in await desk.book.artifacts(OPPORTUNITIES, owner=None, account_id=account_id, limit=20):
        payload = opp["payload"]
        items.append(
            _item(
                opp["created_at"],
                "opportunity",
                f"Opportunity: {payload.get('opportunity_type')} ({payload.get('confidence')})",
                f"/opportunities/{opp['id']}",
            )
        )
    for entry in await desk.records.store.list_audit(account_id=account_id, limit=100):
        kind = "hand-off" if entry.artifact.startswith("handoff") else "audit"
        items.append(_item(entry.at, kind, f"{entry.artifact} → {entry.target}", None))
    return sorted(items, key=lambda item: item["at"], reverse=True)


def _item(at: datetime | None, kind: str, text: str, link: str | None) -> dict[str, Any]:
    return {"at": at.isoformat(timespec="minutes") if at else "", "kind": kind, "text": text, "link": link}


def draft_row(draft: DraftRecord, now: datetime, names: dict[str, str] | None = None) -> dict[str, Any]:
    """A draft as the queue lists it (no body), with its age and its account's name."""
    age = now - draft.created_at
    hours = int(age.total_seconds() // 3600)
    data = draft.model_dump(mode="json", exclude={"body_html", "body_text"})
    name = (names or {}).get(draft.account_id or "", draft.account_id)
    return {**data, "account_name": name, "age": f"{hours // 24}d" if hours >= 24 else f"{hours}h" if hours else "<1h"}
