"""Helpers shared by the nodes: task fields, account loading, periods, facts fencing, JSON-safe results."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from pydantic_core import to_jsonable_python

from src.app.analysis.signals import parse_account
from src.app.config import CSMSettings
from src.app.context import CSMContext
from src.app.prompts.fencing import FACTS_CLOSE, FACTS_OPEN
from src.app.schemas import AccountRecord, QBRTrigger

QBR_TRIGGERS: tuple[QBRTrigger, ...] = ("quarterly", "contract_proximity")
_FENCE_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
MIN_SECRET_LENGTH = 4
"""Shorter configured secrets are not masked (masking "a" would garble every message)."""


def required_account_id(task: Mapping[str, Any]) -> str:
    """The task's `account_id`, or a ValueError saying the task type needs one."""
    account_id = task.get("account_id")
    if not isinstance(account_id, str) or not account_id.strip():
        raise ValueError(f"Task '{task.get('type')}' needs a non-empty 'account_id', got {account_id!r}")
    return account_id


def task_account_ids(task: Mapping[str, Any]) -> list[str] | None:
    """Account ids a task is limited to (`account_id` or `account_ids`), or None for the whole book."""
    if isinstance(task.get("account_ids"), list | tuple):
        return [str(account_id) for account_id in task["account_ids"]]
    if task.get("account_id"):
        return [str(task["account_id"])]
    return None


async def load_account(ctx: CSMContext, account_id: str) -> tuple[dict[str, Any], AccountRecord]:
    """The raw record and the validated identity/detail of one account, or a clear ValueError."""
    records = await ctx.store.load_accounts([account_id], active_only=False)
    if not records:
        raise ValueError(f"Account '{account_id}' was not found in the store")
    return records[0], parse_account(records[0])


def quarter_label(moment: datetime) -> str:
    """The quarter of a moment, e.g. 'Q3 2026'."""
    return f"Q{(moment.month - 1) // 3 + 1} {moment.year}"


def current_quarter(ctx: CSMContext) -> str:
    """The current quarter in the configured time zone (QBR periods, the opportunity de-duplication window)."""
    return quarter_label(ctx.clock().astimezone(ctx.settings.tz))


def task_period(task: Mapping[str, Any], ctx: CSMContext) -> str:
    """The QBR period asked for, else the current quarter in the configured time zone."""
    period = task.get("period")
    if period is None:
        return current_quarter(ctx)
    if not isinstance(period, str) or not period.strip():
        raise ValueError(f"'period' must be a label like 'Q3 2026', got {period!r}")
    return period.strip()


def task_trigger(task: Mapping[str, Any]) -> QBRTrigger:
    """The QBR trigger asked for (default 'quarterly'), validated."""
    trigger = task.get("trigger", "quarterly")
    for known in QBR_TRIGGERS:
        if trigger == known:
            return known
    raise ValueError(f"'trigger' must be one of {', '.join(QBR_TRIGGERS)}, got {trigger!r}")


def account_brief(account: AccountRecord, days_to_renewal: int | None) -> dict[str, Any]:
    """The identity facts every prompt gets (never email addresses: the LLM does not choose recipients)."""
    return {
        "account_id": account.account_id,
        "name": account.name,
        "arr": account.arr,
        "plan": account.plan,
        "days_to_renewal": days_to_renewal,
    }


def fence_facts(facts: Mapping[str, Any]) -> str:
    """Facts as one JSON object between the data markers.

    `<`, `>` and `&` inside the JSON are written as JSON unicode escapes (same value), so customer text such as
    "</facts> new instructions" can never close the fence or open a tag.
    """
    text = json.dumps(to_jsonable_python(facts), ensure_ascii=False, sort_keys=True)
    return f"{FACTS_OPEN}\n{text.translate(_FENCE_ESCAPES)}\n{FACTS_CLOSE}"


def redact_secrets(text: str, settings: CSMSettings) -> str:
    """`text` with every configured secret value (API keys, tokens, webhook and Redis URLs) masked."""
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and len(value.get_secret_value()) >= MIN_SECRET_LENGTH:
            text = text.replace(value.get_secret_value(), "**********")
    return text


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of any result (datetimes as ISO strings, models as dicts)."""
    return to_jsonable_python(value)
