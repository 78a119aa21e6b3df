"""Offline writer for ExpansionPitches: one talk track per expansion candidate, plus the offer vocabulary."""

from __future__ import annotations

from src.app.documents.wording import possessive
from src.app.tools.llm.offline.phrasing import (
    Account,
    Answer,
    Facts,
    as_dict,
    as_list,
    fmt_money,
    num,
    read_account,
)


def expansion_pitches(facts: Facts) -> Answer:
    """ExpansionPitches: one talk track per valid candidate: the offer, its ARR impact and how hard to push.

    The draft lists each candidate's evidence right above its talk track, so the track does not repeat it.
    """
    account = read_account(facts)
    pitches = [
        {"opportunity_type": kind, "recommended_talk_track": _talk_track(account, candidate, kind)}
        for candidate in map(as_dict, as_list(facts.get("candidates"))[:10])
        if (kind := candidate.get("opportunity_type")) in OFFERS
    ]
    return {"opportunities": pitches}


def _talk_track(account: Account, candidate: Facts, kind: str) -> str:
    """A talk track for one expansion candidate: an opener, the offer, ARR impact and how hard to push."""
    impact, confidence = fmt_money(num(candidate.get("estimated_arr_impact"))), candidate_confidence(candidate)
    sentences = [
        _OPENERS[kind].format(name=account.name, owner=possessive(account.name)),
        OFFERS[kind][1],
        f"Size it at about {impact} in additional ARR." if impact else "",
        f"Confidence is {confidence}, so position it as {_FRAMING[confidence]}.",
    ]
    return " ".join(sentence for sentence in sentences if sentence)


def candidate_confidence(candidate: Facts) -> str:
    """The candidate's confidence level, 'medium' when missing or unknown."""
    value = candidate.get("confidence")
    return value if isinstance(value, str) and value in _FRAMING else "medium"


OFFERS = {
    "seats": ("Seat expansion", "Propose adding seats so every active user is licensed as the team grows."),
    "module": (
        "Additional module",
        "Offer a guided trial of the module that extends workflows the team relies on.",
    ),
    "integration": (
        "Integration",
        "Offer to scope the integration with their technical owner to remove manual work.",
    ),
}

_OPENERS = {
    "seats": "Ask {owner} admin how the team has grown this quarter and who is still waiting for a licence.",
    "module": "Ask how {name} gets today's results out of the features it leans on most, and where it hits limits.",
    "integration": "Ask which systems the team at {name} still moves data between by hand.",
}
"""How each talk track opens: a question that lets the customer state the need the evidence points to."""

_FRAMING = {
    "high": "a natural next step this quarter",
    "medium": "an option to validate with the champion first",
    "low": "an exploratory conversation rather than a firm ask",
}
