"""The desk's web application: FastAPI with server-rendered Jinja2 pages, signed session cookies and CSRF tokens.

`create_app(settings)` builds it on the configured store. Every page and `/api/` route needs a signed-in user;
every state-changing request needs the session's CSRF token (a form's hidden `csrf_token`, or the
`X-CSRF-Token` header for the JSON API). A rep sees and acts only on the accounts they own (`rep_email`);
a lead sees the whole book. Failed sign-ins are audited and limited per email and per client address.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from src.app.analysis.health import SIGNAL_MAX_POINTS
from src.app.config import CSMSettings
from src.app.context import mailbox_from_settings, store_from_settings
from src.app.desk.auth import SignInLimiter
from src.app.desk.review import DraftReview
from src.app.tools.store.sql_book import BookStore
from src.app.tools.store.sql_review import ReviewStore, review_store

SESSION_COOKIE = "csm_desk"
SESSION_MAX_AGE_S = 12 * 3600
CSRF_HEADER = "x-csrf-token"
SECRET_FILE = "desk-secret.key"


@dataclass(frozen=True)
class User:
    """The signed-in person."""

    email: str
    role: str

    @property
    def is_lead(self) -> bool:
        """Leads see the whole book."""
        return self.role == "lead"

    @property
    def owner_filter(self) -> str | None:
        """The owner every query of this user is limited to (None: everything)."""
        return None if self.is_lead else self.email


@dataclass(frozen=True)
class Desk:
    """What the routes work with: settings, the review actions, the book and the sign-in limiter."""

    settings: CSMSettings
    records: ReviewStore
    review: DraftReview
    book: BookStore
    limiter: SignInLimiter
    templates: Jinja2Templates

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)


class NotSignedIn(Exception):
    """Raised by `signed_in` when the request has no session user."""


def desk_of(request: Request) -> Desk:
    """The desk the app was built with."""
    desk: Desk = request.app.state.desk
    return desk


def signed_in(request: Request) -> User:
    """The session's user (NotSignedIn otherwise: a redirect to /login, or 401 under /api/)."""
    email, role = request.session.get("user"), request.session.get("role")
    if not isinstance(email, str) or role not in ("lead", "rep"):
        raise NotSignedIn
    return User(email=email, role=str(role))


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """Refuse (403) a state-changing request without the session's CSRF token."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = str((await request.form()).get("csrf_token") or "")
    expected = request.session.get("csrf")
    if not sent or not isinstance(expected, str) or not secrets.compare_digest(sent, expected):
        raise HTTPException(status_code=403, detail="Missing or wrong CSRF token")


def session_secret(settings: CSMSettings) -> str:
    """`CSM_DESK_SECRET_KEY`, else a random key kept (0600) in the data folder so sessions survive restarts."""
    if settings.desk_secret_key is not None:
        return settings.desk_secret_key.get_secret_value()
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def create_app(settings: CSMSettings) -> FastAPI:
    """The desk on the store `settings` configure (SQLite in the data folder by default)."""
    store = store_from_settings(settings)
    records = review_store(store)
    if records is None:
        raise RuntimeError("The review desk needs the SQL store (CSM_DATABASE_URL or the embedded SQLite)")
    mailbox = mailbox_from_settings(settings, store)
    package = resources.files("src.app.desk")
    templates = Jinja2Templates(directory=str(package / "templates"))
    templates.env.filters["money"] = _money
    templates.env.filters["arrow"] = _arrow
    desk = Desk(
        settings=settings,
        records=records,
        review=DraftReview(records, mailbox, clock=lambda: datetime.now(UTC)),
        book=BookStore(records.store, max_points=dict(SIGNAL_MAX_POINTS)),
        limiter=SignInLimiter(),
        templates=templates,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Read new score history now, so the first book view after a big scan does not wait for it.
        warming = asyncio.create_task(desk.book.refresh())
        yield
        await warming
        for client in (mailbox, store):
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()

    app = FastAPI(title="CSM review desk", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.desk = desk
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        same_site="lax",
        https_only=False,
    )
    app.mount("/static", StaticFiles(directory=str(package / "static")), name="static")

    @app.exception_handler(NotSignedIn)
    async def _to_sign_in(request: Request, _: NotSignedIn) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "Sign in first"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    from src.app.desk.api import api
    from src.app.desk.pages import pages

    app.include_router(pages)
    app.include_router(api, prefix="/api")
    return app


def _money(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1_000_000:
        return f"${value / 1_000_000:.1f}M"
    return f"${value / 1_000:.0f}k" if abs(value) >= 10_000 else f"${value:,.0f}"


def _arrow(delta: float | None) -> str:
    if delta is None or abs(delta) < 0.5:
        return "→"
    return "↑" if delta > 0 else "↓"
