"""The desk's HTML pages: sign-in, book, account, review queue, draft, QBRs and opportunities (plain forms)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from src.app.desk.auth import authenticate
from src.app.desk.core import Desk, User, check_csrf, csrf_token, desk_of, signed_in
from src.app.desk.review import REJECT_REASONS, ReviewError
from src.app.desk.views import (
    RENEWAL_WINDOWS,
    STATUSES,
    account_view,
    book_filter,
    book_view,
    can_see,
    draft_row,
    visible_draft,
)
from src.app.tools.store import AuditEntry
from src.app.tools.store.sql_tables import OPPORTUNITIES, QBR_PAGES

pages = APIRouter()
SignedIn = Annotated[User, Depends(signed_in)]
CSRF = Depends(check_csrf)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page with the signed-in user (if any), the CSRF token and a flash message."""
    desk = desk_of(request)
    email = request.session.get("user")
    user = User(email=email, role=str(request.session.get("role"))) if isinstance(email, str) else None
    flash = request.session.pop("flash", None)
    base = {"user": user, "csrf": csrf_token(request), "flash": flash, "mode": desk.settings.draft_review}
    return desk.templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


def back(request: Request, url: str, message: str) -> RedirectResponse:
    """Redirect after a POST, with a message for the next page."""
    request.session["flash"] = message
    return RedirectResponse(url, status_code=303)


@pages.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    """The sign-in form."""
    return render(request, "login.html", error=None)


@pages.post("/login", dependencies=[CSRF])
async def login(request: Request, email: Annotated[str, Form()], password: Annotated[str, Form()]) -> Response:
    """Sign in; failures are audited and limited per email and per client address."""
    desk = desk_of(request)
    email = email.strip().lower()
    client = request.client.host if request.client else "unknown"
    keys = (f"email:{email}", f"client:{client}")
    if desk.limiter.blocked(*keys):
        await _audit_sign_in(desk, email, client, "signin:blocked")
        return render(request, "login.html", status_code=429, error="Too many failed sign-ins; try again later.")
    user = await authenticate(desk.records, email, password)
    if user is None:
        desk.limiter.failed(*keys)
        await _audit_sign_in(desk, email, client, "signin:failed")
        return render(request, "login.html", status_code=401, error="Wrong email or password.")
    desk.limiter.succeeded(*keys)
    request.session.clear()
    request.session.update({"user": user.email, "role": user.role})
    csrf_token(request)
    await _audit_sign_in(desk, email, client, "signin:ok")
    return RedirectResponse("/", status_code=303)


@pages.post("/logout", dependencies=[CSRF])
async def logout(request: Request) -> Response:
    """Sign out."""
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@pages.get("/", response_class=HTMLResponse)
async def book_page(
    request: Request,
    user: SignedIn,
    owner: str | None = None,
    rag: str | None = None,
    segment: str | None = None,
    renewal: Annotated[int | None, Query()] = None,
    q: str | None = None,
) -> HTMLResponse:
    """The book: RAG counts and movement, ARR at risk, riskiest accounts, movers; filters and search."""
    desk = desk_of(request)
    where = book_filter(user, owner=owner, rag=rag, segment=segment, renewal=renewal, q=q)
    view = await book_view(desk, user, where)
    owners = await desk.book.owners() if user.is_lead else []
    return render(
        request,
        "book.html",
        view=view,
        where=where,
        owners=owners,
        segments=await desk.book.segments(),
        windows=RENEWAL_WINDOWS,
    )


@pages.get("/accounts/{account_id}", response_class=HTMLResponse)
async def account_page(request: Request, user: SignedIn, account_id: str) -> HTMLResponse:
    """One account: chart, signals, timeline."""
    return render(request, "account.html", view=await account_view(desk_of(request), user, account_id))


@pages.get("/drafts", response_class=HTMLResponse)
async def drafts_page(
    request: Request, user: SignedIn, status: str = "pending", kind: str | None = None, account: str | None = None
) -> HTMLResponse:
    """The review queue, filtered by status, kind and account."""
    desk = desk_of(request)
    wanted = status if status in STATUSES else None
    drafts = await desk.records.drafts(
        status=wanted,
        kind=kind or None,
        account_id=account or None,
        owner=user.owner_filter,
        limit=200,
    )
    names = await desk.records.names([d.account_id for d in drafts if d.account_id])
    rows = [draft_row(d, desk.now(), names) for d in drafts]
    counts = await desk.records.draft_counts(owner=user.owner_filter)
    return render(
        request,
        "drafts.html",
        rows=rows,
        status=wanted or "all",
        statuses=STATUSES,
        counts=counts,
        kind=kind or "",
        account=account or "",
        reasons=list(REJECT_REASONS),
    )


@pages.get("/drafts/{draft_id}", response_class=HTMLResponse)
async def draft_page(request: Request, user: SignedIn, draft_id: str) -> HTMLResponse:
    """One draft, rendered, with the edit, approve and reject forms."""
    draft = await visible_draft(desk_of(request), user, draft_id)
    return render(request, "draft.html", draft=draft, reasons=list(REJECT_REASONS))


@pages.post("/drafts/{draft_id}/approve", dependencies=[CSRF])
async def approve(request: Request, user: SignedIn, draft_id: str) -> Response:
    """Approve as written."""
    desk = desk_of(request)
    await visible_draft(desk, user, draft_id)
    return await _act(request, f"/drafts/{draft_id}", desk.review.approve(draft_id, by=user.email), "Approved")


@pages.post("/drafts/{draft_id}/edit", dependencies=[CSRF])
async def edit(
    request: Request, user: SignedIn, draft_id: str, subject: Annotated[str, Form()], body: Annotated[str, Form()]
) -> Response:
    """Save a person's subject and body and approve the draft as edited."""
    desk = desk_of(request)
    await visible_draft(desk, user, draft_id)
    work = desk.review.edit(draft_id, by=user.email, subject=subject, body_text=body)
    return await _act(request, f"/drafts/{draft_id}", work, "Edited and approved")


@pages.post("/drafts/{draft_id}/reject", dependencies=[CSRF])
async def reject(
    request: Request,
    user: SignedIn,
    draft_id: str,
    reason: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    """Reject with a reason (a listed one or free text)."""
    desk = desk_of(request)
    await visible_draft(desk, user, draft_id)
    work = desk.review.reject(draft_id, by=user.email, reason=_reason(reason, note))
    return await _act(request, f"/drafts/{draft_id}", work, "Rejected")


@pages.post("/drafts", dependencies=[CSRF])
async def bulk(
    request: Request,
    user: SignedIn,
    action: Annotated[str, Form()],
    ids: Annotated[list[str] | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    """Approve or reject the ticked drafts."""
    desk = desk_of(request)
    done, failed = 0, []
    for draft_id in ids or []:
        try:
            await visible_draft(desk, user, draft_id)
            if action == "approve":
                await desk.review.approve(draft_id, by=user.email)
            elif action == "reject":
                await desk.review.reject(draft_id, by=user.email, reason=_reason(reason, note))
            else:
                raise HTTPException(status_code=400, detail=f"Unknown action {action!r}")
            done += 1
        except (ReviewError, HTTPException) as error:
            failed.append(f"{draft_id}: {getattr(error, 'detail', error)}")
    message = f"{action.title()}d {done} draft{'s' if done != 1 else ''}" + (f"; {'; '.join(failed)}" if failed else "")
    return back(request, "/drafts", message)


@pages.get("/qbrs", response_class=HTMLResponse)
async def qbrs_page(request: Request, user: SignedIn) -> HTMLResponse:
    """QBRs, newest first."""
    rows = await desk_of(request).book.artifacts(QBR_PAGES, owner=user.owner_filter)
    return render(request, "qbrs.html", rows=rows)


@pages.get("/qbrs/{qbr_id}", response_class=HTMLResponse)
async def qbr_page(request: Request, user: SignedIn, qbr_id: str) -> HTMLResponse:
    """One QBR, readable."""
    row = await _visible_artifact(request, user, QBR_PAGES, qbr_id)
    return render(request, "qbr.html", row=row, qbr=row["payload"])


@pages.get("/opportunities", response_class=HTMLResponse)
async def opportunities_page(request: Request, user: SignedIn) -> HTMLResponse:
    """Expansion opportunities, newest first."""
    rows = await desk_of(request).book.artifacts(OPPORTUNITIES, owner=user.owner_filter)
    return render(request, "opportunities.html", rows=rows)


@pages.get("/opportunities/{opportunity_id}", response_class=HTMLResponse)
async def opportunity_page(request: Request, user: SignedIn, opportunity_id: str) -> HTMLResponse:
    """One opportunity, readable."""
    row = await _visible_artifact(request, user, OPPORTUNITIES, opportunity_id)
    return render(request, "opportunity.html", row=row, opp=row["payload"])


async def _visible_artifact(request: Request, user: User, table: Any, artifact_id: str) -> dict[str, Any]:
    desk = desk_of(request)
    row = await desk.book.artifact(table, artifact_id)
    if row is None or not await can_see(desk, user, row["account_id"]):
        raise HTTPException(status_code=404, detail="Not found")
    return row


async def _act(request: Request, url: str, work: Any, done: str) -> Response:
    try:
        outcome = await work
    except ReviewError as error:
        return back(request, url, f"Not done: {error}")
    note = "" if outcome.changed else " (nothing changed: already decided)"
    delivered = "; the draft is now in the mailbox (unsent)" if outcome.delivered else ""
    return back(request, url, f"{done}{note}{delivered}")


def _reason(reason: str, note: str) -> str:
    reason, note = reason.strip(), note.strip()
    if reason in ("", "other"):
        return note
    return f"{reason}: {note}" if note else reason


async def _audit_sign_in(desk: Desk, email: str, client: str, artifact: str) -> None:
    await desk.records.store.record_audit(
        AuditEntry(
            artifact=artifact,
            target=email,
            idempotency_key=f"{artifact}:{uuid.uuid4().hex}",
            task_type="desk",
            detail={"client": client},
            at=desk.now(),
        )
    )
