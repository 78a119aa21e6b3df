"""Offline writer for SupervisorRoute: the task type and account a free-text request points to."""

from __future__ import annotations

import re

from src.app.tools.llm.offline.phrasing import Answer, Facts, clean


def supervisor_route(facts: Facts) -> Answer:
    """SupervisorRoute: the task type the request's keywords point to, plus the account it names, if any."""
    request = facts.get("request")
    text = request.lower() if isinstance(request, str) else ""
    task_type = next(
        (task for keywords, task in _ROUTES if any(keyword in text for keyword in keywords)), "health_scan"
    )
    return {
        "task_type": task_type,
        "account_hint": _account_hint(request) if isinstance(request, str) else None,
    }


def _account_hint(request: str) -> str | None:
    """An account id ('acct-001') or a capitalised name after 'for', 'of', 'on'... in the request."""
    match = _ACCOUNT_ID.search(request) or _ACCOUNT_NAME.search(request)
    return (clean(match.group(1), limit=80) or None) if match else None


_ROUTES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("hand off", "handoff", "hand-off", "account executive", "sales team", "handle expansion"),
        "handle_expansion_opportunity",
    ),
    (("qbr", "business review", "quarterly review"), "generate_qbr"),
    (("adoption", "feature usage", "underused", "underutilized", "underutilised"), "track_feature_adoption"),
    (("expansion", "expand", "upsell", "upgrade", "more seats", "cross-sell"), "check_expansion"),
    (("health", "churn", "risk", "scan"), "health_scan"),
)

_ACCOUNT_ID = re.compile(r"\b([a-z]+[-_]\d[\w-]*)\b", re.IGNORECASE)
_ACCOUNT_NAME = re.compile(r"\b(?i:for|of|on|at|about|account)\s+([A-Z0-9][\w&.'-]*(?:\s+[A-Z0-9][\w&.'-]*)*)")
