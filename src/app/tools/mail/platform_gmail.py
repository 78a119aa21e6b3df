"""`MailDrafts` on the host platform's Gmail service: only its `create_draft(email, user_email=None)` is ever called.

The platform's service can also deliver mail; this adapter never reaches for that (the hardening suite's scan of
`src/` keeps it so). A key already drafted returns the existing draft without calling the service again (a ledger
under `CSM_DATA_DIR/platform/` keeps the platform's draft id; the store keeps the review copy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from src.app.schemas import DraftResult, EmailMessage
from src.app.tools.delivery import DELIVERED, DeliveryLedger
from src.app.tools.mail.outbox import queue_for_review, reject_header_injection
from src.app.tools.platform import field_of
from src.app.tools.store import CSMStore

PLATFORM_GMAIL_METHODS: Final = ("create_draft",)


@dataclass(frozen=True)
class PlatformEmail:
    """The email shape the platform's Gmail service takes: `to`, `subject`, `body_html`, `body_text`, `cc`, `bcc`."""

    to: str
    subject: str
    body_html: str
    body_text: str | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)


class PlatformGmailDrafts:
    """`MailDrafts` that creates each draft once through the platform's `create_draft` and queues it for review."""

    def __init__(self, service: Any, store: CSMStore, ledger: DeliveryLedger, *, user_email: str | None = None) -> None:
        self._service = service
        self._store = store
        self._ledger = ledger
        self._user_email = user_email

    async def create_draft(
        self,
        message: EmailMessage,
        *,
        idempotency_key: str,
        account_id: str | None = None,
        kind: str = "email",
    ) -> DraftResult:
        """Create the platform draft unless this key already has one; return the platform's draft id."""
        reject_header_injection(message)
        draft_id, created = await self._ledger.once(DELIVERED, idempotency_key, lambda: self._create(message))
        queued = await queue_for_review(
            self._store,
            message,
            idempotency_key=idempotency_key,
            account_id=account_id,
            kind=kind,
            location=f"platform-gmail:{draft_id}",
            created_at=datetime.now(UTC),
            created=created,
        )
        return queued.model_copy(update={"draft_id": draft_id})

    async def _create(self, message: EmailMessage) -> str:
        """One platform draft; its id."""
        email = PlatformEmail(
            to=message.to,
            subject=message.subject,
            body_html=message.body_html,
            body_text=message.body_text,
            cc=list(message.cc),
        )
        result = await self._service.create_draft(email, user_email=self._user_email)
        draft_id = str(field_of(result, "draft_id") or "")
        if not draft_id:
            raise RuntimeError(f"the platform's create_draft returned no draft_id ({result!r})")
        return draft_id
