"""Scorecards as data: load and validate scorecard files, pick one per segment, and score signals with it.

The engine needs only the standard library and pydantic; the shipped `default.toml` gives exactly the scores of
`CSMHealthScorer().score(...)` for every valid `CSMHealthSignals`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from src.app.analysis.scorecard_model import (
    ChurnOutcome,
    ScorecardSet,
    ScorecardSpec,
    Segment,
    SignalSpec,
    as_number,
    compare,
)
from src.app.schemas import ChurnRiskLevel, ChurnTrigger, CSMHealthScore, Rag

SCORE_MIN = 0.0
SCORE_MAX = 100.0
_Model = TypeVar("_Model", bound=BaseModel)
DEFAULT_SCORECARD = "default.toml"
"""The shipped scorecard's file name in `src/app/data/scorecards/`."""


class ScorecardError(ValueError):
    """A scorecard file that cannot be read or is invalid; each problem names its field and TOML line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid scorecard: " + "; ".join(problems))


class ScorecardInputError(ValueError):
    """A signal value the scorecard cannot map (wrong type or unknown category), naming the field."""


class ScorecardScore(BaseModel):
    """One account scored with a scorecard: the score (None when insufficient), its coverage and what is missing."""

    account_id: str
    scorecard_name: str
    scorecard_version: str
    score: float | None
    rag: Rag | None
    churn_risk_level: ChurnRiskLevel | None
    churn_triggered_by: ChurnTrigger | None
    signal_breakdown: dict[str, float]
    coverage: float
    missing_signals: list[str]
    insufficient: bool
    should_alert: bool

    def to_health_score(self, *, computed_at: datetime | None = None) -> CSMHealthScore:
        """This score as a `CSMHealthScore` (naive `computed_at` means UTC; default now).

        Raises:
            ValueError: When the account had insufficient data.
        """
        if self.score is None or self.rag is None or self.churn_risk_level is None:
            raise ValueError(f"account {self.account_id} has insufficient data (coverage {self.coverage:.0%})")
        moment = computed_at or datetime.now(UTC)
        return CSMHealthScore(
            account_id=self.account_id,
            score=self.score,
            rag=self.rag,
            churn_risk_level=self.churn_risk_level,
            churn_triggered_by=self.churn_triggered_by,
            signal_breakdown=self.signal_breakdown,
            computed_at=moment if moment.tzinfo else moment.replace(tzinfo=UTC),
            coverage=self.coverage,
            missing_signals=self.missing_signals,
            scorecard_name=self.scorecard_name,
            scorecard_version=self.scorecard_version,
            alert_rule=self.should_alert,
        )


def signal_points(signals: Mapping[str, Any], scorecard: ScorecardSpec) -> dict[str, float | None]:
    """The unscaled points of every scorecard signal, in scorecard order; None for a missing, excluded signal.

    Raises:
        ScorecardInputError: A present value cannot be mapped (not a number, or an unknown category).
    """
    return {name: _points(signals, name, spec) for name, spec in scorecard.signals.items()}


def observed_signals(signals: Mapping[str, Any], scorecard: ScorecardSpec) -> list[str]:
    """The scorecard signals whose raw field is present (not missing, not None), in scorecard order."""
    return [name for name in scorecard.signals if signals.get(scorecard.field_of(name)) is not None]


def scorecard_fields(scorecard: ScorecardSpec) -> set[str]:
    """Every raw field the scorecard reads: its signals, penalties, multipliers, churn and alert conditions."""
    fields = {scorecard.field_of(name) for name in scorecard.signals}
    fields |= {spec.penalty.field for spec in scorecard.signals.values() if spec.penalty is not None}
    fields |= {spec.field for spec in scorecard.multipliers}
    triggers = [t for t in (scorecard.churn.contract_proximity, scorecard.churn.behavioral) if t is not None]
    conditions = [c for t in triggers for c in t.conditions] + list(scorecard.alert.conditions_any)
    return fields | {condition.field for condition in conditions}


def breakdown_fields(scorecard: ScorecardSpec) -> dict[str, tuple[str, ...]]:
    """The raw fields behind each breakdown key: a signal's field (then its penalty's), a multiplier's field."""
    fields = {
        name: (scorecard.field_of(name), *(() if spec.penalty is None else (spec.penalty.field,)))
        for name, spec in scorecard.signals.items()
    }
    for spec in scorecard.multipliers:
        fields[spec.breakdown_key] = (spec.field,)
    return fields


def coverage_of(observed: list[str], scorecard: ScorecardSpec) -> float:
    """The share of the scorecard's points whose signals were observed."""
    return sum(scorecard.signals[name].weight for name in observed) / scorecard.total_weight()


def score_with_scorecard(signals: Mapping[str, Any], scorecard: ScorecardSpec, account_id: str) -> ScorecardScore:
    """Score one account's raw signals (absent or None means missing) with a scorecard.

    Args:
        signals: Raw signal values by field, such as `CSMHealthSignals.model_dump()` or an imported record.
        scorecard: The scorecard to apply.
        account_id: The account the score belongs to.

    Returns:
        The score with its breakdown (summing to the score before rounding), coverage and missing signals;
        below the scorecard's coverage floor, an insufficient-data result without score, RAG or churn risk.

    Raises:
        ScorecardInputError: A present value cannot be mapped.
    """
    points = signal_points(signals, scorecard)
    observed = observed_signals(signals, scorecard)
    coverage = coverage_of(observed, scorecard)
    missing = [name for name in scorecard.signals if name not in observed]
    kept = {name: value for name, value in points.items() if value is not None}
    available = sum(scorecard.signals[name].weight for name in kept)
    if round(coverage, 9) < scorecard.coverage_floor or available <= 0:
        return _insufficient(scorecard, account_id, coverage, missing)
    if len(kept) < len(points):
        factor = scorecard.total_weight() / available
        kept = {name: value * factor for name, value in kept.items()}
    final = _apply_multipliers(signals, scorecard, sum(kept.values()), kept)
    clamped = min(max(final, SCORE_MIN), SCORE_MAX)
    score = round(clamped, 2)
    rag = rag_of(clamped, scorecard)  # thresholds apply to the unrounded score: 39.997 is RED, not AMBER
    outcome = churn_outcome(signals, scorecard, rag)
    level = scorecard.churn.levels[outcome][rag]
    return ScorecardScore(
        account_id=account_id,
        scorecard_name=scorecard.name,
        scorecard_version=scorecard.version,
        score=score,
        rag=rag,
        churn_risk_level=level,
        churn_triggered_by=None if outcome == "none" else outcome,
        signal_breakdown={key: round(value, 2) for key, value in kept.items()},
        coverage=round(coverage, 4),
        missing_signals=missing,
        insufficient=False,
        should_alert=should_alert(signals, scorecard, rag, level),
    )


def rag_of(score: float, scorecard: ScorecardSpec) -> Rag:
    """The RAG band of a score under the scorecard's thresholds."""
    if score >= scorecard.rag.green:
        return "GREEN"
    if score >= scorecard.rag.amber:
        return "AMBER"
    return "RED"


def churn_outcome(signals: Mapping[str, Any], scorecard: ScorecardSpec, rag: Rag) -> ChurnOutcome:
    """Which churn triggers fire for these signals at this RAG: one, "both" or "none"."""
    fired = [
        name
        for name, trigger in (
            ("contract_proximity", scorecard.churn.contract_proximity),
            ("behavioral", scorecard.churn.behavioral),
        )
        if trigger is not None and rag in trigger.rag_in and all(c.holds(signals) for c in trigger.conditions)
    ]
    if len(fired) == 2:
        return "both"
    return "contract_proximity" if fired == ["contract_proximity"] else "behavioral" if fired else "none"


def should_alert(signals: Mapping[str, Any], scorecard: ScorecardSpec, rag: Rag, level: ChurnRiskLevel) -> bool:
    """Whether the scorecard's alert rule raises an alert for this RAG, churn risk level and signals."""
    rule = scorecard.alert
    return rag in rule.rag_in or level in rule.churn_risk_in or any(c.holds(signals) for c in rule.conditions_any)


def _insufficient(scorecard: ScorecardSpec, account_id: str, coverage: float, missing: list[str]) -> ScorecardScore:
    return ScorecardScore(
        account_id=account_id,
        scorecard_name=scorecard.name,
        scorecard_version=scorecard.version,
        score=None,
        rag=None,
        churn_risk_level=None,
        churn_triggered_by=None,
        signal_breakdown={},
        coverage=round(coverage, 4),
        missing_signals=missing,
        insufficient=True,
        should_alert=False,
    )


def _points(signals: Mapping[str, Any], name: str, spec: SignalSpec) -> float | None:
    field = spec.field or name
    value = signals.get(field)
    if value is None:
        if spec.missing == "exclude":
            return None
        base = spec.neutral_points if spec.missing == "neutral" and spec.neutral_points is not None else 0.0
    else:
        base = _mapped(field, value, spec)
    if spec.penalty is None:
        return base
    units = as_number(signals.get(spec.penalty.field)) or 0.0
    if spec.penalty.max_units is not None:
        units = min(units, spec.penalty.max_units)
    return max(base - units * spec.penalty.points_per_unit, 0.0)


def _mapped(field: str, value: Any, spec: SignalSpec) -> float:
    if spec.categories is not None:
        points = spec.categories.get(str(value))
        if points is None:
            raise ScorecardInputError(f"{field}={value!r} is not one of {', '.join(spec.categories)}")
        return points
    number = as_number(value)
    if number is None:
        raise ScorecardInputError(f"{field}={value!r} is not a number")
    if spec.curve is not None:
        return _on_curve(number, spec.curve) * spec.weight
    for band in spec.bands or ():
        comparator, threshold = band.test()
        if compare(number, comparator, threshold):
            return band.points
    return spec.else_points or 0.0


def _on_curve(x: float, curve: tuple[tuple[float, float], ...]) -> float:
    """The curve's fraction at x: linear between its points, flat beyond its ends."""
    if x <= curve[0][0]:
        return curve[0][1]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if x <= x1:
            return y0 + (x - x0) * (y1 - y0) / (x1 - x0)
    return curve[-1][1]


def multiplier_factors(signals: Mapping[str, Any], scorecard: ScorecardSpec) -> list[tuple[str, float]]:
    """The (breakdown key, factor) of each multiplier whose field's value has a factor, in scorecard order."""
    found = []
    for spec in scorecard.multipliers:
        value = signals.get(spec.field)
        factor = None if value is None else spec.factors.get(str(value))
        if factor is not None:
            found.append((spec.breakdown_key, factor))
    return found


def _apply_multipliers(
    signals: Mapping[str, Any], scorecard: ScorecardSpec, total: float, breakdown: dict[str, float]
) -> float:
    for key, factor in multiplier_factors(signals, scorecard):
        reduced = total * factor
        breakdown[key] = reduced - total
        total = reduced
    return total


def select_scorecard(scorecard_set: ScorecardSet, account: Mapping[str, Any]) -> tuple[Segment, ScorecardSpec]:
    """The first segment whose conditions all hold for the account (the catch-all last), with its scorecard."""
    segment = next(s for s in scorecard_set.segments if all(c.holds(account) for c in s.when))
    return segment, scorecard_set.scorecards[segment.scorecard]


def parse_scorecard(text: str, *, source: str = "<scorecard>") -> ScorecardSpec:
    """Parse and validate a scorecard's TOML text.

    Raises:
        ScorecardError: Naming every invalid field with its TOML line.
    """
    return _validated(ScorecardSpec, _toml(text, source), text, source)


def load_scorecard(path: str | Path) -> ScorecardSpec:
    """Load and validate a scorecard file (a user's, e.g. from `CSM_SCORECARD`).

    Raises:
        ScorecardError: The file cannot be read or is invalid.
    """
    return parse_scorecard(_read(Path(path)), source=str(path))


@lru_cache(maxsize=1)
def load_default_scorecard() -> ScorecardSpec:
    """The shipped default scorecard (today's SPEC §6 score), loaded once."""
    resource = resources.files("src.app.data").joinpath("scorecards", DEFAULT_SCORECARD)
    return parse_scorecard(resource.read_text(encoding="utf-8"), source=DEFAULT_SCORECARD)


def load_scorecard_set(path: str | Path) -> ScorecardSet:
    """Load a scorecard set file, or a single scorecard file as a set with one catch-all segment.

    A set file has `name`, `[[segments]]` (`name`, `scorecard`, `when` conditions) and `[scorecards.NAME]`
    tables, each a whole scorecard inline or `file = "path"` relative to the set file; `"default"` names the
    shipped scorecard when no table of that name is given.

    Raises:
        ScorecardError: A file cannot be read or is invalid.
    """
    path = Path(path)
    text = _read(path)
    data = _toml(text, str(path))
    if "segments" not in data:
        card = _validated(ScorecardSpec, data, text, str(path))
        return ScorecardSet(
            name=card.name, scorecards={card.name: card}, segments=(Segment(name="all", scorecard=card.name),)
        )
    tables = data.get("scorecards", {})
    if isinstance(tables, dict):
        data["scorecards"] = {name: _referenced(table, path.parent) for name, table in tables.items()}
        data["scorecards"].setdefault("default", load_default_scorecard())
    return _validated(ScorecardSet, data, text, str(path))


def _referenced(table: Any, folder: Path) -> Any:
    """A `[scorecards.NAME]` table: the scorecard its `file` names (relative to the set file), or itself."""
    if isinstance(table, dict) and set(table) == {"file"}:
        return load_scorecard(folder / str(table["file"]))
    return table


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScorecardError(str(path), [f"cannot read the file: {error.strerror or error}"]) from None


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScorecardError(source, [f"not valid TOML: {error}"]) from None


def _validated(model: type[_Model], data: Any, text: str, source: str) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        lines = text.splitlines()
        raise ScorecardError(source, [_problem(detail, lines) for detail in error.errors(include_url=False)]) from None


def _problem(detail: Any, lines: list[str]) -> str:
    loc: tuple[int | str, ...] = detail["loc"]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "<file>"
    line = _line_of(lines, loc)
    where = f"{path} (line {line})" if line else path
    message = str(detail["msg"]).removeprefix("Value error, ")
    if detail["type"] == "extra_forbidden":
        message = "unknown field"
    elif detail["type"] == "missing":
        message = "required field is missing"
    return f"{where}: {message}"


def _line_of(lines: list[str], loc: tuple[int | str, ...]) -> int | None:
    """Best effort: the 1-based line where the last findable key of `loc` appears, searching in order."""
    start, found = 0, None
    for part in loc:
        if isinstance(part, int):
            continue
        key = re.compile(rf'(^|[\s\[.{{,"])"?{re.escape(part)}"?\s*(=|\]|\.)')
        index = next((i for i in range(start, len(lines)) if key.search(lines[i].split("#", 1)[0])), None)
        if index is None:
            break
        start, found = index, index + 1
    return found
