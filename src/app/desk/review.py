"""Reviewing drafts: approve, edit-and-approve or reject, each an audited transition; shared by the desk and the CLI.

Statuses move once, from `pending` to `approved`, `edited` (approved with a person's changes) or `rejected`.
Approving again is a no-op. A held draft (`CSM_DRAFT_REVIEW=hold`) reaches the mailbox when it is approved,
under its own idempotency key, so it is created there once. A churn alert rejected as a false alarm is kept as
feedback (a label for backtests) and holds that account's alerts for the same risk state for the cooldown.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from src.app.config import CSMSettings
from src.app.context import mailbox_from_settings, store_from_settings
from src.app.schemas import EmailMessage
from src.app.tools.mail import MailDrafts
from src.app.tools.mail.outbox import rewrite_local_draft
from src.app.tools.store import AuditEntry, DraftRecord, DraftStatus
from src.app.tools.store.sql_review import FALSE_ALARM, FeedbackRow, ReviewStore, review_store

REJECT_REASONS = {"false alarm": FALSE_ALARM, "already handled": "already_handled", "wrong owner": "wrong_owner"}
"""The reasons the desk offers (free text is allowed too) and the feedback label each becomes."""
DECIDED: frozenset[DraftStatus] = frozenset({"approved", "edited", "rejected"})


class ReviewError(ValueError):
    """A review action that cannot be done (unknown draft, or a decision that contradicts an earlier one)."""


@dataclass(frozen=True)
class ReviewOutcome:
    """What one review action did."""

    draft: DraftRecord
    changed: bool
    delivered: bool = False


def text_to_html(subject: str, body_text: str) -> str:
    """A person's plain-text edit as the HTML body of a draft (escaped; blank lines separate paragraphs)."""
    paragraphs = [p.strip() for p in body_text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    body = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return f"<html><body><h1>{html.escape(subject)}</h1>{body}</body></html>"


def label_for(reason: str) -> str:
    """The feedback label of a rejection reason (`false alarm: seasonal dip` is a false alarm)."""
    return REJECT_REASONS.get(" ".join(reason.lower().split(":", 1)[0].split()), "other")


class DraftReview:
    """Review actions on the store's drafts, delivering held drafts through `mail` (the real mailbox adapter)."""

    def __init__(self, records: ReviewStore, mail: MailDrafts, *, clock: Callable[[], datetime]) -> None:
        self._records = records
        self._mail = mail
        self._clock = clock

    @property
    def records(self) -> ReviewStore:
        """The store of drafts, feedback, users and accounts this reviews."""
        return self._records

    async def approve(self, draft_id: str, *, by: str) -> ReviewOutcome:
        """Approve a draft as written (idempotent); a held draft is created in the mailbox now."""
        return await self._approve(draft_id, by=by, status="approved")

    async def edit(self, draft_id: str, *, by: str, subject: str, body_text: str) -> ReviewOutcome:
        """Approve a draft with a person's subject and body (`edited`); the mailbox gets the edited text."""
        subject = " ".join(subject.split())
        if not subject or not body_text.strip():
            raise ReviewError("An edited draft needs a subject and a body")
        return await self._approve(draft_id, by=by, status="edited", subject=subject, body_text=body_text.strip())

    async def reject(self, draft_id: str, *, by: str, reason: str) -> ReviewOutcome:
        """Reject a draft with a reason; it never reaches a mailbox if it was held. The reason is kept as feedback."""
        reason = " ".join(reason.split())
        if not reason:
            raise ReviewError("A rejection needs a reason (e.g. 'false alarm', 'already handled', 'wrong owner')")
        draft = await self._draft(draft_id)
        if draft.status == "rejected":
            return ReviewOutcome(draft=draft, changed=False)
        if draft.status in DECIDED:
            raise ReviewError(
                f"Draft {draft_id} was already {draft.status} by {draft.reviewed_by}; it cannot be rejected"
            )
        at = self._clock()
        if not await self._records.set_review(draft_id, status="rejected", by=by, at=at, reason=reason):
            return await self.reject(draft_id, by=by, reason=reason)
        if draft.account_id is not None:
            await self._records.record_feedback(
                FeedbackRow(
                    account_id=draft.account_id,
                    draft_id=draft_id,
                    kind=draft.kind,
                    label=label_for(reason),
                    reason=reason,
                    risk_state=_risk_state(draft),
                    by=by,
                    at=at,
                )
            )
        await self._audit(draft, "rejected", by=by, at=at, detail={"reason": reason, "label": label_for(reason)})
        return ReviewOutcome(draft=await self._draft(draft_id), changed=True)

    async def _approve(
        self, draft_id: str, *, by: str, status: DraftStatus, subject: str | None = None, body_text: str | None = None
    ) -> ReviewOutcome:
        draft = await self._draft(draft_id)
        if draft.status == "rejected":
            raise ReviewError(
                f"Draft {draft_id} was rejected by {draft.reviewed_by} ({draft.reason}); it stays rejected"
            )
        changed = False
        if draft.status == "pending":
            at = self._clock()
            body_html = None if body_text is None or subject is None else text_to_html(subject, body_text)
            edits = {"subject": subject, "body_text": body_text, "body_html": body_html}
            changed = await self._records.set_review(draft_id, status=status, by=by, at=at, **edits)
            if not changed:  # decided elsewhere in the meantime
                return await self._approve(draft_id, by=by, status=status, subject=subject, body_text=body_text)
            draft = await self._draft(draft_id)
            await self._audit(draft, status, by=by, at=at, detail={"subject": draft.subject})
        delivered = await self._deliver(draft, rewrite=changed and status == "edited")
        return ReviewOutcome(draft=await self._draft(draft_id), changed=changed, delivered=delivered)

    async def _deliver(self, draft: DraftRecord, *, rewrite: bool) -> bool:
        """Create the mailbox draft of an approved held draft (once, by its key); refresh a local copy on edit."""
        message = EmailMessage(to=draft.to, subject=draft.subject, body_html=draft.body_html, body_text=draft.body_text)
        if draft.location is not None:
            if rewrite and draft.location.endswith(".eml") and Path(draft.location).exists():
                await rewrite_local_draft(Path(draft.location), message, idempotency_key=draft.idempotency_key)
            return False
        result = await self._mail.create_draft(
            message, idempotency_key=draft.idempotency_key, account_id=draft.account_id, kind=draft.kind
        )
        await self._records.set_location(draft.draft_id, result.location or f"mailbox:{result.draft_id}")
        return True

    async def _draft(self, draft_id: str) -> DraftRecord:
        draft = await self._records.draft(draft_id)
        if draft is None:
            raise ReviewError(f"No draft {draft_id!r}")
        return draft

    async def _audit(self, draft: DraftRecord, status: str, *, by: str, at: datetime, detail: dict[str, str]) -> None:
        await self._records.store.record_audit(
            AuditEntry(
                artifact=f"review:{status}",
                target=by,
                idempotency_key=f"review:{draft.draft_id}:{status}",
                account_id=draft.account_id,
                task_type="review",
                detail={"draft_id": draft.draft_id, "kind": draft.kind, **detail},
                at=at,
            )
        )


@asynccontextmanager
async def open_review(settings: CSMSettings) -> AsyncIterator[DraftReview]:
    """Review actions on the configured store, delivering approved held drafts to the configured mailbox."""
    store = store_from_settings(settings)
    mailbox = mailbox_from_settings(settings, store)
    try:
        records = review_store(store)
        if records is None:
            raise ReviewError("The review queue needs the SQL store (CSM_DATABASE_URL or the embedded SQLite)")
        yield DraftReview(records, mailbox, clock=lambda: datetime.now(UTC))
    finally:
        for client in (mailbox, store):
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()


def _risk_state(draft: DraftRecord) -> str | None:
    """The risk state of a churn alert's draft, read from its key `churn:{account}:{state}:{day}:email`."""
    prefix = f"churn:{draft.account_id}:"
    if draft.kind != "churn_alert" or not draft.idempotency_key.startswith(prefix):
        return None
    return draft.idempotency_key.removeprefix(prefix).split(":", 1)[0] or None
