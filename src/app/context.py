"""The runtime context: settings and every client a node may use, injected with `graph.ainvoke(..., context=)`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from src.app.analysis.health import CSMHealthScorer
from src.app.config import CSMSettings
from src.app.tools.chat import ChatPoster
from src.app.tools.events import EventBus
from src.app.tools.llm import LLMService
from src.app.tools.mail import MailDrafts
from src.app.tools.store import CSMStore


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
    `CSMContext(**{})`), they are the embedded defaults of this process (`wiring.embedded_context`),
    built on first use from `CSMSettings()`. A partial set raises TypeError: use `wiring.build_context`
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
                "(wiring.build_context fills in the embedded defaults consistently)"
            )
        from src.app.wiring import embedded_context  # wiring builds contexts, so it imports this module

        defaults = embedded_context()
        for name in missing:
            object.__setattr__(self, name, getattr(defaults, name))
