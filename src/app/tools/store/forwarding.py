"""What a wrapping store keeps in the store it wraps: alerts, drafts, audit, QBR bookkeeping, outbox and runs.

The Notion store, the platform's Notion adapter and the per-task overlay each read or publish accounts their own
way and forward everything else to one inner store; they inherit these forwards instead of spelling them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from src.app.schemas import FeatureAdoptionReport
from src.app.tools.store import (
    AlertRecord,
    AuditEntry,
    CSMStore,
    DraftRecord,
    Outbox,
    RunClaim,
    SavedArtifact,
    outbox_of,
)


class InnerStoreRecords:
    """Forwards the store's records (alerts, reports, drafts, audit, QBR bookkeeping, outbox, runs) to `_inner`."""

    _inner: CSMStore

    async def last_alerts(self, account_ids: Sequence[str]) -> dict[str, AlertRecord]:
        """The most recent churn alert per account (inner store)."""
        return await self._inner.last_alerts(account_ids)

    async def record_alert(self, account_id: str, risk_state: str, *, idempotency_key: str, at: datetime) -> bool:
        """Record a churn alert (inner store)."""
        return await self._inner.record_alert(account_id, risk_state, idempotency_key=idempotency_key, at=at)

    async def save_adoption_report(self, report: FeatureAdoptionReport, *, idempotency_key: str) -> SavedArtifact:
        """Store a feature adoption report (inner store)."""
        return await self._inner.save_adoption_report(report, idempotency_key=idempotency_key)

    async def save_draft(self, draft: DraftRecord) -> SavedArtifact:
        """Keep a draft in the review queue (inner store)."""
        return await self._inner.save_draft(draft)

    async def list_drafts(self, *, limit: int = 100) -> list[DraftRecord]:
        """Drafts awaiting review (inner store)."""
        return await self._inner.list_drafts(limit=limit)

    async def record_audit(self, entry: AuditEntry) -> None:
        """Append to the audit log (inner store)."""
        await self._inner.record_audit(entry)

    async def list_audit(self, *, limit: int = 100) -> list[AuditEntry]:
        """Audit entries (inner store)."""
        return await self._inner.list_audit(limit=limit)

    async def accounts_with_qbr(self, period: str, trigger: str | None = None) -> set[str]:
        """Accounts that already have a QBR for the period (inner store)."""
        return await self._inner.accounts_with_qbr(period, trigger)

    def outbox(self) -> Outbox | None:
        """The inner store's outbox of pending remote writes (see `outbox_of`)."""
        return outbox_of(self._inner)

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
        """Claim a job occurrence (inner store)."""
        return await self._inner.claim_run(
            job_id, key, owner=owner, lease_until=lease_until, now=now, force=force, take_over=take_over
        )

    async def finish_run(self, run_id: str, status: str, summary: Mapping[str, Any] | None = None) -> None:
        """Record how a run ended (inner store)."""
        await self._inner.finish_run(run_id, status, summary)
