"""The desk's shared core: the signed-in user, the desk's clients, session and CSRF helpers (routes import this)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates

from src.app.config import CSMSettings
from src.app.desk.auth import SignInLimiter
from src.app.desk.review import DraftReview
from src.app.tools.store.sql_book import BookStore
from src.app.tools.store.sql_review import ReviewStore

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
    """`CSM_DESK_SESSION_KEY`, else a random key kept (0600) in the data folder so sessions survive restarts."""
    if settings.desk_session_key is not None:
        return settings.desk_session_key.get_secret_value()
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
