"""Delivering a subgraph's output: the parsed LLM answer (or a typed failure) and the rep's audited draft."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from src.app.context import CSMContext
from src.app.nodes.common import load_account
from src.app.nodes.render import Section, render_html, render_text
from src.app.schemas import AccountRecord, DraftResult, EmailMessage
from src.app.state import WorkError, WorkState
from src.app.tools.store import AuditEntry

RecipientRole = Literal["rep", "ae"]


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


def internal_recipient(account: AccountRecord, wanted: RecipientRole) -> tuple[str, RecipientRole]:
    """The address on the account record for `wanted` (the AE falls back to the rep) and whose it is.

    Recipients only ever come from the account record, never from a payload or LLM text.
    """
    ae_email, rep_email = (account.ae_email or "").strip(), (account.rep_email or "").strip()
    if wanted == "ae" and ae_email:
        return ae_email, "ae"
    if rep_email:
        return rep_email, "rep"
    needed = "ae_email or rep_email" if wanted == "ae" else "rep_email"
    raise ValueError(f"Account '{account.account_id}' has no {needed} on record; cannot address the draft")


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
) -> DraftResult:
    """Draft a message to the account's rep, or its AE with `recipient="ae"`, and audit it.

    The address comes from the account record (`internal_recipient`), never from LLM text.
    """
    _, account = await load_account(ctx, account_id)
    to, _ = internal_recipient(account, recipient)
    message = EmailMessage(
        to=to,
        subject=heading,
        body_html=render_html(heading, sections),
        body_text=render_text(heading, sections),
    )
    draft = await ctx.mail.create_draft(message, idempotency_key=f"{key}:draft", account_id=account_id, kind=kind)
    await ctx.store.record_audit(
        AuditEntry(
            artifact=f"draft:{kind}",
            target=to,
            idempotency_key=f"{key}:draft",
            account_id=account_id,
            task_type=task_type,
            detail={"draft_id": draft.draft_id},
            at=ctx.clock(),
        )
    )
    return draft
