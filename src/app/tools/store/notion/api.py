"""Notion API access for the Notion store: notion-client 3.x behind a shared rate limit, bounded retries, clear errors.

Every HTTP request (retries included) first waits on one `RequestThrottle` per integration token and event loop,
which spaces requests just over `1 / requests_per_s` apart (no bursts) and is paused by a 429's `Retry-After` for
every caller at once. notion-client's own retries are off so that only one layer retries: 429 always (honouring
`Retry-After`); 5xx, 409 conflicts and timeouts with bounded exponential back-off, except where a retry could
duplicate a write (`create_page` retries only after a lookup by key finds nothing). 400/401/403/404 fail at once
with a message that names the object and says what to check; the token never appears in a message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from aiolimiter import AsyncLimiter
from notion_client import AsyncClient
from notion_client.errors import HTTPResponseError, RequestTimeoutError
from notion_client.helpers import extract_notion_id

from src.app.tools.ratelimit import SharedPacer
from src.app.tools.retry_after import retry_after_seconds

log = structlog.get_logger(__name__)

NOTION_VERSION = "2025-09-03"
PAGE_SIZE = 100
"""Results per data source query (Notion's maximum)."""


class NotionError(RuntimeError):
    """A Notion request that failed for good, with a message naming the object; never contains the token."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class NotionServerError(NotionError):
    """Notion answered 5xx (or 409) or not at all: the request may or may not have been applied."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry 429s, 5xx answers and timeouts."""

    max_attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0

    def backoff(self, attempt: int) -> float:
        """Exponential back-off before retry number `attempt` (1-based), capped."""
        return float(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))


SPACING_MARGIN = 1.02
"""Requests are spaced 2% wider than the rate asks, so network jitter never packs one too many into a second."""


class RequestThrottle:
    """Spaces requests `SPACING_MARGIN / requests_per_s` apart; `pause` holds every caller (a 429's Retry-After)."""

    def __init__(self, requests_per_s: float) -> None:
        self._limiter = AsyncLimiter(1, SPACING_MARGIN / requests_per_s)
        self._resume_at = 0.0

    async def wait(self) -> None:
        """Wait until a pause is over and this request's slot has come."""
        loop = asyncio.get_running_loop()
        while (delay := self._resume_at - loop.time()) > 0:
            await asyncio.sleep(delay)
        await self._limiter.acquire()

    def pause(self, seconds: float) -> None:
        """Let no request through for `seconds` from now."""
        self._resume_at = max(self._resume_at, asyncio.get_running_loop().time() + seconds)


_THROTTLES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, float], RequestThrottle]] = (
    weakref.WeakKeyDictionary()
)


def shared_throttle(token_digest: str, requests_per_s: float) -> RequestThrottle:
    """The process's throttle for one token (by digest) and rate, on the running event loop."""
    per_loop = _THROTTLES.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault((token_digest, requests_per_s), RequestThrottle(requests_per_s))


def notion_id(value: str) -> str:
    """A Notion id from an id or a Notion URL (dashed form), else the value unchanged."""
    return extract_notion_id(value) or value.strip()


class NotionAPI:
    """The few Notion endpoints the store uses; construction does no I/O."""

    def __init__(
        self,
        *,
        token: str,
        base_url: str = "https://api.notion.com",
        requests_per_s: float = 3.0,
        retry: RetryPolicy | None = None,
        timeout_s: float = 30.0,
        shared_pacer: SharedPacer | None = None,
    ) -> None:
        self._token = token
        self._shared_pacer = shared_pacer
        self._throttle_key = (hashlib.sha256(token.encode()).hexdigest()[:16], requests_per_s)
        self._retry = retry or RetryPolicy()
        http = httpx.AsyncClient(event_hooks={"request": [self._before_send]})
        # Not `async with`: notion-client would replace this httpx client (and its throttling hook) with a fresh one.
        self._client = AsyncClient(
            client=http,
            auth=token,
            base_url=base_url.rstrip("/"),
            notion_version=NOTION_VERSION,
            timeout_ms=int(timeout_s * 1000),
            retry=False,
            logger=logging.getLogger("notion_client"),
            log_level=logging.ERROR,
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    async def data_source_id(self, database_id: str) -> str:
        """The first data source of a database (an id that is itself a data source id is accepted too)."""
        database_id = notion_id(database_id)
        try:
            database = await self._call(f"database {database_id}", self._client.databases.retrieve, database_id)
        except NotionError as error:
            if error.status != 404:
                raise
            try:
                source = await self.retrieve_data_source(database_id)
            except NotionError:
                raise error from None
            return str(source["id"])
        sources = database.get("data_sources") or []
        if not sources:
            raise NotionError(f"Notion database {database_id} has no data source to read")
        if len(sources) > 1:
            log.warning("notion_database_has_several_data_sources", database_id=database_id, using=sources[0]["id"])
        return str(sources[0]["id"])

    async def retrieve_data_source(self, data_source_id: str) -> dict[str, Any]:
        """A data source with its property schema."""
        result: dict[str, Any] = await self._call(
            f"data source {data_source_id}", self._client.data_sources.retrieve, data_source_id
        )
        return result

    async def query(self, data_source_id: str, *, filter: Mapping[str, Any] | None = None) -> AsyncIterator[Any]:
        """Every page of a data source (matching `filter`), PAGE_SIZE per request, following `next_cursor`.

        A cursor Notion hands out a second time would loop forever: NotionError says so instead.
        """
        what = f"data source {data_source_id}"
        extra = {} if filter is None else {"filter": dict(filter)}
        async for page in self._paginate(
            what, self._client.data_sources.query, data_source_id=data_source_id, page_size=PAGE_SIZE, **extra
        ):
            yield page

    async def property_items(self, page_id: str, property_id: str) -> list[dict[str, Any]]:
        """Every item of one page property (the property items endpoint), for a relation Notion truncated."""
        return [
            dict(item)
            async for item in self._paginate(
                f"property {property_id} of page {page_id}",
                self._client.pages.properties.retrieve,
                page_id=page_id,
                property_id=property_id,
            )
        ]

    async def _paginate(self, what: str, endpoint: Callable[..., Awaitable[Any]], **kw: Any) -> AsyncIterator[Any]:
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            args: dict[str, Any] = dict(kw) if cursor is None else {**kw, "start_cursor": cursor}
            response = await self._call(what, endpoint, **args)
            for item in response.get("results") or []:
                yield item
            cursor = response.get("next_cursor") if response.get("has_more") else None
            if not cursor:
                return
            if cursor in seen:
                raise NotionError(
                    f"Notion returned the pagination cursor {cursor!r} twice for {what}; stopped reading instead "
                    "of looping (retry later; if it persists, report it to Notion)"
                )
            seen.add(cursor)

    async def find_page(self, data_source_id: str, filter: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first page matching `filter`, if any (one request)."""
        response = await self._call(
            f"data source {data_source_id}",
            self._client.data_sources.query,
            data_source_id=data_source_id,
            filter=dict(filter),
            page_size=1,
        )
        results = response.get("results") or []
        return dict(results[0]) if results else None

    async def update_page(self, page_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
        """Set some properties of a page (idempotent, so 5xx are retried)."""
        result: dict[str, Any] = await self._call(
            f"page {page_id}", self._client.pages.update, page_id=page_id, properties=dict(properties)
        )
        return result

    async def create_page(
        self,
        data_source_id: str,
        properties: Mapping[str, Any],
        children: Sequence[Mapping[str, Any]],
        *,
        find_existing: Callable[[], Awaitable[dict[str, Any] | None]] | None = None,
    ) -> dict[str, Any]:
        """Create a page in a data source (with up to 100 children).

        After a 5xx or a timeout the page may or may not exist, so a create is retried only when `find_existing`
        (a lookup by the page's idempotency key) is given and finds nothing; a page it finds is returned instead.

        Raises:
            NotionServerError: Notion kept failing, or failed once and there is no `find_existing`.
        """
        what = f"data source {data_source_id}"
        parent = {"type": "data_source_id", "data_source_id": data_source_id}
        for attempt in range(1, self._retry.max_attempts + 1):
            try:
                result: dict[str, Any] = await self._call(
                    what,
                    self._client.pages.create,
                    parent=parent,
                    properties=dict(properties),
                    children=list(children),
                    retry_server_errors=False,
                )
                return result
            except NotionServerError:
                if find_existing is None or attempt == self._retry.max_attempts:
                    raise
                existing = await find_existing()
                if existing is not None:
                    return existing
                await self._back_off(what, "create failed and no page with its key exists", attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def append_children(self, block_id: str, children: Sequence[Mapping[str, Any]]) -> None:
        """Append up to 100 blocks to a page or block."""
        await self._call(f"page {block_id}", self._client.blocks.children.append, block_id=block_id, children=children)

    async def _before_send(self, request: httpx.Request) -> None:
        await shared_throttle(*self._throttle_key).wait()
        if self._shared_pacer is not None:  # every worker of the tenant, under one token's rate
            await self._shared_pacer.wait(self._throttle_key[0])

    async def _call(
        self,
        what: str,
        endpoint: Callable[..., Awaitable[Any]],
        *args: Any,
        retry_server_errors: bool = True,
        **kw: Any,
    ) -> Any:
        policy = self._retry
        for attempt in range(1, policy.max_attempts + 1):
            last = attempt == policy.max_attempts
            try:
                return await endpoint(*args, **kw)
            except HTTPResponseError as error:
                if error.status == 429 and not last:
                    delay = self._retry_after(error.headers) or policy.backoff(attempt)
                    log.warning("notion_rate_limited", target=what, retry_in_s=delay, attempt=attempt)
                    shared_throttle(*self._throttle_key).pause(delay)
                    continue
                if _transient(error.status) and retry_server_errors and not last:
                    await self._back_off(what, f"{error.status} {error.code}", attempt)
                    continue
                raise self._failure(what, error, attempt) from error
            except json.JSONDecodeError as error:  # a 2xx whose body is not JSON (a proxy's page): like a 5xx
                if retry_server_errors and not last:
                    await self._back_off(what, "reply is not JSON", attempt)
                    continue
                message = f"Notion answered {what} with a body that is not JSON after {attempt} attempt(s)"
                raise NotionServerError(message) from error
            except (RequestTimeoutError, httpx.TransportError) as error:
                if retry_server_errors and not last:
                    await self._back_off(what, type(error).__name__, attempt)
                    continue
                message = f"Notion did not answer for {what} ({type(error).__name__}) after {attempt} attempt(s)"
                raise NotionServerError(message) from error
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _back_off(self, what: str, reason: str, attempt: int) -> None:
        delay = self._retry.backoff(attempt)
        log.warning("notion_request_retry", target=what, reason=reason, retry_in_s=delay, attempt=attempt)
        await asyncio.sleep(delay)

    def _retry_after(self, headers: httpx.Headers) -> float | None:
        seconds = retry_after_seconds(headers.get("retry-after"))
        return None if seconds is None else min(seconds, self._retry.max_retry_after_s)

    def _failure(self, what: str, error: HTTPResponseError, attempts: int) -> NotionError:
        status, code = error.status, str(getattr(error.code, "value", error.code))
        detail = f"{status} {code}"
        if status == 404:
            message = f"Notion {what} not found or not shared with the integration ({detail})"
        elif status == 401:
            message = f"Notion rejected the integration token for {what} ({detail}): check CSM_NOTION_TOKEN"
        elif status == 403:
            message = (
                f"The Notion integration may not access {what} ({detail}): share it with the integration "
                "and give it read, update and insert content capabilities"
            )
        elif status == 429:
            message = f"Notion kept rate-limiting requests for {what} ({detail}) after {attempts} attempts"
        elif _transient(status):
            message = f"Notion failed on {what} ({detail}) after {attempts} attempt(s)"
        else:
            message = f"Notion rejected the request for {what} ({detail}): {error}"
        message = message.replace(self._token, "***") if self._token else message
        kind = NotionServerError if _transient(status) else NotionError
        return kind(message, status=status, code=code)


def _transient(status: int) -> bool:
    """5xx, and 409 conflict_error (Notion asks to retry a transaction that collided)."""
    return status >= 500 or status == 409
