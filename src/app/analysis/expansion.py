"""Deterministic expansion signals (seats, add-on modules, integrations) with evidence quoting the numbers."""

from __future__ import annotations

import math
import re

from src.app.schemas import AccountRecord, Confidence, CSMHealthSignals, ExpansionCandidate, Ticket

SEATS_EXPANSION_UTILIZATION = 0.9
"""Seat utilization (active / purchased) from which more seats are proposed."""
SEATS_FULL_UTILIZATION = 1.0
"""Seat utilization from which the seats candidate has high confidence."""
SEATS_HEADROOM = 0.10
"""Headroom over the active seats that the recommended seat count leaves."""

MODULES: dict[str, list[str]] = {
    "analytics": ["reports", "dashboards", "exports"],
    "automation": ["workflows", "rules", "bulk_actions"],
    "security": ["sso", "audit_log", "user_roles"],
}
"""Add-on modules and the core features whose heavy use signals a need for them."""

PLAN_MODULES: dict[str, tuple[str, ...]] = {
    "starter": (),
    "standard": (),
    "professional": ("analytics",),
    "enterprise": ("analytics", "automation", "security"),
}
"""Add-on modules included in each plan; an unknown plan includes none."""

HEAVY_FEATURE_USAGE = 500
"""A feature used at least this many times (in the record's usage period) counts as heavily used."""
MODULE_MIN_HEAVY_FEATURES = 2
"""Heavily used signal features needed to propose a module."""
MODULE_HIGH_CONFIDENCE_FEATURES = 3
"""Heavily used signal features from which a module candidate has high confidence."""
MODULE_ARR_UPLIFT = 0.15
"""Estimated ARR impact of a module, as a share of the account's ARR."""

INTEGRATION_KEYWORDS: tuple[str, ...] = (
    "integration",
    "integrate",
    "connect to",
    "api",
    "salesforce",
    "hubspot",
    "jira",
    "slack",
    "webhook",
)
"""Words (matched case-insensitively at a word start) that mark a ticket as an integration request."""
KEYWORD_LABELS: dict[str, str] = {
    "api": "the API",
    "salesforce": "Salesforce",
    "hubspot": "HubSpot",
    "jira": "Jira",
    "slack": "Slack",
    "webhook": "webhooks",
    "integrate": "integrating",
    "integration": "an integration",
    "connect to": "connecting to another tool",
}
"""How evidence names each integration keyword ("mentions HubSpot and an integration")."""
INTEGRATION_ARR_UPLIFT = 0.05
"""Estimated ARR impact of an integration, as a share of the account's ARR."""
INTEGRATION_HIGH_CONFIDENCE_TICKETS = 2
"""Integration request tickets from which the candidate has high confidence."""
TICKET_SUBJECT_MAX_CHARS = 120
"""Ticket subjects are quoted in evidence up to this many characters."""

_INTEGRATION_PATTERN = re.compile(
    r"\b(?:" + "|".join(re.escape(keyword) for keyword in INTEGRATION_KEYWORDS) + ")", re.IGNORECASE
)


def find_expansion_candidates(
    account: AccountRecord, signals: CSMHealthSignals | None = None
) -> list[ExpansionCandidate]:
    """Every expansion candidate in the account's record: seats first, then modules, then integrations.

    Whether to pursue them (account status, health) is the caller's decision.
    """
    seats = _seats_candidate(account, signals)
    integration = _integration_candidate(account)
    return [
        *([seats] if seats else []),
        *_module_candidates(account),
        *([integration] if integration else []),
    ]


def _seats_candidate(account: AccountRecord, signals: CSMHealthSignals | None) -> ExpansionCandidate | None:
    purchased, active = account.seats_purchased, account.seats_active
    if purchased and active is not None:
        return _seats_from_counts(account.arr, purchased, active)
    if signals is not None:
        return _seats_from_rate(account.arr, signals.seats_utilization_rate)
    return None


def _seats_from_counts(arr: float, purchased: int, active: int) -> ExpansionCandidate | None:
    utilization = active / purchased
    if utilization < SEATS_EXPANSION_UTILIZATION:
        return None
    extra = max(1, math.ceil(round(active * (1 + SEATS_HEADROOM), 6)) - purchased)
    per_seat = arr / purchased
    return ExpansionCandidate(
        opportunity_type="seats",
        evidence=[
            f"{active} of {purchased} purchased seats are active ({utilization:.0%} utilization)",
            f"{_money(arr)} ARR over {_count(purchased, 'seat')} is {_money(per_seat, cents=True)} per seat",
            f"{_count(extra, 'more seat')} {'leaves' if extra == 1 else 'leave'} {SEATS_HEADROOM:.0%} headroom "
            "over active users",
        ],
        estimated_arr_impact=round(per_seat * extra, 2),
        confidence=_seats_confidence(utilization),
    )


def _seats_from_rate(arr: float, utilization: float) -> ExpansionCandidate | None:
    if utilization < SEATS_EXPANSION_UTILIZATION:
        return None
    share = max(utilization * (1 + SEATS_HEADROOM) - 1, 0.0)
    return ExpansionCandidate(
        opportunity_type="seats",
        evidence=[
            f"seat utilization is {utilization:.0%} (seat counts not recorded)",
            f"{share:.0%} more seats leave {SEATS_HEADROOM:.0%} headroom over active users",
        ],
        estimated_arr_impact=round(arr * share, 2),
        confidence=_seats_confidence(utilization),
    )


def _seats_confidence(utilization: float) -> Confidence:
    return "high" if utilization >= SEATS_FULL_UTILIZATION else "medium"


def _module_candidates(account: AccountRecord) -> list[ExpansionCandidate]:
    included = PLAN_MODULES.get(account.plan.lower(), ())
    candidates = (_module_candidate(account, module) for module in MODULES if module not in included)
    return [candidate for candidate in candidates if candidate is not None]


def _module_candidate(account: AccountRecord, module: str) -> ExpansionCandidate | None:
    usage = account.feature_usage
    heavy = [feature for feature in MODULES[module] if usage.get(feature, 0) >= HEAVY_FEATURE_USAGE]
    if len(heavy) < MODULE_MIN_HEAVY_FEATURES:
        return None
    return ExpansionCandidate(
        opportunity_type="module",
        evidence=[
            f"the {_plan_name(account.plan)} plan does not include the {module} module",
            *(
                f"{_feature_name(feature)} used {_count(usage[feature], 'time')} "
                f"(heavy use from {HEAVY_FEATURE_USAGE:,})"
                for feature in heavy
            ),
        ],
        estimated_arr_impact=round(account.arr * MODULE_ARR_UPLIFT, 2),
        confidence="high" if len(heavy) >= MODULE_HIGH_CONFIDENCE_FEATURES else "medium",
    )


def _integration_candidate(account: AccountRecord) -> ExpansionCandidate | None:
    requests = [(ticket.subject, keywords) for ticket in account.tickets if (keywords := _integration_keywords(ticket))]
    if not requests:
        return None
    return ExpansionCandidate(
        opportunity_type="integration",
        evidence=[
            f"ticket “{_truncate(subject)}” mentions {_joined([_keyword_label(k) for k in keywords])}"
            for subject, keywords in requests
        ],
        estimated_arr_impact=round(account.arr * INTEGRATION_ARR_UPLIFT, 2),
        confidence="high" if len(requests) >= INTEGRATION_HIGH_CONFIDENCE_TICKETS else "medium",
    )


def _integration_keywords(ticket: Ticket) -> list[str]:
    text = f"{ticket.subject}\n{ticket.body}"
    return sorted({match.group(0).lower() for match in _INTEGRATION_PATTERN.finditer(text)})


def _keyword_label(keyword: str) -> str:
    return KEYWORD_LABELS.get(keyword, keyword)


def _plan_name(plan: str) -> str:
    plan = " ".join(plan.split()) or "current"
    return plan[:1].upper() + plan[1:]


def _money(amount: float, *, cents: bool = False) -> str:
    """Money as evidence quotes it: "$60,000"; with `cents`, "$2,470.50" when there are any."""
    return f"${amount:,.2f}" if cents and not round(amount, 2).is_integer() else f"${amount:,.0f}"


def _count(count: int, noun: str) -> str:
    """A count and its noun in agreement: "1 seat", "12 seats"."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _feature_name(feature: str) -> str:
    """A feature key as people name it: "bulk_actions" -> "Bulk actions", "sso" -> "SSO"."""
    words = [word.upper() if word in _ACRONYMS else word for word in feature.split("_") if word]
    text = " ".join(words) or feature
    return text[:1].upper() + text[1:]


def _joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


_ACRONYMS = frozenset({"api", "sso", "crm", "csv", "ai", "ui"})
"""Feature-key words written in capitals (analysis/ keeps its own copy: it imports nothing outside schemas)."""


def _truncate(subject: str) -> str:
    text = subject.strip() or "(no subject)"
    return text if len(text) <= TICKET_SUBJECT_MAX_CHARS else text[: TICKET_SUBJECT_MAX_CHARS - 1] + "…"
