"""The typed task contract: one model per task type, discriminated on `type`, parsed once at the door.

Callers (the seed's facade, the scheduler, LangGraph Studio) send plain dicts; `parse_task` turns one into
its model, and nodes read fields from there. Unknown types raise the seed's ValueError; a known type with a
bad field raises a ValueError naming the field. Keys a task type does not define are kept (platforms add
their own), but nothing reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from src.app.schemas import TASK_TYPES, QBRTrigger

QBR_TRIGGERS: tuple[QBRTrigger, ...] = ("quarterly", "contract_proximity")
_PERIOD = re.compile(r"Q[1-4] \d{4}")


class _TaskBase(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    def as_dict(self) -> dict[str, Any]:
        """The task as the caller would send it (fields left unset are left out)."""
        return self.model_dump(mode="json", exclude_unset=True)


class _OneAccountTask(_TaskBase):
    account_id: str = Field(description="The account this task is about.")

    @field_validator("account_id", mode="before")
    @classmethod
    def _non_empty(cls, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"needs a non-empty 'account_id', got {value!r}")
        return value

    def account_scope(self) -> list[str]:
        """The accounts the task is limited to: its one account."""
        return [self.account_id]


class ScannedPages(BaseModel):
    """What the pages of a whole-book scan scored on workers found, added up for the scan's alert step."""

    scanned: int = 0
    rag_counts: dict[str, int] = Field(default_factory=dict)
    candidates: list[tuple[int, float, str]] = Field(
        default_factory=list, description="Accounts that should alert: (severity rank, score, account id)."
    )
    errors: list[dict[str, Any]] = Field(
        default_factory=list, description="Per-account errors, as the pages hold them."
    )


class HealthScanTask(_TaskBase):
    """Score every active account (or the given ones) and raise churn alerts."""

    type: Literal["health_scan"] = "health_scan"
    account_id: str | None = Field(default=None, description="Score only this account.")
    account_ids: list[str] | None = Field(default=None, description="Score only these accounts.")
    summary: bool = Field(default=False, description="Return counts and alerted scores only (the daily job).")
    digest: bool = Field(
        default=False, description="After the alerts, draft each owner's daily digest (the daily job)."
    )
    signals: dict[str, Any] = Field(default_factory=dict, description="Signal values set on every account scored.")
    days_to_renewal: int | dict[str, int] | None = Field(
        default=None, description="A renewal countdown for every account (a number) or per account id."
    )
    page: tuple[str | None, str | None] | None = Field(
        default=None,
        description="Score only the active accounts with ids after the first bound and up to the second (None: "
        "open), one page of a whole-book scan on a worker; it raises no alerts and returns its alert candidates.",
    )
    pages_scored: ScannedPages | None = Field(
        default=None, description="A whole-book scan's pages, scored already: only choose and dispatch the alerts."
    )

    @field_validator("account_ids", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [str(account_id) for account_id in value]
        return value

    @field_validator("signals")
    @classmethod
    def _no_account_id(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "account_id" in value:
            raise ValueError("'signals' cannot set 'account_id': it names the account, it is not a signal")
        return value

    def account_scope(self) -> list[str] | None:
        """The accounts the scan is limited to, or None for the whole book."""
        if self.account_ids is not None:
            return list(self.account_ids)
        return [self.account_id] if self.account_id else None


class QBRTask(_OneAccountTask):
    """Write a Quarterly Business Review for one account."""

    type: Literal["generate_qbr"] = "generate_qbr"
    period: str | None = Field(default=None, description="Period label such as 'Q3 2026' (default: this quarter).")
    trigger: QBRTrigger = Field(default="quarterly", description="Why the QBR is written.")

    @field_validator("period", mode="before")
    @classmethod
    def _period_label(cls, value: Any) -> Any:
        if value is None:
            return None
        label = value.strip().upper() if isinstance(value, str) else ""
        if not _PERIOD.fullmatch(label):
            raise ValueError(f"'period' must be a quarter label like 'Q3 2026' (Q1-Q4 and a year), got {value!r:.40}")
        return label

    @field_validator("trigger", mode="before")
    @classmethod
    def _known_trigger(cls, value: Any) -> Any:
        if value not in QBR_TRIGGERS:
            raise ValueError(f"'trigger' must be one of {', '.join(QBR_TRIGGERS)}, got {value!r}")
        return value

    def resolved_period(self, now: datetime, tz: ZoneInfo) -> str:
        """The period asked for, else the current quarter in the configured time zone."""
        return self.period or quarter_label(now.astimezone(tz))


class ExpansionTask(_OneAccountTask):
    """Find expansion opportunities for one account and hand them to the Sales side."""

    type: Literal["check_expansion"] = "check_expansion"


class AdoptionTask(_OneAccountTask):
    """Report one account's feature adoption with recommendations."""

    type: Literal["track_feature_adoption"] = "track_feature_adoption"


Task = Annotated[HealthScanTask | QBRTask | ExpansionTask | AdoptionTask, Field(discriminator="type")]
"""Any customer-success task."""
TaskT = TypeVar("TaskT", HealthScanTask, QBRTask, ExpansionTask, AdoptionTask)
_TASK: TypeAdapter[HealthScanTask | QBRTask | ExpansionTask | AdoptionTask] = TypeAdapter(Task)


def check_task_type(task: Mapping[str, Any]) -> str:
    """Return the task's type, or raise the seed's ValueError naming the unsupported value."""
    task_type = task.get("type")
    if task_type not in TASK_TYPES:
        raise ValueError(f"Unknown task type: '{task_type}'. Supported: {', '.join(TASK_TYPES)}")
    return str(task_type)


def parse_task(task: Mapping[str, Any] | BaseModel) -> HealthScanTask | QBRTask | ExpansionTask | AdoptionTask:
    """The typed task of a task dict (a model is returned as is); bad input raises a ValueError naming the field."""
    if isinstance(task, HealthScanTask | QBRTask | ExpansionTask | AdoptionTask):
        return task
    if isinstance(task, BaseModel):
        task = task.model_dump()
    task_type = check_task_type(task)
    try:
        return _TASK.validate_python(dict(task))
    except ValidationError as error:
        raise ValueError(f"Task '{task_type}' {_first_problem(error)}") from None


def quarter_label(moment: datetime) -> str:
    """The quarter of a moment, e.g. 'Q3 2026'."""
    return f"Q{(moment.month - 1) // 3 + 1} {moment.year}"


def current_quarter(now: datetime, tz: ZoneInfo) -> str:
    """The current quarter in time zone `tz` (QBR periods, the opportunity de-duplication window)."""
    return quarter_label(now.astimezone(tz))


def _first_problem(error: ValidationError) -> str:
    detail = error.errors(include_url=False)[0]
    message = str(detail["msg"]).removeprefix("Value error, ")
    field = ".".join(str(part) for part in detail["loc"][1:])
    if detail["type"] == "missing":
        return f"needs a non-empty '{field}', got None"
    if message.startswith(("needs ", "'")):
        return message
    return f"field '{field}': {message}"


def as_task(task: Any, kind: type[TaskT]) -> TaskT:
    """`task` (a dict or a model) as the model `kind`: each subgraph only ever sees its own task type."""
    parsed = parse_task(task)
    if not isinstance(parsed, kind):
        raise TypeError(f"Expected a '{kind.model_fields['type'].default}' task, got '{parsed.type}'")
    return parsed
