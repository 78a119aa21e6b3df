"""`csm audit`: list the audit log of outbound artifacts (drafts, chat messages, pages, events, hand-offs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from src.app.config import settings_for
from src.app.tools.store import AuditEntry
from src.app.tools.store.sql import SQLStore


async def list_audit(
    *, data_dir: Path | None, account_id: str | None, kind: str | None, limit: int, quiet: bool
) -> dict[str, Any]:
    """Audit entries, newest first, optionally one account's or one kind's (`draft` matches every draft kind)."""
    if limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    store = SQLStore(settings_for(data_dir).resolved_database_url)
    try:
        entries = await store.list_audit(limit=limit, account_id=account_id, artifact=kind)
    finally:
        await store.aclose()
    render_audit(Console(quiet=quiet), entries)
    return {"audit": [entry.model_dump(mode="json") for entry in entries]}


def render_audit(console: Console, entries: list[AuditEntry]) -> None:
    """The audit entries as a table: when, what, which account and task, where it went, under which key."""
    table = Table(title=f"Audit log ({len(entries)} entries, newest first; nothing was sent)")
    for column in ("at", "artifact", "account", "task", "target", "idempotency key"):
        table.add_column(column)
    for entry in entries:
        table.add_row(
            entry.at.isoformat(timespec="seconds") if entry.at else "-",
            escape(entry.artifact),
            escape(entry.account_id or "-"),
            escape(entry.task_type or "-"),
            escape(entry.target),
            escape(entry.idempotency_key),
        )
    console.print(table)
