"""Notion property values ⇄ account fields: the documented mapping table, type-driven reading and typed writing.

Reading: `plain_value` turns any property value (title, rich_text, number, select, status, date, email, people,
checkbox, multi_select, relation, formula, rollup, ...) into a plain Python value; `ACCOUNT_PROPERTIES` says which
property feeds which account field and how the value is coerced; `account_from_page` builds the raw account
record of one page, or raises `NotionPageError` naming every bad property and its value.
Writing: `build_properties` turns plain values into typed property values for a data source's actual schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from src.app.analysis.signals import MAX_VALUE_REPR, REQUIRED_SIGNALS

MAX_TEXT = 2000
"""Characters per rich-text item (Notion's limit)."""
MAX_RICH_TEXT_ITEMS = 100
"""Rich-text items per property value or block (Notion's limit)."""

FieldKind = Literal[
    "text", "number", "integer", "count", "choice", "rag", "email", "date", "names", "usage", "series", "status"
]

_TEXT_TYPES = frozenset({"title", "rich_text", "select", "status", "email", "url", "phone_number", "unique_id"})
_NUMBER_TYPES = frozenset({"number", "formula", "rollup"})
ACCEPTED_TYPES: dict[FieldKind, frozenset[str]] = {
    "text": _TEXT_TYPES | {"formula", "rollup", "number"},
    "number": _NUMBER_TYPES,
    "integer": _NUMBER_TYPES,
    "count": _NUMBER_TYPES | {"relation", "multi_select"},
    "choice": frozenset({"select", "status", "rich_text", "formula"}),
    "rag": frozenset({"select", "status", "rich_text", "formula"}),
    "email": frozenset({"email", "people", "rich_text", "formula", "rollup"}),
    "date": frozenset({"date", "formula", "rollup"}),
    "names": frozenset({"multi_select", "relation", "people", "rollup", "rich_text"}),
    "usage": frozenset({"rich_text"}),
    "series": frozenset({"rich_text"}),
    "status": frozenset({"status", "select", "checkbox", "formula"}),
}
"""Which Notion property types may feed each kind of account field."""


@dataclass(frozen=True)
class AccountProperty:
    """One account field, the Notion property names it is read from (in order) and how its value is read."""

    field: str
    kind: FieldKind
    names: tuple[str, ...]

    @property
    def accepted_names(self) -> tuple[str, ...]:
        """The Notion names, then the snake_case field name itself (matched case-insensitively)."""
        return (*self.names, self.field)


ACCOUNT_PROPERTIES: tuple[AccountProperty, ...] = (
    AccountProperty("account_id", "text", ("Account ID",)),
    AccountProperty("name", "text", ("Name", "Account Name")),
    AccountProperty("arr", "number", ("ARR",)),
    AccountProperty("plan", "choice", ("Plan",)),
    AccountProperty("status", "status", ("Status", "Account Status", "Active")),
    AccountProperty("segment", "choice", ("Segment",)),
    AccountProperty("rep_email", "email", ("Rep Email", "CSM", "Rep")),
    AccountProperty("ae_email", "email", ("AE Email", "Account Executive", "AE")),
    AccountProperty("chat_space", "text", ("Chat Space", "Slack Channel")),
    AccountProperty("contract_end_date", "date", ("Contract End Date", "Renewal Date")),
    AccountProperty("feature_adoption_rate", "number", ("Feature Adoption Rate",)),
    AccountProperty("usage_trend", "choice", ("Usage Trend",)),
    AccountProperty("login_frequency_days", "integer", ("Login Frequency Days", "Days Since Last Login")),
    AccountProperty("days_since_last_interaction", "integer", ("Days Since Last Interaction",)),
    AccountProperty("stakeholder_engagement", "choice", ("Stakeholder Engagement",)),
    AccountProperty("nps_score", "integer", ("NPS Score", "NPS")),
    AccountProperty("invoice_payment_status", "choice", ("Invoice Payment Status", "Invoice Status")),
    AccountProperty("days_to_renewal", "integer", ("Days To Renewal",)),
    AccountProperty("seats_utilization_rate", "number", ("Seats Utilization Rate", "Seat Utilization")),
    AccountProperty("open_ticket_count", "count", ("Open Ticket Count", "Open Tickets")),
    AccountProperty("avg_ticket_sentiment", "choice", ("Avg Ticket Sentiment", "Ticket Sentiment")),
    AccountProperty("escalation_count_90_days", "count", ("Escalation Count 90 Days", "Escalations (90 Days)")),
    AccountProperty("tam_health_rag", "rag", ("Health Status",)),
    AccountProperty("collections_risk", "rag", ("Collections Risk",)),
    AccountProperty("features_available", "names", ("Features Available",)),
    AccountProperty("feature_usage", "usage", ("Feature Usage",)),
    AccountProperty("seats_purchased", "integer", ("Seats Purchased",)),
    AccountProperty("seats_active", "integer", ("Seats Active",)),
    AccountProperty("usage_history", "series", ("Usage History",)),
    AccountProperty("notes", "text", ("Notes",)),
)
"""The accounts database mapping: account field ← Notion property (first name found wins; snake_case accepted).

`Health Status` is the TAM's RAG select (`tam_health_rag`). Select/status values are read case-insensitively
("Overdue 90+" → `overdue_90_plus`, "Red" → `RED`); a checkbox status reads as active/inactive; `Feature Usage`
is text such as `contacts: 314, tasks: 12` (or a JSON object) and `Usage History` text such as `153, 155, 151`.
Relations, multi-selects and rollup arrays mapped to a count field count their items; people read as their
emails (which Notion returns only when the integration may read user emails). A page without `Account ID` uses
its page id as the account id.
"""

WRITE_BACK_PROPERTIES: dict[str, tuple[str, str]] = {
    "score": ("CSM Health Score", "number"),
    "rag": ("CSM Health RAG", "select"),
    "scanned": ("CSM Last Scan", "date"),
}
"""What a scan writes back to each changed account page: role → (property name, type)."""

REQUIRED_ACCOUNT_FIELDS: tuple[str, ...] = ("name", *REQUIRED_SIGNALS)
"""Account fields `csm notion check` requires a property for."""


@dataclass(frozen=True)
class ArtifactProperty:
    """A property the agent writes on QBR pages or expansion records, and the types it can be written as."""

    name: str
    types: frozenset[str]
    required: bool = False


QBR_PROPERTIES: tuple[ArtifactProperty, ...] = (
    ArtifactProperty("Name", frozenset({"title"}), required=True),
    ArtifactProperty("CSM Key", frozenset({"rich_text"}), required=True),
    ArtifactProperty("Account", frozenset({"relation", "rich_text", "select"})),
    ArtifactProperty("Account ID", frozenset({"rich_text", "select"})),
    ArtifactProperty("Period", frozenset({"select", "rich_text"})),
    ArtifactProperty("Trigger", frozenset({"select", "rich_text"})),
    ArtifactProperty("Health RAG", frozenset({"select", "rich_text"})),
    ArtifactProperty("Health Score", frozenset({"number"})),
    ArtifactProperty("Date", frozenset({"date"})),
)
"""QBR database properties (any title property serves as `Name`; `CSM Key` makes page creation idempotent)."""

EXPANSION_PROPERTIES: tuple[ArtifactProperty, ...] = (
    ArtifactProperty("Name", frozenset({"title"}), required=True),
    ArtifactProperty("CSM Key", frozenset({"rich_text"}), required=True),
    ArtifactProperty("Account", frozenset({"relation", "rich_text", "select"})),
    ArtifactProperty("Account ID", frozenset({"rich_text", "select"})),
    ArtifactProperty("Opportunity Type", frozenset({"select", "rich_text"})),
    ArtifactProperty("Confidence", frozenset({"select", "rich_text"})),
    ArtifactProperty("Estimated ARR Impact", frozenset({"number"})),
    ArtifactProperty("Evidence", frozenset({"rich_text"})),
    ArtifactProperty("Talk Track", frozenset({"rich_text"})),
    ArtifactProperty("Date", frozenset({"date"})),
)
"""Expansion opportunities database properties."""


class NotionPageError(ValueError):
    """A page whose properties cannot be read as an account; names each bad property and its value."""

    def __init__(self, page_id: str, problems: Sequence[str], *, account_id: str | None = None) -> None:
        self.page_id = page_id
        self.account_id = account_id
        self.problems = list(problems)
        label = f"Notion page {page_id}" + (f" (account {account_id})" if account_id else "")
        super().__init__(f"{label}: " + "; ".join(self.problems))


@dataclass(frozen=True)
class NotionAccount:
    """One account read from Notion: the raw record, its page and the CSM values the page held when read."""

    record: dict[str, Any]
    page_id: str
    score: float | None = None
    rag: str | None = None
    write_back: dict[str, str] = field(default_factory=dict)
    """Role ("score", "rag", "scanned") → the exact name of that write-back property on the page."""


@dataclass(frozen=True)
class AccountLink:
    """A reference to an account: written as a relation to its page, or as its id in a text/select property."""

    account_id: str
    page_id: str | None


def plain_value(value: Mapping[str, Any]) -> Any:
    """The plain value of a property value object (text, number, bool, ISO date, list of names/ids/emails, None)."""
    kind = value.get("type")
    inner = value.get(kind) if isinstance(kind, str) else None
    if kind in ("title", "rich_text"):
        text = "".join(item.get("plain_text") or item.get("text", {}).get("content", "") for item in inner or [])
        return text or None
    if kind in ("select", "status"):
        return inner.get("name") if inner else None
    if kind == "multi_select":
        return [option["name"] for option in inner or []]
    if kind == "date":
        return inner.get("start") if inner else None
    if kind == "people":  # emails are present only with the "user information including email" capability
        return [user["person"]["email"] for user in inner or [] if (user.get("person") or {}).get("email")]
    if kind == "relation":
        return [related["id"] for related in inner or []]
    if kind in ("formula", "rollup") and isinstance(inner, Mapping):
        return _computed_value(inner)
    if kind == "unique_id" and inner:
        return f"{inner['prefix']}-{inner['number']}" if inner.get("prefix") else inner.get("number")
    return inner


def _computed_value(inner: Mapping[str, Any]) -> Any:
    """The value of a formula or rollup result ({type: string|number|boolean|date|array, ...})."""
    kind = inner.get("type")
    if kind == "date":
        return inner["date"].get("start") if inner.get("date") else None
    if kind == "array":
        return [plain_value(item) for item in inner.get("array") or []]
    return inner.get(kind) if isinstance(kind, str) else None


def account_from_page(page: Mapping[str, Any]) -> NotionAccount:
    """The raw account record of one page of the accounts database.

    Raises:
        NotionPageError: listing every property whose type or value does not fit its account field.
    """
    page_id = str(page["id"])
    index = {name.casefold(): (name, value) for name, value in (page.get("properties") or {}).items()}
    record: dict[str, Any] = {}
    problems: list[str] = []
    for spec in ACCOUNT_PROPERTIES:
        found = next((index[n.casefold()] for n in spec.accepted_names if n.casefold() in index), None)
        if found is None and spec.field == "name":
            found = next(((n, v) for n, v in index.values() if v.get("type") == "title"), None)
        if found is None:
            continue
        name, value = found
        try:
            converted = _field_value(spec, value)
        except ValueError as error:
            problems.append(f"property {name!r} ({value.get('type')}) = {_quote(plain_value(value))} {error}")
            continue
        if converted is not None:
            record[spec.field] = converted
        elif spec.field in ("account_id", "name"):
            problems.append(f"property {name!r} is empty (every account needs one)")
    record.setdefault("account_id", page_id)
    record.setdefault("status", "active")
    record["notion_page_id"] = page_id
    if problems:
        raise NotionPageError(page_id, problems, account_id=_maybe_id(record, page_id))
    return _with_write_back(record, page_id, index)


def _with_write_back(record: dict[str, Any], page_id: str, index: Mapping[str, tuple[str, Any]]) -> NotionAccount:
    present = {
        role: index[name.casefold()] for role, (name, _) in WRITE_BACK_PROPERTIES.items() if name.casefold() in index
    }
    held = {role: plain_value(value) for role, (_, value) in present.items()}
    score, rag = held.get("score"), held.get("rag")
    return NotionAccount(
        record=record,
        page_id=page_id,
        score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
        rag=str(rag) if rag else None,
        write_back={role: name for role, (name, _) in present.items()},
    )


def _maybe_id(record: Mapping[str, Any], page_id: str) -> str | None:
    account_id = record.get("account_id")
    return str(account_id) if account_id and account_id != page_id else None


def _field_value(spec: AccountProperty, value: Mapping[str, Any]) -> Any:
    kind = value.get("type")
    if kind not in ACCEPTED_TYPES[spec.kind]:
        allowed = ", ".join(sorted(ACCEPTED_TYPES[spec.kind]))
        raise ValueError(f"has the wrong type for {spec.field} (expected one of: {allowed})")
    return coerce(spec.kind, plain_value(value))


def coerce(kind: FieldKind, value: Any) -> Any:
    """A plain property value as an account field of this kind; None when empty.

    Raises:
        ValueError: saying why the value does not fit (the caller names the property).
    """
    if value is None or value == "" or value == []:
        return None
    if kind == "count" and isinstance(value, list):
        return len(value)
    if kind in ("number", "integer", "count"):
        return _number(value, integral=kind != "number")
    if kind == "names":
        return [str(item) for item in value] if isinstance(value, list) else _split(str(value))
    if kind == "usage":
        return _usage(value)
    if kind == "series":
        return [int(_number(part, integral=True)) for part in _split(_single_text(value))]
    if kind == "status" and isinstance(value, bool):
        return "active" if value else "inactive"
    text = _single_text(value)
    if kind in ("choice", "status"):
        return _choice(text)
    if kind == "rag":
        return text.strip().upper()
    if kind == "email":
        if "@" not in text:
            raise ValueError("is not an email address")
        return text.strip()
    if kind == "date":
        _check_date(text)
    return text.strip()


def _number(value: Any, *, integral: bool) -> float | int:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("is not a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("is not a number") from None
    if not integral:
        return number
    if not number.is_integer():
        raise ValueError("is not a whole number")
    return int(number)


def _single_text(value: Any) -> str:
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError("must hold exactly one value")
        value = value[0]
    if isinstance(value, bool) or isinstance(value, list | dict):
        raise ValueError("is not text")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _choice(text: str) -> str:
    """A select/status name as a lower snake_case code: "Overdue 90+" → "overdue_90_plus"."""
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower().replace("+", " plus")).strip("_")


def _check_date(text: str) -> None:
    try:
        date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not an ISO date") from None


def _split(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]


def _usage(value: Any) -> dict[str, int]:
    """`name: count` pairs (`contacts: 314, tasks: 12`) or a JSON object → {name: count}."""
    text = _single_text(value).strip()
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("is not a JSON object of counts") from None
        pairs = [(str(name), count) for name, count in loaded.items()] if isinstance(loaded, dict) else []
    else:
        pairs = [(name.strip(), count) for name, _, count in (part.partition(":") for part in _split(text))]
    if not pairs or any(not name for name, _ in pairs):
        raise ValueError("is not a list of 'feature: count' pairs")
    return {name: int(_number(count, integral=True)) for name, count in pairs}


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_REPR else text[: MAX_VALUE_REPR - 3] + "..."


# -- writing ---------------------------------------------------------------------------------------------------


def rich_text(text: str) -> list[dict[str, Any]]:
    """Text as rich-text items of at most 2,000 characters each (at most 100 items: longer text is cut)."""
    chunks = [text[start : start + MAX_TEXT] for start in range(0, len(text), MAX_TEXT)][:MAX_RICH_TEXT_ITEMS]
    return [{"type": "text", "text": {"content": chunk}} for chunk in chunks]


def typed_value(kind: str, value: Any) -> dict[str, Any] | None:
    """A property value of Notion type `kind` holding `value`, or None when that type cannot hold it."""
    if isinstance(value, AccountLink):
        if kind == "relation":
            return None if value.page_id is None else {"relation": [{"id": value.page_id}]}
        value = value.account_id
    if kind in ("title", "rich_text"):
        return {kind: rich_text(str(value))}
    if kind in ("select", "status"):
        return {kind: {"name": str(value).replace(",", " ")[:100]}}
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return {kind: value}
    if kind == "date" and isinstance(value, date):
        return {kind: {"start": value.isoformat()}}
    if kind == "multi_select" and isinstance(value, list):
        return {kind: [{"name": str(item).replace(",", " ")[:100]} for item in value]}
    if kind == "checkbox" and isinstance(value, bool):
        return {kind: value}
    return None


def build_properties(schema: Mapping[str, str], title: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Typed property values for the properties of `values` that the schema ({name: type}) has, plus the title.

    Names match case-insensitively; a property the schema lacks, or whose type cannot hold the value, is left out.
    """
    by_name = {name.casefold(): name for name in schema}
    title_name = next(name for name, kind in schema.items() if kind == "title")
    properties: dict[str, Any] = {title_name: {"title": rich_text(title)}}
    for name, value in values.items():
        actual = by_name.get(name.casefold())
        if actual is None or actual == title_name or value is None:
            continue
        typed = typed_value(schema[actual], value)
        if typed is not None:
            properties[actual] = typed
    return properties
