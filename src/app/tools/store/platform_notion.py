"""`CSMStore` on the host platform's Notion CSM adapter, around an inner store for what the adapter does not hold.

The adapter's methods: `get_account`, `query_all_accounts`, `update_health_score`, `create_qbr_page`,
`create_expansion_record`.

- Accounts come from the platform; a record may carry as little as `id`, `account_id`, `name`,
  `csm_health_score` and `csm_health_rag` (its signals then come on the task, `task["signals"]`). Whatever signal
  fields and contract dates it does carry are read. `account_id` falls back to `id`; `status` to "active".
- Scores go to the inner store's history and to the platform with `update_health_score(page_id, score, rag)`
  (the record's `id`), only when the score or RAG differs from what the record held.
- QBRs and opportunities are kept in the inner store and created once per idempotency key on the platform (a
  ledger under `CSM_DATA_DIR/platform/` keeps the platform's page ids). The platform's opportunity takes
  `evidence` as one string; the list stays under `evidence_items`.
- Alerts, drafts, the audit log, runs and adoption reports live in the inner store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final

import structlog
from pydantic import BaseModel, Field

from src.app.schemas import (
    Confidence,
    CSMHealthScore,
    ExpansionOpportunity,
    OpportunityType,
    QBRContent,
)
from src.app.tools.delivery import DeliveryLedger
from src.app.tools.store import (
    CSMStore,
    SavedArtifact,
    UnreadableAccount,
)
from src.app.tools.store.forwarding import InnerStoreRecords

log = structlog.get_logger(__name__)

PLATFORM_NOTION_METHODS: Final = (
    "get_account",
    "query_all_accounts",
    "update_health_score",
    "create_qbr_page",
    "create_expansion_record",
)
_QBR_PAGE, _EXPANSION_RECORD = "platform_qbr_page", "platform_expansion_record"


class PlatformOpportunity(BaseModel):
    """The platform's `ExpansionOpportunity`: `evidence` is one string (ours is a list, kept as `evidence_items`)."""

    account_id: str
    opportunity_type: OpportunityType
    evidence: str
    estimated_arr_impact: float
    recommended_talk_track: str
    confidence: Confidence
    evidence_items: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, opportunity: ExpansionOpportunity) -> PlatformOpportunity:
        """The platform's shape of one of our opportunities."""
        fields = opportunity.model_dump(exclude={"evidence"})
        return cls(**fields, evidence="; ".join(opportunity.evidence), evidence_items=list(opportunity.evidence))


def platform_record(raw: Any) -> dict[str, Any]:
    """An account record of ours from one of the platform's account dicts (ValueError when it has no id)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"the platform returned {type(raw).__name__} instead of an account dict")
    record = dict(raw)
    account_id = record.get("account_id") or record.get("id")
    if not isinstance(account_id, str | int) or not str(account_id).strip():
        raise ValueError(f"platform account without account_id or id (keys: {sorted(record)})")
    record["account_id"] = str(account_id)
    record.setdefault("name", record["account_id"])
    if record.get("status") is None:
        record["status"] = "active"
    return record


class PlatformNotionStore(InnerStoreRecords):
    """`CSMStore` reading accounts from the platform's Notion CSM adapter and publishing scores and pages to it."""

    def __init__(self, notion: Any, inner: CSMStore, ledger: DeliveryLedger) -> None:
        self._notion = notion
        self._inner = inner
        self._ledger = ledger
        self._records: dict[str, dict[str, Any]] = {}
        self._unreadable: list[UnreadableAccount] = []
        self.write_errors: list[str] = []
        """Score write-backs the platform refused (the scores themselves are saved in the inner store)."""

    async def aclose(self) -> None:
        """Close the inner store (the platform's adapter belongs to the platform)."""
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()

    # -- accounts ----------------------------------------------------------------------------------------------

    def unreadable_accounts(self) -> list[UnreadableAccount]:
        """The platform records the last read could not use."""
        return list(self._unreadable)

    async def upsert_accounts(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Refused: accounts live in the platform's Notion, where people edit them."""
        raise ValueError(f"Accounts are read from the platform's Notion adapter; refused to write {len(records)}")

    async def load_accounts(
        self, account_ids: Sequence[str] | None = None, *, active_only: bool = True
    ) -> list[dict[str, Any]]:
        """All accounts (`query_all_accounts`) or the given ids (`get_account`, `{}` = not found), by id."""
        if account_ids is None:
            raws = list(await self._notion.query_all_accounts())
        else:
            found = await asyncio.gather(*(self._notion.get_account(a) for a in dict.fromkeys(account_ids)))
            raws = [raw for raw in found if raw]
        records: dict[str, dict[str, Any]] = {}
        self._unreadable = []
        for raw in raws:
            try:
                record = platform_record(raw)
            except ValueError as problem:
                key = str(raw.get("id") if isinstance(raw, Mapping) else None)
                self._unreadable.append(UnreadableAccount(account_id=f"platform:{key}", message=str(problem)))
                continue
            records[record["account_id"]] = record
        self._records.update(records)
        ordered = [records[account_id] for account_id in sorted(records)]
        return [r for r in ordered if r.get("status") == "active"] if active_only else ordered

    # -- scores ------------------------------------------------------------------------------------------------

    async def latest_scores(self, account_ids: Sequence[str] | None = None) -> dict[str, CSMHealthScore]:
        """The most recent stored score per account (inner store)."""
        return await self._inner.latest_scores(account_ids)

    async def save_scores(self, scores: Sequence[CSMHealthScore]) -> None:
        """Append to the inner history, then `update_health_score` every changed account the platform holds."""
        await self._inner.save_scores(scores)
        self.write_errors = []
        for score in scores:
            record = self._records.get(score.account_id)
            if record is None or _unchanged(record, score):
                continue
            page_id = str(record.get("id") or score.account_id)
            try:
                await self._notion.update_health_score(page_id, round(score.score, 2), score.rag)
            except Exception as error:  # noqa: BLE001 - one page failing must not stop the others
                log.warning("platform_score_write_failed", account_id=score.account_id, error=str(error))
                self.write_errors.append(f"account {score.account_id}: {type(error).__name__}: {error}")
                continue
            record.update(csm_health_score=round(score.score, 2), csm_health_rag=score.rag)

    # -- QBR pages and expansion records -----------------------------------------------------------------------

    async def save_qbr(self, qbr: QBRContent, *, idempotency_key: str) -> SavedArtifact:
        """Keep the QBR in the inner store and create its platform page once (`create_qbr_page(qbr, name)`)."""
        await self._inner.save_qbr(qbr, idempotency_key=idempotency_key)

        async def create_page() -> str:
            return str(await self._notion.create_qbr_page(qbr, account_name=qbr.account_name))

        page_id, created = await self._ledger.once(_QBR_PAGE, idempotency_key, create_page)
        return SavedArtifact(artifact_id=page_id, created=created)

    async def save_opportunity(self, opportunity: ExpansionOpportunity, *, idempotency_key: str) -> SavedArtifact:
        """Keep the opportunity in the inner store and create its platform record once (`create_expansion_record`)."""
        await self._inner.save_opportunity(opportunity, idempotency_key=idempotency_key)

        async def create_record() -> str:
            return str(await self._notion.create_expansion_record(PlatformOpportunity.of(opportunity)))

        record_id, created = await self._ledger.once(_EXPANSION_RECORD, idempotency_key, create_record)
        return SavedArtifact(artifact_id=record_id, created=created)

    # -- everything else lives in the inner store --------------------------------------------------------------


def _unchanged(record: Mapping[str, Any], score: CSMHealthScore) -> bool:
    held = record.get("csm_health_score")
    same_score = isinstance(held, int | float) and round(float(held), 2) == round(score.score, 2)
    return same_score and record.get("csm_health_rag") == score.rag
