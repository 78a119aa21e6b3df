"""A `CSMStore` view that lays field values over some accounts' records as they are read (the store is not written).

What the agent knows about an account beyond its record: signals a platform supplies on the task
(`task["signals"]`) and the collections risk band its Collections agent reported (`receive_collections_risk`).
Every write goes to the inner store unchanged. The view reads the book in pages when the inner store can, but
never offers helper processes a database URL: they would read the records without the overlay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from src.app.schemas import CSMHealthScore, ExpansionOpportunity, QBRContent
from src.app.tools.store import (
    AccountPages,
    CSMStore,
    SavedArtifact,
    UnreadableAccount,
    UnreadableAccounts,
)
from src.app.tools.store.forwarding import InnerStoreRecords


class AccountOverlay(InnerStoreRecords):
    """`CSMStore` whose account reads carry `overlays[account_id]` over the inner store's records."""

    def __init__(self, inner: CSMStore, overlays: Mapping[str, Mapping[str, Any]]) -> None:
        self._inner = inner
        self._overlays = {account_id: dict(values) for account_id, values in overlays.items()}

    def _laid(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, **self._overlays.get(str(r.get("account_id")), {})} for r in records]

    async def load_accounts(
        self, account_ids: Sequence[str] | None = None, *, active_only: bool = True
    ) -> list[dict[str, Any]]:
        """The inner store's records with the overlays applied."""
        return self._laid(await self._inner.load_accounts(account_ids, active_only=active_only))

    async def iter_accounts(
        self, *, active_only: bool = True, page_size: int = 5000, omit: Sequence[str] = ()
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The book in pages with the overlays applied (one page when the inner store cannot page)."""
        if isinstance(self._inner, AccountPages):
            async for page in self._inner.iter_accounts(active_only=active_only, page_size=page_size, omit=omit):
                yield self._laid(page)
        else:
            records = await self._inner.load_accounts(None, active_only=active_only)
            yield self._laid([{k: v for k, v in r.items() if k not in omit} for r in records])

    def unreadable_accounts(self) -> list[UnreadableAccount]:
        """The inner store's unreadable records, when it reports them."""
        return self._inner.unreadable_accounts() if isinstance(self._inner, UnreadableAccounts) else []

    async def upsert_accounts(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Write records to the inner store."""
        return await self._inner.upsert_accounts(records)

    async def latest_scores(self, account_ids: Sequence[str] | None = None) -> dict[str, CSMHealthScore]:
        """The inner store's latest scores."""
        return await self._inner.latest_scores(account_ids)

    async def save_scores(self, scores: Sequence[CSMHealthScore]) -> None:
        """Save scores in the inner store."""
        await self._inner.save_scores(scores)

    async def save_qbr(self, qbr: QBRContent, *, idempotency_key: str) -> SavedArtifact:
        """Save a QBR in the inner store."""
        return await self._inner.save_qbr(qbr, idempotency_key=idempotency_key)

    async def save_opportunity(self, opportunity: ExpansionOpportunity, *, idempotency_key: str) -> SavedArtifact:
        """Save an opportunity in the inner store."""
        return await self._inner.save_opportunity(opportunity, idempotency_key=idempotency_key)
