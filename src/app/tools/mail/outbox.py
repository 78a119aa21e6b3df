"""The embedded mail channel: drafts as `.eml` files plus review-queue rows (nothing is ever sent)."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage as MIMEMessage
from email.utils import format_datetime
from html.parser import HTMLParser
from pathlib import Path

import structlog

from src.app.schemas import DraftResult, EmailMessage
from src.app.tools.delivery import key_digest
from src.app.tools.mail.address import parse_address
from src.app.tools.store import CSMStore, DraftRecord

MESSAGE_ID_DOMAIN = "csm.local"
"""Domain of the local drafts' Message-IDs (fixed, so building a draft never looks up the host name)."""

_BLOCK_TAGS = frozenset("address blockquote br div h1 h2 h3 h4 h5 h6 hr li ol p pre section table tr ul".split())
_HIDDEN_TAGS = frozenset({"head", "script", "style", "title"})

logger = structlog.get_logger(__name__)


class LocalOutbox:
    """`MailDrafts` for the embedded default: one RFC 5322 `.eml` file per draft plus a review-queue row.

    There is deliberately no send method: a person opens the draft (marked `X-Unsent: 1`) and sends it.
    The file is written before the row, so a retry after a crash between the two completes the draft.
    """

    def __init__(self, store: CSMStore, folder: Path) -> None:
        self._store = store
        self._folder = folder

    async def create_draft(
        self,
        message: EmailMessage,
        *,
        idempotency_key: str,
        account_id: str | None = None,
        kind: str = "email",
    ) -> DraftResult:
        """Write the draft file (unless this key already has one) and record it; the same key is a no-op."""
        reject_header_injection(message)
        draft_id = draft_id_for(idempotency_key)
        path = self._folder / f"{draft_id}.eml"
        created_at = datetime.now(UTC)
        if not await asyncio.to_thread(path.exists):
            content = render_mime(message, draft_id=draft_id, idempotency_key=idempotency_key, at=created_at)
            await asyncio.to_thread(_write_atomically, path, content)
        return await queue_for_review(
            self._store,
            message,
            idempotency_key=idempotency_key,
            account_id=account_id,
            kind=kind,
            location=str(path),
            created_at=created_at,
        )


async def queue_for_review(
    store: CSMStore,
    message: EmailMessage,
    *,
    idempotency_key: str,
    account_id: str | None,
    kind: str,
    location: str | None,
    created_at: datetime,
    created: bool | None = None,
) -> DraftResult:
    """Record a draft in the store's review queue (`csm drafts`), once per key, and describe it.

    `created` is whether the draft itself was made now; by default, whether the store's record is new.
    """
    record = DraftRecord(
        draft_id=draft_id_for(idempotency_key),
        idempotency_key=idempotency_key,
        account_id=account_id,
        kind=kind,
        to=message.to,
        subject=message.subject,
        body_html=message.body_html,
        body_text=message.body_text,
        location=location,
        created_at=created_at,
    )
    saved = await store.save_draft(record)
    return DraftResult(
        draft_id=saved.artifact_id,
        to=message.to,
        subject=message.subject,
        location=location,
        created=saved.created if created is None else created,
    )


async def rewrite_local_draft(path: Path, message: EmailMessage, *, idempotency_key: str) -> None:
    """Replace a local `.eml` draft's content with `message` (a person edited it in review); still unsent."""
    reject_header_injection(message)
    content = render_mime(
        message, draft_id=draft_id_for(idempotency_key), idempotency_key=idempotency_key, at=datetime.now(UTC)
    )
    await asyncio.to_thread(_write_atomically, path, content)


def draft_id_for(idempotency_key: str) -> str:
    """The deterministic draft id for an idempotency key."""
    return f"draft_{key_digest(idempotency_key)}"


def html_to_text(html: str) -> str:
    """A plain-text rendering of HTML: tags dropped, entities decoded, block elements on their own lines."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return parser.text()


class _TextExtractor(HTMLParser):
    """Collects the visible text of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth += 1
        elif tag in _BLOCK_TAGS:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BLOCK_TAGS:
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self._parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self._parts).splitlines())
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def reject_header_injection(message: EmailMessage) -> None:
    """Raise ValueError naming the field when a recipient contains a line break (header injection)."""
    for field, value in [("to", message.to), *(("cc", address) for address in message.cc)]:
        if "\n" in value or "\r" in value:
            raise ValueError(f"Refusing draft: {field!r} contains a line break (header injection): {value!r}")


def render_mime(
    message: EmailMessage, *, draft_id: str, idempotency_key: str, at: datetime, sender: str | None = None
) -> bytes:
    """The RFC 5322 bytes of a draft: text + HTML alternative, UTF-8 headers, a Message-ID derived from `draft_id`.

    Shared by the local outbox (`.eml` files) and Gmail (`drafts.create`); `sender` sets `From` when known.
    """
    mime = MIMEMessage(policy=policy.SMTP)
    if sender is not None:
        mime["From"] = sender
    mime["To"] = parse_address(message.to)  # the parser the recipient allow-list checked the address with
    if message.cc:
        mime["Cc"] = ", ".join(parse_address(address) for address in message.cc)
    mime["Subject"] = " ".join(message.subject.split())
    mime["Date"] = format_datetime(at)
    mime["Message-ID"] = f"<{draft_id}@{MESSAGE_ID_DOMAIN}>"
    mime["X-CSM-Idempotency-Key"] = idempotency_key
    mime["X-Unsent"] = "1"
    body_text = message.body_text if message.body_text is not None else html_to_text(message.body_html)
    mime.set_content(body_text)
    mime.add_alternative(message.body_html, subtype="html")
    return mime.as_bytes()


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
