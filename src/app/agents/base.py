"""The agent platform's base contract: registration, capabilities and an `invoke` that tracks status."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator


class AgentCapability(BaseModel):
    """A named capability an agent advertises to the platform."""

    name: str = Field(min_length=1)
    description: str = ""


class AgentRegistration(BaseModel):
    """How an agent is registered: identity, version and capabilities (given as models or plain names)."""

    agent_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    version: str
    capabilities: list[AgentCapability] = Field(default_factory=list)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    max_concurrent_tasks: int = Field(default=4, ge=1)

    @field_validator("capabilities", mode="before")
    @classmethod
    def _names_to_capabilities(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [AgentCapability(name=item) if isinstance(item, str) else item for item in value]
        return value


class AgentStatus(StrEnum):
    """What an agent is doing right now."""

    IDLE = "idle"
    BUSY = "busy"
    ERROR = "error"


class BaseAgent(ABC):
    """An agent with an async `execute(task, context)`; `invoke` adds concurrency limits and status tracking."""

    def __init__(self, registration: AgentRegistration) -> None:
        self.registration = registration
        self.status = AgentStatus.IDLE
        self.tasks_completed = 0
        self.tasks_failed = 0
        self.last_error: str | None = None
        self._active = 0
        self._slots: asyncio.Semaphore | None = None

    @property
    def agent_id(self) -> str:
        """The registered agent id."""
        return self.registration.agent_id

    @property
    def capabilities(self) -> list[str]:
        """Names of the registered capabilities."""
        return [capability.name for capability in self.registration.capabilities]

    @abstractmethod
    async def execute(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        """Run one task and return a JSON-safe result."""

    async def invoke(self, task: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run `execute` within `max_concurrent_tasks`, tracking status, counts and the last error."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.registration.max_concurrent_tasks)
        async with self._slots:
            self._active += 1
            self.status = AgentStatus.BUSY
            try:
                result = await self.execute(task, context or {})
            except Exception as error:
                self.tasks_failed += 1
                self.last_error = str(error)
                self.status = AgentStatus.ERROR
                raise
            finally:
                self._active -= 1
            self.tasks_completed += 1
            if "error" in result:
                self.last_error = str(result["error"])
            self.status = AgentStatus.BUSY if self._active else AgentStatus.IDLE
            return result
