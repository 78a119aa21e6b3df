"""The one composition point: `CSMContext`, every client a node may use, and the functions that build it."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.tools.chat import ChatPoster
from src.app.tools.chat.outbox import LocalChatOutbox
from src.app.tools.events import EventBus
from src.app.tools.events.in_process import InProcessEventBus
from src.app.tools.llm import LLMService
from src.app.tools.llm.litellm_service import LiteLLMService
from src.app.tools.mail import MailDrafts
from src.app.tools.mail.held import HeldMail
from src.app.tools.mail.outbox import LocalOutbox
from src.app.tools.store import CSMStore
from src.app.tools.store.sql import SQLStore


class TaskExecutor(Protocol):
    """Anything with the agents' `execute(task, context)` contract (the Sales side of the hand-off)."""

    async def execute(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        """Run one task and return a JSON-safe result."""
        ...


def utc_now() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


class _Embedded:
    """Marker default of the client fields: 'use this process's embedded default' (see `CSMContext`)."""

    def __repr__(self) -> str:
        return "EMBEDDED"


_EMBEDDED: Final[Any] = _Embedded()
_CLIENT_FIELDS: Final = ("settings", "store", "llm", "mail", "chat", "events", "scorer")


@dataclass(frozen=True)
class CSMContext:
    """Everything a node reaches outside its state; tests pass fakes, users pass real clients.

    Give every client or none. With none (a run from LangGraph Studio or `langgraph dev`, which builds
    `CSMContext(**{})`), they are the embedded defaults of this process (`embedded_context`),
    built on first use from `CSMSettings()`. A partial set raises TypeError: use `build_context`
    to fill the rest consistently.
    """

    settings: CSMSettings = _EMBEDDED
    store: CSMStore = _EMBEDDED
    llm: LLMService = _EMBEDDED
    mail: MailDrafts = _EMBEDDED
    chat: ChatPoster = _EMBEDDED
    events: EventBus = _EMBEDDED
    scorer: CSMHealthScorer | None = _EMBEDDED
    sales: TaskExecutor | None = None
    clock: Callable[[], datetime] = utc_now
    caller_context: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """Validate as an instance: clients cannot come from JSON (the LangGraph server asks for a schema)."""
        return core_schema.is_instance_schema(cls)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """An empty object: runs over HTTP (LangGraph Studio) take no context and use the embedded defaults."""
        return {
            "type": "object",
            "title": cls.__name__,
            "description": "Clients are injected in code; runs without a context use this process's embedded defaults.",
            "properties": {},
        }

    def __post_init__(self) -> None:
        missing = [f.name for f in fields(self) if getattr(self, f.name) is _EMBEDDED]
        if not missing:
            return
        if len(missing) < len(_CLIENT_FIELDS):
            raise TypeError(
                f"CSMContext needs every client or none; missing {', '.join(missing)} "
                "(build_context fills in the embedded defaults consistently)"
            )
        defaults = embedded_context()
        for name in missing:
            object.__setattr__(self, name, getattr(defaults, name))


def scorer_from_settings(settings: CSMSettings) -> CSMHealthScorer:
    """A health scorer with the configured thresholds and churn window."""
    return CSMHealthScorer(
        green_threshold=settings.green_threshold,
        amber_threshold=settings.amber_threshold,
        churn_window_days=settings.churn_window_days,
    )


def store_from_settings(settings: CSMSettings) -> CSMStore:
    """The SQL store (SQLite, or PostgreSQL by URL), behind Notion when `CSM_NOTION_TOKEN` is set."""
    sql_store = SQLStore(settings.resolved_database_url)
    if settings.notion_token is None:
        return sql_store
    from src.app.tools.store.notion.store import NotionStore

    return NotionStore.from_settings(settings, sql_store)


def mail_from_settings(settings: CSMSettings, store: CSMStore) -> MailDrafts:
    """The mailbox (see `mailbox_from_settings`), behind a hold for review unless `CSM_DRAFT_REVIEW=direct`."""
    return held_unless_direct(settings, store, mailbox_from_settings(settings, store))


def held_unless_direct(settings: CSMSettings, store: CSMStore, mail: MailDrafts) -> MailDrafts:
    """`mail` as given under `CSM_DRAFT_REVIEW=direct`, else behind a hold for review."""
    if settings.draft_review == "direct" or isinstance(mail, HeldMail):
        return mail
    return HeldMail(store, mail)


def mailbox_from_settings(settings: CSMSettings, store: CSMStore) -> MailDrafts:
    """Gmail drafts when `CSM_GMAIL_CREDENTIALS_FILE` is set, else `.eml` drafts in the local outbox."""
    if settings.gmail_credentials_file is None:
        return LocalOutbox(store, settings.data_dir / "outbox" / "drafts")
    from src.app.tools.mail.gmail import GmailDrafts

    return GmailDrafts.from_settings(settings, store)


def chat_from_settings(settings: CSMSettings) -> ChatPoster:
    """Slack (bot token, else webhook), else Google Chat, else `.jsonl` messages in the local outbox."""
    if settings.slack_bot_token is not None or settings.slack_webhook_url is not None:
        from src.app.tools.chat.slack import SlackChat

        return SlackChat.from_settings(settings)
    if settings.google_chat_webhook_url is not None:
        from src.app.tools.chat.google_chat import GoogleChat

        return GoogleChat.from_settings(settings)
    return LocalChatOutbox(settings.data_dir / "outbox" / "chat")


def events_from_settings(settings: CSMSettings) -> EventBus:
    """Redis Streams when `CSM_REDIS_URL` is set, else the in-process bus."""
    if settings.redis_url is None:
        return InProcessEventBus()
    from src.app.tools.events.redis_streams import RedisEventBus

    return RedisEventBus.from_settings(settings)


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
    """A runtime context: every client given is used as is, every other one is chosen by `settings`.

    Nothing connects here: each backend opens its connection on first use.
    """
    store = store or store_from_settings(settings)
    return CSMContext(
        settings=settings,
        store=store,
        llm=llm or LiteLLMService.from_settings(settings),
        mail=mail_from_settings(settings, store) if mail is None else held_unless_direct(settings, store, mail),
        chat=chat or chat_from_settings(settings),
        events=events or events_from_settings(settings),
        scorer=scorer,
        sales=sales,
    )


async def aclose_clients(context: CSMContext) -> None:
    """Close every client of `context` that holds connections (each once, the store last)."""
    closers: list[Callable[[], Awaitable[None]]] = []
    for client in (context.mail, context.chat, context.events, context.store):
        close = getattr(client, "aclose", None)
        if close is not None and close not in closers:
            closers.append(close)
    for close in closers:
        await close()


@functools.cache
def embedded_context() -> CSMContext:
    """This process's context from `CSMSettings()`, built once on first use (runs that bring no context use it)."""
    settings = CSMSettings()
    return build_context(settings, scorer=scorer_from_settings(settings))
