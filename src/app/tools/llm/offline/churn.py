"""Offline writer for ChurnNarrative: score, churn level, weakest signals, renewal timing and actions."""

from __future__ import annotations

from src.app.documents.wording import describe_change, possessive
from src.app.tools.llm.offline.phrasing import (
    TRIGGERS,
    Account,
    Answer,
    Facts,
    Weak,
    as_dict,
    clean,
    fmt,
    fmt_money,
    join_words,
    num,
    read_account,
    read_weakest,
    unique,
)


def churn_narrative(facts: Facts) -> Answer:
    """ChurnNarrative: who, how healthy, why at risk, weakest signals and renewal timing; actions to match."""
    account, score = read_account(facts), as_dict(facts.get("score"))
    signals, weakest = as_dict(facts.get("signals")), read_weakest(facts)
    sentences = [
        _score_sentence(account, score, as_dict(facts.get("trend"))),
        _churn_sentence(score),
        _weakest_sentence(weakest, signals),
        _renewal_sentence(account.days_to_renewal),
    ]
    kinds = [kind for kind, _, _ in weakest[:3] if kind is not None]
    actions = [kind.action.format(name=account.name, owner=possessive(account.name)) for kind in kinds]
    renewal_planned = any(kind.raw_field == "days_to_renewal" for kind in kinds)
    if account.days_to_renewal is not None and account.days_to_renewal <= 90 and not renewal_planned:
        actions.append(f"Open the renewal plan with {account.name} now: confirm decision makers and timeline.")
    actions += [
        f"Hold a health check call with {possessive(account.name)} champion this week to agree priorities.",
        f"Share a one-month success plan with {account.name} that addresses the weakest areas.",
    ]
    return {
        "churn_narrative": " ".join(sentence for sentence in sentences if sentence),
        "recommended_actions": unique(actions)[:4],
    }


def _score_sentence(account: Account, score: Facts, trend: Facts) -> str:
    """Identity and score, e.g. 'Acme (enterprise plan, $120,000 ARR) has a health score of 38/100 (RED)'."""
    money = fmt_money(account.arr)
    details = [part for part in (account.plan and account.plan_label, money and f"{money} ARR") if part]
    identity = account.title + (f" ({', '.join(details)})" if details else "")
    value = num(score.get("score"))
    if value is None:
        return f"{identity} has no current health score on record."
    rag = clean(score.get("rag"), limit=8).capitalize()
    change = num(trend.get("change_7_days"))
    movement = "" if change is None else f", {describe_change(change)} in 7 days"
    if not trend:  # facts without a trend: the change since the previous score
        previous = num(score.get("previous_score"))
        movement = "" if previous is None or round(previous) == round(value) else f", down from {fmt(round(previous))}"
        movement = movement.replace("down", "up") if previous is not None and previous < value else movement
    return f"{identity} has a health score of {fmt(round(value))}/100{f' ({rag})' if rag else ''}{movement}."


def _churn_sentence(score: Facts) -> str:
    """'Churn risk is critical, triggered by ...' (empty when the level is unknown)."""
    level = clean(score.get("churn_risk_level"), limit=10)
    if not level:
        return ""
    trigger = TRIGGERS.get(str(score.get("churn_triggered_by")), "")
    return f"Churn risk is {level}{f', triggered by {trigger}' if trigger else ''}."


def _weakest_sentence(weakest: list[Weak], signals: Facts) -> str:
    """'The weakest areas are feature adoption (4/20 points; 20% of features adopted) and ...'."""
    parts = []
    for kind, phrase, points in weakest[:3]:
        detail = kind.raw_format(signals.get(kind.raw_field)) if kind is not None else None
        parts.append(
            f"{phrase} ({'; '.join(item for item in (points, detail) if item)})" if points or detail else phrase
        )
    if not parts:
        return ""
    return f"The weakest {'area is' if len(parts) == 1 else 'areas are'} {join_words(parts)}."


def _renewal_sentence(days: float | None) -> str:
    """How far away the renewal is, and what that means for timing."""
    if days is None:
        return "No renewal date is on record, so confirm the contract term with the customer."
    if days < 0:
        return f"The contract end date passed {fmt(-days)} days ago, so the renewal needs attention now."
    urgency = "recovery work has to start this week" if days <= 60 else "there is time to recover if work starts now"
    return f"Renewal is {fmt(days)} days away, so {urgency}."
