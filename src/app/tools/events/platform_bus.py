"""`EventBus` on the host platform's event bus: `publish(stream, event)` with the platform's event envelope.

The platform's envelope carries `event_type`, `tenant_id`, `source_agent_id`, `call_chain` (never empty, the source
included), `data`, `priority` and `correlation_id`. The tenant comes from the task's caller context
(`context["tenant_id"]`, bound per task with `for_caller`); the platform rejects an event without one, so none is
published and the channel reports `TenantMissing` instead. A key already published is not published again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from src.app.tools.delivery import DELIVERED, DeliveryLedger
from src.app.tools.platform import field_of

PLATFORM_BUS_METHODS: Final = ("publish",)
CRITICAL_LEVELS: Final = frozenset({"critical"})


class TenantMissing(RuntimeError):
    """No `tenant_id` in the task's context: nothing was published (the platform's bus would reject the event)."""


@dataclass(frozen=True)
class PlatformEvent:
    """The platform's event envelope (pass `event_factory=` to build the platform's own model instead)."""

    event_type: str
    tenant_id: str
    source_agent_id: str
    call_chain: list[str]
    data: dict[str, Any]
    priority: str = "normal"
    correlation_id: str | None = None

    def model_dump(self) -> dict[str, Any]:
        """The envelope as a dict (the name pydantic models use, for buses that serialise either)."""
        return asdict(self)


class PlatformEventBus:
    """`EventBus` publishing platform envelopes; bind the task's caller context with `for_caller` first."""

    def __init__(
        self,
        service: Any,
        ledger: DeliveryLedger,
        *,
        source_agent_id: str,
        caller_context: Mapping[str, Any] | None = None,
        event_factory: Callable[..., Any] = PlatformEvent,
    ) -> None:
        self._service = service
        self._ledger = ledger
        self._source = source_agent_id
        self._caller = dict(caller_context or {})
        self._factory = event_factory

    def for_caller(self, caller_context: Mapping[str, Any]) -> PlatformEventBus:
        """The same bus, publishing for the tenant, call chain and correlation id of this caller context."""
        return PlatformEventBus(
            self._service,
            self._ledger,
            source_agent_id=self._source,
            caller_context=caller_context,
            event_factory=self._factory,
        )

    @property
    def tenant_id(self) -> str:
        """The bound caller's tenant ("" when it gave none)."""
        return str(self._caller.get("tenant_id") or "").strip()

    async def publish(self, stream: str, event: Mapping[str, Any], *, idempotency_key: str) -> str:
        """Publish `event` as the platform's envelope once per key; TenantMissing when the caller gave no tenant."""
        if not self.tenant_id:
            raise TenantMissing(
                f"no tenant_id in the task context: the event for stream {stream!r} was not published "
                "(pass context={'tenant_id': ...} to execute)"
            )

        async def publish_once() -> str:
            envelope = self._factory(**self._envelope(event, idempotency_key))
            result = await self._service.publish(stream, envelope)
            return str(result if isinstance(result, str) and result else field_of(result, "id") or idempotency_key)

        event_id, _ = await self._ledger.once(DELIVERED, idempotency_key, publish_once)
        return event_id

    def _envelope(self, event: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
        chain = [str(agent) for agent in self._caller.get("call_chain") or []]
        if self._source not in chain:
            chain.append(self._source)
        critical = event.get("churn_risk_level") in CRITICAL_LEVELS
        return {
            "event_type": str(event.get("alert_type") or event.get("event_type") or "csm_event"),
            "tenant_id": self.tenant_id,
            "source_agent_id": self._source,
            "call_chain": chain,
            "data": {**event, "idempotency_key": idempotency_key},
            "priority": "high" if critical else "normal",
            "correlation_id": str(self._caller.get("correlation_id") or idempotency_key),
        }
