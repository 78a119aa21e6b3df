"""Deterministic risks and asks for a QBR, read from the account record and its health section."""

from __future__ import annotations

from datetime import date, datetime

from src.app.analysis.adoption import AdoptionFacts
from src.app.documents.document import HealthSection
from src.app.documents.wording import describe_percent_change, feature_label, fmt_date, join_list, plural
from src.app.schemas import AccountRecord

USER_DROP_RISK = -0.10
"""A fall in active users at least this large (as a fraction) is a risk."""
SCORE_DROP_RISK = -10
"""A fall in the health score of at least this many points over the period is a risk."""
RENEWAL_RISK_DAYS = 90
"""A renewal this close, on an account that is not GREEN, is a risk."""
RENEWAL_ASK_DAYS = 180
"""A renewal this close makes confirming it an ask."""
SEAT_ASK_UTILIZATION = 0.9
"""Below this seat utilization, putting unused seats to work is an ask."""
FEATURES_IN_ASK = 3
"""Unused features named in the pilot ask at most."""


def account_risks(account: AccountRecord, health: HealthSection, today: date) -> list[str]:
    """Risks the record shows on its own, before any the QBR's writer listed."""
    risks = []
    users = account.usage_history
    if len(users) >= 2 and users[0] and (users[-1] - users[0]) / users[0] <= USER_DROP_RISK:
        change = describe_percent_change((users[-1] - users[0]) / users[0])
        months = plural(len(users) - 1, "month")
        risks.append(f"Active users {change} in {months} ({users[0]:,} to {users[-1]:,}).")
    if health.delta is not None and health.delta <= SCORE_DROP_RISK:
        risks.append(f"Health score {health.trend[:1].lower()}{health.trend[1:]}")
    risks += [f"{line.text} is weak." for line in health.watch if line.strength == "weak"]
    for line in health.watch:
        if not line.strength and isinstance(line.figure.value, float):
            risks.append(f"{line.label} took {plural(-line.figure.value, 'point')} off the score.")
    renewal = _renewal_day(account)
    if renewal is not None and health.rag not in (None, "GREEN") and 0 <= (renewal - today).days <= RENEWAL_RISK_DAYS:
        risks.append(f"Renewal on {fmt_date(renewal)} while health is {(health.rag or '').capitalize()}.")
    return risks


def account_asks(account: AccountRecord, facts: AdoptionFacts, today: date) -> list[str]:
    """What the CSM asks of the customer: confirm the renewal, fill unused seats, pilot an unused feature."""
    asks = []
    renewal = _renewal_day(account)
    if renewal is not None and 0 <= (renewal - today).days <= RENEWAL_ASK_DAYS:
        asks.append(f"Confirm renewal plans before the contract ends on {fmt_date(renewal)}.")
    purchased, active = account.seats_purchased, account.seats_active
    if purchased and active is not None and active / purchased < SEAT_ASK_UTILIZATION:
        asks.append(f"Name the people who should use the {plural(purchased - active, 'unused seat')}.")
    unused = [feature_label(f) for f in facts.features_available if account.feature_usage.get(f, 0) == 0]
    if unused:
        asks.append(f"Choose a team to pilot {join_list(unused[:FEATURES_IN_ASK], 'or')} next quarter.")
    return asks


def _renewal_day(account: AccountRecord) -> date | None:
    end = account.contract_end_date
    return end.date() if isinstance(end, datetime) else end
