"""Who may use the desk: argon2 password hashes, the sign-in check, and a limit on failed sign-ins."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from src.app.tools.store.sql_review import DeskUser, ReviewStore

MIN_PASSWORD_LENGTH = 8
MAX_FAILURES = 5
"""Failed sign-ins allowed per email and per client address within `FAILURE_WINDOW_S`."""
FAILURE_WINDOW_S = 15 * 60

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password anyone has")
"""Verified against when the email is unknown, so a wrong email costs as long as a wrong password."""


def hash_password(password: str) -> str:
    """The argon2id hash of a password (ValueError when it is too short)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"A desk password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


async def authenticate(records: ReviewStore, email: str, password: str) -> DeskUser | None:
    """The user whose email and password these are, or None."""
    user = await records.user(email.strip().lower())
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


class SignInLimiter:
    """Counts failed sign-ins per key (an email, a client address) in a sliding window."""

    def __init__(
        self,
        *,
        limit: int = MAX_FAILURES,
        window_s: float = FAILURE_WINDOW_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._now = now
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, *keys: str) -> bool:
        """Whether any key has used up its failed attempts."""
        return any(len(self._recent(key)) >= self._limit for key in keys)

    def failed(self, *keys: str) -> None:
        """Count one failed attempt against each key."""
        for key in keys:
            self._recent(key).append(self._now())

    def succeeded(self, *keys: str) -> None:
        """Forget the failures of these keys."""
        for key in keys:
            self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float]:
        attempts = self._failures.setdefault(key, deque())
        while attempts and attempts[0] <= self._now() - self._window_s:
            attempts.popleft()
        return attempts
