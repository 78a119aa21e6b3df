"""The desk's JSON API under `/api/`: the same data and actions as the pages, under the same rules."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from src.app.desk.core import User, check_csrf, csrf_token, desk_of, signed_in
from src.app.desk.review import ReviewError, ReviewOutcome
from src.app.desk.views import STATUSES, account_view, book_filter, book_view, draft_row, visible_draft

api = APIRouter()
SignedIn = Annotated[User, Depends(signed_in)]
CSRF = Depends(check_csrf)


class Rejection(BaseModel):
    """Why a draft is rejected."""

    reason: str


class Edit(BaseModel):
    """A person's subject and body for a draft."""

    subject: str
    body: str


@api.get("/session")
async def session(request: Request, user: SignedIn) -> dict[str, str]:
    """Who is signed in, and the CSRF token to send as `X-CSRF-Token` with every POST."""
    return {"email": user.email, "role": user.role, "csrf": csrf_token(request)}


@api.get("/book")
async def book(
    request: Request,
    user: SignedIn,
    owner: str | None = None,
    rag: str | None = None,
    segment: str | None = None,
    renewal: int | None = None,
    q: str | None = None,
) -> dict[str, Any]:
    """The book page's data."""
    where = book_filter(user, owner=owner, rag=rag, segment=segment, renewal=renewal, q=q)
    return await book_view(desk_of(request), user, where)


@api.get("/accounts/{account_id}")
async def account(request: Request, user: SignedIn, account_id: str) -> dict[str, Any]:
    """One account's data (the chart as SVG text)."""
    return await account_view(desk_of(request), user, account_id)


@api.get("/drafts")
async def drafts(
    request: Request, user: SignedIn, status: str | None = None, kind: str | None = None, account: str | None = None
) -> dict[str, Any]:
    """The review queue (newest first)."""
    if status is not None and status not in STATUSES:
        raise HTTPException(status_code=400, detail=f"Unknown status {status!r}")
    desk = desk_of(request)
    found = await desk.records.drafts(
        status=status,
        kind=kind,
        account_id=account,
        owner=user.owner_filter,
        limit=500,
    )
    return {"drafts": [draft_row(d, desk.now()) for d in found]}


@api.get("/drafts/{draft_id}")
async def draft(request: Request, user: SignedIn, draft_id: str) -> dict[str, Any]:
    """One draft with its bodies."""
    return (await visible_draft(desk_of(request), user, draft_id)).model_dump(mode="json")


@api.post("/drafts/{draft_id}/approve", dependencies=[CSRF])
async def approve(request: Request, user: SignedIn, draft_id: str) -> dict[str, Any]:
    """Approve as written (idempotent)."""
    desk = desk_of(request)
    await visible_draft(desk, user, draft_id)
    return _outcome(await _do(desk.review.approve(draft_id, by=user.email)))


@api.post("/drafts/{draft_id}/edit", dependencies=[CSRF])
async def edit(request: Request, user: SignedIn, draft_id: str, body: Edit) -> dict[str, Any]:
    """Approve with a person's subject and body."""
    desk = desk_of(request)
    await visible_draft(desk, user, draft_id)
    return _outcome(await _do(desk.review.edit(draft_id, by=user.email, subject=body.subject, body_text=body.body)))


@api.post("/drafts/{draft_id}/reject", dependencies=[CSRF])
async def reject(request: Request, user: SignedIn, draft_id: str, body: Rejection) -> dict[str, Any]:
    """Reject with a reason."""
    desk = desk_of(request)
    await visible_draft(desk, user, draft_id)
    return _outcome(await _do(desk.review.reject(draft_id, by=user.email, reason=body.reason)))


async def _do(work: Any) -> ReviewOutcome:
    try:
        outcome: ReviewOutcome = await work
    except ReviewError as error:
        raise HTTPException(status_code=409, detail=str(error)) from None
    return outcome


def _outcome(outcome: ReviewOutcome) -> dict[str, Any]:
    return {
        "draft_id": outcome.draft.draft_id,
        "status": outcome.draft.status,
        "changed": outcome.changed,
        "delivered": outcome.delivered,
        "location": outcome.draft.location,
    }
