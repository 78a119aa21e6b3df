"""Rich rendering for the `csm` command: score tables with RAG colours, draft lists, progress bars."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from src.app.analysis.health import weakest_signals
from src.app.documents.wording import signal_line
from src.app.schemas import CSMHealthScore

RAG_STYLE = {"GREEN": "bold green", "AMBER": "bold yellow", "RED": "bold red"}
TABLE_ROWS = 15

__all__ = ["Console", "accounts_progress", "progress", "render_drafts", "render_result", "render_scan"]


@contextmanager
def progress(console: Console, description: str, total: int | None = None) -> Iterator[Callable[[], None]]:
    """A progress bar (a spinner when the total is unknown); yields a function that advances it by one."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
        bar.update(task, total=total or 1, completed=total or 1)


@contextmanager
def accounts_progress(console: Console, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A bar of accounts done / total with accounts per second; yields `advance(accounts)` (a page at a time)."""
    started = time.perf_counter()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(description, total=total, rate="")
        done = 0

        def advance(accounts: int) -> None:
            nonlocal done
            done += accounts
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, rate=f"{rate:,.0f} accounts/s")

        yield advance
        bar.update(task, total=max(total or done, done, 1), completed=max(total or done, done, 1))


@contextmanager
def rows_progress(console: Console, description: str, total_bytes: int) -> Iterator[Callable[[int, int, int], None]]:
    """A bar over the bytes of a file read as a stream, showing rows done and rows per second.

    Yields `update(rows, bytes_read, total_bytes)`.
    """
    started = time.perf_counter()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[done]}"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(description, total=max(total_bytes, 1), done="")

        def update(rows: int, read: int, total: int) -> None:
            rate = rows / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=min(read, total), done=f"{rows:,} rows, {rate:,.0f}/s")

        yield update
        bar.update(task, completed=max(total_bytes, 1))


def render_scan(console: Console, result: dict[str, Any]) -> None:
    """The riskiest accounts of a scan, with RAG in colour and the signals that cost the most points."""
    scores = sorted(
        (CSMHealthScore.model_validate(s) for s in result.get("health_scores", [])),
        key=lambda s: (s.score, s.account_id),
    )
    table = Table(title=f"Account health: {len(scores)} scored, riskiest first")
    for column in ("account", "score", "RAG", "churn risk", "trigger", "top negative signals"):
        table.add_column(column)
    for score in scores[:TABLE_ROWS]:
        weakest = ", ".join(signal_line(name, points, top) for name, points, top in weakest_signals(score))
        table.add_row(
            score.account_id,
            f"{score.score:.1f}",
            f"[{RAG_STYLE[score.rag]}]{score.rag}[/]",
            score.churn_risk_level,
            score.churn_triggered_by or "-",
            weakest,
        )
    console.print(table)
    counts = {rag: sum(1 for s in scores if s.rag == rag) for rag in RAG_STYLE}
    console.print(" ".join(f"[{RAG_STYLE[rag]}]{rag}[/] {n}" for rag, n in counts.items()))
    console.print(f"Alerts dispatched: {result.get('alerts_dispatched', 0)}")
    for error in result.get("errors", []):
        console.print(f"[yellow]! {error['account_id']}: {error['message']}[/yellow]")


def render_drafts(
    console: Console, drafts: list[dict[str, Any]], *, total: int | None = None, folder: Path | None = None
) -> None:
    """Drafts awaiting review, with where each one is."""
    table = Table(title=f"Drafts for review ({total if total is not None else len(drafts)}; nothing was sent)")
    for column in ("kind", "to", "subject", "file"):
        table.add_column(column)
    for draft in drafts:
        location = draft.get("location")
        table.add_row(draft["kind"], draft["to"], draft["subject"], Path(location).name if location else "-")
    console.print(table)
    if folder is not None:
        console.print(f"Drafts are .eml files in {folder / 'drafts'}; chat messages in {folder / 'chat'}")


def render_result(console: Console, result: dict[str, Any]) -> None:
    """A task's result: the scan table, or the headline fields of the other tasks."""
    if result.get("task_type") == "health_scan" and "error" not in result:
        render_scan(console, result)
        return
    headline = {k: v for k, v in result.items() if not isinstance(v, dict | list)}
    for key, value in headline.items():
        console.print(f"[bold]{key}[/bold]: {value}")
