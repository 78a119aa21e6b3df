"""The desk's web application: FastAPI with server-rendered Jinja2 pages, signed session cookies and CSRF tokens.

`create_app(settings)` builds it on the configured store. Every page and `/api/` route needs a signed-in user;
every state-changing request needs the session's CSRF token (a form's hidden `csrf_token`, or the
`X-CSRF-Token` header for the JSON API). A rep sees and acts only on the accounts they own (`rep_email`);
a lead sees the whole book. Failed sign-ins are audited and limited per email and per client address.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from src.app.analysis.health import SIGNAL_MAX_POINTS
from src.app.config import CSMSettings
from src.app.context import mailbox_from_settings, store_from_settings
from src.app.desk.api import api
from src.app.desk.auth import SignInLimiter
from src.app.desk.core import SESSION_COOKIE, SESSION_MAX_AGE_S, Desk, NotSignedIn, session_secret
from src.app.desk.pages import pages
from src.app.desk.review import DraftReview
from src.app.tools.store.sql_book import BookStore
from src.app.tools.store.sql_review import review_store

log = structlog.get_logger(__name__)


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
        # Catch up score history the book does not hold (a store an older version wrote) before the first view.
        warming = asyncio.create_task(_warm(desk))
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

    app.include_router(pages)
    app.include_router(api, prefix="/api")
    return app


async def _warm(desk: Desk) -> None:
    """Catch up the book before the first view (see `BookStore.refresh`); a failure is logged, the view retries."""
    try:
        await desk.book.refresh()
    except Exception as error:  # noqa: BLE001 - warming up is optional; the book page reports a real failure
        log.warning("desk_warm_up_failed", error_type=type(error).__name__, error=str(error)[:300])


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
