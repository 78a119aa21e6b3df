"""Factories the CLI, benchmarks and tests share: a fully wired agent on configured backends, and its scheduler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from src.app.agents.base import AgentRegistration
from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.customer_success.runs import CHECKPOINTED_TYPES
from src.app.agents.customer_success.scheduler import QBR_CONCURRENCY, CSMScheduler
from src.app.agents.sales.agent import SalesAgent
from src.app.config import CSMSettings
from src.app.context import CSMContext, aclose_clients, build_context, scorer_from_settings
from src.app.schemas import SALES_TASK_TYPE
from src.app.tools.store import CSMStore
from src.app.tools.store.checkpoints import open_checkpointer


@asynccontextmanager
async def open_agent(settings: CSMSettings) -> AsyncIterator[tuple[CustomerSuccessAgent, CSMStore]]:
    """A fully wired agent on the backends `settings` configure, its runs checkpointed; all is closed on exit.

    Expansion hand-offs go to a `SalesAgent` on the same context (opportunity records and AE drafts).
    """
    clients = build_context(settings, scorer=scorer_from_settings(settings))
    try:
        async with open_checkpointer(settings, allowed_types=CHECKPOINTED_TYPES) as checkpointer:
            sales = SalesAgent.from_context(
                AgentRegistration(agent_id="sales-cli", name="Sales", version="1.0", capabilities=[SALES_TASK_TYPE]),
                clients,
            )
            agent = CustomerSuccessAgent.from_context(
                AgentRegistration(agent_id="csm-cli", name="CustomerSuccess", version="1.0", capabilities=[]),
                with_sales(clients, sales),
                checkpointer=checkpointer,
            )
            yield agent, clients.store
    finally:
        await aclose_clients(clients)


def with_sales(context: CSMContext, sales: SalesAgent) -> CSMContext:
    """`context` with `sales` as the executor of expansion hand-offs."""
    return replace(context, sales=sales)


def scheduler_for(agent: CustomerSuccessAgent, store: CSMStore, settings: CSMSettings) -> CSMScheduler:
    """The scheduler for `agent`, with enough QBRs in flight to keep every LLM slot busy.

    With `CSM_EXECUTOR=celery` its jobs send their per-account tasks to the workers instead of running them.
    """
    dispatcher = None
    if settings.executor == "celery":
        from src.app.workers.dispatch import CeleryDispatcher

        dispatcher = CeleryDispatcher(settings)
    return CSMScheduler(
        agent,
        store=store,
        timezone=settings.timezone,
        qbr_concurrency=max(QBR_CONCURRENCY, 2 * settings.llm_concurrency),
        dispatcher=dispatcher,
        scan_page_size=settings.worker_scan_page_size,
    )
