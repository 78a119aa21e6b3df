"""The wording layer: human labels, plurals, possessives, one rounding rule, and a checker for draft text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

SIGNAL_LABELS: dict[str, str] = {
    "feature_adoption_rate": "Feature adoption",
    "usage_trend": "Usage trend",
    "login_frequency_days": "Login frequency",
    "days_since_last_interaction": "Recent contact",
    "invoice_payment_status": "Invoice payments",
    "support_tickets": "Support tickets",
    "days_to_renewal": "Time to renewal",
    "seats_utilization_rate": "Seat utilization",
    "stakeholder_engagement": "Stakeholder engagement",
    "nps_score": "NPS",
    "escalation_count_90_days": "Escalations (90 days)",
    "collections_risk": "Collections risk",
    "tam_health_rag": "TAM health",
    "open_ticket_count": "Open tickets",
    "avg_ticket_sentiment": "Ticket sentiment",
}
"""A label for every key of a score's `signal_breakdown` (multiplier keys included) and every raw signal field."""

OPPORTUNITY_LABELS: dict[str, str] = {
    "seats": "Seat expansion",
    "module": "Add-on module",
    "integration": "Integration",
}
"""A label for every expansion opportunity type."""

ACRONYMS = frozenset({"api", "sso", "crm", "csv", "nps", "tam", "arr", "roi", "sla", "ai", "qbr", "ui"})
"""Words written in capitals when a key is turned into a label."""

NOT_PLURAL_S_WORDS = frozenset(
    {"analysis", "basis", "bonus", "business", "news", "series", "status", "this", "is", "was", "has", "its", "his"}
    | {"as", "us", "plus", "yes", "less", "across", "thus", "always", "sms", "ops"}
)
"""Words ending in "s" that are not plurals: "1 status" or "version 1 was" is not an agreement error."""

COUNT_NOUNS = frozenset(
    {"feature", "user", "seat", "account", "day", "ticket", "escalation", "week", "month", "alert", "opportunity"}
)
"""Nouns whose singular form after a count other than one is an agreement error ("6 feature")."""

_CODE = re.compile(r"`[^`\n]*`|(?<!\w):[a-z0-9_+-]+:(?!\w)")
"""Code spans and chat emoji codes (":rotating_light:"): not prose."""
_SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
_NOT_PROSE = re.compile(r"\S*(?:/|@|://|\.\w{2,4}\b)\S*")
_ONE_PLURAL = re.compile(r"(?<![\d.,])\b1\s+([A-Za-z]+s)\b")
_MANY_SINGULAR = re.compile(
    r"(?<![\d.,])\b(\d[\d,]*)\s+([a-z]+)\b(?=\s*(?:[.,;:!?)]|$|\s(?:and|or|in|on|of|with|for|are|were|to|at|from)\b))"
)
_BAD_POSSESSIVE = re.compile(r"\b\w+s['’]s\b")
_COUNTED_LIST = re.compile(r"(?<![\d.,])\b(\d+)\s+([A-Za-z]+(?: [A-Za-z]+){0,2})\s*\(([^()]*)\)")
_MORE = re.compile(r"\b(\d+)\s+more\b")
_WEAK_AFTER = re.compile(r"\bweak\b[^.\n/\d,;]{0,12}?(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_WEAK_BEFORE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)[^.\n/\d,;]{0,12}\bweak\b", re.IGNORECASE)
_OUT_OF_100 = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*100\b")


def humanize_key(key: str) -> str:
    """A label for any snake_case key: "email_sync" -> "Email sync", "api_access" -> "API access"."""
    words = [word.upper() if word in ACRONYMS else word for word in key.strip().split("_") if word]
    if not words:
        return key
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]])


def signal_label(key: str) -> str:
    """The human label of a health signal or multiplier key ("feature_adoption_rate" -> "Feature adoption")."""
    return SIGNAL_LABELS.get(key) or humanize_key(key)


def opportunity_label(kind: str) -> str:
    """The human label of an expansion opportunity type ("seats" -> "Seat expansion")."""
    return OPPORTUNITY_LABELS.get(kind) or humanize_key(kind)


def feature_label(feature: str) -> str:
    """The human name of a product feature ("email_sync" -> "Email sync", "sso" -> "SSO")."""
    return humanize_key(feature)


def fmt_number(value: float, digits: int = 1) -> str:
    """A number rounded half up to at most `digits` decimals, with thousands separators and no trailing zeros."""
    rounded = _half_up(value, digits) or 0.0  # never "-0"
    text = f"{rounded:,.{digits}f}" if digits > 0 else f"{rounded:,.0f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def signal_line(key: str, points: float, max_points: float | None = None) -> str:
    """One signal as a person writes it: "Feature adoption 5/20"; a multiplier: "Collections risk -4.2 points"."""
    if max_points is None:
        return f"{signal_label(key)} {'-' if points < 0 else ''}{plural(abs(points), 'point')}"
    return f"{signal_label(key)} {fmt_number(points)}/{fmt_number(max_points)}"


def strength_word(points: float, max_points: float) -> str:
    """How a signal is doing: "strong" from 80 % of its points, "fair" from half, "weak" only below half."""
    if max_points <= 0:
        raise ValueError(f"max_points must be positive, got {max_points}")
    ratio = points / max_points
    if ratio >= 0.8:
        return "strong"
    if ratio >= 0.5:
        return "fair"
    return "weak"


def plural(count: float, singular: str, plural_form: str | None = None) -> str:
    """A count with its noun in agreement: `plural(1, "feature")` -> "1 feature", `plural(3, "opportunity")`."""
    shown = fmt_number(count)
    word = singular if shown == "1" else (plural_form or _plural_of(singular))  # agree with the number shown
    return f"{shown} {word}"


def _plural_of(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in set("aeiou"):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def possessive(name: str) -> str:
    """The possessive of a name: "Acme" -> "Acme's", "Driftwood Labs" -> "Driftwood Labs'"."""
    name = name.strip()
    return f"{name}'" if name.lower().endswith("s") else f"{name}'s"


def join_list(items: Sequence[str], conjunction: str = "and") -> str:
    """Items joined as a person lists them: "a", "a and b", "a, b and c"."""
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def counted_list(items: Sequence[str], singular: str, plural_form: str | None = None, *, limit: int = 5) -> str:
    """A count and its list that always agree: "3 features (Tasks, Reports and SSO)"; long lists end "and N more"."""
    if not items:
        return plural(0, singular, plural_form)
    shown = list(items) if len(items) <= limit else [*items[:limit], f"{len(items) - limit} more"]
    return f"{plural(len(items), singular, plural_form)} ({join_list(shown)})"


def rounded_score(score: float) -> int:
    """The one rounding rule for health scores everywhere (subject, body, deck): half up to a whole number."""
    return int(_half_up(score, 0))


def fmt_score(score: float, *, out_of: bool = False) -> str:
    """A health score as shown to people: "62", or "62/100" with `out_of`."""
    text = str(rounded_score(score))
    return f"{text}/100" if out_of else text


def score_delta(current: float, start: float) -> int:
    """The change between two scores as displayed: the difference of their rounded values, so the text adds up."""
    return rounded_score(current) - rounded_score(start)


def describe_change(delta: float, unit: str = "point") -> str:
    """A signed change in words: "down 24 points", "up 1 point", "unchanged" (only when it is exactly 0)."""
    if delta == 0:
        return "unchanged"
    return f"{'up' if delta > 0 else 'down'} {plural(abs(delta), unit)}"


def describe_percent_change(ratio: float) -> str:
    """A relative change in words: 0.36 -> "up 36%", -0.34 -> "down 34%", "unchanged" only when it shows as 0 %."""
    shown = fmt_number(abs(ratio) * 100, 0)
    if shown == "0":
        return "unchanged"
    return f"{'up' if ratio > 0 else 'down'} {shown}%"


def fmt_money(amount: float, currency: str = "$") -> str:
    """Money in whole units with thousands separators: 49400.0 -> "$49,400"."""
    sign = "-" if amount < 0 else ""
    return f"{sign}{currency}{_half_up(abs(amount), 0):,.0f}"


def fmt_percent(ratio: float, digits: int = 0) -> str:
    """A ratio as a percentage: 0.8051 -> "81%"."""
    return f"{fmt_number(ratio * 100, digits)}%"


def fmt_date(day: date) -> str:
    """A date as people write it: "2 Dec 2026"."""
    return f"{day.day} {day:%b %Y}"


def fmt_moment(moment: datetime) -> str:
    """A moment as people write it, in its own time zone: "2 Dec 2026 08:00 UTC"."""
    return f"{fmt_date(moment.date())} {moment:%H:%M} {moment.tzname() or 'UTC'}".rstrip()


def _half_up(value: float, digits: int) -> float:
    exponent = Decimal(1).scaleb(-digits)
    return float(Decimal(str(value)).quantize(exponent, rounding=ROUND_HALF_UP))


def lint_text(text: str) -> list[str]:
    """Problems a reader would notice in a draft, one sentence each; an empty list means the text reads clean.

    Finds snake_case identifiers (outside `code spans`, chat emoji codes, addresses, paths and file names),
    "1 features" and "6 feature" agreement errors, "Labs's" possessives, counts that disagree with the list
    after them ("6 features (a, b and c)"), and "weak" said of a signal scoring at least half its points
    ("weak (15/20)").
    """
    text = _CODE.sub(" ", text)
    prose = _NOT_PROSE.sub(" ", text)
    problems = [f'raw identifier "{match}"' for match in _SNAKE.findall(prose)]
    problems += _agreement_problems(text)
    problems += [f'wrong possessive "{match}"' for match in _BAD_POSSESSIVE.findall(prose)]
    problems += _count_problems(text)
    problems += _weak_problems(text)
    return problems


def lint_subject_body(subject: str, body: str) -> list[str]:
    """Scores out of 100 in a subject that the body does not repeat exactly ("11/100" vs "11.5/100")."""
    in_body = set(_OUT_OF_100.findall(body))
    return [
        f'subject says "{number}/100" but the body does not'
        for number in _OUT_OF_100.findall(subject)
        if number not in in_body
    ]


def _agreement_problems(text: str) -> list[str]:
    problems = [
        f'"1 {noun}" should be singular'
        for noun in _ONE_PLURAL.findall(text)
        if noun.lower() not in NOT_PLURAL_S_WORDS and not noun.lower().endswith("ss")
    ]
    problems += [
        f'"{count} {noun}" should be plural'
        for count, noun in _MANY_SINGULAR.findall(text)
        if noun in COUNT_NOUNS and count.replace(",", "") != "1"
    ]
    return problems


def _count_problems(text: str) -> list[str]:
    problems = []
    for count_text, noun, inside in _COUNTED_LIST.findall(text):
        more = sum(int(number) for number in _MORE.findall(inside))
        listing = _MORE.sub("", inside)
        if re.search(r"\d", listing):
            continue  # "3 tickets (2 open and 1 closed)" is a breakdown, not a list
        parts = [part.strip() for part in re.split(r",|\band\b|\bor\b", listing) if part.strip()]
        if len(parts) < 2 and not more:
            continue  # "(out of twenty)" or "(Tasks)" is not a list to count
        if len(parts) + more != int(count_text):
            problems.append(f'"{count_text} {noun.strip()}" but {len(parts) + more} listed')
    return problems


def _weak_problems(text: str) -> list[str]:
    problems = []
    for pattern in (_WEAK_AFTER, _WEAK_BEFORE):
        for points, max_points in pattern.findall(text):
            if float(max_points) > 0 and float(points) / float(max_points) >= 0.5:
                problems.append(f'"weak" for {points}/{max_points}, at least half the points')
    return problems
