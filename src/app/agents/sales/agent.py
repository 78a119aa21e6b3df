"""`SalesAgent`: the Sales side's facade; `handle_expansion_opportunity` runs the Sales graph for one hand-off."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import structlog

from src.app.agents.base import AgentRegistration, BaseAgent
from src.app.config import CSMSettings, redact_secrets
from src.app.context import CSMContext, build_context
from src.app.schemas import SALES_TASK_TYPE
from src.app.state import SalesHandoff, SalesInput
from src.app.tools.mail import MailDrafts
from src.app.tools.store import CSMStore

if TYPE_CHECKING:
    from src.app.graph.sales import SalesGraph


class SalesAgent(BaseAgent):
    """Records expansion opportunities handed over by the CSM agent and drafts a note to the account executive.

    Give it the CSM agent's store (and mail adapter) so both sides converge on one opportunity record.
    The note is written from the hand-off's fields, without an LLM: its talk track is already the CSM side's.
    """

    def __init__(
        self,
        registration: AgentRegistration,
        gmail_service: MailDrafts | None = None,
        *,
        settings: CSMSettings | None = None,
        store: CSMStore | None = None,
    ) -> None:
        super().__init__(registration)
        self._gmail_service = gmail_service
        self._settings = settings
        self._store = store
        self._base_context: CSMContext | None = None
        self._log = structlog.get_logger(__name__).bind(agent_id=registration.agent_id)
        self._graph: SalesGraph | None = None  # built by the first hand-off: a scan or a QBR run needs none

    @classmethod
    def from_context(cls, registration: AgentRegistration, context: CSMContext) -> SalesAgent:
        """A Sales agent on a built context, sharing the CSM side's store and mail adapter."""
        agent = cls(registration, context.mail, settings=context.settings, store=context.store)
        agent._base_context = context
        return agent

    async def execute(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        """Handle one `handle_expansion_opportunity` payload; other types raise ValueError, failures fail open."""
        if task.get("type") != SALES_TASK_TYPE:
            raise ValueError(f"Unknown task type: '{task.get('type')}'. Supported: {SALES_TASK_TYPE}")
        return await self._handle_expansion_opportunity(task, context)

    async def _handle_expansion_opportunity(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        log = self._log.bind(task_type=SALES_TASK_TYPE, account_id=task.get("account_id"))
        try:
            handoff = cast(SalesHandoff, copy.deepcopy(task))  # validated by the graph's first node
            if self._graph is None:
                from src.app.graph.sales import build_sales_graph

                self._graph = build_sales_graph()
            output = await self._graph.ainvoke(SalesInput(handoffs=[handoff]), context=self._context(context))
            result: dict[str, Any] = output["sales_results"][0]
        except Exception as error:  # noqa: BLE001 - fail-open contract shared with the CSM handlers
            message = redact_secrets(str(error), self._settings or CSMSettings())
            log.warning("task_failed", error_type=type(error).__name__, error=message)
            return {"task_type": SALES_TASK_TYPE, "error": message, "confidence": "low", "partial": True}
        log.info("task_done", confidence=result.get("confidence"), draft_id=result.get("draft_id"))
        return result

    def _context(self, caller_context: dict[str, Any]) -> CSMContext:
        if self._base_context is None:
            settings = self._settings or CSMSettings()
            self._base_context = build_context(settings, store=self._store, mail=self._gmail_service)
        return replace(self._base_context, caller_context=dict(caller_context))
