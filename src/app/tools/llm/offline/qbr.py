"""Offline writer for QBRNarrative: health summary, ROI highlights, adoption, expansion steps and risks."""

from __future__ import annotations

from src.app.tools.llm.offline.expansion import OFFERS, candidate_confidence
from src.app.tools.llm.offline.phrasing import (
    TRIGGERS,
    Account,
    Answer,
    Facts,
    Weak,
    as_dict,
    as_list,
    capitalized,
    clean,
    fmt,
    fmt_money,
    fmt_pct,
    join_words,
    names,
    num,
    read_account,
    read_weakest,
    score_movement,
)


def qbr_narrative(facts: Facts) -> Answer:
    """QBRNarrative: health summary, ROI highlights, adoption commentary, expansion next steps, risks."""
    account, score = read_account(facts), as_dict(facts.get("score"))
    period = clean(facts.get("period"), limit=20) or "this period"
    return {
        "health_summary": _qbr_summary(account, score, period, clean(facts.get("trigger"), limit=30)),
        "roi_highlights": _roi_highlights(as_dict(facts.get("roi_metrics")), account, period),
        "adoption_commentary": _adoption_commentary(account, as_dict(facts.get("adoption")), period),
        "expansion_next_steps": _expansion_steps(account, facts),
        "risks": _qbr_risks(account, score, read_weakest(facts)),
    }


def _qbr_summary(account: Account, score: Facts, period: str, trigger: str) -> str:
    """The QBR health summary: score and movement, churn level, why this review happens now."""
    value, level = num(score.get("score")), clean(score.get("churn_risk_level"), limit=10)
    rag = clean(score.get("rag"), limit=8)
    opening = f"{account.title} has no health score on record for {period}."
    if value is not None:
        movement = score_movement(value, num(score.get("previous_score")))
        rag_part, churn_part = f" ({rag})" if rag else "", f" and {level} churn risk" if level else ""
        opening = (
            f"{account.title} ends {period} with a health score of {fmt(round(value, 1))}/100"
            f"{rag_part}{movement}{churn_part}."
        )
    if trigger == "contract_proximity":
        days = account.days_to_renewal
        reason = f"renewal is {fmt(days)} days away" if days is not None and days >= 0 else "renewal is close"
        why = f"This review was brought forward because {reason}."
    else:
        why = "This is the scheduled quarterly review."
    money = fmt_money(account.arr)
    plan = f"The account is on the {account.plan_label}{f' at {money} ARR' if money else ''}."
    return " ".join((opening, why, plan))


def _roi_highlights(metrics: Facts, account: Account, period: str) -> list[str]:
    """One line per ROI metric, or a note that none were recorded."""
    lines = [line for key, raw in list(metrics.items())[:10] if (line := _metric_line(str(key), raw))]
    return lines or [f"No ROI metrics were recorded for {period}; agree baseline measures with {account.name}."]


def _adoption_commentary(account: Account, adoption: Facts, period: str) -> str:
    """How much of the product the account uses and which features lag."""
    used, underused = names(adoption.get("features_used")), names(adoption.get("underutilized_features"))
    rate = num(adoption.get("adoption_rate"))
    if rate is None and not used:
        return f"Feature adoption data was not available for {account.name} in {period}."
    text = f"{account.title} actively uses {len(used)} features{f' ({join_words(used[:5])})' if used else ''}"
    text += f", an adoption rate of {fmt_pct(rate)}." if rate is not None else "."
    if underused:
        verb = "is" if len(underused) == 1 else "are"
        text += f" {join_words(underused[:5])} {verb} underused, and that is where the next gains in value are."
    return text


def _expansion_steps(account: Account, facts: Facts) -> list[str]:
    """One step per expansion candidate, or an adoption-led step when there are none."""
    steps = []
    for candidate in map(as_dict, as_list(facts.get("expansion_candidates"))[:5]):
        kind = candidate.get("opportunity_type")
        if kind not in OFFERS:
            continue
        evidence = names(candidate.get("evidence"), limit=120)
        impact, confidence = fmt_money(num(candidate.get("estimated_arr_impact"))), candidate_confidence(candidate)
        steps.append(
            f"{OFFERS[kind][0]}: {evidence[0] if evidence else 'signals in the account data'}"
            f"; estimated {impact or 'unquantified'} ARR at {confidence} confidence."
        )
    if steps:
        return steps
    underused = names(as_dict(facts.get("adoption")).get("underutilized_features"))
    if underused:
        return [f"Lead with adoption before expansion: drive usage of {join_words(underused[:2])} at {account.name}."]
    return [f"Revisit expansion with {account.name} at the next review once usage growth is confirmed."]


def _qbr_risks(account: Account, score: Facts, weakest: list[Weak]) -> list[str]:
    """Risks from the weakest signals, the churn level and an imminent renewal."""
    risks = [f"{capitalized(phrase)} is weak{f' ({points})' if points else ''}." for _, phrase, points in weakest[:3]]
    level = score.get("churn_risk_level")
    if level in ("high", "critical"):
        trigger = TRIGGERS.get(str(score.get("churn_triggered_by")), "")
        risks.append(f"Churn risk is {level}{f', driven by {trigger}' if trigger else ''}.")
    days = account.days_to_renewal
    if days is not None and 0 <= days <= 90:
        risks.append(f"Renewal is {fmt(days)} days away.")
    return risks or ["No material risks this quarter; keep monitoring usage and renewal timing."]


def _metric_line(key: str, raw: object) -> str:
    """'Seat utilization: 96%' for one ROI metric ('' when its value is missing or not available)."""
    words = key.lower().split("_")
    label = clean(" ".join(word.upper() if word in _ACRONYMS else word for word in words if word != "pct"), limit=50)
    value = _metric_value(words, raw)
    return f"{capitalized(label)}: {value}" if label and value else ""


def _metric_value(words: list[str], raw: object) -> str:
    """A metric value in the unit its key implies: percent, ratio as percent, money, or a plain number."""
    number = num(raw)
    if number is None:
        text = clean(raw, limit=40)
        return "" if text.lower() in _NOT_AVAILABLE else text
    if {"pct", "percent"} & set(words):
        return f"{fmt(number)}%"
    if {"rate", "ratio", "utilization", "utilisation"} & set(words) and 0 <= number <= 2:
        return fmt_pct(number)
    return fmt_money(number) if {"arr", "mrr", "revenue"} & set(words) else fmt(number)


_ACRONYMS = {"arr", "mrr", "nps", "rag", "roi", "api", "sla"}
_NOT_AVAILABLE = {"", "n/a", "na", "none", "unknown"}
