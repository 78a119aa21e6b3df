"""Shared phrasing for the offline writers: fact parsing, cleaning, number formatting and signal vocabulary."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

Facts = Mapping[str, Any]
Answer = dict[str, Any]

_EMAIL = re.compile(r"\S+@\S+")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_UNSAFE = re.compile(r"[^\w\s.,&'()/+%#:$-]")

_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:previous|prior|above|earlier|all|instructions?|rules)\b"
    r"|\b(?:new|system) (?:instructions?|prompt)\b|\byou are now\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SignalKind:
    """How to talk about one health signal: its words, the raw field behind it and the action it calls for."""

    keywords: tuple[str, ...]
    phrase: str
    raw_field: str
    raw_format: Callable[[object], str | None]
    action: str


class Weak(NamedTuple):
    """One of the weakest signals: its kind (None if unrecognised), words for it and 'points/max points'."""

    kind: SignalKind | None
    phrase: str
    points: str


@dataclass(frozen=True)
class Account:
    """The account identity fields the writers may quote."""

    name: str
    arr: float | None
    plan: str
    days_to_renewal: float | None

    @property
    def title(self) -> str:
        """The name as the first word of a sentence."""
        return capitalized(self.name)

    @property
    def plan_label(self) -> str:
        """'enterprise plan', or 'current plan' when the plan is unknown."""
        return f"{self.plan or 'current'} plan"


TRIGGERS = {
    "contract_proximity": "contract proximity (a weak score inside the renewal window)",
    "behavioral": "behavioural signals (falling usage and infrequent logins)",
    "both": "both contract proximity and behavioural signals",
}


def read_account(facts: Facts) -> Account:
    """Quotable account fields; renewal days fall back to the raw signals."""
    account = as_dict(facts.get("account"))
    renewal = num(account.get("days_to_renewal"))
    return Account(
        name=clean(account.get("name"), limit=80) or "the account",
        arr=num(account.get("arr")),
        plan=clean(account.get("plan"), limit=30),
        days_to_renewal=renewal if renewal is not None else num(as_dict(facts.get("signals")).get("days_to_renewal")),
    )


def read_weakest(facts: Facts) -> list[Weak]:
    """The weakest signals as (kind, human phrase, 'points/max points')."""
    weakest = []
    for item in map(as_dict, as_list(facts.get("weakest_signals"))):
        key = str(item.get("signal") or "").lower()
        kind = next((kind for kind in _SIGNAL_KINDS if any(word in key for word in kind.keywords)), None)
        phrase = kind.phrase if kind is not None else clean(key.replace("_", " "), limit=40)
        if not phrase:
            continue
        points, most = num(item.get("points")), num(item.get("max_points"))
        weakest.append(Weak(kind, phrase, f"{fmt(points)}/{fmt(most)} points" if points is not None and most else ""))
    return weakest


def score_movement(value: float, previous: float | None) -> str:
    """', down from 55' / ', up from 40' / ', unchanged since the last scan' / ''."""
    if previous is None:
        return ""
    if round(value, 1) == round(previous, 1):
        return ", unchanged since the last scan"
    return f", {'down' if value < previous else 'up'} from {fmt(round(previous, 1))}"


def clean(value: object, *, limit: int) -> str:
    """A short single-line copy of a customer-controlled value, without emails, links or instructions."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    text = _UNSAFE.sub(" ", _URL.sub(" ", _EMAIL.sub(" ", str(value))))
    text = " ".join(text.split())
    if _INSTRUCTION.search(text):
        return ""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def names(value: object, *, limit: int = 40) -> list[str]:
    """Cleaned, non-empty strings of a list (at most 20)."""
    return [name for item in as_list(value)[:20] if (name := clean(item, limit=limit))]


def num(value: object) -> float | None:
    """A finite number, or None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def fmt(value: float | None) -> str:
    """'1,250' for whole numbers, at most two decimals otherwise ('12.5', '0.96')."""
    if value is None:
        return "?"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0").rstrip(".")


def fmt_money(value: float | None) -> str:
    """'$120,000', or '' when unknown."""
    return "" if value is None else f"${value:,.0f}"


def fmt_pct(value: float) -> str:
    """'42%' for 0.42."""
    return f"{value:.0%}"


def join_words(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def capitalized(text: str) -> str:
    """`text` with its first letter upper-cased and the rest untouched."""
    return text[:1].upper() + text[1:]


def unique(items: list[str]) -> list[str]:
    """Items in order, duplicates removed."""
    return list(dict.fromkeys(items))


def as_dict(value: object) -> dict[str, Any]:
    """`value` if it is a dict, else {}."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """`value` if it is a list, else []."""
    return value if isinstance(value, list) else []


def _raw_pct(value: object) -> str | None:
    """'20% of features adopted' style value for ratio signals."""
    number = num(value)
    return None if number is None else fmt_pct(number)


def _raw_int(value: object) -> str | None:
    """Whole-number signal value."""
    number = num(value)
    return None if number is None else fmt(number)


def _raw_text(value: object) -> str | None:
    """Enum-like signal value in words ('overdue_60' → 'overdue 60')."""
    return clean(value, limit=20).replace("_", " ") or None


_INVOICE_STATUS = {
    "current": "invoices paid on time",
    "overdue_30": "invoices 30 days overdue",
    "overdue_60": "invoices 60 days overdue",
    "overdue_90_plus": "invoices more than 90 days overdue",
}
"""Invoice payment statuses in words."""


def _formatted(template: str, raw: Callable[[object], str | None]) -> Callable[[object], str | None]:
    """A raw-value formatter that places the formatted value into `template`."""

    def render(value: object) -> str | None:
        text = raw(value)
        return None if text is None else template.format(text)

    return render


_SIGNAL_KINDS: tuple[SignalKind, ...] = (
    SignalKind(
        ("adoption",),
        "feature adoption",
        "feature_adoption_rate",
        _formatted("{} of features adopted", _raw_pct),
        "Run an enablement session on the least-used features with {owner} admins and set a target for the next month.",
    ),
    SignalKind(
        ("usage", "trend"),
        "product usage",
        "usage_trend",
        _formatted("usage {}", _raw_text),
        "Review the usage trend with {owner} champion and agree a plan to restore weekly active usage.",
    ),
    SignalKind(
        ("login",),
        "login frequency",
        "login_frequency_days",
        _formatted("logins every {} days", _raw_int),
        "Re-engage inactive users at {name} with a guided re-onboarding sequence and name a usage owner.",
    ),
    SignalKind(
        ("interaction", "contact"),
        "recent CSM contact",
        "days_since_last_interaction",
        _formatted("{} days since the last touchpoint", _raw_int),
        "Book a check-in with {owner} primary stakeholder within five business days.",
    ),
    SignalKind(
        ("invoice", "payment"),
        "invoice payment status",
        "invoice_payment_status",
        lambda value: _INVOICE_STATUS.get(str(value)) or _formatted("invoices {}", _raw_text)(value),
        "Align with Finance on {owner} outstanding invoice before the renewal conversation.",
    ),
    SignalKind(
        ("support", "ticket", "sentiment"),
        "support experience",
        "open_ticket_count",
        _formatted("{} open tickets", _raw_int),
        "Review {owner} open support tickets with the support lead and share resolution dates.",
    ),
    SignalKind(
        ("renewal",),
        "renewal timing",
        "days_to_renewal",
        _formatted("{} days to renewal", _raw_int),
        "Start the renewal plan with {name}: confirm decision makers, timeline and success criteria.",
    ),
    SignalKind(
        ("seat",),
        "seat utilisation",
        "seats_utilization_rate",
        _formatted("{} of seats in use", _raw_pct),
        "Audit seat usage with {owner} admin and reassign unused licences to active teams.",
    ),
    SignalKind(
        ("stakeholder", "engagement"),
        "stakeholder engagement",
        "stakeholder_engagement",
        _formatted("{} engagement", _raw_text),
        "Request an executive business review to broaden sponsorship at {name}.",
    ),
    SignalKind(
        ("nps",),
        "customer sentiment (NPS)",
        "nps_score",
        _formatted("NPS {}", _raw_int),
        "Close the loop on {owner} latest NPS feedback with a follow-up call.",
    ),
    SignalKind(
        ("escalation",),
        "escalations",
        "escalation_count_90_days",
        _formatted("{} escalations in 90 days", _raw_int),
        "Run an escalation review with {name} and share the remediation plan.",
    ),
)
