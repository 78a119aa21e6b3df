"""Offline writer for QBRNarrative: health summary, ROI highlights, adoption, expansion steps and risks."""

from __future__ import annotations

from src.app.documents.wording import (
    describe_change,
    feature_label,
    join_list,
    plural,
    possessive,
    strength_word,
)
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
    names,
    num,
    read_account,
    read_weakest,
)


def qbr_narrative(facts: Facts) -> Answer:
    """QBRNarrative: health summary, ROI highlights, adoption commentary, expansion next steps, risks."""
    account, score = read_account(facts), as_dict(facts.get("score"))
    period = clean(facts.get("period"), limit=20) or "this period"
    return {
        "health_summary": _qbr_summary(
            account, score, as_dict(facts.get("trend")), period, clean(facts.get("trigger"), limit=30)
        ),
        "roi_highlights": _roi_highlights(as_dict(facts.get("roi_metrics")), account, period),
        "adoption_commentary": _adoption_commentary(account, as_dict(facts.get("adoption")), period),
        "expansion_next_steps": _expansion_steps(account, facts),
        "risks": _qbr_risks(account, score, read_weakest(facts)),
    }


def _qbr_summary(account: Account, score: Facts, trend: Facts, period: str, trigger: str) -> str:
    """The QBR health summary: score and its change since the period start, churn level, why the review is now."""
    now, level = num(trend.get("score_now")), clean(score.get("churn_risk_level"), limit=10)
    if now is None and num(score.get("score")) is not None:
        now = round(num(score.get("score")) or 0)  # facts without a trend: the current score alone
    to_date = trend.get("to_date") is True
    opening = f"{account.title} has no health score on record for {period}."
    if now is not None:
        when = f"in {period} to date" if to_date else f"at the close of {period}"
        opening = f"{possessive(account.title)} health score stands at {fmt(now)}/100 {when}"
        start, change = num(trend.get("score_at_period_start")), num(trend.get("change_points"))
        previous = clean(trend.get("previous_period"), limit=20) or "the last quarter"
        if start is not None and change is not None:
            moved = "unchanged from" if change == 0 else f"{describe_change(change)} from"
            opening += f", {moved} {fmt(start)} at the close of {previous}"
        opening += f"{f', with {level} churn risk' if level else ''}."
    if trigger == "contract_proximity":
        days = account.days_to_renewal
        reason = f"renewal is {plural(days, 'day')} away" if days is not None and days >= 0 else "renewal is close"
        why = f"This review was brought forward because {reason}."
    else:
        why = "This is the scheduled quarterly review."
    money = fmt_money(account.arr)
    plan = f"The account is on the {account.plan_label}{f' at {money} ARR' if money else ''}."
    return " ".join((opening, why, plan))


def _roi_highlights(metrics: Facts, account: Account, period: str) -> list[str]:
    """Value delivered in sentences: seats in use, active users over the period, open tickets."""
    lines = []
    purchased, active, ratio = num(metrics.get("seats_purchased")), num(metrics.get("seats_active")), None
    if purchased and active is not None:
        ratio = num(metrics.get("seat_utilization"))
        share = f" ({fmt_pct(ratio)} of purchased seats)" if ratio is not None else ""
        lines.append(f"{plural(active, 'seat')} of {fmt(purchased)} in active use{share}.")
    start, end = num(metrics.get("active_users_start")), num(metrics.get("active_users_end"))
    if start is not None and end is not None:
        moved = "held steady at" if start == end else ("grew from" if end > start else "fell from")
        lines.append(f"Active users {moved} {fmt(start)}" + ("." if start == end else f" to {fmt(end)}."))
    tickets = num(metrics.get("open_tickets"))
    if tickets is not None:
        lines.append("No support tickets are open." if tickets == 0 else f"{plural(tickets, 'support ticket')} open.")
    return lines or [f"No value measures were recorded for {period}; agree baseline measures with {account.name}."]


def _adoption_commentary(account: Account, adoption: Facts, period: str) -> str:
    """How much of the product the account uses and which features lag (never both for one feature)."""
    underused = names(adoption.get("underutilized_features"))
    used = [name for name in names(adoption.get("features_used")) if name not in underused]
    rate = num(adoption.get("adoption_rate"))
    if rate is None and not used:
        return f"Feature adoption data was not available for {account.name} in {period}."
    labels = [feature_label(name) for name in used]
    text = f"{account.title} has no feature in regular use yet"
    if labels:
        # No count: it is derived (used minus lagging), not a fact, and the prose may quote facts only.
        others = " and other features" if len(labels) > 3 else ""
        text = f"{account.title} uses {join_list(labels[:3])}{others} regularly"
    text += f", an adoption rate of {fmt_pct(rate)}." if rate is not None else "."
    if underused:
        lagging = [feature_label(name) for name in underused]
        verb = "is" if len(lagging) == 1 else "are"
        text += f" {join_list(lagging[:5])}{' and others' if len(lagging) > 5 else ''} {verb} used lightly"
        text += ", and that is where the next gains in value are."
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
        lagging = join_list([feature_label(name) for name in underused[:2]])
        return [f"Lead with adoption before expansion: drive usage of {lagging} at {account.name}."]
    return [f"Revisit expansion with {account.name} at the next review once usage growth is confirmed."]


def _qbr_risks(account: Account, score: Facts, weakest: list[Weak]) -> list[str]:
    """Risks from the weakest signals, the churn level and an imminent renewal."""
    risks = [
        f"{capitalized(phrase)} is {_strength(points)}{f' ({points})' if points else ''}."
        for _, phrase, points in weakest[:3]
    ]
    level = score.get("churn_risk_level")
    if level in ("high", "critical"):
        trigger = TRIGGERS.get(str(score.get("churn_triggered_by")), "")
        risks.append(f"Churn risk is {level}{f', driven by {trigger}' if trigger else ''}.")
    days = account.days_to_renewal
    if days is not None and 0 <= days <= 90:
        risks.append(f"Renewal is {plural(days, 'day')} away.")
    return risks or ["No material risks this quarter; keep monitoring usage and renewal timing."]


def _strength(points: str) -> str:
    """'weak' below half the points, 'only fair' from half (never 'weak (15/20 points)')."""
    shown = points.split()[0].split("/") if points else []
    numbers = [num(float(part)) if part.replace(".", "", 1).isdigit() else None for part in shown]
    if len(numbers) == 2 and numbers[0] is not None and numbers[1]:
        word = strength_word(numbers[0], numbers[1])
        return {"weak": "weak", "fair": "only fair"}.get(word, word)
    return "weak"
