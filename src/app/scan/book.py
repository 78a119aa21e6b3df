"""A whole-book health scan, page by page, in this process.

Each page of `SCAN_PAGE_SIZE` accounts is read in one query, scored at once (`analysis.health_batch`) and its
scores saved in one bulk insert. Worker processes were measured and dropped (bench/RESULTS.md, issue 17): with
the page scored by array operations, a second process on this 2-core machine made the scan slower, not faster.
A distributed executor may still score page ranges elsewhere with `score_page`.
"""

from __future__ import annotations

from typing import Any

from src.app.analysis.signals import DETAIL_FIELDS
from src.app.scan.page import PageResult, ScanSpec, score_page
from src.app.scan.progress import page_done
from src.app.tools.store import AccountPages, CSMStore

SCAN_PAGE_SIZE = 2000
"""Accounts scored, checked and saved together; a whole-book scan holds one page of records at a time."""


async def whole_book(store: CSMStore, spec: ScanSpec) -> list[PageResult]:
    """Every active account's page results, each page reported to the scan's progress listener when done.

    A whole-book scan reads the records without their `DETAIL_FIELDS`: nothing it scores or alerts on uses them.
    """
    if not isinstance(store, AccountPages):
        return [_reported(await score_page(store, spec, await store.load_accounts(None, active_only=True)))]
    pages = store.iter_accounts(active_only=True, page_size=SCAN_PAGE_SIZE, omit=DETAIL_FIELDS)
    return [_reported(await score_page(store, spec, records)) async for records in pages]


def _reported(page: PageResult) -> PageResult:
    page_done(page.scanned)
    return page


def in_pages(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Records already loaded, cut into scan pages."""
    return [records[start : start + SCAN_PAGE_SIZE] for start in range(0, len(records), SCAN_PAGE_SIZE)]
