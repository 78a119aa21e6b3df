"""Delivering a subgraph's output: the parsed LLM answer (or a typed failure) and the rep's audited draft."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from src.app.context import CSMContext
from src.app.nodes.account_facts import load_account
from src.app.nodes.render import Section, greeting, render_html, render_text
from src.app.nodes.review import REVIEWER, ask_reviewer
from src.app.schemas import AccountRecord, DraftResult, EmailMessage
from src.app.state import WorkError, WorkState
from src.app.tools.mail.address import AddressError, is_allowed, parse_address
from src.app.tools.mail.held import delivering
from src.app.tools.mail.outbox import queue_for_review
from src.app.tools.store import AuditEntry
from src.app.tools.store.sql_review import review_store

RecipientRole = Literal["rep", "ae"]


class RecipientRefused(ValueError):
    """A draft's recipient is missing, malformed or outside the allowed domains; nothing is drafted."""


class LLMOutputMissing(RuntimeError):
    """The LLM gave no usable answer for a key after retries and repair; nothing is written."""


def data_error(account_id: str, message: str) -> WorkError:
    """A data-quality problem of one account, reported in the result."""
    return WorkError(account_id=account_id, stage="score", message=message)


def parsed_output(state: WorkState, key: str) -> dict[str, Any]:
    """The validated LLM answer for `key`, or LLMOutputMissing naming what went wrong."""
    parsed = state.get("parsed", {}).get(key)
    if parsed is not None:
        return parsed
    problems = [e["message"] for e in state.get("errors", []) if e["account_id"] == key and e["stage"] != "score"]
    raise LLMOutputMissing(f"No usable LLM output for '{key}': {'; '.join(problems) or 'no reply'}")


def internal_recipient(
    account: AccountRecord, wanted: RecipientRole, *, allowed_domains: Sequence[str] = ()
) -> tuple[str, RecipientRole]:
    """The address on the account record for `wanted` (the AE falls back to the rep) and whose it is.

    Recipients only ever come from the account record, never from a payload or LLM text. The address must be
    one plain address and, when `allowed_domains` is not empty (`CSM_ALLOWED_RECIPIENT_DOMAINS`), on one of
    those domains; otherwise RecipientRefused names the account, the address and the rule.
    """
    ae_email, rep_email = (account.ae_email or "").strip(), (account.rep_email or "").strip()
    if wanted == "ae" and ae_email:
        return _allowed(account, ae_email, "ae_email", allowed_domains), "ae"
    if rep_email:
        return _allowed(account, rep_email, "rep_email", allowed_domains), "rep"
    needed = "ae_email or rep_email" if wanted == "ae" else "rep_email"
    raise RecipientRefused(f"Account '{account.account_id}' has no {needed} on record; cannot address the draft")


def check_recipient(ctx: CSMContext, account: AccountRecord, wanted: RecipientRole = "rep") -> str:
    """The internal recipient of a draft under the configured allow-list (see `internal_recipient`)."""
    address, _ = internal_recipient(account, wanted, allowed_domains=ctx.settings.allowed_recipient_domains)
    return address


def _allowed(account: AccountRecord, address: str, field: str, allowed_domains: Sequence[str]) -> str:
    """The canonical form of the record's address (`parse_address`, the parser the draft builder uses too)."""
    try:
        canonical = parse_address(address)
    except AddressError as error:
        raise RecipientRefused(
            f"Account '{account.account_id}' has {field}={address!r}, which is not one plain email address "
            f"({error}); nothing was drafted"
        ) from error
    if allowed_domains and not is_allowed(canonical, allowed_domains):
        raise RecipientRefused(
            f"Account '{account.account_id}' has {field}={address!r}, outside CSM_ALLOWED_RECIPIENT_DOMAINS "
            f"({', '.join(allowed_domains)}); nothing was drafted"
        )
    return canonical


async def draft_for_rep(
    ctx: CSMContext,
    *,
    account_id: str,
    key: str,
    kind: str,
    task_type: str,
    heading: str,
    sections: Sequence[Section],
    recipient: RecipientRole = "rep",
    why: str = "",
) -> DraftResult:
    """Draft a message to the account's rep, or its AE with `recipient="ae"`, and audit it.

    The address comes from the account record (`internal_recipient`), never from LLM text. The body opens
    with a greeting and `why`, one line saying why the recipient gets it.
    """
    _, account = await load_account(ctx, account_id)
    to = check_recipient(ctx, account, recipient)
    intro = [greeting(to), why]
    message = EmailMessage(
        to=to,
        subject=heading,
        body_html=render_html(heading, sections, intro=intro),
        body_text=render_text(heading, sections, intro=intro),
    )
    if ctx.settings.draft_review == "interrupt":
        draft = await _draft_after_review(ctx, message, key=f"{key}:draft", account_id=account_id, kind=kind)
    else:
        draft = await ctx.mail.create_draft(message, idempotency_key=f"{key}:draft", account_id=account_id, kind=kind)
    await audit(
        ctx,
        artifact=f"draft:{kind}",
        target=to,
        key=f"{key}:draft",
        account_id=account_id,
        task_type=task_type,
        detail={"draft_id": draft.draft_id},
    )
    return draft


async def _draft_after_review(
    ctx: CSMContext, message: EmailMessage, *, key: str, account_id: str, kind: str
) -> DraftResult:
    """Pause for a person's decision (`interrupt()`), then draft what they accepted or edited, or nothing."""
    decision = ask_reviewer(message, kind=kind, account_id=account_id)
    if decision.message is None:  # ignored: kept in the queue as rejected, never in a mailbox
        draft = await queue_for_review(
            ctx.store,
            message,
            idempotency_key=key,
            account_id=account_id,
            kind=kind,
            location=None,
            created_at=ctx.clock(),
        )
    else:
        draft = await delivering(ctx.mail).create_draft(
            decision.message, idempotency_key=key, account_id=account_id, kind=kind
        )
    records = review_store(ctx.store)
    reason = "ignored in review" if decision.status == "rejected" else None
    if records is not None and await records.set_review(
        draft.draft_id, status=decision.status, by=REVIEWER, at=ctx.clock(), reason=reason
    ):
        await audit(
            ctx,
            artifact=f"review:{decision.status}",
            target=REVIEWER,
            key=f"review:{draft.draft_id}:{decision.status}",
            account_id=account_id,
            task_type="review",
            detail={"draft_id": draft.draft_id, "kind": kind},
        )
    return draft


async def require_recipient(ctx: CSMContext, account_id: str, wanted: RecipientRole = "rep") -> str:
    """Check before writing anything that the account's draft can be addressed (RecipientRefused if not)."""
    _, account = await load_account(ctx, account_id)
    return check_recipient(ctx, account, wanted)


async def audit(
    ctx: CSMContext,
    *,
    artifact: str,
    target: str,
    key: str,
    account_id: str | None,
    task_type: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record one outbound artifact (draft, chat message, page, event, hand-off) in the audit log, once per key."""
    await ctx.store.record_audit(
        AuditEntry(
            artifact=artifact,
            target=target,
            idempotency_key=key,
            account_id=account_id,
            task_type=task_type,
            detail=detail or {},
            at=ctx.clock(),
        )
    )
