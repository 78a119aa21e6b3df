"""Gmail drafts through the Gmail API: only `users.drafts.create`, only the compose scope, idempotent by key.

Nothing in this module can deliver mail: it builds a draft and leaves it in a mailbox for a person to review.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import structlog
from google.auth.credentials import Credentials
from google.auth.exceptions import GoogleAuthError
from google.auth.transport.requests import Request
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from src.app.config import CSMSettings
from src.app.schemas import DraftResult, EmailMessage
from src.app.tools.delivery import DELIVERED, DeliveryLedger, retry_delay
from src.app.tools.mail.outbox import draft_id_for, queue_for_review, reject_header_injection, render_mime
from src.app.tools.store import CSMStore

COMPOSE_SCOPE = "https://www.googleapis.com/auth/gmail.compose"
"""The one scope this adapter accepts: create and edit drafts."""

_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_HINTS = {
    400: "Gmail rejected the draft (for a service account: is domain-wide delegation set up for this mailbox?)",
    401: "the credentials were not accepted; check CSM_GMAIL_CREDENTIALS_FILE",
    403: "the credentials lack access; grant the gmail.compose scope (and domain-wide delegation for service accounts)",
    404: "mailbox not found; check the rep's address",
}

logger = structlog.get_logger(__name__)


class GmailDraftError(RuntimeError):
    """Gmail could not create a draft; the message names the cause and the mailbox, never a credential."""


class GmailDrafts:
    """`MailDrafts` on the Gmail API: each draft is created with `users.drafts.create` and nothing else.

    With `delegate_to_rep`, a service account impersonates the recipient rep so the draft lands in the rep's
    own mailbox; otherwise drafts go to the authorized user's mailbox (`me`). A key already drafted returns the
    existing draft without calling Gmail (a ledger file records Gmail's draft id; the store keeps the review copy).
    """

    def __init__(
        self,
        *,
        credentials: Credentials,
        store: CSMStore,
        ledger: DeliveryLedger,
        delegate_to_rep: bool = False,
        api_base: str | None = None,
        max_attempts: int = 4,
        backoff_s: float = 1.0,
    ) -> None:
        refuse_broader_scopes(credentials)
        if delegate_to_rep and not isinstance(credentials, service_account.Credentials):
            raise ValueError("gmail_delegate_to_rep needs service-account credentials (OAuth user credentials cannot)")
        self._credentials = credentials
        self._store = store
        self._ledger = ledger
        self._delegate_to_rep = delegate_to_rep
        self._client_options = {"api_endpoint": api_base} if api_base else None
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._by_mailbox: dict[str, Credentials] = {}
        self._refresh_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: CSMSettings, store: CSMStore) -> GmailDrafts:
        """The adapter configured by `CSM_GMAIL_*`; raises ValueError naming the setting when it is unusable."""
        if settings.gmail_credentials_file is None:
            raise ValueError("CSM_GMAIL_CREDENTIALS_FILE is not set")
        credentials = load_compose_credentials(
            settings.gmail_credentials_file, delegate_to_rep=settings.gmail_delegate_to_rep
        )
        return cls(
            credentials=credentials,
            store=store,
            ledger=DeliveryLedger(settings.data_dir / "gmail" / "drafts.jsonl"),
            delegate_to_rep=settings.gmail_delegate_to_rep,
            api_base=settings.gmail_api_base,
        )

    async def create_draft(
        self,
        message: EmailMessage,
        *,
        idempotency_key: str,
        account_id: str | None = None,
        kind: str = "email",
    ) -> DraftResult:
        """Create the Gmail draft unless this key already has one, and keep a copy in the review queue."""
        reject_header_injection(message)
        location, created = await self._ledger.once(
            DELIVERED, idempotency_key, lambda: self._create_with_retries(message, idempotency_key)
        )
        return await queue_for_review(
            self._store,
            message,
            idempotency_key=idempotency_key,
            account_id=account_id,
            kind=kind,
            location=location,
            created_at=datetime.now(UTC),
            created=created,
        )

    async def _create_with_retries(self, message: EmailMessage, idempotency_key: str) -> str:
        """Call `drafts.create`, retrying 429/5xx and network errors; returns `gmail:<mailbox>/drafts/<id>`."""
        mailbox = message.to if self._delegate_to_rep else "me"
        mime = render_mime(
            message,
            draft_id=draft_id_for(idempotency_key),
            idempotency_key=idempotency_key,
            at=datetime.now(UTC),
            sender=message.to if self._delegate_to_rep else None,
        )
        draft: dict[str, Any] = {"raw": base64.urlsafe_b64encode(mime).decode("ascii")}
        if message.thread_id:
            draft["threadId"] = message.thread_id
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = await asyncio.to_thread(self._create_once, mailbox, {"message": draft})
                return f"gmail:{mailbox}/drafts/{response['id']}"
            except HttpError as error:
                status = int(error.resp.status)
                if status not in _RETRYABLE_STATUSES or attempt == self._max_attempts:
                    raise GmailDraftError(_describe(error, status, mailbox, attempt)) from error
                delay = retry_delay(attempt, base_s=self._backoff_s, retry_after=error.resp.get("retry-after"))
            except OSError as error:
                if attempt == self._max_attempts:
                    raise GmailDraftError(
                        f"Gmail API unreachable after {attempt} attempts ({type(error).__name__})"
                    ) from error
                delay = retry_delay(attempt, base_s=self._backoff_s)
            logger.warning("gmail_draft_retry", mailbox=mailbox, attempt=attempt, delay_s=round(delay, 3))
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _create_once(self, mailbox: str, body: dict[str, Any]) -> dict[str, Any]:
        """One `users.drafts.create` call (blocking; run in a worker thread with its own HTTP connection)."""
        service = build(
            "gmail",
            "v1",
            credentials=self._credentials_for(mailbox),
            static_discovery=True,
            client_options=self._client_options,
        )
        response: dict[str, Any] = service.users().drafts().create(userId=mailbox, body=body).execute()
        return response

    def _credentials_for(self, mailbox: str) -> Credentials:
        """Fresh credentials for `mailbox`, checked again against the scopes the token endpoint granted."""
        with self._refresh_lock:
            credentials = self._by_mailbox.get(mailbox)
            if credentials is None:
                credentials = self._credentials
                if self._delegate_to_rep and isinstance(credentials, service_account.Credentials):
                    credentials = credentials.with_subject(mailbox)  # type: ignore[no-untyped-call]
                self._by_mailbox[mailbox] = credentials
            if not credentials.valid:
                try:
                    credentials.refresh(Request())
                except GoogleAuthError as error:
                    detail = error.args[0] if error.args else type(error).__name__
                    raise GmailDraftError(
                        f"Gmail token request for mailbox {mailbox!r} failed: {detail} (check "
                        "CSM_GMAIL_CREDENTIALS_FILE and, for a service account, its delegation of the compose scope)"
                    ) from None
                refuse_broader_scopes(credentials)
            return credentials


def load_compose_credentials(path: Path, *, delegate_to_rep: bool) -> Credentials:
    """Service-account or OAuth authorized-user credentials from `path`, limited to the compose scope."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"CSM_GMAIL_CREDENTIALS_FILE {str(path)!r} is not a readable JSON file ({error})") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        if not delegate_to_rep:
            raise ValueError(
                "a service account has no mailbox of its own: set CSM_GMAIL_DELEGATE_TO_REP=true (domain-wide "
                "delegation) or use an OAuth authorized-user file"
            )
        delegating = service_account.Credentials.from_service_account_info(info, scopes=[COMPOSE_SCOPE])  # type: ignore[no-untyped-call]
        return cast(Credentials, delegating)
    if kind == "authorized_user":
        credentials = user_credentials.Credentials.from_authorized_user_info(info)  # type: ignore[no-untyped-call]
        token_uri = info.get("token_uri")
        return cast(Credentials, credentials.with_token_uri(token_uri) if token_uri else credentials)
    raise ValueError(
        f"CSM_GMAIL_CREDENTIALS_FILE {str(path)!r} has type {kind!r}; expected 'service_account' or 'authorized_user'"
    )


def refuse_broader_scopes(credentials: Credentials) -> None:
    """Raise ValueError unless the credentials' declared and granted scopes are exactly the compose scope."""
    declared = set(getattr(credentials, "scopes", None) or ())
    granted = set(getattr(credentials, "granted_scopes", None) or ())
    if not declared:
        raise ValueError(f"Refusing Gmail credentials that declare no scopes: limit them to [{COMPOSE_SCOPE!r}]")
    broader = sorted((declared | granted) - {COMPOSE_SCOPE})
    if broader:
        raise ValueError(
            f"Refusing Gmail credentials with scopes {broader}: only {COMPOSE_SCOPE} is accepted "
            "(this app creates drafts for review and never delivers mail)"
        )


def _describe(error: HttpError, status: int, mailbox: str, attempt: int) -> str:
    reason = str(getattr(error, "reason", "") or "").strip()
    hint = _HINTS.get(status, "unexpected response")
    tries = f" after {attempt} attempts" if attempt > 1 else ""
    return f"Gmail drafts.create for mailbox {mailbox!r} failed{tries}: HTTP {status} {reason} — {hint}"
