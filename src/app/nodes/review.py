"""Human review of a draft inside a run (`CSM_DRAFT_REVIEW=interrupt`): pause with LangGraph `interrupt()`.

The payload has the shape of Agent Inbox's human interrupt: an `action_request` (`action`, `args`), a `config`
of the allowed responses (accept, edit, ignore; not respond) and a Markdown `description`. The run resumes on
`Command(resume=...)` with a human response (`{"type": "accept" | "edit" | "ignore", "args": ...}`, alone or as
Agent Inbox's one-element list); an edit's `args` are the edited action request (or just its `args`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from langgraph.types import interrupt

from src.app.nodes.render import Section, render_html
from src.app.schemas import EmailMessage
from src.app.tools.store import DraftStatus

REVIEWER = "agent-inbox"
"""Who a decision taken through `interrupt()` is recorded as (a human response carries no user)."""
ResponseType = Literal["accept", "edit", "ignore"]


@dataclass(frozen=True)
class ReviewDecision:
    """What a person decided about a draft: the message to deliver (None when ignored) and the review status."""

    message: EmailMessage | None
    status: DraftStatus


def review_request(message: EmailMessage, *, kind: str, account_id: str) -> dict[str, Any]:
    """The Agent Inbox human-interrupt payload for a draft."""
    body = message.body_text or ""
    return {
        "action_request": {
            "action": f"draft_{kind}",
            "args": {"account_id": account_id, "to": message.to, "subject": message.subject, "body": body},
        },
        "config": {"allow_ignore": True, "allow_respond": False, "allow_edit": True, "allow_accept": True},
        "description": (
            f"**{kind.replace('_', ' ').title()} draft for `{account_id}`** to {message.to}\n\n"
            f"### {message.subject}\n\n{body}\n\n"
            "Accept to create the mailbox draft, edit its subject/body first, or ignore it (nothing is drafted)."
        ),
    }


def ask_reviewer(message: EmailMessage, *, kind: str, account_id: str) -> ReviewDecision:
    """Pause the run for a person's decision on `message` (on resume: that decision)."""
    response = interrupt([review_request(message, kind=kind, account_id=account_id)])
    return decide(message, response)


def decide(message: EmailMessage, response: Any) -> ReviewDecision:
    """The decision a human response stands for (ValueError naming an unexpected response)."""
    if isinstance(response, list) and len(response) == 1:
        response = response[0]
    kind = response.get("type") if isinstance(response, dict) else None
    if kind == "accept":
        return ReviewDecision(message=message, status="approved")
    if kind == "ignore":
        return ReviewDecision(message=None, status="rejected")
    if kind == "edit":
        args = response.get("args") or {}
        edited = args.get("args", args) if isinstance(args, dict) else {}
        subject = " ".join(str(edited.get("subject") or message.subject).split())
        body = str(edited.get("body") or message.body_text or "").strip()
        paragraphs = [p.strip() for p in body.split("\n\n") if p.strip()]
        html = render_html(subject, [Section(paragraphs=paragraphs)])
        return ReviewDecision(
            message=message.model_copy(update={"subject": subject, "body_text": body, "body_html": html}),
            status="edited",
        )
    raise ValueError(f"Unexpected review response {response!r}: expected type accept, edit or ignore")
