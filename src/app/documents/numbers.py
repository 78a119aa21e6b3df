"""Check LLM prose against its facts: every number it writes must be one of the figures it was given."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

_NUMBER = re.compile(r"(?<![\w.])[-+]?\$?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(%?)")
_IDENTIFIER = re.compile(r"\b[A-Za-z]+[-_(]?\d[\w-]*")
"""Words with digits inside ("acct-0001", "Q4", "x2") are names, not figures."""


def fact_numbers(facts: Any) -> set[float]:
    """Every number in the facts: numeric values and the numbers written inside their text, recursively."""
    found: set[float] = set()
    _collect(facts, found)
    return found


def _collect(value: Any, found: set[float]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            found.add(float(value))
        return
    if isinstance(value, str):  # "overdue_60" holds the figure 60 (a key-like value, not a name)
        found.update(number for number, _ in prose_numbers(value.replace("_", " ")))
        return
    if isinstance(value, Mapping):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, Iterable):
        for item in value:
            _collect(item, found)


def prose_numbers(text: str) -> list[tuple[float, str]]:
    """The numbers written in `text` with their text ("$49,400" -> 49400.0), skipping names like "Q4" or "acct-7"."""
    text = _IDENTIFIER.sub(" ", text)
    numbers = []
    for match in _NUMBER.finditer(text):
        whole, decimals, _ = match.groups()
        value = float(whole.replace(",", "") + (f".{decimals}" if decimals else ""))
        numbers.append((value, match.group(0).lstrip("+-")))
    return numbers


def _matches(value: float, shown: str, facts: set[float]) -> bool:
    """Whether a number in prose is a fact as written, rounded, in absolute value or as a percentage of a ratio."""
    decimals = len(shown.split(".", 1)[1].rstrip("%")) if "." in shown else 0
    tolerance = 0.5 * 10**-decimals + 1e-9
    for fact in facts:
        for candidate in (fact, abs(fact), fact * 100, abs(fact) * 100):
            if abs(candidate - value) <= tolerance:
                return True
    return False


def unknown_numbers(texts: Iterable[str], facts: Any) -> list[str]:
    """The numbers in `texts` that are not among the facts (as written, once each, in order)."""
    known = fact_numbers(facts) | {100.0}  # "62/100" and percentages are out of a hundred
    unknown: list[str] = []
    for text in texts:
        for value, shown in prose_numbers(text):
            if not _matches(value, shown, known) and shown not in unknown:
                unknown.append(shown)
    return unknown


def model_texts(data: Any) -> list[str]:
    """Every string in a parsed LLM answer (its prose fields, lists included)."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, Mapping):
        return [text for item in data.values() for text in model_texts(item)]
    if isinstance(data, list | tuple):
        return [text for item in data for text in model_texts(item)]
    return []
