"""QBR documents from the store: the score history, the trend facts the prose may quote, and the rendered files."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from src.app.analysis.signals import parse_account
from src.app.config import CSMSettings
from src.app.context import CSMContext
from src.app.documents.document import QBRDocument
from src.app.documents.facts import QUARTERS_SHOWN, build_qbr_document
from src.app.documents.periods import Quarter, local_day, score_as_of, score_before
from src.app.documents.qbr_markdown import render_qbr_markdown
from src.app.documents.wording import rounded_score, score_delta
from src.app.schemas import CSMHealthScore, QBRContent
from src.app.tools.store import CSMStore, score_history

DocumentFormat = Literal["html", "md", "pptx"]
FORMATS: tuple[DocumentFormat, ...] = ("pptx", "html", "md")
"""Every format a QBR is written in, the deck first (what the rep presents)."""


async def quarters_history(
    store: CSMStore, tz: ZoneInfo, account_id: str, period: str, fresh: CSMHealthScore | None = None
) -> list[CSMHealthScore]:
    """The account's stored scores over the four quarters ending with `period` (and the quarter before them).

    `fresh` (a score computed in this run and not stored) joins the history when no stored score of its day exists.
    """
    first = Quarter.parse(period).last(QUARTERS_SHOWN)[0].previous()
    since = datetime.combine(first.start, datetime.min.time(), tzinfo=tz)
    history = (await score_history(store, [account_id], since=since - timedelta(days=1))).get(account_id, [])
    if fresh is not None and all(local_day(s.computed_at, tz) != local_day(fresh.computed_at, tz) for s in history):
        history = [*history, fresh]
    return history


def trend_facts(history: Sequence[CSMHealthScore], period: str, now: datetime, tz: Any) -> dict[str, Any]:
    """The period's trend as prompt facts: the score now and at the period start, rounded as people read them."""
    quarter = Quarter.parse(period)
    today = local_day(now, tz)
    current = score_as_of(history, min(quarter.end, today), tz)
    start = score_before(history, quarter.start, tz)
    delta = None if current is None or start is None else score_delta(current.score, start.score)
    return {
        "period": quarter.label,
        "to_date": today <= quarter.end,
        "score_now": None if current is None else rounded_score(current.score),
        "previous_period": quarter.previous().label,
        "score_at_period_start": None if start is None else rounded_score(start.score),
        "change_points": delta,
    }


async def qbr_document(
    store: CSMStore,
    settings: CSMSettings,
    qbr: QBRContent,
    *,
    now: datetime,
    period: str | None = None,
    fresh: CSMHealthScore | None = None,
) -> QBRDocument:
    """The QBR document of a stored (or just written) QBR, from the account record and the score history."""
    records = await store.load_accounts([qbr.account_id], active_only=False)
    if not records:
        raise ValueError(f"Account '{qbr.account_id}' was not found in the store")
    account = parse_account(records[0])
    label = period or qbr.period
    history = await quarters_history(store, settings.tz, qbr.account_id, label, fresh)
    return build_qbr_document(
        qbr,
        account,
        history,
        now=now,
        period=label,
        tz=settings.tz,
        green_threshold=settings.green_threshold,
        amber_threshold=settings.amber_threshold,
    )


def documents_folder(ctx: CSMContext) -> Path:
    """Where QBR documents are written: `<CSM_DATA_DIR>/documents`."""
    return ctx.settings.data_dir / "documents"


def document_path(folder: Path, doc: QBRDocument, fmt: DocumentFormat) -> Path:
    """The file of one format: `<folder>/<account>-qbr-<period>.<fmt>` ("acct-0001-qbr-Q4-2026.pptx")."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{doc.account_id}-qbr-{doc.period}").strip("-")
    return folder / f"{safe}.{fmt}"


def write_document(doc: QBRDocument, fmt: DocumentFormat, path: Path) -> Path:
    """Write one format of the document to `path` (folders created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pptx":
        from src.app.documents.qbr_deck import write_deck  # python-pptx only when a deck is written

        return write_deck(doc, path)
    if fmt == "html":
        from src.app.documents.qbr_html import write_qbr_html  # pygal and Jinja2 only when a page is written

        return write_qbr_html(doc, path)
    path.write_text(render_qbr_markdown(doc), encoding="utf-8")
    return path


def write_documents(doc: QBRDocument, folder: Path) -> dict[DocumentFormat, Path]:
    """Write the deck, the HTML page and the Markdown into `folder`; the paths by format."""
    return {fmt: write_document(doc, fmt, document_path(folder, doc, fmt)) for fmt in FORMATS}
