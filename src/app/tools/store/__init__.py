"""The `CSMStore` capability: accounts, score history, alerts, artifacts and the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field, field_validator

from src.app.schemas import CSMHealthScore, ExpansionOpportunity, FeatureAdoptionReport, PriorScore, QBRContent
from src.app.tools.llm import LLMReply


class AlertRecord(BaseModel):
    """The most recent churn alert raised for an account."""

    account_id: str
    risk_state: str
    alerted_at: datetime
    idempotency_key: str


DraftStatus = Literal["pending", "approved", "edited", "rejected"]
"""A draft's review status: waiting, approved as written, approved with a person's edits, or rejected."""


class DraftRecord(BaseModel):
    """A draft kept in the review queue (the local outbox or a copy of a Gmail draft).

    `location` is where the mailbox copy is; None while a held draft waits for approval.
    """

    draft_id: str
    idempotency_key: str
    account_id: str | None
    kind: str
    to: str
    subject: str
    body_html: str
    body_text: str | None = None
    location: str | None = None
    created_at: datetime
    status: DraftStatus = "pending"
    reason: str | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _pending_when_unset(cls, value: object) -> object:
        return "pending" if value is None else value


class AuditEntry(BaseModel):
    """One outbound artifact (draft, chat message, page, event, hand-off) and where it went."""

    artifact: str
    target: str
    idempotency_key: str
    account_id: str | None = None
    task_type: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    at: datetime | None = None


class SavedArtifact(BaseModel):
    """The id of a stored artifact and whether this call created it (False: the key already existed)."""

    artifact_id: str
    created: bool


class RunClaim(BaseModel):
    """The outcome of claiming a scheduled job occurrence: a run id to work under, or why not."""

    run_id: str | None
    resumed: bool = False
    reason: str | None = None


class OutboxEntry(BaseModel):
    """One remote write of the outbox: what to send on which channel, and whether it was delivered."""

    idempotency_key: str
    channel: str = Field(description='"event", "chat" or "mail": which sender delivers the payload.')
    artifact: str = Field(description="The audit log's artifact kind once delivered (e.g. `event:churn_alert`).")
    account_id: str | None = None
    task_type: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    result: str | None = Field(default=None, description="The delivered artifact's id (event id, message id).")


@runtime_checkable
class Outbox(Protocol):
    """Optional store capability: remote writes recorded before they are made and settled after (outbox pattern)."""

    async def outbox_add(self, entry: OutboxEntry) -> OutboxEntry:
        """Record a pending remote write once per key; returns the stored entry (maybe delivered already)."""
        ...

    async def outbox_pending(self, *, limit: int = 100) -> list[OutboxEntry]:
        """Remote writes not delivered yet, oldest first."""
        ...

    async def outbox_settle(self, idempotency_key: str, *, result: str | None = None, error: str | None = None) -> None:
        """Mark a write delivered (`error` None, with its `result`) or count a failed attempt (`error`)."""
        ...


def outbox_of(store: object) -> Outbox | None:
    """The outbox behind `store`: the store itself, or what a wrapping store's `outbox()` passes through."""
    if isinstance(store, Outbox):
        return store
    inner = getattr(store, "outbox", None)
    found = inner() if callable(inner) else None
    return found if isinstance(found, Outbox) else None


class RunProgress(BaseModel):
    """How far Celery workers are with the tasks a run sent them."""

    run_id: str
    status: str
    sent: int | None
    """Tasks sent to the workers (None: the run ran in its own process)."""
    finished: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[dict[str, str]] = []
    """Failed tasks (first 100): account and reason."""
    dispatched: dict[str, Any] = {}
    """The summary recorded when the tasks were sent."""
    llm_usage: dict[str, Any] = {}
    """Calls, tokens and cost of the scheduler's part and every recorded task together."""
    totals: dict[str, int] = {}
    """The counts the tasks reported, added up (a scan's pages: accounts scored, errors, alerts)."""

    @property
    def done(self) -> int:
        """Tasks with an outcome."""
        return self.finished + self.failed + self.skipped

    def summary(self) -> dict[str, Any]:
        """The run's final summary: what the scheduler recorded plus the workers' counts."""
        summary = dict(self.dispatched)
        summary["ok"] = int(summary.get("ok", 0)) + self.finished
        summary["failed"] = int(summary.get("failed", 0)) + self.failed
        summary["skipped"] = int(summary.get("skipped", 0)) + self.skipped
        summary["llm_usage"] = self.llm_usage
        for name, count in self.totals.items():
            summary[name] = int(summary.get(name, 0)) + count
        if self.errors:
            summary["errors"] = [*summary.get("errors", []), *self.errors]
        return summary


@runtime_checkable
class RunLedger(Protocol):
    """The per-task outcomes of runs whose work went to Celery workers (the SQL store keeps them)."""

    async def record_dispatch(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Record what a run sent to the workers; it stays running until they are done."""
        ...

    async def task_recorded(self, run_id: str, task_key: str) -> bool:
        """Whether a task of the run has its outcome already."""
        ...

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
        ...

    async def task_details(self, run_id: str, key_prefix: str) -> list[dict[str, Any]]:
        """The `detail` of the run's successful tasks whose keys start with `key_prefix`, in key order."""
        ...

    async def record_llm_call(self, run_id: str, task_key: str, reply: LLMReply) -> None:
        """Record one LLM reply a task of the run received, as it arrives (its usage counts in the run's)."""
        ...

    async def task_detail(self, run_id: str, task_key: str) -> dict[str, Any] | None:
        """The `detail` recorded with one task of the run, whatever its status; None when there is none."""
        ...

    async def run_progress(self, run_id: str) -> RunProgress | None:
        """Sent, finished, failed and skipped counts of a run."""
        ...

    async def complete_if_done(self, run_id: str) -> RunProgress | None:
        """Finish the run when every task it sent has an outcome (exactly one caller gets its progress)."""
        ...


class CheckpointerError(RuntimeError):
    """The checkpoint database could not be opened (the message never contains a password)."""


class CSMStore(Protocol):
    """System of record for accounts and everything the agent produces; every write is idempotent by key."""

    async def upsert_accounts(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Insert or replace raw account records (keyed by `account_id`); returns how many were written."""
        ...

    async def load_accounts(
        self, account_ids: Sequence[str] | None = None, *, active_only: bool = True
    ) -> list[dict[str, Any]]:
        """Raw account records (unvalidated dicts), all or the given ids, ordered by account id."""
        ...

    async def latest_scores(self, account_ids: Sequence[str] | None = None) -> dict[str, CSMHealthScore]:
        """The most recent stored score per account."""
        ...

    async def save_scores(self, scores: Sequence[CSMHealthScore]) -> None:
        """Append scores to the history (one row per account and scan)."""
        ...

    async def last_alerts(self, account_ids: Sequence[str]) -> dict[str, AlertRecord]:
        """The most recent churn alert per account, for the accounts that have one."""
        ...

    async def record_alert(self, account_id: str, risk_state: str, *, idempotency_key: str, at: datetime) -> bool:
        """Mark a churn alert on the account's record; False when this key was already recorded."""
        ...

    async def save_qbr(self, qbr: QBRContent, *, idempotency_key: str) -> SavedArtifact:
        """Store a QBR page."""
        ...

    async def save_opportunity(self, opportunity: ExpansionOpportunity, *, idempotency_key: str) -> SavedArtifact:
        """Store an expansion opportunity record."""
        ...

    async def save_adoption_report(self, report: FeatureAdoptionReport, *, idempotency_key: str) -> SavedArtifact:
        """Store a feature adoption report."""
        ...

    async def save_draft(self, draft: DraftRecord) -> SavedArtifact:
        """Keep a draft in the review queue (idempotent by `draft.idempotency_key`)."""
        ...

    async def list_drafts(self, *, limit: int = 100) -> list[DraftRecord]:
        """Drafts awaiting review, newest first."""
        ...

    async def record_audit(self, entry: AuditEntry) -> None:
        """Append one outbound artifact to the audit log."""
        ...

    async def list_audit(self, *, limit: int = 100) -> list[AuditEntry]:
        """Audit entries, newest first."""
        ...

    async def accounts_with_qbr(self, period: str, trigger: str | None = None) -> set[str]:
        """Ids of accounts that already have a QBR for `period` (and `trigger`, when given)."""
        ...

    async def claim_run(
        self,
        job_id: str,
        key: str,
        *,
        owner: str,
        lease_until: datetime,
        now: datetime,
        force: bool = False,
        take_over: bool = False,
    ) -> RunClaim:
        """Claim a job occurrence for `owner` (one holder at a time across processes).

        `force` reruns an occurrence that succeeded; `take_over` claims one that another holder still leases
        (its process was killed and the operator will not wait for the lease to run out).
        """
        ...

    async def finish_run(self, run_id: str, status: str, summary: Mapping[str, Any] | None = None) -> None:
        """Record how a claimed run ended."""
        ...


@runtime_checkable
class AccountPages(Protocol):
    """Optional store capability: page through account records, so a whole-book scan holds one page at a time."""

    def iter_accounts(
        self, *, active_only: bool = True, page_size: int = 5000, omit: Sequence[str] = ()
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Raw account records in pages of at most `page_size`, without the `omit` keys."""
        ...


PageBounds = tuple[str | None, str | None]
"""A page of the book as (after, upto) account ids, each end open when None."""


@runtime_checkable
class AccountRanges(Protocol):
    """Optional store capability: read the book by id range, so helper processes can score pages of it too."""

    def process_url(self) -> str | None:
        """A URL from which another process opens the same database (None when none can, e.g. in-memory)."""
        ...

    async def page_bounds(self, *, page_size: int, active_only: bool = True) -> list[PageBounds]:
        """(after, upto) id bounds splitting the accounts into pages of `page_size`, in id order."""
        ...

    async def accounts_in_range(
        self, after: str | None, upto: str | None, *, active_only: bool = True, omit: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Raw account records with ids after `after` and up to `upto` (None: unbounded), without `omit` keys."""
        ...


@runtime_checkable
class ScorePoints(Protocol):
    """Optional store capability: recent (time, score, scorecard) points, for scorecards that weigh the trend."""

    async def score_points(
        self, account_ids: Sequence[str], *, since: datetime
    ) -> dict[str, list[tuple[datetime, float, tuple[str, str]]]]:
        """Per account, its scores computed at or after `since` as (when, score, (scorecard name, version))."""
        ...


@runtime_checkable
class PriorScores(Protocol):
    """Optional store capability: each account's newest score as the few columns a whole-book scan compares with."""

    async def prior_scores(self, account_ids: Sequence[str]) -> dict[str, PriorScore]:
        """The newest stored score per account (accounts without one are absent), without its payload."""
        ...


class UnreadableAccount(BaseModel):
    """A record the store's source holds but could not read as an account (e.g. a malformed Notion page)."""

    account_id: str = Field(description="The account id when it could be read, else the source's record id.")
    message: str = Field(description="What is wrong, naming each bad field and its value.")


@runtime_checkable
class UnreadableAccounts(Protocol):
    """Optional store capability: report the records its last account read had to skip."""

    def unreadable_accounts(self) -> list[UnreadableAccount]:
        """The records skipped by the last read of the account book."""
        ...


@runtime_checkable
class ScoreHistory(Protocol):
    """Optional store capability: the score history and the stored QBRs (trends, documents, digests)."""

    async def score_history(
        self, account_ids: Sequence[str], *, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, list[CSMHealthScore]]:
        """Stored scores per account computed in [`since`, `until`], oldest first."""
        ...

    async def latest_qbr(self, account_id: str, period: str | None = None) -> QBRContent | None:
        """The newest stored QBR of an account (for `period`, when given), or None."""
        ...


async def score_history(
    store: CSMStore, account_ids: Sequence[str], *, since: datetime | None = None, until: datetime | None = None
) -> dict[str, list[CSMHealthScore]]:
    """The stored score history of the accounts, or only their latest scores on a store that keeps no history."""
    if isinstance(store, ScoreHistory):
        return await store.score_history(account_ids, since=since, until=until)
    latest = await store.latest_scores(account_ids)
    return {account_id: [score] for account_id, score in latest.items() if until is None or score.computed_at <= until}
