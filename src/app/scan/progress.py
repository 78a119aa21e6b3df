"""Progress of a whole-book scan: accounts done, reported page by page to whoever listens (the `csm` command).

A listener is set for the duration of a call with `scan_progress(callback)`; it is a context variable, so the
graph's nodes, which run inside that call, see it without importing any CLI code, and concurrent scans in other
contexts do not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

PageDone = Callable[[int], None]
"""Called with the number of accounts of each page once the page is scored and saved."""

_LISTENER: ContextVar[PageDone | None] = ContextVar("scan_progress", default=None)


@contextmanager
def scan_progress(callback: PageDone) -> Iterator[None]:
    """Report every scanned page to `callback` during the block."""
    token = _LISTENER.set(callback)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def page_done(accounts: int) -> None:
    """Tell the listener, if any, that a page of `accounts` accounts is done (its errors never stop the scan)."""
    listener = _LISTENER.get()
    if listener is not None:
        try:
            listener(accounts)
        except Exception:  # a broken progress display must not fail the scan
            _LISTENER.set(None)
