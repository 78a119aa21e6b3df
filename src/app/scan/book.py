"""A whole-book health scan, page by page: here, and for a large book in helper processes too.

The book is split into id ranges of `SCAN_PAGE_SIZE` accounts up front. This process and its helpers take the
next range from one queue until none is left; a helper that fails hands its range back, and this process scores
every range left over. Helpers are started only for a book of at least `HELPER_MIN_PAGES` pages whose database
another process can open, since each costs about half a second to start.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from typing import Any

import structlog

from src.app.analysis.signals import DETAIL_FIELDS
from src.app.scan.helper import ScanHelper, ScanHelperError
from src.app.scan.page import PageResult, ScanSpec, score_page
from src.app.scan.progress import page_done
from src.app.tools.store import AccountPages, AccountRanges, CSMStore, PageBounds

log = structlog.get_logger(__name__)

SCAN_PAGE_SIZE = 2000
"""Accounts scored, checked and saved together; a whole-book scan holds one page of records at a time."""
HELPER_MIN_PAGES = 10
"""Fewest pages for which a whole-book scan starts helper processes."""
HELPER_PAGES_IN_FLIGHT = 2
"""Pages sent to a helper ahead of their results, so it never waits while this process is busy scoring (one
at a time near the end, so this process is not left waiting on a helper's queue)."""
MAX_AUTO_PROCESSES = 4
"""Most processes a scan uses when `CSM_SCAN_PROCESSES` is unset (one per CPU up to this)."""


async def whole_book(store: CSMStore, spec: ScanSpec, *, processes: int | None) -> list[PageResult]:
    """Every active account's page results, scored here and, for a large book, in helper processes too.

    A whole-book scan reads the records without their `DETAIL_FIELDS`: nothing it scores or alerts on uses them.
    """
    if not isinstance(store, AccountRanges):
        if not isinstance(store, AccountPages):
            return [_reported(await score_page(store, spec, await store.load_accounts(None, active_only=True)))]
        pages = store.iter_accounts(active_only=True, page_size=SCAN_PAGE_SIZE, omit=DETAIL_FIELDS)
        return [_reported(await score_page(store, spec, records)) async for records in pages]
    bounds = await store.page_bounds(page_size=SCAN_PAGE_SIZE)
    helpers = await _start_helpers(store, spec, _helper_count(processes, len(bounds)))
    todo = deque(enumerate(bounds))
    results: dict[int, PageResult] = {}

    async def here() -> None:
        while todo:
            index, (after, upto) = todo.popleft()
            records = await store.accounts_in_range(after, upto, omit=DETAIL_FIELDS)
            results[index] = _reported(await score_page(store, spec, records))

    async def there(helper: ScanHelper) -> None:
        sent: deque[tuple[int, PageBounds]] = deque()  # the next page waits in the helper while it scores one
        try:
            while todo or sent:
                while todo and len(sent) < (HELPER_PAGES_IN_FLIGHT if len(todo) > HELPER_PAGES_IN_FLIGHT else 1):
                    sent.append(todo.popleft())
                    await helper.submit(sent[-1][1])
                results[sent[0][0]] = _reported(await helper.collect())
                sent.popleft()
        except ScanHelperError as error:
            log.warning("scan_helper_failed", error=str(error), pages=[index for index, _ in sent])
            todo.extendleft(reversed(sent))

    workers = [asyncio.ensure_future(here()), *(asyncio.ensure_future(there(helper)) for helper in helpers)]
    try:
        await asyncio.gather(*workers)
        await here()  # pages a failed helper handed back after this process had run out of pages
    finally:
        for worker in workers:  # after a failure here, the helpers stop at once
            worker.cancel()
        await asyncio.gather(*(helper.close() for helper in helpers))
    return [results[index] for index in sorted(results)]


def _reported(page: PageResult) -> PageResult:
    page_done(page.scanned)
    return page


def in_pages(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Records already loaded, cut into scan pages."""
    return [records[start : start + SCAN_PAGE_SIZE] for start in range(0, len(records), SCAN_PAGE_SIZE)]


def _helper_count(configured: int | None, pages: int) -> int:
    """Helper processes for a scan of `pages` pages: none for a small book, else the configured processes - 1."""
    processes = configured if configured is not None else min(os.cpu_count() or 1, MAX_AUTO_PROCESSES)
    return 0 if pages < HELPER_MIN_PAGES else min(processes - 1, pages - 1)


async def _start_helpers(store: AccountRanges, spec: ScanSpec, count: int) -> list[ScanHelper]:
    """`count` helper processes on the store's database; none when it has no shareable URL or they cannot start."""
    url = store.process_url() if count else None
    if url is None:
        return []
    helpers: list[ScanHelper] = []
    try:
        for _ in range(count):
            helpers.append(await ScanHelper.start(url, spec, DETAIL_FIELDS))
    except (OSError, ScanHelperError) as error:
        log.warning("scan_helpers_unavailable", error=str(error), started=len(helpers))
    return helpers
