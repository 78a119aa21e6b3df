"""`CustomerSuccessAgent`: the seed's facade; each task type runs its subgraph of the customer-success graph."""

from __future__ import annotations

import contextvars
import copy
from typing import Any

import structlog
from langgraph.checkpoint.base import BaseCheckpointSaver

from src.app.agents.base import AgentRegistration, BaseAgent
from src.app.agents.customer_success.runs import invoke_resumable, run_thread_id
from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.signals import parse_account
from src.app.config import CSMSettings, redact_secrets
from src.app.context import CSMContext, TaskExecutor, for_caller, platform_context, service_shape
from src.app.graph import customer_success
from src.app.nodes.account_facts import load_account
from src.app.nodes.alerts import dispatch_churn_alert, fallback_narrative
from src.app.schemas import AccountRecord, CollectionsRisk, CSMAlertResult, CSMHealthScore
from src.app.state import CSMState
from src.app.tasks import check_task_type, parse_task
from src.app.tools.chat import ChatPoster
from src.app.tools.events import EventBus
from src.app.tools.llm import LLMService
from src.app.tools.llm.parsing import extract_json_object
from src.app.tools.llm.usage import metered
from src.app.tools.mail import MailDrafts
from src.app.tools.store import CSMStore

PLATFORM_BREAKDOWN_NAMES: dict[str, str] = {"support_tickets": "support"}
"""Our `signal_breakdown` keys that the platform's schema names differently; results carry both names."""
COLLECTIONS_BANDS: tuple[CollectionsRisk, ...] = ("GREEN", "AMBER", "RED", "CRITICAL")


FAILED_WITH: contextvars.ContextVar[str | None] = contextvars.ContextVar("csm_failed_with", default=None)
"""The exception class of a task that failed open in this context (the fail-open result keeps the seed's shape),
so a Celery worker can tell a transient failure, worth a retry, from a permanent one."""


class CustomerSuccessAgent(BaseAgent):
    """Scores account health, raises churn alerts, writes QBRs, finds expansion and reports adoption."""

    def __init__(
        self,
        registration: AgentRegistration,
        llm_service: LLMService | object,
        notion_csm: CSMStore | object | None = None,
        gmail_service: MailDrafts | object | None = None,
        chat_service: ChatPoster | object | None = None,
        event_bus: EventBus | object | None = None,
        health_scorer: CSMHealthScorer | None = None,
        sales_agent: TaskExecutor | None = None,
        *,
        settings: CSMSettings | None = None,
        store: CSMStore | None = None,
        checkpointer: BaseCheckpointSaver[str] | None = None,
    ) -> None:
        super().__init__(registration)
        for role, service in (
            ("llm_service", llm_service),
            ("notion_csm", notion_csm),
            ("gmail_service", gmail_service),
            ("chat_service", chat_service),
            ("event_bus", event_bus),
            ("sales_agent", sales_agent),
        ):
            service_shape(role, service)  # refuses, naming the missing method, what matches no accepted shape
        self._llm_service = llm_service
        self._notion_csm = notion_csm
        self._gmail_service = gmail_service
        self._chat_service = chat_service
        self._event_bus = event_bus
        self._health_scorer = health_scorer
        self._sales_agent = sales_agent
        self._settings = settings
        self._store = store
        self._collections_risk: dict[str, CollectionsRisk] = {}
        self._base_context: CSMContext | None = None
        self._log = structlog.get_logger(__name__).bind(agent_id=registration.agent_id)
        self._graph = customer_success.graph  # compiled once per process; runs share it, each with its context
        self._checkpointer = checkpointer
        self._checkpointed_graph = None if checkpointer is None else self._graph.copy({"checkpointer": checkpointer})

    @classmethod
    def from_context(
        cls,
        registration: AgentRegistration,
        context: CSMContext,
        *,
        checkpointer: BaseCheckpointSaver[str] | None = None,
    ) -> CustomerSuccessAgent:
        """An agent on a built context (`context.build_context(settings, ...)`): nothing is wired twice."""
        agent = cls(registration, llm_service=context.llm, settings=context.settings, checkpointer=checkpointer)
        agent._base_context = context
        return agent

    async def execute(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        """Route on `task["type"]`; unknown types raise ValueError, every other failure is returned fail-open.

        Every success result carries `llm_usage`: the calls, tokens and cost of the LLM completions it made
        (the fail-open error result keeps the seed's exact four keys).
        """
        handlers = {
            "health_scan": self._handle_health_scan,
            "generate_qbr": self._handle_generate_qbr,
            "check_expansion": self._handle_check_expansion,
            "track_feature_adoption": self._handle_track_feature_adoption,
        }
        handler = handlers[check_task_type(task)]
        with metered() as usage:
            result = await handler(task, context)
        return result if "error" in result else with_platform_names({**result, "llm_usage": usage.summary()})

    def receive_collections_risk(self, account_id: str, band: str) -> dict[str, Any]:
        """Take the Collections agent's risk band for an account; every later score of it applies the band.

        RED multiplies the score by 0.90 and CRITICAL by 0.80 (SPEC §6); GREEN and AMBER carry no penalty. The
        band overrides the record's own `collections_risk` until another band arrives for the account.
        """
        if not isinstance(account_id, str) or not account_id.strip():
            raise ValueError(f"receive_collections_risk needs a non-empty account_id, got {account_id!r}")
        normalised = str(band).strip().upper()
        if normalised not in COLLECTIONS_BANDS:
            raise ValueError(f"collections risk band must be one of {', '.join(COLLECTIONS_BANDS)}, got {band!r}")
        risk: CollectionsRisk = normalised
        self._collections_risk[account_id] = risk
        self._log.info("collections_risk_received", account_id=account_id, band=risk)
        return {"account_id": account_id, "collections_risk": risk, "applies_to": "next score"}

    async def _handle_health_scan(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        return await self._run_subgraph(task, context)

    async def _handle_generate_qbr(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        return await self._run_subgraph(task, context)

    async def _handle_check_expansion(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        return await self._run_subgraph(task, context)

    async def _handle_track_feature_adoption(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        return await self._run_subgraph(task, context)

    async def _dispatch_churn_alerts(
        self,
        account_id: str,
        health_score: CSMHealthScore | dict[str, Any],
        context: dict[str, Any],
        account: AccountRecord | dict[str, Any] | None = None,
    ) -> CSMAlertResult:
        """Alert on all four channels for one account, outside a scan (the narrative is the deterministic one)."""
        ctx = self._context(context)
        score = CSMHealthScore.model_validate(health_score)
        if account is None:
            _, record = await load_account(ctx, account_id)
        else:
            record = account if isinstance(account, AccountRecord) else parse_account(account)
        narrative = fallback_narrative(record, score)
        return await dispatch_churn_alert(ctx, account=record, score=score, narrative=narrative, task_type="alert")

    @staticmethod
    def _extract_json_from_response(response: str | None) -> dict[str, Any] | None:
        """The first JSON object in an LLM reply (fences, prose and wrappers tolerated), or None."""
        return extract_json_object(response)

    @property
    def store(self) -> CSMStore:
        """The system of record this agent reads and writes (the default SQLite store unless injected)."""
        return self._context({}).store

    @property
    def settings(self) -> CSMSettings:
        """The settings in use (read from the environment on first use, not at construction)."""
        if self._settings is None:
            self._settings = CSMSettings()
        return self._settings

    def _context(self, caller_context: dict[str, Any], task: dict[str, Any] | None = None) -> CSMContext:
        if self._base_context is None:
            if service_shape("llm_service", self._llm_service) is None:
                self._log.warning(
                    "llm_default",
                    model=self.settings.llm_model,
                    reason="llm_service has neither complete() nor completion(); using the configured model",
                )
            self._base_context = platform_context(
                self.settings,
                agent_id=self.agent_id,
                notion_csm=self._notion_csm,
                store=self._store,
                llm_service=self._llm_service,
                gmail_service=self._gmail_service,
                chat_service=self._chat_service,
                event_bus=self._event_bus,
                scorer=self._health_scorer,
                sales=self._sales_agent,
            )
        return for_caller(self._base_context, caller_context, overlays=self._overlays(task or {}))

    def _overlays(self, task: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """What the agent knows beyond the records: collections risk bands, and a one-account task's `signals`."""
        overlays: dict[str, dict[str, Any]] = {a: {"collections_risk": b} for a, b in self._collections_risk.items()}
        signals, account_id = task.get("signals"), task.get("account_id")
        if task.get("type") != "health_scan" and isinstance(signals, dict) and isinstance(account_id, str):
            overlays[account_id] = {**overlays.get(account_id, {}), **signals}
        return overlays

    async def _invoke(self, state: CSMState, ctx: CSMContext) -> dict[str, Any]:
        """Run the graph; a one-account task runs on its deterministic, resumable thread when checkpointing is on.

        Scans of several accounts or of the whole book are not checkpointed: their state holds every score (a
        100k-account scan wrote ~0.5 GB of checkpoints per run and took ~50% longer), and they are safe to rerun
        as they are (scores are recomputed, alerts, drafts and events are idempotent by key, and the scheduler's
        run lease keeps two runs of one occurrence apart).
        """
        account_ids = sorted(set(state.task.account_scope() or []))
        if self._checkpointer is None or self._checkpointed_graph is None or len(account_ids) != 1:
            output: dict[str, Any] = await self._graph.ainvoke(state, context=ctx)
            return output
        day = ctx.clock().astimezone(ctx.settings.tz).date()
        thread_id = run_thread_id(state.task.as_dict(), subject=account_ids[0], day=day)
        return await invoke_resumable(
            self._checkpointed_graph,
            state,
            checkpointer=self._checkpointer,
            thread_id=thread_id,
            context=ctx,
            resume=ctx.caller_context.get("resume"),
        )

    async def _run_subgraph(self, task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        task_type = str(task["type"])
        log = self._log.bind(task_type=task_type, account_id=task.get("account_id"))
        try:
            state = CSMState(task=parse_task(copy.deepcopy(task)))
            output = await self._invoke(state, self._context(context, task))
        except Exception as error:  # noqa: BLE001 - fail-open contract of SPEC §3
            message = redact_secrets(str(error), self.settings)
            log.warning("task_failed", error_type=type(error).__name__, error=message)
            FAILED_WITH.set(type(error).__name__)
            return {"task_type": task_type, "error": message, "confidence": "low", "partial": True}
        if "__interrupt__" in output:  # CSM_DRAFT_REVIEW=interrupt: a draft waits for a person's decision
            log.info("task_paused", thread_id=output["thread_id"])
            return {"task_type": task_type, "status": "interrupted", **_paused(output)}
        result: dict[str, Any] = output["result"]
        if output.get("handoffs"):  # only emitted when no Sales executor took them in-process
            log.warning("sales_handoff_skipped", reason="no sales agent configured", count=len(output["handoffs"]))
        log.info("task_done", confidence=result.get("confidence"))
        return result


def with_platform_names(result: dict[str, Any]) -> dict[str, Any]:
    """The result with each score's `signal_breakdown` also under the platform's key names (ours kept)."""
    scores = result.get("health_scores")
    if isinstance(scores, list):
        result["health_scores"] = [_platform_score(score) for score in scores]
    if isinstance(result.get("health_score"), dict):
        result["health_score"] = _platform_score(result["health_score"])
    return result


def _platform_score(score: Any) -> Any:
    breakdown = score.get("signal_breakdown") if isinstance(score, dict) else None
    if not isinstance(breakdown, dict):
        return score
    extra = {theirs: breakdown[ours] for ours, theirs in PLATFORM_BREAKDOWN_NAMES.items() if ours in breakdown}
    return {**score, "signal_breakdown": {**breakdown, **extra}}


def _paused(output: dict[str, Any]) -> dict[str, Any]:
    """A paused run's thread and its Agent Inbox requests; resume with `execute(task, {"resume": answer})`."""
    requests = [
        request for value in output["__interrupt__"] for request in (value if isinstance(value, list) else [value])
    ]
    return {"thread_id": output["thread_id"], "interrupts": requests}
