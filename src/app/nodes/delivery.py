"""Delivering a subgraph's output: the parsed LLM answer (or a typed failure) and the rep's audited draft."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from src.app.context import CSMContext
from src.app.nodes.common import load_account
from src.app.nodes.render import Section, render_html, render_text
from src.app.schemas import DraftResult, EmailMessage
from src.app.state import WorkError, WorkState
from src.app.tools.store import AuditEntry


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


async def draft_for_rep(
    ctx: CSMContext,
    *,
    account_id: str,
    key: str,
    kind: str,
    task_type: str,
    heading: str,
    sections: Sequence[Section],
) -> DraftResult:
    """Draft a message to the account's rep (from the record, never from LLM text) and audit it."""
    _, account = await load_account(ctx, account_id)
    if not account.rep_email:
        raise ValueError(f"Account '{account_id}' has no rep_email on record; cannot address the draft")
    message = EmailMessage(
        to=account.rep_email,
        subject=heading,
        body_html=render_html(heading, sections),
        body_text=render_text(heading, sections),
    )
    draft = await ctx.mail.create_draft(message, idempotency_key=f"{key}:draft", account_id=account_id, kind=kind)
    await ctx.store.record_audit(
        AuditEntry(
            artifact=f"draft:{kind}",
            target=account.rep_email,
            idempotency_key=f"{key}:draft",
            account_id=account_id,
            task_type=task_type,
            detail={"draft_id": draft.draft_id},
            at=ctx.clock(),
        )
    )
    return draft
