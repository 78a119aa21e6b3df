"""The one composition point: `CSMContext`, every client a node may use, and the functions that build it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.scorecards import load_scorecard_set
from src.app.config import OFFLINE_MODEL, CSMSettings
from src.app.tools.chat import ChatPoster
from src.app.tools.chat.outbox import LocalChatOutbox
from src.app.tools.chat.platform_chat import PLATFORM_CHAT_METHODS, PlatformChat
from src.app.tools.delivery import DeliveryLedger
from src.app.tools.events import EventBus
from src.app.tools.events.in_process import InProcessEventBus
from src.app.tools.events.platform_bus import PLATFORM_BUS_METHODS, PlatformEventBus
from src.app.tools.llm import LLMService
from src.app.tools.llm.litellm_service import LiteLLMService
from src.app.tools.llm.offline import OfflineLLMService
from src.app.tools.llm.platform_llm import PLATFORM_LLM_METHODS, PlatformLLM
from src.app.tools.mail import MailDrafts
from src.app.tools.mail.held import HeldMail
from src.app.tools.mail.outbox import LocalOutbox
from src.app.tools.mail.platform_gmail import PLATFORM_GMAIL_METHODS, PlatformGmailDrafts
from src.app.tools.platform import pick_shape
from src.app.tools.ratelimit import llm_windows, shared_pacer
from src.app.tools.store import CSMStore
from src.app.tools.store.overlay import AccountOverlay
from src.app.tools.store.platform_notion import PLATFORM_NOTION_METHODS, PlatformNotionStore
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
    """A health scorer with the configured thresholds and churn window, and the tenant's scorecard when set.

    Raises:
        ScorecardError: `CSM_SCORECARD` names a file that cannot be read or is invalid (naming field and line).
    """
    return CSMHealthScorer(
        green_threshold=settings.green_threshold,
        amber_threshold=settings.amber_threshold,
        churn_window_days=settings.churn_window_days,
        scorecards=None if settings.scorecard is None else load_scorecard_set(settings.scorecard),
    )


def store_from_settings(settings: CSMSettings) -> CSMStore:
    """The SQL store (SQLite, or PostgreSQL by URL), behind Notion when `CSM_NOTION_TOKEN` is set."""
    sql_store = SQLStore(settings.resolved_database_url)
    if settings.notion_token is None:
        return sql_store
    from src.app.tools.store.notion.store import NotionStore

    return NotionStore.from_settings(settings, sql_store)


def llm_from_settings(settings: CSMSettings) -> LLMService:
    """The offline writer in process for `offline/...` models (no litellm import), else litellm for any model."""
    if settings.llm_model.partition("/")[0] == OFFLINE_MODEL.partition("/")[0]:
        return OfflineLLMService(settings.llm_model)
    cap = settings.llm_requests_per_min
    windows = None if cap is None else llm_windows(cap, settings.llm_rate_window_s)
    return LiteLLMService.from_settings(
        settings, shared_pacer=shared_pacer(settings, "llm", windows) if windows else None
    )


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
        llm=llm or llm_from_settings(settings),
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


# -- the seed's platform services: accepted by duck typing, wrapped in our Protocols ------------------------------

ServiceShape = Literal["ours", "platform"]
_STORE_METHODS: Final = tuple(n for n, v in vars(CSMStore).items() if callable(v) and not n.startswith("_"))
SERVICE_SHAPES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "notion_csm": {"ours": _STORE_METHODS, "platform": PLATFORM_NOTION_METHODS},
    "gmail_service": {"ours": ("create_draft",), "platform": PLATFORM_GMAIL_METHODS},
    "chat_service": {"ours": ("post",), "platform": PLATFORM_CHAT_METHODS},
    "event_bus": {"ours": ("publish",), "platform": PLATFORM_BUS_METHODS},
    "llm_service": {"ours": ("complete",), "platform": PLATFORM_LLM_METHODS},
    "sales_agent": {"ours": ("execute",)},
}
"""Per agent argument, the methods of our Protocol ("ours") and of the platform's service ("platform")."""
_KEYED: Final = {"gmail_service": "create_draft", "event_bus": "publish"}
"""Arguments whose two shapes share a method name: ours takes an `idempotency_key` keyword, the platform's not."""


def service_shape(role: str, service: object) -> ServiceShape | None:
    """Which shape an agent argument has (None: not given, or the seed's bare `llm_service=object()`).

    Raises:
        ServiceShapeError: the object has neither shape; the message names each missing method.
    """
    if service is None or (role == "llm_service" and type(service) is object):
        return None
    shape: ServiceShape = "ours" if pick_shape(role, service, SERVICE_SHAPES[role]) == "ours" else "platform"
    if role in _KEYED:
        shape = "ours" if _takes_keyword(getattr(service, _KEYED[role]), "idempotency_key") else "platform"
    return shape


def _takes_keyword(method: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def platform_context(
    settings: CSMSettings,
    *,
    agent_id: str,
    notion_csm: Any = None,
    store: CSMStore | None = None,
    llm_service: Any = None,
    gmail_service: Any = None,
    chat_service: Any = None,
    event_bus: Any = None,
    scorer: CSMHealthScorer | None = None,
    sales: TaskExecutor | None = None,
) -> CSMContext:
    """A context from the seed's agent arguments: ours used as they are, the platform's wrapped, the rest defaulted.

    The platform's services keep no idempotency keys, so their wrappers record what they delivered in ledgers under
    `CSM_DATA_DIR/platform/`; the platform's Notion adapter holds accounts, scores and pages, and an inner store
    (`store`, else the configured one) everything else. Nothing connects here.
    """

    def ledger(name: str) -> DeliveryLedger:
        return DeliveryLedger(settings.data_dir / "platform" / f"{name}.jsonl")

    if service_shape("notion_csm", notion_csm) == "platform":
        store = PlatformNotionStore(notion_csm, store or store_from_settings(settings), ledger("notion"))
    else:
        store = notion_csm or store or store_from_settings(settings)
    llm_shape = service_shape("llm_service", llm_service)
    llm: LLMService | None = PlatformLLM(llm_service) if llm_shape == "platform" else llm_service if llm_shape else None
    mail: MailDrafts | None = gmail_service
    if service_shape("gmail_service", gmail_service) == "platform":
        mail = PlatformGmailDrafts(gmail_service, store, ledger("drafts"))
    chat: ChatPoster | None = chat_service
    if service_shape("chat_service", chat_service) == "platform":
        chat = PlatformChat(chat_service, ledger("chat"))
    events: EventBus | None = event_bus
    if service_shape("event_bus", event_bus) == "platform":
        events = PlatformEventBus(event_bus, ledger("events"), source_agent_id=agent_id)
    return build_context(
        settings,
        store=store,
        llm=llm,
        mail=mail,
        chat=chat,
        events=events,
        scorer=scorer,
        sales=sales,
    )


def for_caller(
    context: CSMContext, caller_context: Mapping[str, Any], *, overlays: Mapping[str, Mapping[str, Any]] | None = None
) -> CSMContext:
    """The context of one task: the caller's context, the platform bus bound to its tenant, account overlays laid.

    `overlays` are field values laid over some accounts' records as they are read (see `AccountOverlay`).
    """
    events = context.events
    if isinstance(events, PlatformEventBus):
        events = events.for_caller(caller_context)
    store = AccountOverlay(context.store, overlays) if overlays else context.store
    return replace(context, caller_context=dict(caller_context), events=events, store=store)
