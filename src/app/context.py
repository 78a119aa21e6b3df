"""The runtime context: settings and every client a node may use, injected with `graph.ainvoke(..., context=)`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

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


@dataclass(frozen=True)
class CSMContext:
    """Everything a node reaches outside its state; tests pass fakes, users pass real clients."""

    settings: CSMSettings
    store: CSMStore
    llm: LLMService
    mail: MailDrafts
    chat: ChatPoster
    events: EventBus
    scorer: CSMHealthScorer | None
    sales: TaskExecutor | None = None
    clock: Callable[[], datetime] = utc_now
    caller_context: Mapping[str, Any] = field(default_factory=dict)
