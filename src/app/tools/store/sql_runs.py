"""Scheduled job runs in the SQL store: the run record and the lease-based claim on one job occurrence."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

import structlog
from pydantic import BaseModel
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from src.app.tools.llm import LLMReply
from src.app.tools.llm.usage import added_usage
from src.app.tools.store import RunClaim, RunProgress
from src.app.tools.store.sql_tables import RUN_LLM_CALLS, RUN_TASKS, RUNS, check_text, new_id, utc_now

log = structlog.get_logger(__name__)


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


class ClaimRules(BaseModel):
    """When an existing occurrence may be claimed: `force` reruns a success, `take_over` ignores a live lease."""

    force: bool = False
    take_over: bool = False


def _claim_blocked(run: RunRecord, now: datetime, rules: ClaimRules) -> str | None:
    """Why an existing run occurrence cannot be claimed now, or None when it can."""
    if run.status == "succeeded" and not rules.force:
        return f"already completed by {run.owner} at {run.finished_at.isoformat() if run.finished_at else '?'}"
    if run.status == "running" and run.lease_until > now and not rules.take_over:
        return f"held by {run.owner} until {run.lease_until.isoformat()} (--take-over claims it now)"
    return None


def claim_run(
    transaction: Transaction,
    job_id: str,
    key: str,
    owner: str,
    lease_until: datetime,
    now: datetime,
    rules: ClaimRules,
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
        reason = _claim_blocked(existing, now, rules)
        if reason is not None:
            return RunClaim(run_id=None, reason=reason)
        taken = connection.execute(
            update(RUNS)
            .where(RUNS.c.run_id == existing.run_id, RUNS.c.attempts == existing.attempts)
            .values(status="running", owner=owner, lease_until=lease_until, attempts=existing.attempts + 1)
        )
        if taken.rowcount == 1 and existing.status == "succeeded":
            _forget_outcomes(connection, existing.run_id)
    if taken.rowcount != 1:
        return RunClaim(run_id=None, reason="another scheduler claimed it at the same moment")
    if existing.status == "running" and existing.lease_until > now:
        log.warning("run_taken_over", job_id=job_id, key=key, previous_owner=existing.owner, owner=owner)
    return RunClaim(run_id=existing.run_id, resumed=existing.status == "running")


def _forget_outcomes(connection: Connection, run_id: str) -> None:
    """A forced rerun of a completed run starts from nothing: its workers redo every task, and count anew."""
    connection.execute(delete(RUN_TASKS).where(RUN_TASKS.c.run_id == run_id))
    connection.execute(delete(RUN_LLM_CALLS).where(RUN_LLM_CALLS.c.run_id == run_id))
    connection.execute(update(RUNS).where(RUNS.c.run_id == run_id).values(summary=None, finished_at=None))


def finish_run(transaction: Transaction, run_id: str, status: str, summary: Mapping[str, Any] | None) -> None:
    """Record how a run ended; raises KeyError for an unknown run id."""
    stored_summary = None if summary is None else dict(summary)
    values = {"status": status, "finished_at": utc_now(), "summary": stored_summary}
    with transaction(write=True) as connection:
        result = connection.execute(update(RUNS).where(RUNS.c.run_id == run_id).values(values))
        if result.rowcount == 0:
            raise KeyError(f"Unknown run id {run_id!r}")


MAX_RECORDED_ERRORS = 100
"""Failed tasks named (account and reason) in a finished run's summary; the rest are counted."""


def dispatched(transaction: Transaction, run_id: str, summary: Mapping[str, Any]) -> None:
    """Record what a run sent to the workers (`summary["sent"]`); the run stays `running` until they are done."""
    with transaction(write=True) as connection:
        result = connection.execute(update(RUNS).where(RUNS.c.run_id == run_id).values(summary=dict(summary)))
        if result.rowcount == 0:
            raise KeyError(f"Unknown run id {run_id!r}")


def record_task(
    transaction: Transaction,
    run_id: str,
    task_key: str,
    *,
    account_id: str | None,
    status: str,
    reason: str | None,
    llm_usage: Mapping[str, Any] | None = None,
    totals: Mapping[str, int] | None = None,
    detail: Mapping[str, Any] | None = None,
) -> bool:
    """Record one task's outcome; False when it was recorded already (a redelivered task counts once)."""
    row: dict[str, Any] = {"run_id": run_id, "task_key": task_key, "account_id": account_id, "status": status}
    row |= {"reason": reason, "finished_at": utc_now(), "llm_usage": dict(llm_usage) if llm_usage else None}
    row |= {"totals": dict(totals) if totals else None, "detail": dict(detail) if detail else None}
    check_text(RUN_TASKS, row)
    try:
        with transaction(write=True) as connection:
            connection.execute(insert(RUN_TASKS), row)
    except IntegrityError:
        return False
    return True


def task_recorded(transaction: Transaction, run_id: str, task_key: str) -> bool:
    """Whether a task of the run has its outcome recorded."""
    where = (RUN_TASKS.c.run_id == run_id) & (RUN_TASKS.c.task_key == task_key)
    with transaction(write=False) as connection:
        return connection.execute(select(RUN_TASKS.c.task_key).where(where)).first() is not None


def task_details(transaction: Transaction, run_id: str, key_prefix: str) -> list[dict[str, Any]]:
    """The `detail` of the run's successful tasks whose keys start with `key_prefix`, in key order."""
    where = (RUN_TASKS.c.run_id == run_id) & (RUN_TASKS.c.status == "ok") & RUN_TASKS.c.detail.is_not(None)
    query = select(RUN_TASKS.c.detail).where(where, RUN_TASKS.c.task_key.startswith(key_prefix, autoescape=True))
    with transaction(write=False) as connection:
        return [dict(detail) for detail in connection.execute(query.order_by(RUN_TASKS.c.task_key)).scalars()]


def record_llm_call(transaction: Transaction, run_id: str, task_key: str, reply: LLMReply) -> None:
    """Record one LLM reply a task of the run received (each reply once: it gets its own id)."""
    row: dict[str, Any] = {"run_id": run_id, "call_id": new_id("call"), "task_key": task_key}
    row |= {"model": reply.model or "unknown", "prompt_tokens": reply.prompt_tokens}
    row |= {"completion_tokens": reply.completion_tokens, "cost_usd": reply.cost_usd, "recorded_at": utc_now()}
    check_text(RUN_LLM_CALLS, row)
    with transaction(write=True) as connection:
        connection.execute(insert(RUN_LLM_CALLS), row)


def task_detail(transaction: Transaction, run_id: str, task_key: str) -> dict[str, Any] | None:
    """The `detail` recorded with one task of the run, whatever its status; None when there is none."""
    where = (RUN_TASKS.c.run_id == run_id) & (RUN_TASKS.c.task_key == task_key)
    with transaction(write=False) as connection:
        detail = connection.execute(select(RUN_TASKS.c.detail).where(where)).scalar_one_or_none()
    return None if detail is None else dict(detail)


def progress(transaction: Transaction, run_id: str) -> RunProgress | None:
    """How far the workers are with a run: sent, finished, failed and skipped counts (None: unknown run)."""
    with transaction(write=False) as connection:
        return _progress(connection, run_id)


def complete_if_done(transaction: Transaction, run_id: str) -> RunProgress | None:
    """Finish a dispatched run once every task it sent has an outcome; the progress, or None if not finished now.

    The row is updated only while it is `running`, so of two workers finishing the last tasks at once exactly
    one completes the run.
    """
    with transaction(write=True) as connection:
        state = _progress(connection, run_id)
        if state is None or state.status != "running" or state.sent is None or state.done < state.sent:
            return None
        summary = state.summary()
        taken = connection.execute(
            update(RUNS)
            .where(RUNS.c.run_id == run_id, RUNS.c.status == "running")
            .values(status="succeeded", finished_at=utc_now(), summary=summary)
        )
    return state if taken.rowcount == 1 else None


def _progress(connection: Connection, run_id: str) -> RunProgress | None:
    run = connection.execute(select(RUNS.c.status, RUNS.c.summary).where(RUNS.c.run_id == run_id)).first()
    if run is None:
        return None
    counts = {
        str(status): int(n)
        for status, n in connection.execute(
            select(RUN_TASKS.c.status, func.count()).where(RUN_TASKS.c.run_id == run_id).group_by(RUN_TASKS.c.status)
        )
    }
    failures = connection.execute(
        select(RUN_TASKS.c.account_id, RUN_TASKS.c.task_key, RUN_TASKS.c.reason)
        .where(RUN_TASKS.c.run_id == run_id, RUN_TASKS.c.status == "failed")
        .order_by(RUN_TASKS.c.account_id, RUN_TASKS.c.task_key)
        .limit(MAX_RECORDED_ERRORS)
    )
    usages = connection.execute(
        select(RUN_TASKS.c.llm_usage).where(RUN_TASKS.c.run_id == run_id, RUN_TASKS.c.llm_usage.is_not(None))
    ).scalars()
    calls = _llm_calls(connection, run_id)
    totals: Counter[str] = Counter()
    for counts_of_task in connection.execute(
        select(RUN_TASKS.c.totals).where(RUN_TASKS.c.run_id == run_id, RUN_TASKS.c.totals.is_not(None))
    ).scalars():
        totals.update({str(name): int(n) for name, n in dict(counts_of_task).items()})
    dispatched_summary = dict(run.summary or {})
    sent = dispatched_summary.get("sent")
    return RunProgress(
        run_id=run_id,
        status=str(run.status),
        sent=int(sent) if isinstance(sent, int) else None,
        finished=counts.get("ok", 0),
        failed=counts.get("failed", 0),
        skipped=counts.get("skipped", 0),
        errors=[{"account_id": str(a if a is not None else key), "message": str(r)} for a, key, r in failures],
        dispatched=dispatched_summary,
        llm_usage=added_usage([dispatched_summary.get("llm_usage"), *usages, calls]),
        totals=dict(totals),
    )


def _llm_calls(connection: Connection, run_id: str) -> dict[str, Any]:
    """The run's recorded LLM replies added up per model, as an `llm_usage` block."""
    c = RUN_LLM_CALLS.c
    per_model = connection.execute(
        select(c.model, func.count(), func.sum(c.prompt_tokens), func.sum(c.completion_tokens), func.sum(c.cost_usd))
        .where(c.run_id == run_id)
        .group_by(c.model)
    )
    by_model = {
        str(model): {"calls": int(n), "prompt_tokens": int(prompt), "completion_tokens": int(out), "cost_usd": cost}
        for model, n, prompt, out, cost in per_model
    }
    return {"by_model": by_model}


class RunLedgerMethods:
    """`RunLedger` for the SQL store: each method runs one of this module's functions off the event loop."""

    def _transaction(self, *, write: bool) -> AbstractContextManager[Connection]:
        """One transaction on the store's database (the store provides it)."""
        raise NotImplementedError

    async def record_dispatch(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Record what a run sent to the workers; it stays running until they are done."""
        await asyncio.to_thread(dispatched, self._transaction, run_id, summary)

    async def task_recorded(self, run_id: str, task_key: str) -> bool:
        """Whether a task of the run has its outcome already."""
        return await asyncio.to_thread(task_recorded, self._transaction, run_id, task_key)

    async def record_task(
        self,
        run_id: str,
        task_key: str,
        *,
        account_id: str | None,
        status: str,
        reason: str | None = None,
        llm_usage: Mapping[str, Any] | None = None,
        totals: Mapping[str, int] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record one task's outcome (its LLM usage, counts and detail) once; False when it was recorded already."""
        return await asyncio.to_thread(
            record_task,
            self._transaction,
            run_id,
            task_key,
            account_id=account_id,
            status=status,
            reason=reason,
            llm_usage=llm_usage,
            totals=totals,
            detail=detail,
        )

    async def task_details(self, run_id: str, key_prefix: str) -> list[dict[str, Any]]:
        """The `detail` of the run's successful tasks whose keys start with `key_prefix`, in key order."""
        return await asyncio.to_thread(task_details, self._transaction, run_id, key_prefix)

    async def record_llm_call(self, run_id: str, task_key: str, reply: LLMReply) -> None:
        """Record one LLM reply a task of the run received, as it arrives."""
        await asyncio.to_thread(record_llm_call, self._transaction, run_id, task_key, reply)

    async def task_detail(self, run_id: str, task_key: str) -> dict[str, Any] | None:
        """The `detail` recorded with one task of the run, whatever its status; None when there is none."""
        return await asyncio.to_thread(task_detail, self._transaction, run_id, task_key)

    async def run_progress(self, run_id: str) -> RunProgress | None:
        """Sent, finished, failed and skipped counts of a run."""
        return await asyncio.to_thread(progress, self._transaction, run_id)

    async def complete_if_done(self, run_id: str) -> RunProgress | None:
        """Finish the run when every task it sent has an outcome (exactly one caller gets its progress)."""
        return await asyncio.to_thread(complete_if_done, self._transaction, run_id)
