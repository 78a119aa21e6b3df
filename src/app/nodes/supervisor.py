"""Supervisor nodes: route a task dict by type, interpret a text request with the LLM, follow the hand-off edge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from langgraph.runtime import Runtime
from langgraph.types import Command

from src.app.context import CSMContext
from src.app.nodes.delivery import parsed_output
from src.app.nodes.llm import prompt_requests
from src.app.prompts import supervisor as prompt
from src.app.schemas import SALES_TASK_TYPE, TASK_TYPES, SupervisorRoute
from src.app.state import Delegate, RequestState, SalesHandoff, SupervisorState

REQUEST_KEY = "request"
"""Key of the one LLM request a text request makes."""
DIRECT_REASON = "Requested directly through the supervisor."


def delegate_for(task: Mapping[str, Any]) -> Delegate:
    """The graph that handles a task dict: CSM task types -> customer_success, the Sales task -> sales."""
    task_type = task.get("type")
    if task_type in TASK_TYPES:
        return "customer_success"
    if task_type == SALES_TASK_TYPE:
        return "sales"
    supported = ", ".join([*TASK_TYPES, SALES_TASK_TYPE])
    raise ValueError(f"Unknown task type: '{task_type}'. Supported: {supported}")


async def route_request(
    state: SupervisorState,
) -> Command[Literal["interpret_request", "customer_success", "sales"]]:
    """Delegate a task dict by its type; send text to be interpreted first. Clears the previous run's outputs."""
    request = state["request"]
    fresh: dict[str, Any] = {"result": {}, "handoffs": [], "sales_results": []}
    if isinstance(request, str):
        if not request.strip():
            raise ValueError("The request is empty: give a task dict or a sentence such as 'prepare the QBR for Acme'")
        return Command(goto="interpret_request", update=fresh)
    delegate = delegate_for(request)
    update = {**fresh, "task": request, "delegate": delegate}
    if delegate == "sales":  # validated by the Sales graph, like any hand-off
        update["handoffs"] = [cast(SalesHandoff, {**request, "reason": request.get("reason") or DIRECT_REASON})]
    return Command(goto=delegate, update=update)


def route_handoffs(state: SupervisorState) -> Literal["sales", "__end__"]:
    """The hand-off edge: to the Sales graph when the CSM graph emitted hand-off records, else the end."""
    return "sales" if state.get("handoffs") else "__end__"


async def build_prompt(state: RequestState) -> dict[str, Any]:
    """The routing request: the user's text, fenced as data."""
    facts = {REQUEST_KEY: {"request": state["request"]}}
    return {"llm_requests": prompt_requests(facts, prompt, SupervisorRoute.__name__)}


async def resolve_request(state: RequestState, runtime: Runtime[CSMContext]) -> dict[str, Any]:
    """Turn the LLM's route into a task, resolving the account hint against the store (never trusting it)."""
    route = SupervisorRoute.model_validate(parsed_output(state, REQUEST_KEY))
    hint = (route.account_hint or "").strip()
    account_id = None
    if hint:
        records = await runtime.context.store.load_accounts(active_only=False)
        account_id = match_account(records, hint)
    return {"task": task_for(route, account_id, request=state["request"]), "delegate": "customer_success"}


def task_for(route: SupervisorRoute, account_id: str | None, *, request: str) -> dict[str, Any]:
    """The CSM task a route asks for; a Sales request becomes check_expansion, whose hand-offs reach Sales."""
    if route.task_type == "health_scan":
        return {"type": "health_scan", **({"account_ids": [account_id]} if account_id else {})}
    task_type = "check_expansion" if route.task_type == SALES_TASK_TYPE else route.task_type
    if account_id is None:
        raise ValueError(f"The request asks for {route.task_type} but names no account: {request!r}")
    return {"type": task_type, "account_id": account_id}


def match_account(records: Sequence[Mapping[str, Any]], hint: str) -> str:
    """The id of the one account whose id or name matches `hint` (case-insensitive; a unique partial name too).

    Raises:
        ValueError: no account matches, or several do (naming a few of them).
    """
    wanted = hint.strip().casefold()
    for record in records:
        if str(record.get("account_id", "")).casefold() == wanted:
            return str(record["account_id"])
    names = [(str(r.get("account_id")), str(r.get("name", ""))) for r in records]
    matches = [pair for pair in names if pair[1].casefold() == wanted] or [
        pair for pair in names if wanted in pair[1].casefold()
    ]
    if len(matches) == 1:
        return matches[0][0]
    if not matches:
        raise ValueError(f"No account matches {hint!r} by id or name")
    shown = ", ".join(f"{name} ({account_id})" for account_id, name in matches[:5])
    raise ValueError(
        f"{hint!r} matches {len(matches)} accounts ({shown}{', ...' if len(matches) > 5 else ''}): name one"
    )
