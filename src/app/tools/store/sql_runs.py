"""Scheduled job runs in the SQL store: the run record and the lease-based claim on one job occurrence."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from src.app.tools.store import RunClaim
from src.app.tools.store.sql_tables import RUNS, check_text, new_id, utc_now


class Transaction(Protocol):
    """Opens one transaction on the store's database, serialised as `write` requires."""

    def __call__(self, *, write: bool) -> AbstractContextManager[Connection]:
        """A context manager yielding the connection, committed on a clean exit."""


class RunRecord(BaseModel):
    """One scheduled job run: which job, its deterministic key, and how it ended."""

    run_id: str
    job_id: str
    key: str
    status: str
    owner: str
    lease_until: datetime
    attempts: int
    started_at: datetime
    finished_at: datetime | None = None
    summary: dict[str, Any] | None = None


def _claim_blocked(run: RunRecord, now: datetime, force: bool) -> str | None:
    """Why an existing run occurrence cannot be claimed now, or None when it can."""
    if run.status == "succeeded" and not force:
        return f"already completed by {run.owner} at {run.finished_at.isoformat() if run.finished_at else '?'}"
    if run.status == "running" and run.lease_until > now:
        return f"held by {run.owner} until {run.lease_until.isoformat()}"
    return None


def claim_run(
    transaction: Transaction, job_id: str, key: str, owner: str, lease_until: datetime, now: datetime, force: bool
) -> RunClaim:
    """Claim one job occurrence in its own transactions (see `SQLStore.claim_run`)."""
    run_id = new_id("run")
    row: dict[str, Any] = {"run_id": run_id, "job_id": job_id, "key": key, "status": "running", "owner": owner}
    row |= {"lease_until": lease_until, "attempts": 1, "started_at": now}
    check_text(RUNS, row)
    try:
        with transaction(write=True) as connection:
            connection.execute(insert(RUNS), row)
        return RunClaim(run_id=run_id)
    except IntegrityError:
        pass
    with transaction(write=True) as connection:
        where = (RUNS.c.job_id == job_id) & (RUNS.c.key == key)
        existing = RunRecord.model_validate(connection.execute(select(RUNS).where(where)).mappings().one())
        reason = _claim_blocked(existing, now, force)
        if reason is not None:
            return RunClaim(run_id=None, reason=reason)
        taken = connection.execute(
            update(RUNS)
            .where(RUNS.c.run_id == existing.run_id, RUNS.c.attempts == existing.attempts)
            .values(status="running", owner=owner, lease_until=lease_until, attempts=existing.attempts + 1)
        )
    if taken.rowcount != 1:
        return RunClaim(run_id=None, reason="another scheduler claimed it at the same moment")
    return RunClaim(run_id=existing.run_id, resumed=existing.status == "running")


def finish_run(transaction: Transaction, run_id: str, status: str, summary: Mapping[str, Any] | None) -> None:
    """Record how a run ended; raises KeyError for an unknown run id."""
    stored_summary = None if summary is None else dict(summary)
    values = {"status": status, "finished_at": utc_now(), "summary": stored_summary}
    with transaction(write=True) as connection:
        result = connection.execute(update(RUNS).where(RUNS.c.run_id == run_id).values(values))
        if result.rowcount == 0:
            raise KeyError(f"Unknown run id {run_id!r}")
