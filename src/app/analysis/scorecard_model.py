"""The scorecard file format as pydantic models: signals, bands and curves, RAG, churn and alert rules, segments."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from src.app.schemas import ChurnRiskLevel, Rag

MissingPolicy = Literal["neutral", "zero", "exclude"]
"""What a missing value earns: fixed neutral points, nothing, or no part in the score (the rest is rescaled)."""

Direction = Literal["higher_is_better", "lower_is_better"]
"""Which way a numeric signal's raw value points to health."""

ChurnOutcome = Literal["both", "contract_proximity", "behavioral", "none"]
"""Which churn triggers fired: each alone, both, or none."""

RAGS: tuple[Rag, ...] = get_args(Rag)
WEIGHT_TOLERANCE = 1e-6
"""How far a signal's best points may be from its weight (suggested scorecards carry rounded points)."""

_MODEL = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def as_number(value: Any) -> float | None:
    """A raw value as a float: numbers and numeric text; None for booleans, other types and non-finite values."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


COMPARATORS: dict[str, Callable[[Any, Any], Any]] = {
    "at_most": operator.le,
    "below": operator.lt,
    "at_least": operator.ge,
    "above": operator.gt,
}
"""Each comparator a band or condition may name, as the operator it applies (to a number or a numpy array)."""


def compare(number: float, comparator: str, threshold: float) -> bool:
    """Whether `number` passes one comparator (at_most, below, at_least, above) against `threshold`."""
    return bool(COMPARATORS[comparator](number, threshold))


class Condition(BaseModel):
    """A test on one field of a signals mapping or account: every comparator given must hold."""

    model_config = _MODEL

    field: str = Field(min_length=1)
    in_: tuple[str | float, ...] | None = Field(default=None, alias="in")
    at_most: float | None = None
    below: float | None = None
    at_least: float | None = None
    above: float | None = None
    when_missing: bool = False

    @model_validator(mode="after")
    def _one_test_at_least(self) -> Self:
        if self.in_ is None and all(getattr(self, name) is None for name in COMPARATORS):
            raise ValueError(f"condition on {self.field!r} needs one of in, {', '.join(COMPARATORS)}")
        return self

    def holds(self, record: Any) -> bool:
        """Whether the condition holds for `record` (a mapping); a missing or None field gives `when_missing`."""
        value = record.get(self.field)
        if value is None:
            return self.when_missing
        if self.in_ is not None and value not in self.in_ and as_number(value) not in self.in_:
            return False
        tests = [(name, threshold) for name in COMPARATORS if (threshold := getattr(self, name)) is not None]
        if not tests:
            return True
        number = as_number(value)
        return number is not None and all(compare(number, name, threshold) for name, threshold in tests)


class Band(BaseModel):
    """One band of a banded signal: `points` when the raw value passes its single comparator."""

    model_config = _MODEL

    at_most: float | None = None
    below: float | None = None
    at_least: float | None = None
    above: float | None = None
    points: float = Field(ge=0)

    @model_validator(mode="after")
    def _exactly_one_comparator(self) -> Self:
        given = [name for name in COMPARATORS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a band needs exactly one of {', '.join(COMPARATORS)}, got {given or 'none'}")
        return self

    def test(self) -> tuple[str, float]:
        """The band's comparator and threshold."""
        name = next(name for name in COMPARATORS if getattr(self, name) is not None)
        threshold: float = getattr(self, name)
        return name, threshold


class Penalty(BaseModel):
    """Points removed per unit of another field (e.g. per open ticket), up to `max_units`; never below zero."""

    model_config = _MODEL

    field: str = Field(min_length=1)
    points_per_unit: float = Field(ge=0)
    max_units: int | None = Field(default=None, ge=0)


class SignalSpec(BaseModel):
    """One weighted signal: the raw field it reads, how a value maps to points, and what a missing value does."""

    model_config = _MODEL

    field: str | None = Field(default=None, min_length=1, description="Raw field read; defaults to the signal name")
    weight: float = Field(ge=0, description="The most points the signal can earn")
    direction: Direction | None = None
    bands: tuple[Band, ...] | None = Field(default=None, min_length=1)
    else_points: float | None = Field(default=None, ge=0)
    curve: tuple[tuple[float, float], ...] | None = Field(default=None, min_length=2)
    categories: dict[str, float] | None = Field(default=None, min_length=1)
    missing: MissingPolicy = "neutral"
    neutral_points: float | None = Field(default=None, ge=0)
    penalty: Penalty | None = None

    @model_validator(mode="after")
    def _one_mapping(self) -> Self:
        given = [name for name in ("bands", "curve", "categories") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a signal needs exactly one of bands, curve, categories, got {given or 'none'}")
        if (self.bands is None) != (self.else_points is None):
            raise ValueError("else_points goes with bands, and bands need else_points")
        if self.categories is None and self.direction is None:
            raise ValueError("a numeric signal (bands or curve) needs a direction")
        if (self.missing == "neutral") != (self.neutral_points is not None):
            raise ValueError('neutral_points goes with missing = "neutral", which needs it')
        return self

    @model_validator(mode="after")
    def _curve_is_a_function(self) -> Self:
        if self.curve is None:
            return self
        xs = [x for x, _ in self.curve]
        if any(later <= earlier for earlier, later in zip(xs, xs[1:], strict=False)):
            raise ValueError(f"curve x values must be strictly increasing, got {xs}")
        if any(not 0 <= fraction <= 1 for _, fraction in self.curve):
            raise ValueError("curve fractions of the weight must be between 0 and 1")
        return self

    @model_validator(mode="after")
    def _best_points_equal_weight(self) -> Self:
        options = self.point_options()
        if any(points > self.weight + WEIGHT_TOLERANCE for points in options):
            raise ValueError(f"no outcome may earn more than the weight ({self.weight}), got {max(options)}")
        if abs(max(options) - self.weight) > WEIGHT_TOLERANCE:
            raise ValueError(f"the best outcome must earn the full weight ({self.weight}), got {max(options)}")
        if self.neutral_points is not None and self.neutral_points > self.weight + WEIGHT_TOLERANCE:
            raise ValueError(f"neutral_points ({self.neutral_points}) exceeds the weight ({self.weight})")
        return self

    def point_options(self) -> list[float]:
        """The points each mapped outcome earns (bands and else, categories, or curve points)."""
        if self.bands is not None and self.else_points is not None:
            return [band.points for band in self.bands] + [self.else_points]
        if self.categories is not None:
            return list(self.categories.values())
        return [fraction * self.weight for _, fraction in self.curve or ()]


class MultiplierSpec(BaseModel):
    """Scales the summed points by a factor chosen by a field's value; records what it removed under `key`."""

    model_config = _MODEL

    field: str = Field(min_length=1)
    factors: dict[str, float] = Field(min_length=1)
    key: str | None = Field(default=None, min_length=1, description="Breakdown key; defaults to the field")

    @model_validator(mode="after")
    def _factors_non_negative(self) -> Self:
        negative = [value for value, factor in self.factors.items() if factor < 0]
        if negative:
            raise ValueError(f"multiplier factors must be >= 0, got negative ones for {', '.join(negative)}")
        return self

    @property
    def breakdown_key(self) -> str:
        """The key the multiplier's effect is recorded under in a breakdown."""
        return self.key or self.field


class RagThresholds(BaseModel):
    """GREEN at or above `green`, AMBER at or above `amber`, else RED."""

    model_config = _MODEL

    green: float = Field(ge=0, le=100)
    amber: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _amber_below_green(self) -> Self:
        if self.amber >= self.green:
            raise ValueError(f"amber ({self.amber}) must be lower than green ({self.green})")
        return self


class ChurnTrigger(BaseModel):
    """A churn trigger: fires when the RAG is in `rag_in` and every condition holds."""

    model_config = _MODEL

    rag_in: tuple[Rag, ...] = RAGS
    conditions: tuple[Condition, ...] = Field(min_length=1)


class ChurnRules(BaseModel):
    """The two churn triggers and the risk level for each (outcome, RAG) pair."""

    model_config = _MODEL

    contract_proximity: ChurnTrigger | None = None
    behavioral: ChurnTrigger | None = None
    levels: dict[ChurnOutcome, dict[Rag, ChurnRiskLevel]]

    @model_validator(mode="after")
    def _levels_complete(self) -> Self:
        gaps = [
            f"{outcome}.{rag}"
            for outcome in get_args(ChurnOutcome)
            for rag in RAGS
            if rag not in self.levels.get(outcome, {})
        ]
        if gaps:
            raise ValueError(f"churn levels have no risk level for {', '.join(gaps)}")
        return self


class AlertRule(BaseModel):
    """Alert when the RAG or the churn risk level is listed, or when any condition holds."""

    model_config = _MODEL

    rag_in: tuple[Rag, ...] = ("RED",)
    churn_risk_in: tuple[ChurnRiskLevel, ...] = ("high", "critical")
    conditions_any: tuple[Condition, ...] = ()


class ScorecardSpec(BaseModel):
    """A whole scorecard: weighted signals, multipliers, RAG thresholds, churn and alert rules, coverage floor."""

    model_config = _MODEL

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""
    coverage_floor: float = Field(ge=0, le=1, description="Below this coverage an account is insufficient data")
    rag: RagThresholds
    signals: dict[str, SignalSpec] = Field(min_length=1)
    multipliers: tuple[MultiplierSpec, ...] = ()
    churn: ChurnRules
    alert: AlertRule = AlertRule()

    @model_validator(mode="after")
    def _weights_and_keys(self) -> Self:
        if self.total_weight() <= 0:
            raise ValueError("the signal weights must add up to more than 0")
        clashes = [spec.breakdown_key for spec in self.multipliers if spec.breakdown_key in self.signals]
        if clashes:
            raise ValueError(f"multiplier keys clash with signal names: {', '.join(clashes)}")
        return self

    def total_weight(self) -> float:
        """The points all signals can earn together (100 for the default)."""
        return sum(spec.weight for spec in self.signals.values())

    def field_of(self, signal: str) -> str:
        """The raw field a signal reads."""
        return self.signals[signal].field or signal


class Segment(BaseModel):
    """A segment rule: accounts matching every condition use the named scorecard; no conditions matches all."""

    model_config = _MODEL

    name: str = Field(min_length=1)
    scorecard: str = Field(min_length=1)
    when: tuple[Condition, ...] = ()


class ScorecardSet(BaseModel):
    """Scorecards chosen per account by ordered segment rules: the first match wins, a catch-all comes last."""

    model_config = _MODEL

    name: str = Field(min_length=1)
    scorecards: dict[str, ScorecardSpec] = Field(min_length=1)
    segments: tuple[Segment, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _segments_resolve(self) -> Self:
        unknown = [segment.scorecard for segment in self.segments if segment.scorecard not in self.scorecards]
        if unknown:
            raise ValueError(f"segments name unknown scorecards: {', '.join(unknown)}")
        if self.segments[-1].when:
            raise ValueError("the last segment must have no conditions (the default)")
        early = [segment.name for segment in self.segments[:-1] if not segment.when]
        if early:
            raise ValueError(f"only the last segment may have no conditions, not {', '.join(early)}")
        return self
