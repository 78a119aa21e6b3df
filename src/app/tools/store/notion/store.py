"""`CSMStore` on Notion: accounts read from a Notion database, scores written back, QBR and expansion pages.

The inner store (SQLite/PostgreSQL) stays the system of record for scores, alerts, drafts, the audit log, runs
and idempotency keys; Notion adds the account book and the pages people read.

- Accounts: one full read of the accounts data source (100 pages per query, following `next_cursor`) per
  `load_accounts()` of the whole book; reads of given ids within `snapshot_ttl_s` of it are served from that
  snapshot, so a scan makes ⌈N/100⌉ query requests. A malformed page is skipped and reported in `load_errors`.
- Scores: `save_scores` writes `CSM Health Score`, `CSM Health RAG` and `CSM Last Scan` only on pages whose score
  or RAG differs from what the page held when read (one pages.update per changed account).
- QBRs and opportunities: a page is created only when the inner store says the artifact is new. When it is not
  new (a rerun) and the database has a `CSM Key` property, a page with that key is looked up and created only if
  missing, which repairs a run that failed between the two writes. A create answered by 5xx is retried only
  after the same lookup finds nothing, so a page is never created twice. Bodies go in with the first 100 blocks
  and `blocks.children.append` batches of 100; rich text is split at 2,000 characters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog

from src.app.config import CSMSettings
from src.app.schemas import CSMHealthScore, ExpansionOpportunity, QBRContent
from src.app.tools.ratelimit import per_second_windows, shared_pacer
from src.app.tools.store import (
    AuditEntry,
    CSMStore,
    SavedArtifact,
    ScoreHistory,
    UnreadableAccount,
)
from src.app.tools.store.forwarding import InnerStoreRecords
from src.app.tools.store.notion.api import NotionAPI, NotionError, NotionServerError, RetryPolicy, notion_id
from src.app.tools.store.notion.blocks import Block, batches, opportunity_blocks, qbr_blocks
from src.app.tools.store.notion.properties import (
    AccountLink,
    NotionAccount,
    NotionPageError,
    account_from_page,
    build_properties,
)

log = structlog.get_logger(__name__)

KEY_PROPERTY = "CSM Key"
"""Rich-text property of the QBR and expansion databases holding each page's idempotency key."""
FATAL_STATUSES = frozenset({401, 403})
"""Write-back errors that stop the scan (every other request would fail the same way)."""


class NotionStore(InnerStoreRecords):
    """`CSMStore` reading accounts from Notion and publishing scores, QBRs and opportunities to it."""

    def __init__(
        self,
        api: NotionAPI,
        inner: CSMStore,
        *,
        accounts_database_id: str,
        qbr_database_id: str | None = None,
        expansion_database_id: str | None = None,
        snapshot_ttl_s: float = 900.0,
        write_concurrency: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._inner = inner
        self._databases = {
            "accounts": notion_id(accounts_database_id),
            "qbr": notion_id(qbr_database_id) if qbr_database_id else None,
            "expansion": notion_id(expansion_database_id) if expansion_database_id else None,
        }
        self._snapshot_ttl_s = snapshot_ttl_s
        self._write_concurrency = write_concurrency
        self._clock = clock
        self._accounts: dict[str, NotionAccount] = {}
        self._loaded_at: float | None = None
        self._sources: dict[str, str] = {}
        self._schemas: dict[str, dict[str, str]] = {}
        self._read_lock = asyncio.Lock()
        self.load_errors: list[NotionPageError] = []
        """Pages skipped by the last read of the accounts database, each naming its bad properties."""
        self.write_errors: list[str] = []
        """Score write-backs that failed (the scores themselves are saved in the inner store)."""

    @classmethod
    def from_settings(cls, settings: CSMSettings, inner: CSMStore, *, retry: RetryPolicy | None = None) -> NotionStore:
        """A Notion store from `CSM_NOTION_*` settings around `inner` (which it closes in `aclose`)."""
        if settings.notion_token is None or not settings.notion_accounts_database_id:
            raise ValueError("The Notion store needs CSM_NOTION_TOKEN and CSM_NOTION_ACCOUNTS_DATABASE_ID")
        api = NotionAPI(
            token=settings.notion_token.get_secret_value(),
            base_url=settings.notion_base_url,
            requests_per_s=settings.notion_requests_per_s,
            retry=retry,
            shared_pacer=shared_pacer(settings, "notion", per_second_windows(settings.notion_requests_per_s)),
        )
        return cls(
            api,
            inner,
            accounts_database_id=settings.notion_accounts_database_id,
            qbr_database_id=settings.notion_qbr_database_id,
            expansion_database_id=settings.notion_expansion_database_id,
        )

    async def aclose(self) -> None:
        """Close the Notion connection pool and the inner store."""
        await self._api.aclose()
        close: Callable[[], Awaitable[None]] | None = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()

    # -- accounts ----------------------------------------------------------------------------------------------

    def unreadable_accounts(self) -> list[UnreadableAccount]:
        """The pages the last read of the accounts database skipped, each naming its bad properties."""
        return [
            UnreadableAccount(account_id=error.account_id or f"notion:{error.page_id}", message=str(error))
            for error in self.load_errors
        ]

    async def upsert_accounts(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Refused: accounts live in the Notion database, where people edit them."""
        raise NotionError(
            f"Accounts are read from the Notion database {self._databases['accounts']}; add or edit them there "
            f"(refused to write {len(records)} record(s))"
        )

    async def load_accounts(
        self, account_ids: Sequence[str] | None = None, *, active_only: bool = True
    ) -> list[dict[str, Any]]:
        """Account records from Notion, all (always a fresh read) or the given ids (from a recent read), by id."""
        if isinstance(account_ids, str):
            raise TypeError(f"account_ids must be a sequence of ids, not the string {account_ids!r}")
        if account_ids is None:
            await self._read_accounts()
        elif not self._snapshot_is_fresh():
            async with self._read_lock:
                if not self._snapshot_is_fresh():
                    await self._read_accounts()
        wanted = self._accounts.keys() if account_ids is None else set(account_ids) & self._accounts.keys()
        records = [dict(self._accounts[account_id].record) for account_id in sorted(wanted)]
        return [r for r in records if r.get("status") == "active"] if active_only else records

    def _snapshot_is_fresh(self) -> bool:
        return self._loaded_at is not None and self._clock() - self._loaded_at < self._snapshot_ttl_s

    async def _read_accounts(self) -> None:
        source = await self._source_id("accounts")
        accounts: dict[str, NotionAccount] = {}
        errors: list[NotionPageError] = []
        async for page in self._api.query(source):
            if page.get("in_trash") or page.get("archived") or page.get("is_archived"):
                continue  # a page in the trash or archived is not part of the book
            try:
                account = account_from_page(await self._complete_relations(page))
                account_id = str(account.record["account_id"])
                if account_id in accounts:
                    other = accounts[account_id].page_id
                    raise NotionPageError(account.page_id, [f"duplicate account id {account_id!r} (page {other})"])
            except NotionPageError as error:
                log.warning("notion_page_skipped", page_id=error.page_id, problems=error.problems)
                errors.append(error)
                continue
            accounts[account_id] = account
        self._accounts, self.load_errors, self._loaded_at = accounts, errors, self._clock()
        log.info("notion_accounts_read", accounts=len(accounts), skipped=len(errors))

    async def _complete_relations(self, page: dict[str, Any]) -> dict[str, Any]:
        """The page with every relation Notion truncated (`has_more`) read in full from the property items."""
        properties = dict(page.get("properties") or {})
        truncated = [
            name for name, value in properties.items() if value.get("type") == "relation" and value.get("has_more")
        ]
        for name in truncated:
            value = properties[name]
            items = await self._api.property_items(str(page["id"]), str(value["id"]))
            related = [item["relation"] for item in items if isinstance(item.get("relation"), dict)]
            properties[name] = {**value, "relation": related, "has_more": False}
        return {**page, "properties": properties} if truncated else page

    # -- scores ------------------------------------------------------------------------------------------------

    async def latest_scores(self, account_ids: Sequence[str] | None = None) -> dict[str, CSMHealthScore]:
        """The most recent stored score per account (inner store)."""
        return await self._inner.latest_scores(account_ids)

    async def score_history(
        self, account_ids: Sequence[str], *, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, list[CSMHealthScore]]:
        """Stored scores per account, oldest first (inner store, when it keeps a history)."""
        if isinstance(self._inner, ScoreHistory):
            return await self._inner.score_history(account_ids, since=since, until=until)
        latest = await self._inner.latest_scores(account_ids)
        return {account_id: [score] for account_id, score in latest.items()}

    async def latest_qbr(self, account_id: str, period: str | None = None) -> QBRContent | None:
        """The newest stored QBR of an account (inner store)."""
        return await self._inner.latest_qbr(account_id, period) if isinstance(self._inner, ScoreHistory) else None

    async def save_scores(self, scores: Sequence[CSMHealthScore]) -> None:
        """Append scores to the inner store's history, then update the Notion pages whose score or RAG changed.

        Raises:
            NotionError: the integration lost access (401/403); other per-page failures go to `write_errors`.
        """
        await self._inner.save_scores(scores)
        changed = [
            (self._accounts[s.account_id], s)
            for s in scores
            if s.account_id in self._accounts and _score_changed(self._accounts[s.account_id], s)
        ]
        self.write_errors = []
        slots = asyncio.Semaphore(self._write_concurrency)
        try:
            async with asyncio.TaskGroup() as group:
                for account, score in changed:
                    group.create_task(self._write_score(account, score, slots))
        except* NotionError as failures:
            raise failures.exceptions[0] from None
        log.info("notion_scores_written", changed=len(changed), failed=len(self.write_errors))

    async def _write_score(self, account: NotionAccount, score: CSMHealthScore, slots: asyncio.Semaphore) -> None:
        values: dict[str, Any] = {
            "score": {"number": round(score.score, 2)},
            "rag": {"select": {"name": score.rag}},
            "scanned": {"date": {"start": score.computed_at.isoformat()}},
        }
        properties = {name: values[role] for role, name in account.write_back.items()}
        async with slots:
            try:
                await self._api.update_page(account.page_id, properties)
            except NotionError as error:
                if error.status in FATAL_STATUSES:
                    raise
                log.warning("notion_score_write_failed", account_id=score.account_id, error=str(error))
                self.write_errors.append(f"account {score.account_id}: {error}")
                return
        self._accounts[score.account_id] = replace(account, score=round(score.score, 2), rag=score.rag)

    # -- QBR pages and expansion records ---------------------------------------------------------------------

    async def save_qbr(self, qbr: QBRContent, *, idempotency_key: str) -> SavedArtifact:
        """Store the QBR in the inner store and, when new there (or missing in Notion), create its Notion page."""
        saved = await self._inner.save_qbr(qbr, idempotency_key=idempotency_key)
        if self._databases["qbr"] is None:
            return saved
        latest = (await self._inner.latest_scores([qbr.account_id])).get(qbr.account_id)
        values = {
            "Account": self._link(qbr.account_id),
            "Account ID": qbr.account_id,
            "Period": qbr.period,
            "Trigger": qbr.trigger,
            "Health RAG": latest.rag if latest else None,
            "Health Score": latest.score if latest else None,
            "Date": datetime.now(UTC).date(),
        }
        title = f"QBR {qbr.period}: {qbr.account_name}"
        await self._publish("qbr", qbr.account_id, idempotency_key, saved, title, values, qbr_blocks(qbr))
        return saved

    async def save_opportunity(self, opportunity: ExpansionOpportunity, *, idempotency_key: str) -> SavedArtifact:
        """Store the opportunity in the inner store and, when new there (or missing in Notion), create its record."""
        saved = await self._inner.save_opportunity(opportunity, idempotency_key=idempotency_key)
        if self._databases["expansion"] is None:
            return saved
        account = self._accounts.get(opportunity.account_id)
        name = account.record.get("name") if account else None
        values = {
            "Account": self._link(opportunity.account_id),
            "Account ID": opportunity.account_id,
            "Opportunity Type": opportunity.opportunity_type,
            "Confidence": opportunity.confidence,
            "Estimated ARR Impact": opportunity.estimated_arr_impact,
            "Evidence": "\n".join(opportunity.evidence),
            "Talk Track": opportunity.recommended_talk_track,
            "Date": datetime.now(UTC).date(),
        }
        title = f"{name or opportunity.account_id}: {opportunity.opportunity_type} expansion"
        blocks = opportunity_blocks(opportunity)
        await self._publish("expansion", opportunity.account_id, idempotency_key, saved, title, values, blocks)
        return saved

    def _link(self, account_id: str) -> AccountLink:
        account = self._accounts.get(account_id)
        return AccountLink(account_id=account_id, page_id=account.page_id if account else None)

    async def _publish(
        self,
        kind: str,
        account_id: str,
        key: str,
        saved: SavedArtifact,
        title: str,
        values: Mapping[str, Any],
        blocks: Sequence[Block],
    ) -> None:
        source = await self._source_id(kind)
        schema = await self._schema(source)
        key_name = next(
            (n for n, t in schema.items() if n.casefold() == KEY_PROPERTY.casefold() and t == "rich_text"), None
        )
        find = None if key_name is None else partial(self._api.find_page, source, _key_filter(key_name, key))
        existing = None if saved.created or find is None else await find()
        if not saved.created and find is None:
            return
        if existing is None:  # new, or saved locally by a run whose page creation failed or was killed
            properties = build_properties(schema, title, {**values, KEY_PROPERTY: key})
            page = await self._create_page(kind, source, properties, blocks, find)
        else:  # created by an earlier run, maybe killed before its audit row: the (idempotent) audit is redone
            page = existing
        await self._inner.record_audit(
            AuditEntry(
                artifact=f"notion_page:{kind}",
                target=str(page.get("url") or page["id"]),
                idempotency_key=f"{key}:notion",
                account_id=account_id,
                detail={"page_id": page["id"], "blocks": len(blocks), "inner_id": saved.artifact_id},
            )
        )

    async def _create_page(
        self,
        kind: str,
        source: str,
        properties: Mapping[str, Any],
        blocks: Sequence[Block],
        find: Callable[[], Awaitable[dict[str, Any] | None]] | None,
    ) -> dict[str, Any]:
        """Create the page with its first 100 blocks, then append the rest in order, 100 per request."""
        first, *rest = batches(blocks) or [[]]
        try:
            page = await self._api.create_page(source, properties, first, find_existing=find)
        except NotionServerError as error:
            if find is not None:
                raise
            reason = f"the {kind} database has no {KEY_PROPERTY!r} property to check whether the page was created"
            raise NotionServerError(f"{error}; not retried: {reason}", status=error.status, code=error.code) from error
        for chunk in rest:
            await self._api.append_children(str(page["id"]), chunk)
        return page

    async def _source_id(self, database: str) -> str:
        database_id = self._databases[database]
        if database_id is None:
            raise NotionError(f"No Notion {database} database is configured")
        if database_id not in self._sources:
            self._sources[database_id] = await self._api.data_source_id(database_id)
        return self._sources[database_id]

    async def _schema(self, source: str) -> dict[str, str]:
        if source not in self._schemas:
            data_source = await self._api.retrieve_data_source(source)
            self._schemas[source] = {name: str(p["type"]) for name, p in data_source["properties"].items()}
        return self._schemas[source]


def _score_changed(account: NotionAccount, score: CSMHealthScore) -> bool:
    """Whether the page's written values differ from this score (only the write-back properties it has count)."""
    if "score" in account.write_back and (account.score is None or round(score.score, 2) != round(account.score, 2)):
        return True
    return "rag" in account.write_back and account.rag != score.rag


def _key_filter(key_name: str, key: str) -> dict[str, Any]:
    """A data source filter for the page holding this idempotency key."""
    return {"property": key_name, "rich_text": {"equals": key}}
