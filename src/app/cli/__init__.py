"""The `csm` command: demo, scan, qbr, expansion, adoption and the drafts review queue."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from src.app.cli.notion import notion_app
from src.app.cli.review import accounts_app, drafts_app, users_app

app = typer.Typer(help="AI Customer Success Manager: health scans, churn alerts, QBRs, expansion, adoption.")
app.add_typer(notion_app, name="notion")
app.add_typer(drafts_app, name="drafts")
app.add_typer(accounts_app, name="accounts")
app.add_typer(users_app, name="users")

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
def scheduler(
    run_now: Annotated[str | None, typer.Option("--run-now", help="Run this job once now and exit.")] = None,
    force: Annotated[bool, typer.Option(help="With --run-now: rerun an occurrence that already completed.")] = False,
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
    _emit(outcome, as_json)
    if outcome["status"] == "failed":
        raise typer.Exit(code=1)


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


@app.command()
def desk(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback only by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8765,
    data_dir: DataDirOption = None,
) -> None:
    """Serve the review desk: the book, accounts, the review queue, QBRs and opportunities (sign-in required)."""
    import uvicorn

    from src.app.agents.runtime import settings_for
    from src.app.desk.app import create_app

    typer.echo(f"Review desk on http://{host}:{port}/ (add people with `csm users add EMAIL --role lead|rep`)")
    uvicorn.run(create_app(settings_for(data_dir)), host=host, port=port, log_level="warning")


def _emit(payload: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(payload, default=str))


def main() -> None:
    """Entry point of the `csm` console script."""
    app()
