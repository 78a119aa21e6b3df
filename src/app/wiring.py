"""Default wiring: the embedded zero-config adapters (SQLite store, local outbox, in-process bus, offline LLM)."""

from __future__ import annotations

import functools

from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.context import CSMContext, TaskExecutor
from src.app.tools.chat import ChatPoster
from src.app.tools.events import EventBus
from src.app.tools.litellm_service import LiteLLMService
from src.app.tools.llm import LLMService
from src.app.tools.local_events import InProcessEventBus
from src.app.tools.mail import MailDrafts
from src.app.tools.outbox import LocalChatOutbox, LocalOutbox
from src.app.tools.sql_store import SQLStore
from src.app.tools.store import CSMStore


def scorer_from_settings(settings: CSMSettings) -> CSMHealthScorer:
    """A health scorer with the configured thresholds and churn window."""
    return CSMHealthScorer(
        green_threshold=settings.green_threshold,
        amber_threshold=settings.amber_threshold,
        churn_window_days=settings.churn_window_days,
    )


def build_context(
    settings: CSMSettings,
    *,
    store: CSMStore | None = None,
    llm: LLMService | None = None,
    mail: MailDrafts | None = None,
    chat: ChatPoster | None = None,
    events: EventBus | None = None,
    scorer: CSMHealthScorer | None = None,
    sales: TaskExecutor | None = None,
) -> CSMContext:
    """A runtime context: every client given is used as is, every other one is the embedded default.

    Nothing connects here: the store opens its database on first use.
    """
    store = store or SQLStore(settings.resolved_database_url)
    outbox = settings.data_dir / "outbox"
    return CSMContext(
        settings=settings,
        store=store,
        llm=llm or LiteLLMService.from_settings(settings),
        mail=mail or LocalOutbox(store, outbox / "drafts"),
        chat=chat or LocalChatOutbox(outbox / "chat"),
        events=events or InProcessEventBus(),
        scorer=scorer,
        sales=sales,
    )


@functools.cache
def embedded_context() -> CSMContext:
    """This process's zero-config context, built once on first use (runs that bring no context use it)."""
    settings = CSMSettings()
    return build_context(settings, scorer=scorer_from_settings(settings))
