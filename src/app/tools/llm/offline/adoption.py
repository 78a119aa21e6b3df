"""Offline writer for AdoptionInsights: adoption against the plan benchmark and what to do about the gaps."""

from __future__ import annotations

from src.app.documents.wording import feature_label, plural, possessive
from src.app.tools.llm.offline.phrasing import (
    Account,
    Answer,
    Facts,
    as_dict,
    clean,
    fmt_pct,
    join_words,
    names,
    num,
    read_account,
)


def adoption_insights(facts: Facts) -> Answer:
    """AdoptionInsights: adoption against the plan benchmark, top features, and what to do about the gaps."""
    account = read_account(facts)
    underused = [feature_label(name) for name in names(facts.get("underutilized_features"))]
    gap = num(as_dict(facts.get("benchmark_comparison")).get("delta"))
    templates = (
        "Run a 30-minute enablement session on {feature} for {owner} power users, then review usage.",
        "Add {feature} to {owner} onboarding checklist so new users meet it in their first week.",
        "Share a short customer example of {feature} in a workflow {name} already runs.",
    )
    recommendations = [
        templates[index].format(feature=feature, name=account.name, owner=possessive(account.name))
        for index, feature in enumerate(underused[:3])
    ]
    if gap is not None and round(gap * 100) < 0:
        recommendations.append(
            f"Agree a target with {account.name} to close the {abs(round(gap * 100))}-point gap to the "
            f"{account.plan_label} benchmark before the next QBR."
        )
    recommendations += [
        f"Review the feature usage report with {possessive(account.name)} champion at the next check-in.",
        f"Identify one team at {account.name} to pilot the least-used features and report back.",
    ]
    return {"summary": _adoption_summary(account, facts, underused), "recommendations": recommendations[:5]}


def _adoption_summary(account: Account, facts: Facts, underused: list[str]) -> str:
    """Adoption rate against the plan benchmark, the most-used features and the underused ones."""
    used, rate = [feature_label(name) for name in names(facts.get("features_used"))], num(facts.get("adoption_rate"))
    benchmark = as_dict(facts.get("benchmark_comparison"))
    plan_rate, delta = num(benchmark.get("plan_benchmark")), num(benchmark.get("delta"))
    if rate is None and not used:
        return f"No feature usage data is on record for {account.name}."
    sentence = f"{account.title} uses {plural(len(used), 'feature')}"
    if rate is not None:
        sentence += f" for an adoption rate of {fmt_pct(rate)}"
    if plan_rate is not None and delta is not None:
        points = round(delta * 100)
        position = "in line with" if points == 0 else f"{abs(points)} points {'above' if points > 0 else 'below'}"
        sentence += f", {position} the {account.plan_label} benchmark of {fmt_pct(plan_rate)}"
    parts = [sentence + "."]
    top = _top_features(as_dict(facts.get("feature_usage")), exclude=set(underused))
    if top:
        parts.append(f"The most-used {'feature is' if len(top) == 1 else 'features are'} {join_words(top)}.")
    if underused:
        shown = underused[:5] + ([f"{len(underused) - 5} more"] if len(underused) > 5 else [])
        parts.append(f"{join_words(shown)} {'is' if len(underused) == 1 else 'are'} underused.")
    return " ".join(parts)


def _top_features(usage: Facts, *, exclude: set[str]) -> list[str]:
    """Up to three most-used features as 'Reports (120 uses)', ties broken by name; never an underused one."""
    counts = [
        (name, count)
        for key, raw in usage.items()
        if (name := feature_label(clean(key, limit=40))) and name not in exclude and (count := num(raw))
    ]
    ranked = sorted(counts, key=lambda item: (-item[1], item[0]))[:3]
    return [f"{name} ({plural(count, 'use')})" for name, count in ranked]
