"""`CSM_DRAFT_REVIEW=hold`: drafts wait in the review queue and reach no mailbox until a person approves them."""

from __future__ import annotations

from datetime import UTC, datetime

from src.app.schemas import DraftResult, EmailMessage
from src.app.tools.mail import MailDrafts
from src.app.tools.mail.outbox import queue_for_review, reject_header_injection
from src.app.tools.store import CSMStore


class HeldMail:
    """`MailDrafts` that only records each draft for review (status pending, no mailbox copy yet).

    `delivery` is the real mail adapter; approving a held draft (the desk or `csm drafts approve`) creates the
    mailbox draft there, under the draft's own idempotency key, so it is created once however often it is approved.
    """

    def __init__(self, store: CSMStore, delivery: MailDrafts) -> None:
        self._store = store
        self.delivery = delivery

    async def create_draft(
        self,
        message: EmailMessage,
        *,
        idempotency_key: str,
        account_id: str | None = None,
        kind: str = "email",
    ) -> DraftResult:
        """Queue the draft for review only (the same key is a no-op); nothing reaches a mailbox."""
        reject_header_injection(message)
        return await queue_for_review(
            self._store,
            message,
            idempotency_key=idempotency_key,
            account_id=account_id,
            kind=kind,
            location=None,
            created_at=datetime.now(UTC),
        )

    async def aclose(self) -> None:
        """Close the delivering adapter when it holds connections."""
        close = getattr(self.delivery, "aclose", None)
        if close is not None:
            await close()


def delivering(mail: MailDrafts) -> MailDrafts:
    """The adapter that puts drafts in a mailbox: the one behind a `HeldMail`, else `mail` itself."""
    return mail.delivery if isinstance(mail, HeldMail) else mail
