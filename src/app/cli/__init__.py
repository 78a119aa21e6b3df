"""The `csm` command: demo, scan, qbr, expansion, adoption and the drafts review queue."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from src.app.cli.notion import notion_app
from src.app.cli.review import accounts_app, drafts_app, users_app
from src.app.cli.scorecards import backtest, scorecard_app

app = typer.Typer(
    help="AI Customer Success Manager: health scans, churn alerts, QBRs, expansion, adoption.",
    pretty_exceptions_enable=False,  # a failure is one line on stderr (main), a traceback only with --log-level debug
)
app.add_typer(notion_app, name="notion")
app.add_typer(scorecard_app, name="scorecard")
app.command("backtest")(backtest)
app.add_typer(drafts_app, name="drafts")
app.add_typer(accounts_app, name="accounts")
app.add_typer(users_app, name="users")

DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Folder for the store and outbox.")]
_DEBUG = [False]
"""Whether --log-level debug was given (a failure then prints its traceback)."""
_ONE_SHOT = [False]
"""Whether this process is the `csm` console script, which ends when its command does (`main`)."""
FORMATS: dict[str, Literal["html", "md", "pptx"]] = {"html": "html", "md": "md", "pptx": "pptx"}
"""The QBR document formats of `csm qbr --format`."""
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


@app.callback()
def _setup(
    log_level: Annotated[str, typer.Option(help="Log level for events written to stderr.")] = "WARNING",
) -> None:
    with modules_kept():
        from src.app.logging_setup import configure_logging

        mask = _mask()
    _DEBUG[0] = log_level.upper() == "DEBUG"
    configure_logging(level=log_level, mask=mask)


@app.command()
def demo(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Load the sample book into a fresh local store and run a full day offline."""
    with modules_kept():
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
    with modules_kept():
        from src.app.cli.runs import run_task

    task: dict[str, Any] = {"type": "health_scan"}
    if account:
        task["account_ids"] = account
    _emit(asyncio.run(run_task(task, data_dir=data_dir, quiet=as_json)), as_json)


@app.command()
def qbr(
    account_id: str,
    period: Annotated[str | None, typer.Option(help="Period label, e.g. 'Q3 2026' (default: this quarter).")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Render the QBR document as html, md or pptx (a deck).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", help="File to write the document to.")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a QBR for one account (a page, a draft to the rep, its deck and documents); render it with --format."""
    with modules_kept():
        from src.app.cli.runs import run_qbr, run_task

    task: dict[str, Any] = {"type": "generate_qbr", "account_id": account_id}
    if period:
        task["period"] = period
    if fmt is None and output is None:
        _emit(asyncio.run(run_task(task, data_dir=data_dir, quiet=as_json)), as_json)
        return
    chosen = fmt or (output.suffix.lstrip(".").lower() if output and output.suffix else "html")
    if chosen not in FORMATS:
        raise typer.BadParameter(f"--format must be html, md or pptx, got {chosen!r}")
    result = asyncio.run(run_qbr(task, fmt=FORMATS[chosen], output=output, data_dir=data_dir, quiet=as_json))
    _emit(result, as_json)
    if "error" in result:
        raise typer.Exit(1)


@app.command()
def expansion(account_id: str, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Find expansion opportunities for one account."""
    with modules_kept():
        from src.app.cli.runs import run_task

    task = {"type": "check_expansion", "account_id": account_id}
    _emit(asyncio.run(run_task(task, data_dir=data_dir, quiet=as_json)), as_json)


@app.command()
def adoption(account_id: str, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Report feature adoption for one account."""
    with modules_kept():
        from src.app.cli.runs import run_task

    task = {"type": "track_feature_adoption", "account_id": account_id}
    _emit(asyncio.run(run_task(task, data_dir=data_dir, quiet=as_json)), as_json)


@app.command()
def scheduler(
    run_now: Annotated[str | None, typer.Option("--run-now", help="Run this job once now and exit.")] = None,
    force: Annotated[bool, typer.Option(help="With --run-now: rerun an occurrence that already completed.")] = False,
    take_over: Annotated[
        bool,
        typer.Option(help="With --run-now: claim an occurrence still leased by a run whose process was killed."),
    ] = False,
    wait: Annotated[bool, typer.Option(help="With --run-now and CSM_EXECUTOR=celery: wait for the workers.")] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run csm_daily_health_scan, csm_daily_contract_check and csm_quarterly_qbr until interrupted."""
    with modules_kept():
        from src.app.agents.customer_success.scheduler import JOBS_BY_ID
        from src.app.cli.scheduler import run_job_now, serve

    if run_now is not None and run_now not in JOBS_BY_ID:
        raise typer.BadParameter(f"unknown job {run_now!r}; jobs: {', '.join(JOBS_BY_ID)}", param_hint="--run-now")
    if run_now is None:
        asyncio.run(serve(data_dir=data_dir))
        return
    outcome = asyncio.run(run_job_now(run_now, data_dir=data_dir, force=force, take_over=take_over, quiet=as_json))
    if wait and outcome["status"] == "dispatched":
        from src.app.cli.cluster import wait_for_run

        outcome["progress"] = asyncio.run(wait_for_run(outcome["run_id"], data_dir=data_dir, timeout_s=None))
    _emit(outcome, as_json)
    if outcome["status"] == "failed":
        raise typer.Exit(code=1)


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Tasks in flight in this worker process (default: twice CSM_LLM_CONCURRENCY)."),
    ] = None,
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
    with modules_kept():
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
    with modules_kept():
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
    with modules_kept():
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

    with modules_kept():
        from src.app.config import settings_for
        from src.app.desk.app import create_app

    typer.echo(f"Review desk on http://{host}:{port}/ (add people with `csm users add EMAIL --role lead|rep`)")
    uvicorn.run(create_app(settings_for(data_dir)), host=host, port=port, log_level="warning")


def _emit(payload: dict[str, Any], as_json: bool) -> None:
    """Print the payload (JSON with --json); a payload that reports an error ends the command with status 1."""
    if as_json:
        typer.echo(_mask()(json.dumps(payload, default=str)))
    if isinstance(payload.get("error"), str):
        first_line = (payload["error"].strip().splitlines() or ["failed"])[0]
        typer.echo(f"Error: {_mask()(first_line)}", err=True)
        raise typer.Exit(code=1)


@functools.cache
def _mask() -> Callable[[str], str]:
    """The secret masker of the configured settings (none when the settings themselves cannot be read)."""
    from src.app.config import CSMSettings, masker_for

    try:
        return masker_for(CSMSettings())
    except Exception:  # noqa: BLE001 - invalid settings are reported by the command itself
        return str


@contextmanager
def modules_kept() -> Iterator[None]:
    """Import a command's modules without garbage collection, then keep the collector off them for good.

    Only in the `csm` process itself (`main`): the modules live until it ends, yet the full collections their
    imports set off walked all of them again, three times in a `csm qbr` (~0.25 s of a 1.6 s command, measured).
    """
    if not _ONE_SHOT[0]:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def main() -> None:
    """Entry point of the `csm` console script; ends the process without the interpreter's teardown.

    Every command closes its own clients, so after the output is flushed the process ends at once: tearing down
    the ~1,500 modules a command loads took 1-2 s per command here (measured), longer than most commands' work.
    """
    _ONE_SHOT[0] = True
    try:
        app()
        code = 0
    except SystemExit as done:
        code = _exit_code(done.code)
    except Exception as error:  # noqa: BLE001 - every failure ends as one line and a non-zero status
        code = _report_failure(error)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _report_failure(error: Exception) -> int:
    from src.app.cli.errors import HINT, describe_failure

    if _DEBUG[0]:
        traceback.print_exception(error, file=_MaskedStderr())
    print(f"Error: {_mask()(describe_failure(error))} {'' if _DEBUG[0] else HINT}".rstrip(), file=sys.stderr)
    return 1


class _MaskedStderr:
    """stderr through the secret masker (for tracebacks)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(_mask()(text))

    def flush(self) -> None:
        sys.stderr.flush()


def _exit_code(code: object) -> int:
    """The process exit status for `SystemExit(code)`, as the interpreter would set it."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1
