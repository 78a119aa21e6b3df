"""The `csm` command: demo, scan, qbr, expansion, adoption and the drafts review queue."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from src.app.cli.notion import notion_app
from src.app.cli.scorecards import backtest, scorecard_app

app = typer.Typer(help="AI Customer Success Manager: health scans, churn alerts, QBRs, expansion, adoption.")
app.add_typer(notion_app, name="notion")
app.add_typer(scorecard_app, name="scorecard")
app.command("backtest")(backtest)

DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Folder for the store and outbox.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


@app.callback()
def _setup(
    log_level: Annotated[str, typer.Option(help="Log level for events written to stderr.")] = "WARNING",
) -> None:
    from src.app.logging_setup import configure_logging

    configure_logging(level=log_level)


@app.command()
def demo(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Load the sample book into a fresh local store and run a full day offline."""
    from src.app.cli.runs import run_demo

    summary = asyncio.run(run_demo(data_dir=data_dir, quiet=as_json))
    _emit(summary, as_json)


@app.command()
def scan(
    account: Annotated[list[str] | None, typer.Option("--account", help="Only these account ids.")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score every active account (or the given ones) and raise churn alerts."""
    from src.app.cli.runs import run_task

    task: dict[str, Any] = {"type": "health_scan"}
    if account:
        task["account_ids"] = account
    _emit(asyncio.run(run_task(task, data_dir=data_dir, quiet=as_json)), as_json)


@app.command()
def qbr(
    account_id: str,
    period: Annotated[str | None, typer.Option(help="Period label, e.g. 'Q3 2026' (default: this quarter).")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a QBR for one account (saved as a page and a draft to the rep)."""
    from src.app.cli.runs import run_task

    task: dict[str, Any] = {"type": "generate_qbr", "account_id": account_id}
    if period:
        task["period"] = period
    _emit(asyncio.run(run_task(task, data_dir=data_dir, quiet=as_json)), as_json)


@app.command()
def expansion(account_id: str, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Find expansion opportunities for one account."""
    from src.app.cli.runs import run_task

    task = {"type": "check_expansion", "account_id": account_id}
    _emit(asyncio.run(run_task(task, data_dir=data_dir, quiet=as_json)), as_json)


@app.command()
def adoption(account_id: str, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Report feature adoption for one account."""
    from src.app.cli.runs import run_task

    task = {"type": "track_feature_adoption", "account_id": account_id}
    _emit(asyncio.run(run_task(task, data_dir=data_dir, quiet=as_json)), as_json)


@app.command()
def drafts(data_dir: DataDirOption = None, limit: int = 20, as_json: JsonOption = False) -> None:
    """List drafts waiting for review (nothing is ever sent)."""
    from src.app.cli.runs import list_drafts

    _emit(asyncio.run(list_drafts(data_dir=data_dir, limit=limit, quiet=as_json)), as_json)


@app.command()
def scheduler(
    run_now: Annotated[str | None, typer.Option("--run-now", help="Run this job once now and exit.")] = None,
    force: Annotated[bool, typer.Option(help="With --run-now: rerun an occurrence that already completed.")] = False,
    wait: Annotated[bool, typer.Option(help="With --run-now and CSM_EXECUTOR=celery: wait for the workers.")] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run csm_daily_health_scan, csm_daily_contract_check and csm_quarterly_qbr until interrupted."""
    from src.app.agents.customer_success.scheduler import JOBS_BY_ID
    from src.app.cli.scheduler import run_job_now, serve

    if run_now is not None and run_now not in JOBS_BY_ID:
        raise typer.BadParameter(f"unknown job {run_now!r}; jobs: {', '.join(JOBS_BY_ID)}", param_hint="--run-now")
    if run_now is None:
        asyncio.run(serve(data_dir=data_dir))
        return
    outcome = asyncio.run(run_job_now(run_now, data_dir=data_dir, force=force, quiet=as_json))
    if wait and outcome["status"] == "dispatched":
        from src.app.cli.cluster import wait_for_run

        outcome["progress"] = asyncio.run(wait_for_run(outcome["run_id"], data_dir=data_dir, timeout_s=None))
    _emit(outcome, as_json)
    if outcome["status"] == "failed":
        raise typer.Exit(code=1)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Tasks in flight in this worker process.")] = 8,
    queues: Annotated[list[str] | None, typer.Option("--queues", "-Q", help="Queues to consume.")] = None,
    pool: Annotated[str, typer.Option(help="threads: one event loop per process; prefork, solo also work.")] = (
        "threads"
    ),
    name: Annotated[str | None, typer.Option("--name", "-n", help="Celery node name.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    events: Annotated[bool, typer.Option("--events", "-E", help="Send task events (celery events, Flower).")] = False,
) -> None:
    """Start a Celery worker for CSM_EXECUTOR=celery (broker CSM_BROKER_URL); SIGTERM stops it warm."""
    from src.app.cli.cluster import run_worker

    run_worker(concurrency=concurrency, queues=queues, pool=pool, name=name, loglevel=loglevel, events=events)


@app.command()
def runs(data_dir: DataDirOption = None, limit: int = 20, as_json: JsonOption = False) -> None:
    """Scheduled job runs, newest first, with the progress of runs the workers are still on."""
    from src.app.cli.cluster import list_runs

    _emit(asyncio.run(list_runs(data_dir=data_dir, limit=limit, quiet=as_json)), as_json)


@app.command("import")
def import_accounts(
    file: Annotated[Path, typer.Argument(help="A .csv, .json (array) or .jsonl file of account records.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only; write nothing.")] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import accounts: bad rows are reported with their line and skipped, good ones upserted (exit 1 if any bad)."""
    from src.app.cli.importer import ImportFileError, run_import

    try:
        report = asyncio.run(run_import(file, data_dir=data_dir, dry_run=dry_run, quiet=as_json))
    except ImportFileError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=2) from None
    _emit(report.model_dump(mode="json"), as_json)
    if report.errors:
        raise typer.Exit(code=1)


@app.command()
def audit(
    account: Annotated[str | None, typer.Option("--account", help="Only this account id.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this artifact kind, e.g. draft, chat_alert.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries, newest first.")] = 50,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the audit log: every draft, chat message, page, event and hand-off, with its idempotency key."""
    from src.app.cli.audit import list_audit

    entries = asyncio.run(list_audit(data_dir=data_dir, account_id=account, kind=kind, limit=limit, quiet=as_json))
    _emit(entries, as_json)


def _emit(payload: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(payload, default=str))


def main() -> None:
    """Entry point of the `csm` console script; ends the process without the interpreter's teardown.

    Every command closes its own clients, so after the output is flushed the process ends at once: tearing down
    the ~1,500 modules a command loads took 1-2 s per command here (measured), longer than most commands' work.
    """
    try:
        app()
        code = 0
    except SystemExit as done:
        code = _exit_code(done.code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_code(code: object) -> int:
    """The process exit status for `SystemExit(code)`, as the interpreter would set it."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1
